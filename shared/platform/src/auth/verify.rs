//! Verifying bearer tokens: OneStop's own (by `kid` in the key set) and
//! external providers' (by `iss`), against a revocation list, with the key
//! set, the list and the providers' keys reloaded on a timer so rotations
//! and revocations reach every replica without a restart.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context;
use jsonwebtoken::errors::ErrorKind;
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};

use super::keys::{Jwks, KeyOwner, dev_jwks, is_development_key};
use super::oidc::{OidcProvider, OidcProviderConfig};
use super::revocation::RevocationList;
use super::{
    AuthSettings, Caller, Claims, ISSUER, LEEWAY, MAX_TOKEN_LIFETIME, Role, TokenError,
    check_tenant, warn_development_mode,
};
use crate::crypto;
use crate::fetch;
use crate::tls::ClientTls;

/// Longest wait for a revocation list served over HTTP.
const FETCH_DEADLINE: Duration = Duration::from_secs(5);

struct TrustedKey {
    key: DecodingKey,
    owner: KeyOwner,
}

type KeyMap = HashMap<String, Arc<TrustedKey>>;

/// Checks tokens; cheap to clone (one shared state).
#[derive(Clone)]
pub struct TokenVerifier {
    shared: Arc<Shared>,
}

struct Shared {
    audience: String,
    dev_mode: bool,
    jwks_files: Vec<PathBuf>,
    revocation_source: Option<String>,
    reload_every: Duration,
    tls: ClientTls,
    keys: RwLock<Arc<KeyMap>>,
    revocations: RwLock<Arc<RevocationList>>,
    providers: Vec<OidcProvider>,
    verified: VerifiedTokens,
}

impl std::fmt::Debug for TokenVerifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenVerifier(..)")
    }
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

/// Refuses a token stamped as issued after now (beyond the leeway).
pub(crate) fn within_leeway(issued_at: u64) -> Result<(), TokenError> {
    if issued_at > now_secs() + LEEWAY.as_secs() {
        Err(TokenError::IssuedInFuture)
    } else {
        Ok(())
    }
}

pub(crate) fn jwt_error(error: jsonwebtoken::errors::Error) -> TokenError {
    match error.kind() {
        ErrorKind::ExpiredSignature => TokenError::Expired,
        ErrorKind::ImmatureSignature => TokenError::NotYetValid,
        ErrorKind::InvalidAudience => TokenError::Audience,
        ErrorKind::InvalidSignature => TokenError::Signature,
        ErrorKind::InvalidAlgorithm
        | ErrorKind::UnsupportedAlgorithm
        | ErrorKind::MissingAlgorithm => TokenError::Algorithm,
        ErrorKind::MissingRequiredClaim(claim) => TokenError::MissingClaim(claim.clone()),
        _ => TokenError::Malformed,
    }
}

impl TokenVerifier {
    /// Loads the key set, the revocation list and the providers' keys.
    /// Fails, so the service refuses to start, when there is no key set
    /// (outside development mode), when a configured file cannot be read,
    /// or when it trusts a development key outside development mode. A
    /// provider that cannot be reached only delays its users' tokens.
    pub async fn load(settings: &AuthSettings, tls: &ClientTls) -> anyhow::Result<Self> {
        crypto::install();
        if settings.dev_mode {
            warn_development_mode();
        } else if settings.jwks.is_empty() {
            anyhow::bail!(
                "no key set: set ONESTOP_JWKS to the public key set (`keys generate --out DIR` \
                 writes DIR/public/jwks.json), or ONESTOP_DEV_MODE=true on a development machine"
            );
        }
        let providers = match &settings.oidc_providers {
            Some(path) => OidcProviderConfig::read_all(path)?
                .into_iter()
                .map(OidcProvider::new)
                .collect(),
            None => Vec::new(),
        };
        let shared = Shared {
            audience: settings.audience.clone(),
            dev_mode: settings.dev_mode,
            jwks_files: settings.jwks.clone(),
            revocation_source: settings.revocations.clone(),
            reload_every: settings.keys_reload.max(Duration::from_millis(100)),
            tls: tls.clone(),
            keys: RwLock::default(),
            revocations: RwLock::default(),
            providers,
            verified: VerifiedTokens::default(),
        };
        *shared.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(shared.load_keys()?);
        *shared
            .revocations
            .write()
            .unwrap_or_else(|e| e.into_inner()) = Arc::new(shared.load_revocations().await?);
        for provider in &shared.providers {
            match provider.refresh(&shared.tls).await {
                Ok(count) => {
                    tracing::info!(provider = %provider.config.name, keys = count, "OIDC provider keys loaded")
                }
                Err(error) => tracing::warn!(
                    provider = %provider.config.name,
                    error = %format!("{error:#}"),
                    "OIDC provider keys unavailable; its tokens are refused until they load"
                ),
            }
        }
        Ok(Self {
            shared: Arc::new(shared),
        })
    }

    /// The caller a token proves, or why it proves nothing.
    pub fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        let now = now_secs();
        let (caller, issued_at) = match self.shared.verified.get(token, now) {
            Some(proven) => proven,
            None => {
                let (caller, issued_at, expires_at) = self.check_signature(token)?;
                self.shared
                    .verified
                    .insert(token, &caller, issued_at, expires_at);
                (caller, issued_at)
            }
        };
        // Revocations are checked on every call, cached token or not.
        let revocations = self
            .shared
            .revocations
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        if revocations.is_revoked(
            &caller.subject,
            caller.role,
            caller.tenant.as_deref(),
            issued_at,
        ) {
            return Err(TokenError::Revoked);
        }
        Ok(caller)
    }

    /// The caller, issue time and expiry a token's signature and claims
    /// prove.
    fn check_signature(&self, token: &str) -> Result<(Caller, u64, u64), TokenError> {
        let header = jsonwebtoken::decode_header(token).map_err(|_| TokenError::Malformed)?;
        // The issuer picks the keys; the signature check below covers it.
        let unverified: serde_json::Value = jsonwebtoken::dangerous::insecure_decode_claims(token)
            .map_err(|_| TokenError::Malformed)?;
        let issuer = unverified.get("iss").and_then(|v| v.as_str()).unwrap_or("");
        let (caller, issued_at) = if issuer == ISSUER {
            self.verify_own(token, &header)?
        } else {
            let provider = self
                .shared
                .providers
                .iter()
                .find(|p| p.config.issuer == issuer)
                .ok_or_else(|| TokenError::UnknownIssuer(issuer.to_owned()))?;
            provider.verify(token, &header)?
        };
        // Both checks require `exp`, and the claims read above are the
        // signed ones.
        let expires_at = unverified
            .get("exp")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| TokenError::MissingClaim("exp".into()))?;
        Ok((caller, issued_at, expires_at))
    }

    fn verify_own(&self, token: &str, header: &Header) -> Result<(Caller, u64), TokenError> {
        let kid = header.kid.as_deref().ok_or(TokenError::MissingKeyId)?;
        let trusted = self
            .shared
            .keys
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(kid)
            .cloned()
            .ok_or_else(|| TokenError::UnknownKey(kid.to_owned()))?;
        if header.alg != Algorithm::EdDSA {
            return Err(TokenError::Algorithm);
        }
        let mut validation = Validation::new(Algorithm::EdDSA);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_nbf = true;
        validation.set_audience(&[&self.shared.audience]);
        validation.set_issuer(&[ISSUER]);
        validation.set_required_spec_claims(&["exp", "nbf", "iat", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<Claims>(token, &trusted.key, &validation)
            .map_err(jwt_error)?
            .claims;
        within_leeway(claims.iat)?;
        if claims.exp.saturating_sub(claims.iat) > MAX_TOKEN_LIFETIME.as_secs() {
            return Err(TokenError::Lifetime);
        }
        match &trusted.owner {
            KeyOwner::Service(service) => {
                if claims.role != Role::Service || claims.sub != *service {
                    return Err(TokenError::ServiceKeyMisuse);
                }
            }
            KeyOwner::Issuer => {
                if claims.role == Role::Service {
                    return Err(TokenError::ServiceRoleNeedsServiceKey);
                }
            }
        }
        check_tenant(claims.role, claims.tenant.as_deref())?;
        Ok((
            Caller {
                subject: claims.sub,
                role: claims.role,
                tenant: claims.tenant,
            },
            claims.iat,
        ))
    }

    /// Reloads everything once. A source that fails keeps what was last
    /// loaded from it, with a warning: a typo in a key file must not lock
    /// every partner out.
    pub async fn reload(&self) {
        let shared = &self.shared;
        // A key withdrawn from the set, or a provider's rotated one, stops
        // proving anything now, not when the tokens it signed expire.
        shared.verified.forget_all();
        match shared.load_keys() {
            Ok(keys) => {
                let mut current = shared.keys.write().unwrap_or_else(|e| e.into_inner());
                if !same_kids(&current, &keys) {
                    tracing::info!(keys = keys.len(), "key set changed");
                }
                *current = Arc::new(keys);
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "key set reload failed; keeping the previous one")
            }
        }
        match shared.load_revocations().await {
            Ok(list) => {
                let mut current = shared
                    .revocations
                    .write()
                    .unwrap_or_else(|e| e.into_inner());
                if current.revoked.len() != list.revoked.len() {
                    tracing::info!(entries = list.revoked.len(), "revocation list changed");
                }
                *current = Arc::new(list);
            }
            Err(error) => {
                tracing::warn!(error = %format!("{error:#}"), "revocation list reload failed; keeping the previous one")
            }
        }
        for provider in &shared.providers {
            if let Err(error) = provider.refresh(&shared.tls).await {
                tracing::warn!(
                    provider = %provider.config.name,
                    error = %format!("{error:#}"),
                    "OIDC provider keys refresh failed; keeping the previous ones"
                );
            }
        }
    }

    /// Reloads every `ONESTOP_KEYS_RELOAD` until shutdown.
    pub fn spawn_reloader(
        &self,
        supervisor: &crate::supervise::Supervisor,
    ) -> tokio::task::JoinHandle<()> {
        let verifier = self.clone();
        supervisor.spawn("key-reloader", move |beat| {
            let verifier = verifier.clone();
            async move {
                loop {
                    tokio::select! {
                        _ = beat.stopping() => return Ok(()),
                        _ = tokio::time::sleep(verifier.shared.reload_every) => {}
                    }
                    verifier.reload().await;
                    beat.ok().await;
                }
            }
        })
    }
}

/// Tokens whose signature and claims were checked, so a partner calling
/// again with the same token costs a lookup, not an Ed25519 or RSA check
/// and two JSON parses. An entry holds until the token expires (with the
/// same leeway the full check allows) or the keys reload; revocations are
/// checked on every call regardless.
#[derive(Default)]
struct VerifiedTokens {
    entries: Mutex<HashMap<Box<str>, ProvenToken>>,
}

#[derive(Clone)]
struct ProvenToken {
    caller: Caller,
    issued_at: u64,
    expires_at: u64,
}

/// At most this many tokens are remembered; when full the cache starts
/// over, so a burst of distinct tokens costs verifications, never memory.
const VERIFIED_TOKENS: usize = 4_096;

impl VerifiedTokens {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Box<str>, ProvenToken>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn get(&self, token: &str, now: u64) -> Option<(Caller, u64)> {
        let mut entries = self.lock();
        let proven = entries.get(token)?;
        if now > proven.expires_at.saturating_add(LEEWAY.as_secs()) {
            entries.remove(token);
            return None;
        }
        Some((proven.caller.clone(), proven.issued_at))
    }

    fn insert(&self, token: &str, caller: &Caller, issued_at: u64, expires_at: u64) {
        let mut entries = self.lock();
        if entries.len() >= VERIFIED_TOKENS {
            entries.clear();
        }
        entries.insert(
            token.into(),
            ProvenToken {
                caller: caller.clone(),
                issued_at,
                expires_at,
            },
        );
    }

    fn forget_all(&self) {
        self.lock().clear();
    }
}

fn same_kids(a: &KeyMap, b: &KeyMap) -> bool {
    a.len() == b.len() && a.keys().all(|kid| b.contains_key(kid))
}

impl Shared {
    fn load_keys(&self) -> anyhow::Result<KeyMap> {
        let mut sets = Vec::new();
        if self.dev_mode {
            sets.push(("the development key set".to_owned(), dev_jwks()));
        }
        for path in &self.jwks_files {
            sets.push((path.display().to_string(), Jwks::read(path)?));
        }
        let mut keys = KeyMap::new();
        let mut seen: HashMap<String, String> = HashMap::new();
        for (source, set) in sets {
            for jwk in set.keys {
                if !self.dev_mode && is_development_key(&jwk.kid) {
                    anyhow::bail!(
                        "{source} trusts the development key {}, which everyone can sign with; \
                         remove it, or set ONESTOP_DEV_MODE=true on a development machine",
                        jwk.kid
                    );
                }
                if let Some(x) = seen.get(&jwk.kid) {
                    anyhow::ensure!(
                        *x == jwk.x,
                        "{source}: two different keys share the id {}",
                        jwk.kid
                    );
                    continue;
                }
                let owner = jwk.owner().with_context(|| source.clone())?;
                let key = DecodingKey::from_ed_components(&jwk.x)
                    .with_context(|| format!("{source}: key {} is not base64url", jwk.kid))?;
                seen.insert(jwk.kid.clone(), jwk.x.clone());
                keys.insert(jwk.kid, Arc::new(TrustedKey { key, owner }));
            }
        }
        Ok(keys)
    }

    async fn load_revocations(&self) -> anyhow::Result<RevocationList> {
        match self.revocation_source.as_deref() {
            None => Ok(RevocationList::default()),
            Some(url) if url.starts_with("https://") || url.starts_with("http://") => {
                let body = fetch::get(url, &self.tls, FETCH_DEADLINE).await?;
                RevocationList::parse(&body).with_context(|| format!("revocation list {url}"))
            }
            Some(path) => RevocationList::read(std::path::Path::new(path)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn partner() -> Caller {
        Caller {
            subject: "staff-7".into(),
            role: Role::Agency,
            tenant: Some("sbc".into()),
        }
    }

    #[test]
    fn a_remembered_token_expires_with_the_same_leeway_as_a_checked_one() {
        let verified = VerifiedTokens::default();
        verified.insert("token", &partner(), 1_000, 2_000);
        let leeway = LEEWAY.as_secs();
        assert_eq!(
            verified
                .get("token", 2_000 + leeway)
                .map(|(c, iat)| (c.subject, iat)),
            Some(("staff-7".into(), 1_000))
        );
        assert!(verified.get("token", 2_001 + leeway).is_none());
        assert!(
            verified.get("token", 1_500).is_none(),
            "an expired entry is dropped, not kept for a clock that goes back"
        );
        assert!(verified.get("other", 1_500).is_none());
    }

    #[test]
    fn the_remembered_tokens_are_bounded_and_forgotten_on_reload() {
        let verified = VerifiedTokens::default();
        for n in 0..=VERIFIED_TOKENS {
            verified.insert(&format!("token-{n}"), &partner(), 1_000, 2_000);
        }
        assert!(verified.lock().len() <= VERIFIED_TOKENS);
        assert!(
            verified
                .get(&format!("token-{VERIFIED_TOKENS}"), 1_500)
                .is_some()
        );
        verified.forget_all();
        assert!(
            verified
                .get(&format!("token-{VERIFIED_TOKENS}"), 1_500)
                .is_none()
        );
    }
}
