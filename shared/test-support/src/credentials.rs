//! Keys and certificates a test makes for itself at run time, written the
//! way `keys generate` writes them (the same code), in a temporary
//! directory removed when the value drops.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use onestop_platform::auth::{DEV_SERVICES, KeyDirectory, KeyOwner, Role, SigningKey, TokenIssuer};
use onestop_platform::config::ServerSettings;
use onestop_platform::tls::{ClientTls, generate_certificates};
use tonic::transport::Channel;

use crate::AUDIENCE;

fn temporary_dir(kind: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "onestop-test-{kind}-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).expect("temporary directory");
    dir
}

fn services() -> Vec<String> {
    DEV_SERVICES.iter().map(|s| (*s).to_owned()).collect()
}

/// A fresh key set: an issuer key and one key per service.
pub struct TestKeys {
    dir: PathBuf,
}

impl TestKeys {
    pub fn generate() -> Self {
        let dir = temporary_dir("keys");
        KeyDirectory::new(&dir)
            .generate(&services())
            .expect("keys generate");
        Self { dir }
    }

    pub fn directory(&self) -> KeyDirectory {
        KeyDirectory::new(&self.dir)
    }

    pub fn jwks_path(&self) -> PathBuf {
        self.directory().jwks_path()
    }

    /// Where [`TestKeys::apply`] points the revocation list (absent until a
    /// test writes it).
    pub fn revocations_path(&self) -> PathBuf {
        self.dir.join("revocations.json")
    }

    /// Settings that trust this key set only (development mode off), with
    /// the revocation list above, reloading every 100 ms.
    pub fn apply(&self, settings: &mut ServerSettings) {
        settings.auth.dev_mode = false;
        settings.auth.jwks = vec![self.jwks_path()];
        settings.auth.revocations = Some(self.revocations_path().display().to_string());
        settings.auth.keys_reload = Duration::from_millis(100);
    }

    /// The same for a binary, running as `service`.
    pub fn env(&self, service: &str) -> Vec<(String, String)> {
        vec![
            ("ONESTOP_DEV_MODE".into(), "false".into()),
            (
                "ONESTOP_JWKS".into(),
                self.jwks_path().display().to_string(),
            ),
            (
                "ONESTOP_SERVICE_KEY".into(),
                self.directory()
                    .service_key_path(service)
                    .display()
                    .to_string(),
            ),
            (
                "ONESTOP_REVOCATIONS".into(),
                self.revocations_path().display().to_string(),
            ),
            ("ONESTOP_KEYS_RELOAD".into(), "200ms".into()),
        ]
    }

    /// The current issuer key.
    pub fn issuer(&self) -> TokenIssuer {
        let key =
            SigningKey::from_pem_file(&self.directory().issuer_key_path()).expect("issuer key");
        TokenIssuer::new(key, KeyOwner::Issuer, AUDIENCE)
    }

    /// A token for `role` (and `tenant`) as [`crate::token`] makes one,
    /// signed with these keys: `service` tokens with intake's key.
    pub fn token(&self, role: Role, tenant: Option<&str>) -> String {
        crate::mint(
            &self.issuer(),
            &self.service(crate::CALLING_SERVICE),
            role,
            tenant,
        )
    }

    /// The current key of `service`.
    pub fn service(&self, service: &str) -> TokenIssuer {
        let key = SigningKey::from_pem_file(&self.directory().service_key_path(service))
            .expect("service key");
        TokenIssuer::new(key, KeyOwner::Service(service.into()), AUDIENCE)
    }
}

impl Drop for TestKeys {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A private CA with a certificate per service (names: the service,
/// `localhost`, `127.0.0.1`) and one for an operator's client.
pub struct TestPki {
    dir: PathBuf,
}

impl TestPki {
    pub fn generate() -> Self {
        let dir = temporary_dir("pki");
        generate_certificates(&dir, &services(), &[]).expect("certificates");
        Self { dir }
    }

    pub fn ca_path(&self) -> PathBuf {
        self.dir.join("public").join("ca.pem")
    }

    fn pair(&self, holder: &str) -> (PathBuf, PathBuf) {
        let file = if holder == "operator" {
            "client"
        } else {
            "tls"
        };
        let folder = self.dir.join(holder);
        (
            folder.join(format!("{file}.pem")),
            folder.join(format!("{file}.key.pem")),
        )
    }

    /// Settings serving TLS with `service`'s certificate, requiring client
    /// certificates when `mutual`, and calling out with the same
    /// certificate over TLS.
    pub fn apply(&self, settings: &mut ServerSettings, service: &str, mutual: bool) {
        let (cert, key) = self.pair(service);
        settings.tls.tls_cert = Some(cert.clone());
        settings.tls.tls_key = Some(key.clone());
        settings.tls.tls_client_ca = mutual.then(|| self.ca_path());
        settings.tls.tls_ca = Some(self.ca_path());
        settings.tls.tls_client_cert = Some(cert);
        settings.tls.tls_client_key = Some(key);
    }

    /// The same for a binary.
    pub fn env(&self, service: &str, mutual: bool) -> Vec<(String, String)> {
        let (cert, key) = self.pair(service);
        let path = |p: &Path| p.display().to_string();
        let mut env = vec![
            ("ONESTOP_TLS_CERT".into(), path(&cert)),
            ("ONESTOP_TLS_KEY".into(), path(&key)),
            ("ONESTOP_TLS_CA".into(), path(&self.ca_path())),
            ("ONESTOP_TLS_CLIENT_CERT".into(), path(&cert)),
            ("ONESTOP_TLS_CLIENT_KEY".into(), path(&key)),
        ];
        if mutual {
            env.push(("ONESTOP_TLS_CLIENT_CA".into(), path(&self.ca_path())));
        }
        env
    }

    /// A client trusting the CA, presenting the operator's certificate when
    /// `with_certificate`.
    pub fn client(&self, with_certificate: bool) -> ClientTls {
        let read = |p: PathBuf| std::fs::read_to_string(p).expect("PEM file");
        let ca = read(self.ca_path());
        if with_certificate {
            let (cert, key) = self.pair("operator");
            let (cert, key) = (read(cert), read(key));
            ClientTls::new(&ca, Some((&cert, &key)))
        } else {
            ClientTls::new(&ca, None)
        }
    }

    /// A lazily connecting TLS channel to `addr`.
    pub fn channel(&self, addr: SocketAddr, with_certificate: bool) -> Channel {
        self.client(with_certificate)
            .endpoint(&format!("https://{addr}"))
            .expect("TLS endpoint")
            .connect_timeout(Duration::from_secs(5))
            .connect_lazy()
    }
}

impl Drop for TestPki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A tiny HTTPS server answering every GET with one JSON document, as an
/// identity provider's JWKS endpoint would; stops when dropped.
pub struct StaticHttps {
    pub addr: SocketAddr,
    body: std::sync::Arc<std::sync::Mutex<Vec<u8>>>,
    serving: tokio::task::JoinHandle<()>,
}

impl StaticHttps {
    /// Serves `body` over TLS with `pki`'s certificate for `holder`.
    pub async fn start(pki: &TestPki, holder: &str, body: Vec<u8>) -> Self {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        onestop_platform::crypto::install();
        let (cert, key) = pki.pair(holder);
        let chain = CertificateDer::pem_file_iter(cert)
            .expect("certificate")
            .collect::<Result<Vec<_>, _>>()
            .expect("certificate chain");
        let key = PrivateKeyDer::from_pem_file(key).expect("key");
        let config = rustls::ServerConfig::builder()
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .expect("server config");
        let acceptor = tokio_rustls::TlsAcceptor::from(std::sync::Arc::new(config));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let body = std::sync::Arc::new(std::sync::Mutex::new(body));
        let served = body.clone();
        let serving = tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let acceptor = acceptor.clone();
                let body = served.lock().expect("body").clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else {
                        return;
                    };
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match tls.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let head = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                        body.len()
                    );
                    let _ = tls.write_all(head.as_bytes()).await;
                    let _ = tls.write_all(&body).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
        Self {
            addr,
            body,
            serving,
        }
    }

    /// What later requests get.
    pub fn set_body(&self, body: Vec<u8>) {
        *self.body.lock().expect("body") = body;
    }

    pub fn url(&self, path: &str) -> String {
        format!("https://{}{path}", self.addr)
    }
}

impl Drop for StaticHttps {
    fn drop(&mut self) {
        self.serving.abort();
    }
}
