//! TLS for every listener and every client (rustls over ring).
//!
//! A listener given a certificate and key serves TLS only; given a client
//! CA too, it requires a client certificate that CA signed (mutual TLS,
//! between services). Clients speak TLS to `https://` URLs, trusting the
//! configured CA (else the system roots) and presenting a client
//! certificate when one is configured.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

use crate::crypto;

/// Longest a TLS handshake may take before the connection is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsSettings {
    /// Server certificate chain (PEM). With ONESTOP_TLS_KEY, the listener
    /// serves TLS only.
    #[arg(long, env = "ONESTOP_TLS_CERT")]
    pub tls_cert: Option<PathBuf>,

    /// Private key (PEM) of ONESTOP_TLS_CERT.
    #[arg(long, env = "ONESTOP_TLS_KEY")]
    pub tls_key: Option<PathBuf>,

    /// CA bundle (PEM) for client certificates. Set, the listener requires
    /// a client certificate signed by it (mutual TLS).
    #[arg(long, env = "ONESTOP_TLS_CLIENT_CA")]
    pub tls_client_ca: Option<PathBuf>,

    /// CA bundle (PEM) this process trusts for https:// upstreams, feeds,
    /// key sets and revocation lists. Unset, the system's roots.
    #[arg(long, env = "ONESTOP_TLS_CA")]
    pub tls_ca: Option<PathBuf>,

    /// Client certificate chain (PEM) presented to https:// upstreams that
    /// require one (mutual TLS).
    #[arg(long, env = "ONESTOP_TLS_CLIENT_CERT")]
    pub tls_client_cert: Option<PathBuf>,

    /// Private key (PEM) of ONESTOP_TLS_CLIENT_CERT.
    #[arg(long, env = "ONESTOP_TLS_CLIENT_KEY")]
    pub tls_client_key: Option<PathBuf>,
}

fn read(path: &Path, what: &str) -> anyhow::Result<Pem> {
    let bytes = std::fs::read(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    Ok(bytes.into())
}

/// A certificate chain and its private key, PEM.
type Pem = Arc<[u8]>;
type KeyPairPem = (Pem, Pem);

fn pair(
    cert: &Option<PathBuf>,
    key: &Option<PathBuf>,
    names: (&str, &str),
) -> anyhow::Result<Option<KeyPairPem>> {
    match (cert, key) {
        (Some(cert), Some(key)) => Ok(Some((
            read(cert, "certificate")?,
            read(key, "private key")?,
        ))),
        (None, None) => Ok(None),
        _ => anyhow::bail!(
            "{} and {} go together: set both or neither",
            names.0,
            names.1
        ),
    }
}

impl TlsSettings {
    /// Whether the listener serves TLS.
    pub fn serves_tls(&self) -> bool {
        self.tls_cert.is_some()
    }

    /// The listener's TLS, if configured; fails on unreadable files or a
    /// half-given setting.
    pub fn server_config(&self) -> anyhow::Result<Option<ServerTlsConfig>> {
        crypto::install();
        let Some((cert, key)) = pair(
            &self.tls_cert,
            &self.tls_key,
            ("ONESTOP_TLS_CERT", "ONESTOP_TLS_KEY"),
        )?
        else {
            anyhow::ensure!(
                self.tls_client_ca.is_none(),
                "ONESTOP_TLS_CLIENT_CA (mutual TLS) needs ONESTOP_TLS_CERT and ONESTOP_TLS_KEY"
            );
            return Ok(None);
        };
        let mut config = ServerTlsConfig::new()
            .identity(Identity::from_pem(cert, key))
            .timeout(HANDSHAKE_TIMEOUT);
        if let Some(ca) = &self.tls_client_ca {
            config = config.client_ca_root(Certificate::from_pem(read(ca, "client CA")?));
        }
        Ok(Some(config))
    }

    /// What this process's clients trust and present.
    pub fn client(&self) -> anyhow::Result<ClientTls> {
        crypto::install();
        Ok(ClientTls {
            ca: self.tls_ca.as_deref().map(|p| read(p, "CA")).transpose()?,
            identity: pair(
                &self.tls_client_cert,
                &self.tls_client_key,
                ("ONESTOP_TLS_CLIENT_CERT", "ONESTOP_TLS_CLIENT_KEY"),
            )?,
            server_name: None,
        })
    }

    /// The client a process uses to probe its own listener: it presents
    /// its client certificate, else its server certificate (a service's
    /// certificate serves both ends of mutual TLS), and checks the
    /// listener's certificate against `server_name`.
    pub fn probe_client(&self, server_name: &str) -> anyhow::Result<ClientTls> {
        let mut client = self.client()?;
        if client.identity.is_none() {
            client.identity = pair(
                &self.tls_cert,
                &self.tls_key,
                ("ONESTOP_TLS_CERT", "ONESTOP_TLS_KEY"),
            )?;
        }
        client.server_name = Some(server_name.to_owned());
        Ok(client)
    }
}

/// The trust and identity of a client: cheap to clone.
#[derive(Clone, Default)]
pub struct ClientTls {
    ca: Option<Pem>,
    identity: Option<KeyPairPem>,
    server_name: Option<String>,
}

impl std::fmt::Debug for ClientTls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientTls")
            .field("ca", &self.ca.is_some())
            .field("client_certificate", &self.identity.is_some())
            .finish()
    }
}

impl ClientTls {
    /// Trusting only `ca_pem`, presenting `identity` (certificate and key
    /// PEM) when given.
    pub fn new(ca_pem: &str, identity: Option<(&str, &str)>) -> Self {
        crypto::install();
        Self {
            ca: Some(ca_pem.as_bytes().into()),
            identity: identity.map(|(cert, key)| (cert.as_bytes().into(), key.as_bytes().into())),
            server_name: None,
        }
    }

    /// An endpoint for `url`, with TLS when it is `https://`.
    pub fn endpoint(&self, url: &str) -> anyhow::Result<Endpoint> {
        let endpoint = Endpoint::from_shared(url.to_owned())
            .map_err(|error| anyhow::anyhow!("invalid URL {url:?}: {error}"))?;
        if endpoint.uri().scheme_str() != Some("https") {
            return Ok(endpoint);
        }
        let mut config = ClientTlsConfig::new().timeout(HANDSHAKE_TIMEOUT);
        config = match &self.ca {
            Some(ca) => config.ca_certificate(Certificate::from_pem(ca)),
            None => config.with_native_roots(),
        };
        if let Some((cert, key)) = &self.identity {
            config = config.identity(Identity::from_pem(cert, key));
        }
        if let Some(name) = &self.server_name {
            config = config.domain_name(name.clone());
        }
        endpoint
            .tls_config(config)
            .map_err(|error| anyhow::anyhow!("TLS for {url}: {error}"))
    }

    /// The same trust and identity for plain rustls (HTTP fetches).
    pub(crate) fn rustls_config(&self) -> anyhow::Result<rustls::ClientConfig> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        crypto::install();
        let mut roots = rustls::RootCertStore::empty();
        match &self.ca {
            Some(ca) => {
                for cert in CertificateDer::pem_slice_iter(ca) {
                    roots.add(cert.context("the CA bundle is not PEM")?)?;
                }
            }
            None => {
                roots.add_parsable_certificates(rustls_native_certs::load_native_certs().certs);
            }
        }
        let builder = rustls::ClientConfig::builder().with_root_certificates(roots);
        let mut config = match &self.identity {
            Some((cert, key)) => builder.with_client_auth_cert(
                CertificateDer::pem_slice_iter(cert).collect::<Result<Vec<_>, _>>()?,
                PrivateKeyDer::from_pem_slice(key)?,
            )?,
            None => builder.with_no_client_auth(),
        };
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(config)
    }
}

// ---------------------------------------------------------------- certificates

/// A private certificate authority, for compose's generated TLS setup and
/// for tests. Production deployments bring their own (cert-manager, a
/// corporate CA).
pub struct CertificateAuthority {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    cert_pem: String,
}

/// Valid from yesterday (clock skew) for `years`.
fn set_validity(params: &mut rcgen::CertificateParams, years: i32) {
    use chrono::Datelike;
    let today = chrono::Utc::now().date_naive();
    let yesterday = today.pred_opt().unwrap_or(today);
    let day = |d: chrono::NaiveDate, years: i32| {
        // Day 28 at most, so the date exists in every month of every year.
        rcgen::date_time_ymd(d.year() + years, d.month() as u8, d.day().min(28) as u8)
    };
    params.not_before = day(yesterday, 0);
    params.not_after = day(today, years);
}

impl CertificateAuthority {
    pub fn generate(name: &str) -> anyhow::Result<Self> {
        use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
        crypto::install();
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(Vec::<String>::new())?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        set_validity(&mut params, 10);
        let cert_pem = params.self_signed(&key)?.pem();
        Ok(Self {
            issuer: rcgen::Issuer::new(params, key),
            cert_pem,
        })
    }

    /// The CA certificate (PEM), to trust.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// A certificate for `names` (DNS names or IP addresses) good for both
    /// ends of mutual TLS. Returns (certificate PEM, private key PEM).
    pub fn issue(&self, common_name: &str, names: &[String]) -> anyhow::Result<(String, String)> {
        use rcgen::{CertificateParams, DnType, ExtendedKeyUsagePurpose, KeyPair, KeyUsagePurpose};
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::new(names.to_vec())?;
        params
            .distinguished_name
            .push(DnType::CommonName, common_name);
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        params.use_authority_key_identifier_extension = true;
        set_validity(&mut params, 2);
        let cert = params.signed_by(&key, &self.issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// Writes a fresh private CA and certificates beside the signing keys of a
/// key directory: `public/ca.pem`, `<service>/tls.pem` and
/// `<service>/tls.key.pem` (names: the service, `localhost`, `127.0.0.1`,
/// and `extra_names`), `operator/client.pem` and `operator/client.key.pem`
/// for the operator's commands. The CA's key is not kept. Returns false
/// and writes nothing when `public/ca.pem` exists.
pub fn generate_certificates(
    root: &Path,
    services: &[String],
    extra_names: &[String],
) -> anyhow::Result<bool> {
    use crate::auth::{create_dir, write_atomically};
    let ca_path = root.join("public").join("ca.pem");
    if ca_path.exists() {
        return Ok(false);
    }
    let ca = CertificateAuthority::generate("OneStop private CA")?;
    let holders = services
        .iter()
        .map(|s| (s.clone(), s.clone(), "tls"))
        .chain(std::iter::once((
            "operator".into(),
            "operator".into(),
            "client",
        )));
    for (folder, common_name, file) in holders {
        let mut names = vec![common_name.clone(), "localhost".into(), "127.0.0.1".into()];
        names.extend(extra_names.iter().cloned());
        let (cert, key) = ca.issue(&common_name, &names)?;
        let folder = root.join(folder);
        create_dir(&folder, 0o700)?;
        write_atomically(&folder.join(format!("{file}.pem")), cert.as_bytes(), 0o644)?;
        write_atomically(
            &folder.join(format!("{file}.key.pem")),
            key.as_bytes(),
            0o600,
        )?;
    }
    create_dir(&root.join("public"), 0o755)?;
    write_atomically(&ca_path, ca.cert_pem().as_bytes(), 0o644)?;
    Ok(true)
}
