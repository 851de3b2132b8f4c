//! Calling another OneStop service: a lazily connected channel and an
//! interceptor that presents a service token and carries the current trace.

use std::time::Duration;

use tonic::metadata::MetadataValue;
use tonic::service::Interceptor;
use tonic::transport::{Channel, Endpoint};

use crate::auth::{Role, TokenKeys};
use crate::telemetry;

/// A channel to `url` that connects on first use and reconnects after the
/// peer restarts, so a service can start before its upstreams.
pub fn lazy_channel(url: &str, call_timeout: Duration) -> anyhow::Result<Channel> {
    let endpoint = Endpoint::from_shared(url.to_owned())
        .map_err(|error| anyhow::anyhow!("invalid upstream URL {url:?}: {error}"))?
        .connect_timeout(Duration::from_secs(3))
        .timeout(call_timeout)
        .tcp_nodelay(true);
    Ok(endpoint.connect_lazy())
}

/// Signs every outgoing call as `subject` with the `service` role, and
/// injects the W3C trace context of the span the call runs in.
#[derive(Clone)]
pub struct ServiceCredentials {
    keys: TokenKeys,
    subject: String,
}

impl ServiceCredentials {
    pub fn new(keys: TokenKeys, subject: impl Into<String>) -> Self {
        Self {
            keys,
            subject: subject.into(),
        }
    }
}

impl Interceptor for ServiceCredentials {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        // Short-lived and minted per call: nothing to refresh or leak.
        let token = self
            .keys
            .issue(&self.subject, Role::Service, None, Duration::from_secs(300))
            .map_err(|error| {
                tonic::Status::internal(format!("cannot sign service token: {error}"))
            })?;
        let value = MetadataValue::try_from(format!("Bearer {token}"))
            .map_err(|_| tonic::Status::internal("service token is not valid metadata"))?;
        request.metadata_mut().insert("authorization", value);
        telemetry::inject_current_context(request.metadata_mut());
        Ok(request)
    }
}

/// A bearer token minted once from the shared secret, for admin commands
/// that drive a running service through its API (seeding, say).
#[derive(Clone)]
pub struct SignedToken(MetadataValue<tonic::metadata::Ascii>);

impl SignedToken {
    pub fn mint(
        keys: &TokenKeys,
        subject: &str,
        role: Role,
        tenant: Option<&str>,
    ) -> anyhow::Result<Self> {
        Self::bearer(&keys.issue(subject, role, tenant, Duration::from_secs(3600))?)
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
