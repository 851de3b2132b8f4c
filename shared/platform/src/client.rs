//! Calling another OneStop service: a lazily connected channel (TLS for
//! `https://` URLs) and interceptors that present a token and carry the
//! current trace.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::transport::Channel;

use crate::auth::{Role, TokenIssuer};
use crate::config::Keepalive;
use crate::telemetry;
use crate::tls::ClientTls;

/// A channel to `url` that connects on first use and reconnects after the
/// peer restarts, so a service can start before its upstreams. `https://`
/// URLs speak TLS as `tls` says; the connection is kept alive (and a lost
/// peer noticed) as `keepalive` says.
pub fn lazy_channel(
    url: &str,
    call_timeout: Duration,
    tls: &ClientTls,
    keepalive: &Keepalive,
) -> anyhow::Result<Channel> {
    let endpoint = tls
        .endpoint(url)?
        .connect_timeout(Duration::from_secs(3))
        .timeout(call_timeout)
        .tcp_nodelay(true);
    Ok(keepalive.endpoint(endpoint).connect_lazy())
}

/// A failed call to `url` as one line that names the address and what
/// lies under a bare "transport error" (refused, timed out, TLS).
pub fn call_error(url: &str, status: &tonic::Status) -> anyhow::Error {
    let mut line = format!("{url}: {:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    while let Some(cause) = source {
        // tonic repeats a cause at several levels; say each once.
        let cause_text = cause.to_string();
        if !line.contains(&cause_text) {
            line.push_str(&format!(": {cause_text}"));
        }
        source = cause.source();
    }
    anyhow::anyhow!(line)
}

/// How long a service token lives, and how long one is reused before a
/// fresh one is signed: well inside its life, so clock skew between
/// services never makes a reused token expire in flight.
const SERVICE_TOKEN_LIFETIME: Duration = Duration::from_secs(300);
const SERVICE_TOKEN_REUSE: Duration = Duration::from_secs(60);

/// Signs every outgoing call as this service (role `service`, subject the
/// service's name) with its own key, and injects the W3C trace context of
/// the span the call runs in.
#[derive(Clone)]
pub struct ServiceCredentials {
    issuer: TokenIssuer,
    current: Arc<Mutex<Option<SignedAt>>>,
}

/// A signed bearer value and when it was signed.
type SignedAt = (Instant, MetadataValue<Ascii>);

impl ServiceCredentials {
    /// `issuer` must hold a service key (see `AuthSettings::service_issuer`).
    pub fn new(issuer: TokenIssuer) -> Self {
        Self {
            issuer,
            current: Arc::default(),
        }
    }

    /// The service these credentials speak for.
    pub fn service(&self) -> String {
        match self.issuer.owner() {
            crate::auth::KeyOwner::Service(name) => name.clone(),
            crate::auth::KeyOwner::Issuer => String::new(),
        }
    }

    fn bearer(&self) -> Result<MetadataValue<Ascii>, tonic::Status> {
        let mut current = self.current.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((signed_at, value)) = current.as_ref()
            && signed_at.elapsed() < SERVICE_TOKEN_REUSE
        {
            return Ok(value.clone());
        }
        let token = self
            .issuer
            .issue(&self.service(), Role::Service, None, SERVICE_TOKEN_LIFETIME)
            .map_err(|error| {
                tonic::Status::internal(format!("cannot sign service token: {error}"))
            })?;
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| tonic::Status::internal("service token is not valid metadata"))?;
        *current = Some((Instant::now(), value.clone()));
        Ok(value)
    }
}

impl Interceptor for ServiceCredentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.bearer()?);
        telemetry::inject_current_context(request.metadata_mut());
        Ok(request)
    }
}

/// A bearer token for admin commands that drive a running service through
/// its API (seeding, say): minted once with the issuer key, or one the
/// caller already holds.
#[derive(Clone)]
pub struct SignedToken(MetadataValue<Ascii>);

impl SignedToken {
    /// Valid for an hour: long enough for any seed run.
    pub fn mint(
        issuer: &TokenIssuer,
        subject: &str,
        role: Role,
        tenant: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::bearer(&issuer.issue(subject, role, tenant, Duration::from_secs(3600))?)
    }

    /// A token the caller already holds.
    pub fn bearer(token: &str) -> anyhow::Result<Self> {
        Ok(Self(MetadataValue::try_from(format!("Bearer {token}"))?))
    }
}

impl Interceptor for SignedToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        request
            .metadata_mut()
            .insert("authorization", self.0.clone());
        Ok(request)
    }
}
