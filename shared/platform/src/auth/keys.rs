//! Signing keys, the public key set (JWKS) and the key directory an
//! operator keeps.
//!
//! Every OneStop key is Ed25519, stored as PKCS#8 PEM (what `openssl
//! genpkey -algorithm ed25519` writes too). A key's id (`kid`) is its RFC
//! 7638 thumbprint, so a key file needs no separate id and two different
//! keys never share one. The JWKS says, per key, whom it speaks for
//! (`onestop_signer`: `issuer`, or `service` with `onestop_service`).

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use ring::signature::KeyPair;
use rustls_pki_types::PrivatePkcs8KeyDer;
use rustls_pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};

use super::{Claims, ISSUER, MAX_TOKEN_LIFETIME, Role, TokenError, check_tenant};
use crate::crypto;

/// The services of the suite: `keys generate` makes one key for each, and
/// the development key set has one for each.
pub const DEV_SERVICES: [&str; 5] = ["intake", "mentoring", "buyers", "referral", "insights"];

/// Whom a key speaks for.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum KeyOwner {
    /// Signs partner, dashboard and admin tokens.
    Issuer,
    /// Signs only `service` tokens whose subject is this service.
    Service(String),
}

impl std::fmt::Display for KeyOwner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KeyOwner::Issuer => f.write_str("the issuer"),
            KeyOwner::Service(name) => write!(f, "service {name}"),
        }
    }
}

/// An Ed25519 private key.
#[derive(Clone)]
pub struct SigningKey {
    kid: String,
    public: Arc<[u8]>,
    encoding: Arc<EncodingKey>,
}

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.kid)
    }
}

impl SigningKey {
    /// A fresh key from the system's secure random source.
    pub fn generate() -> anyhow::Result<(Self, String)> {
        let document =
            ring::signature::Ed25519KeyPair::generate_pkcs8(&ring::rand::SystemRandom::new())
                .map_err(|_| anyhow::anyhow!("the system random source failed"))?;
        let pem = pem_encode("PRIVATE KEY", document.as_ref());
        Ok((Self::from_pkcs8(document.as_ref())?, pem))
    }

    pub fn from_pkcs8(der: &[u8]) -> anyhow::Result<Self> {
        crypto::install();
        let pair = crypto::ed25519_key_pair(der)
            .map_err(|_| anyhow::anyhow!("not an Ed25519 PKCS#8 private key"))?;
        let public: Arc<[u8]> = pair.public_key().as_ref().into();
        Ok(Self {
            kid: thumbprint(&public),
            public,
            encoding: Arc::new(EncodingKey::from_ed_der(der)),
        })
    }

    /// Reads a PKCS#8 PEM file ("PRIVATE KEY").
    pub fn from_pem_file(path: &Path) -> anyhow::Result<Self> {
        let der = PrivatePkcs8KeyDer::from_pem_file(path)
            .with_context(|| format!("cannot read the private key {}", path.display()))?;
        Self::from_pkcs8(der.secret_pkcs8_der())
            .with_context(|| format!("{} holds no usable key", path.display()))
    }

    pub fn kid(&self) -> &str {
        &self.kid
    }

    /// The public half as a JWKS entry speaking for `owner`.
    pub fn public_jwk(&self, owner: &KeyOwner) -> PublicJwk {
        PublicJwk {
            kty: "OKP".into(),
            crv: "Ed25519".into(),
            x: URL_SAFE_NO_PAD.encode(&self.public),
            kid: self.kid.clone(),
            alg: Some("EdDSA".into()),
            usage: Some("sig".into()),
            signer: match owner {
                KeyOwner::Issuer => "issuer".into(),
                KeyOwner::Service(_) => "service".into(),
            },
            service: match owner {
                KeyOwner::Issuer => None,
                KeyOwner::Service(name) => Some(name.clone()),
            },
        }
    }

    /// Signs any claims as they are. Prefer [`TokenIssuer::issue`], which
    /// checks them; this is for tooling and for tests that need a token
    /// the verifier must refuse.
    pub fn sign<T: Serialize>(&self, claims: &T) -> Result<String, TokenError> {
        let mut header = Header::new(Algorithm::EdDSA);
        header.kid = Some(self.kid.clone());
        jsonwebtoken::encode(&header, claims, &self.encoding)
            .map_err(|error| TokenError::Signing(error.to_string()))
    }
}

/// RFC 7638 thumbprint of an Ed25519 public key: SHA-256 over the
/// canonical JSON of its required members, base64url.
fn thumbprint(public: &[u8]) -> String {
    let canonical = format!(
        r#"{{"crv":"Ed25519","kty":"OKP","x":"{}"}}"#,
        URL_SAFE_NO_PAD.encode(public)
    );
    URL_SAFE_NO_PAD.encode(ring::digest::digest(
        &ring::digest::SHA256,
        canonical.as_bytes(),
    ))
}

pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    let body = STANDARD.encode(der);
    let mut pem = format!("-----BEGIN {label}-----\n");
    for line in body.as_bytes().chunks(64) {
        pem.push_str(std::str::from_utf8(line).expect("base64 is ASCII"));
        pem.push('\n');
    }
    pem.push_str(&format!("-----END {label}-----\n"));
    pem
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Mints checked tokens with one key for one audience.
#[derive(Debug, Clone)]
pub struct TokenIssuer {
    key: SigningKey,
    owner: KeyOwner,
    audience: String,
}

impl TokenIssuer {
    pub fn new(key: SigningKey, owner: KeyOwner, audience: &str) -> Self {
        Self {
            key,
            owner,
            audience: audience.to_owned(),
        }
    }

    pub fn key(&self) -> &SigningKey {
        &self.key
    }

    pub fn owner(&self) -> &KeyOwner {
        &self.owner
    }

    pub fn audience(&self) -> &str {
        &self.audience
    }

    /// A token for `subject` acting as `role` (for `tenant`), valid from
    /// now for `ttl` (positive, at most [`MAX_TOKEN_LIFETIME`]). An issuer
    /// key signs any role but `service`; a service key only its own
    /// `service` tokens.
    pub fn issue(
        &self,
        subject: &str,
        role: Role,
        tenant: Option<&str>,
        ttl: Duration,
    ) -> Result<String, TokenError> {
        check_tenant(role, tenant)?;
        if ttl.is_zero() || ttl > MAX_TOKEN_LIFETIME {
            return Err(TokenError::Lifetime);
        }
        match &self.owner {
            KeyOwner::Issuer if role == Role::Service => {
                return Err(TokenError::ServiceRoleNeedsServiceKey);
            }
            KeyOwner::Service(service) if role != Role::Service || subject != service => {
                return Err(TokenError::ServiceKeyMisuse);
            }
            _ => {}
        }
        let now = now_secs();
        self.key.sign(&Claims {
            iss: ISSUER.into(),
            sub: subject.into(),
            aud: self.audience.clone(),
            iat: now,
            nbf: now,
            exp: now + ttl.as_secs(),
            role,
            tenant: tenant.map(str::to_owned),
        })
    }
}

/// One public key of the set. Members beyond RFC 7517's say whom the key
/// speaks for; other JWKS readers ignore them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PublicJwk {
    pub kty: String,
    pub crv: String,
    pub x: String,
    pub kid: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    #[serde(rename = "use", default, skip_serializing_if = "Option::is_none")]
    pub usage: Option<String>,
    /// `issuer` or `service`.
    #[serde(rename = "onestop_signer")]
    pub signer: String,
    /// The service a `service` key belongs to.
    #[serde(
        rename = "onestop_service",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub service: Option<String>,
}

impl PublicJwk {
    /// Whom the key speaks for; a key that does not say is refused rather
    /// than guessed at.
    pub fn owner(&self) -> anyhow::Result<KeyOwner> {
        anyhow::ensure!(
            self.kty == "OKP" && self.crv == "Ed25519",
            "key {} is {} {}; OneStop keys are OKP Ed25519",
            self.kid,
            self.kty,
            self.crv
        );
        if let Some(alg) = &self.alg {
            anyhow::ensure!(alg == "EdDSA", "key {} is for {alg}, not EdDSA", self.kid);
        }
        match (self.signer.as_str(), &self.service) {
            ("issuer", None) => Ok(KeyOwner::Issuer),
            ("service", Some(service)) if !service.is_empty() => {
                Ok(KeyOwner::Service(service.clone()))
            }
            _ => anyhow::bail!(
                "key {} must have onestop_signer \"issuer\", or \"service\" with onestop_service",
                self.kid
            ),
        }
    }
}

/// A JSON Web Key Set of OneStop public keys.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    pub keys: Vec<PublicJwk>,
}

impl Jwks {
    pub fn parse(bytes: &[u8]) -> anyhow::Result<Self> {
        let jwks: Jwks = serde_json::from_slice(bytes).context("not a JWKS document")?;
        for key in &jwks.keys {
            key.owner()?;
        }
        Ok(jwks)
    }

    pub fn read(path: &Path) -> anyhow::Result<Self> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the key set {}", path.display()))?;
        Self::parse(&bytes).with_context(|| format!("key set {}", path.display()))
    }

    /// Written to a temporary file and renamed over the old one, so a
    /// service reloading it never reads half a file.
    pub fn write(&self, path: &Path) -> anyhow::Result<()> {
        let mut text = serde_json::to_vec_pretty(self)?;
        text.push(b'\n');
        write_atomically(path, &text, 0o644)
    }

    /// Adds `key` unless a key with its id is already there.
    pub fn insert(&mut self, key: PublicJwk) {
        if !self.keys.iter().any(|k| k.kid == key.kid) {
            self.keys.push(key);
        }
    }
}

pub(crate) fn write_atomically(path: &Path, bytes: &[u8], mode: u32) -> anyhow::Result<()> {
    use std::io::Write;
    #[cfg(unix)]
    use std::os::unix::fs::OpenOptionsExt;
    let temporary = path.with_extension("tmp");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    options.mode(mode);
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options
        .open(&temporary)
        .with_context(|| format!("cannot write {}", temporary.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    std::fs::rename(&temporary, path)
        .with_context(|| format!("cannot replace {}", path.display()))?;
    Ok(())
}

// ---------------------------------------------------------------- development keys

/// A key derived from a public label: reproducible on every machine, and
/// so usable by anyone. Only development mode trusts these.
fn development_key(label: &str) -> SigningKey {
    // RFC 8410 PKCS#8 wrapping of a 32-byte Ed25519 seed.
    const PREFIX: [u8; 16] = [
        0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04,
        0x20,
    ];
    let seed = ring::digest::digest(
        &ring::digest::SHA256,
        format!("onestop development key: {label}").as_bytes(),
    );
    let mut der = PREFIX.to_vec();
    der.extend_from_slice(seed.as_ref());
    SigningKey::from_pkcs8(&der).expect("a 32-byte seed is a valid Ed25519 key")
}

pub fn dev_issuer_key() -> SigningKey {
    development_key("issuer")
}

pub fn dev_service_key(service: &str) -> SigningKey {
    development_key(&format!("service {service}"))
}

/// The development key set: the development issuer and one development
/// key per service of the suite.
pub fn dev_jwks() -> Jwks {
    let mut jwks = Jwks::default();
    jwks.insert(dev_issuer_key().public_jwk(&KeyOwner::Issuer));
    for service in DEV_SERVICES {
        jwks.insert(dev_service_key(service).public_jwk(&KeyOwner::Service(service.into())));
    }
    jwks
}

/// Whether `kid` names one of the development keys.
pub fn is_development_key(kid: &str) -> bool {
    static KIDS: OnceLock<BTreeSet<String>> = OnceLock::new();
    KIDS.get_or_init(|| dev_jwks().keys.into_iter().map(|k| k.kid).collect())
        .contains(kid)
}

// ---------------------------------------------------------------- key directory

/// The directory `keys generate` writes, one folder per holder so each can
/// be handed to exactly who needs it (a Kubernetes Secret, a compose
/// volume):
///
/// ```text
/// public/jwks.json              every public key: give to every service
/// operator/issuer.key.pem       the issuer key: operators only
/// <service>/service.key.pem     one per service: that service only
/// ```
pub struct KeyDirectory {
    root: PathBuf,
}

impl KeyDirectory {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }

    pub fn jwks_path(&self) -> PathBuf {
        self.root.join("public").join("jwks.json")
    }

    pub fn issuer_key_path(&self) -> PathBuf {
        self.root.join("operator").join("issuer.key.pem")
    }

    pub fn service_key_path(&self, service: &str) -> PathBuf {
        self.root.join(service).join("service.key.pem")
    }

    fn key_path(&self, owner: &KeyOwner) -> PathBuf {
        match owner {
            KeyOwner::Issuer => self.issuer_key_path(),
            KeyOwner::Service(service) => self.service_key_path(service),
        }
    }

    /// Whether a key set is already there.
    pub fn exists(&self) -> bool {
        self.jwks_path().exists()
    }

    /// A new issuer key, a new key for each of `services`, and the key set
    /// of their public halves. Returns the owners and key ids written.
    pub fn generate(&self, services: &[String]) -> anyhow::Result<Vec<(KeyOwner, String)>> {
        anyhow::ensure!(
            !self.exists(),
            "{} exists already: rotate keys with `keys rotate`",
            self.jwks_path().display()
        );
        let mut jwks = Jwks::default();
        let mut written = Vec::new();
        let owners = std::iter::once(KeyOwner::Issuer)
            .chain(services.iter().map(|s| KeyOwner::Service(s.clone())));
        for owner in owners {
            let kid = self.write_new_key(&owner, &mut jwks)?;
            written.push((owner, kid));
        }
        create_dir(&self.root.join("public"), 0o755)?;
        jwks.write(&self.jwks_path())?;
        Ok(written)
    }

    /// Starts a rollover: a new key for `owner` replaces its key file and
    /// joins the key set beside the old one, which keeps verifying the
    /// tokens it signed until it is retired. Returns (old kid, new kid).
    pub fn rotate(&self, owner: &KeyOwner) -> anyhow::Result<(Option<String>, String)> {
        let path = self.key_path(owner);
        let old = path
            .exists()
            .then(|| SigningKey::from_pem_file(&path))
            .transpose()?
            .map(|key| key.kid);
        let mut jwks = Jwks::read(&self.jwks_path())?;
        let new = self.write_new_key(owner, &mut jwks)?;
        jwks.write(&self.jwks_path())?;
        Ok((old, new))
    }

    /// Ends a rollover: drops `kid` from the key set, so what it signed is
    /// refused once the services reload. Refuses to drop a key that a key
    /// file in this directory still signs with.
    pub fn retire(&self, kid: &str) -> anyhow::Result<KeyOwner> {
        let mut jwks = Jwks::read(&self.jwks_path())?;
        let position = jwks
            .keys
            .iter()
            .position(|k| k.kid == kid)
            .ok_or_else(|| anyhow::anyhow!("{kid} is not in {}", self.jwks_path().display()))?;
        let owner = jwks.keys[position].owner()?;
        let path = self.key_path(&owner);
        if path.exists() && SigningKey::from_pem_file(&path)?.kid == kid {
            anyhow::bail!(
                "{kid} is the current key of {owner} ({}): rotate it first",
                path.display()
            );
        }
        jwks.keys.remove(position);
        jwks.write(&self.jwks_path())?;
        Ok(owner)
    }

    fn write_new_key(&self, owner: &KeyOwner, jwks: &mut Jwks) -> anyhow::Result<String> {
        let (key, pem) = SigningKey::generate()?;
        let path = self.key_path(owner);
        if let Some(folder) = path.parent() {
            create_dir(folder, 0o700)?;
        }
        write_atomically(&path, pem.as_bytes(), 0o600)?;
        jwks.insert(key.public_jwk(owner));
        Ok(key.kid)
    }
}

pub(crate) fn create_dir(path: &Path, mode: u32) -> anyhow::Result<()> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        let mut builder = std::fs::DirBuilder::new();
        builder.recursive(true).mode(mode);
        builder
            .create(path)
            .with_context(|| format!("cannot create {}", path.display()))
    }
    #[cfg(not(unix))]
    {
        let _ = mode;
        std::fs::create_dir_all(path).with_context(|| format!("cannot create {}", path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kids_are_rfc7638_thumbprints() {
        // RFC 8037 appendix A.3: the thumbprint of its example key.
        let public = URL_SAFE_NO_PAD
            .decode("11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo")
            .unwrap();
        assert_eq!(
            thumbprint(&public),
            "kPrK_qmxVWaYVA9wwBF6Iuo3vVzz7TxHCTwXBygrS4k"
        );
    }

    #[test]
    fn development_keys_are_stable_and_recognised() {
        assert_eq!(dev_issuer_key().kid(), dev_issuer_key().kid());
        assert_ne!(dev_issuer_key().kid(), dev_service_key("intake").kid());
        assert!(is_development_key(dev_service_key("referral").kid()));
        let (fresh, _) = SigningKey::generate().unwrap();
        assert!(!is_development_key(fresh.kid()));
    }

    #[test]
    fn issuers_sign_only_what_their_key_may() {
        let ttl = Duration::from_secs(60);
        let issuer = TokenIssuer::new(dev_issuer_key(), KeyOwner::Issuer, "onestop");
        assert!(issuer.issue("ops", Role::Admin, None, ttl).is_ok());
        assert_eq!(
            issuer.issue("intake", Role::Service, None, ttl),
            Err(TokenError::ServiceRoleNeedsServiceKey)
        );
        assert_eq!(
            issuer.issue("ops", Role::Admin, None, Duration::ZERO),
            Err(TokenError::Lifetime)
        );
        assert_eq!(
            issuer.issue("ops", Role::Admin, None, MAX_TOKEN_LIFETIME * 2),
            Err(TokenError::Lifetime)
        );
        assert_eq!(
            issuer.issue("x", Role::TradeOffice, None, ttl),
            Err(TokenError::MissingTenant(Role::TradeOffice))
        );
        let intake = TokenIssuer::new(
            dev_service_key("intake"),
            KeyOwner::Service("intake".into()),
            "onestop",
        );
        assert!(intake.issue("intake", Role::Service, None, ttl).is_ok());
        assert_eq!(
            intake.issue("intake", Role::Admin, None, ttl),
            Err(TokenError::ServiceKeyMisuse)
        );
        assert_eq!(
            intake.issue("referral", Role::Service, None, ttl),
            Err(TokenError::ServiceKeyMisuse)
        );
    }

    #[test]
    fn a_key_directory_generates_rotates_and_retires() {
        let root = std::env::temp_dir().join(format!("onestop-keys-{}", uuid::Uuid::new_v4()));
        let directory = KeyDirectory::new(&root);
        let written = directory.generate(&["intake".into()]).unwrap();
        assert_eq!(written.len(), 2);
        assert!(directory.generate(&[]).is_err(), "never overwrites");
        let jwks = Jwks::read(&directory.jwks_path()).unwrap();
        assert_eq!(jwks.keys.len(), 2);
        let issuer = SigningKey::from_pem_file(&directory.issuer_key_path()).unwrap();
        assert_eq!(jwks.keys[0].kid, issuer.kid());
        assert_eq!(jwks.keys[0].owner().unwrap(), KeyOwner::Issuer);

        let (old, new) = directory.rotate(&KeyOwner::Issuer).unwrap();
        assert_eq!(old.as_deref(), Some(issuer.kid()));
        assert_eq!(Jwks::read(&directory.jwks_path()).unwrap().keys.len(), 3);
        assert!(directory.retire(&new).is_err(), "the current key stays");
        assert_eq!(directory.retire(issuer.kid()).unwrap(), KeyOwner::Issuer);
        let kids: Vec<String> = Jwks::read(&directory.jwks_path())
            .unwrap()
            .keys
            .into_iter()
            .map(|k| k.kid)
            .collect();
        assert!(kids.contains(&new) && !kids.contains(&issuer.kid().to_owned()));
        let _ = std::fs::remove_dir_all(root);
    }
}
