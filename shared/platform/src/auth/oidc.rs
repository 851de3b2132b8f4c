//! Tokens from external OpenID Connect providers (Keycloak, Entra ID, ...):
//! verified against the provider's published JWKS, fetched with a deadline,
//! cached and refreshed on the reload timer, then mapped onto a OneStop
//! role and tenant by the provider's claims mapping.
//!
//! A provider may grant only the roles listed for it, never `service`, so a
//! partner's identity provider can at most speak for that partner.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use anyhow::Context;
use jsonwebtoken::jwk::{JwkSet, PublicKeyUse};
use jsonwebtoken::{Algorithm, DecodingKey, Header, Validation};
use serde::Deserialize;

use super::verify::{jwt_error, within_leeway};
use super::{Caller, ISSUER, LEEWAY, Role, TokenError};
use crate::fetch;
use crate::tls::ClientTls;

/// Algorithms accepted from providers: no shared-secret (HS*) ones.
const ALGORITHMS: [Algorithm; 9] = [
    Algorithm::RS256,
    Algorithm::RS384,
    Algorithm::RS512,
    Algorithm::PS256,
    Algorithm::PS384,
    Algorithm::PS512,
    Algorithm::ES256,
    Algorithm::ES384,
    Algorithm::EdDSA,
];

/// Longest wait for a provider's JWKS.
const FETCH_DEADLINE: Duration = Duration::from_secs(5);

/// One provider, as listed in the `ONESTOP_OIDC_PROVIDERS` file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcProviderConfig {
    /// Short name; callers' subjects become `<name>:<sub>`.
    pub name: String,
    /// The provider's `iss`, exactly as in its tokens.
    pub issuer: String,
    /// Where the provider publishes its signing keys.
    pub jwks_url: String,
    /// The `aud` its tokens for OneStop carry.
    pub audience: String,
    /// Claim holding the role (a string or an array of strings); a dotted
    /// path reaches into objects (Keycloak's `realm_access.roles`).
    #[serde(default = "default_role_claim")]
    pub role_claim: String,
    /// Prefix the role values carry at the provider (`onestop.` makes the
    /// value `onestop.agency` mean `agency`).
    #[serde(default)]
    pub role_prefix: String,
    /// The roles this provider may grant; `service` is never allowed.
    pub roles: Vec<Role>,
    /// The tenant every partner token from this provider acts for, e.g.
    /// `kotra` for KOTRA's own directory. Give this or `tenant_claim`.
    #[serde(default)]
    pub tenant: Option<String>,
    /// Claim holding the tenant id, for a provider serving many tenants.
    #[serde(default)]
    pub tenant_claim: Option<String>,
}

fn default_role_claim() -> String {
    "roles".into()
}

impl OidcProviderConfig {
    pub fn read_all(path: &std::path::Path) -> anyhow::Result<Vec<Self>> {
        let bytes = std::fs::read(path)
            .with_context(|| format!("cannot read the OIDC providers {}", path.display()))?;
        let providers: Vec<Self> = serde_json::from_slice(&bytes)
            .with_context(|| format!("{} is not a list of OIDC providers", path.display()))?;
        for provider in &providers {
            provider
                .check()
                .with_context(|| format!("OIDC provider {:?}", provider.name))?;
        }
        Ok(providers)
    }

    fn check(&self) -> anyhow::Result<()> {
        anyhow::ensure!(!self.name.is_empty(), "needs a name");
        anyhow::ensure!(
            !self.issuer.is_empty() && self.issuer != ISSUER,
            "needs its own issuer (not {ISSUER:?})"
        );
        anyhow::ensure!(!self.audience.is_empty(), "needs an audience");
        anyhow::ensure!(
            self.jwks_url.starts_with("https://") || self.jwks_url.starts_with("http://"),
            "jwks_url must be an http(s) URL"
        );
        anyhow::ensure!(!self.roles.is_empty(), "needs the roles it may grant");
        anyhow::ensure!(
            !self.roles.contains(&Role::Service),
            "may not grant the service role: services sign with their own keys"
        );
        anyhow::ensure!(
            !(self.tenant.is_some() && self.tenant_claim.is_some()),
            "give tenant or tenant_claim, not both"
        );
        if self.roles.iter().any(|r| r.needs_tenant()) {
            anyhow::ensure!(
                self.tenant.is_some() || self.tenant_claim.is_some(),
                "grants partner roles, so needs tenant or tenant_claim"
            );
        }
        Ok(())
    }

    /// The OneStop identity a verified token's claims map to.
    pub fn map_claims(&self, claims: &serde_json::Value) -> Result<Caller, TokenError> {
        let subject = claims
            .get("sub")
            .and_then(|v| v.as_str())
            .filter(|s| !s.is_empty())
            .ok_or_else(|| TokenError::MissingClaim("sub".into()))?;
        let mut roles: Vec<Role> = match claim(claims, &self.role_claim) {
            Some(serde_json::Value::String(value)) => vec![value.as_str()],
            Some(serde_json::Value::Array(values)) => {
                values.iter().filter_map(|v| v.as_str()).collect()
            }
            _ => Vec::new(),
        }
        .into_iter()
        .filter_map(|value| value.strip_prefix(self.role_prefix.as_str()))
        .filter_map(|value| value.parse::<Role>().ok())
        .filter(|role| self.roles.contains(role))
        .collect();
        roles.sort_by_key(|r| r.as_str());
        roles.dedup();
        let role = match roles.as_slice() {
            [] => return Err(TokenError::NoRole),
            [role] => *role,
            _ => return Err(TokenError::AmbiguousRole),
        };
        let tenant = if role.needs_tenant() {
            let tenant = match (&self.tenant, &self.tenant_claim) {
                (Some(fixed), _) => Some(fixed.clone()),
                (None, Some(path)) => claim(claims, path)
                    .and_then(|v| v.as_str())
                    .filter(|t| !t.is_empty())
                    .map(str::to_owned),
                (None, None) => None,
            };
            Some(tenant.ok_or(TokenError::MissingTenant(role))?)
        } else {
            None
        };
        Ok(Caller {
            subject: format!("{}:{subject}", self.name),
            role,
            tenant,
        })
    }
}

/// The value at a dotted path.
fn claim<'a>(claims: &'a serde_json::Value, path: &str) -> Option<&'a serde_json::Value> {
    path.split('.')
        .try_fold(claims, |value, part| value.get(part))
}

struct ProviderKey {
    key: DecodingKey,
    algorithm: Option<Algorithm>,
}

/// A provider with the keys last fetched from it.
pub(crate) struct OidcProvider {
    pub(crate) config: OidcProviderConfig,
    keys: RwLock<Arc<HashMap<String, ProviderKey>>>,
}

impl OidcProvider {
    pub(crate) fn new(config: OidcProviderConfig) -> Self {
        Self {
            config,
            keys: RwLock::new(Arc::default()),
        }
    }

    /// Fetches the provider's JWKS; the keys in use stay until a fetch
    /// succeeds. Returns how many usable keys it published.
    pub(crate) async fn refresh(&self, tls: &ClientTls) -> anyhow::Result<usize> {
        let body = fetch::get(&self.config.jwks_url, tls, FETCH_DEADLINE).await?;
        let set: JwkSet = serde_json::from_slice(&body)
            .with_context(|| format!("{} is not a JWKS", self.config.jwks_url))?;
        let mut keys = HashMap::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.clone() else {
                continue;
            };
            // Keys for encryption or for other algorithms are skipped.
            let algorithm = match jwk.common.key_algorithm {
                None => None,
                Some(named) => match Algorithm::try_from(named) {
                    Ok(algorithm) if ALGORITHMS.contains(&algorithm) => Some(algorithm),
                    _ => continue,
                },
            };
            if matches!(jwk.common.public_key_use, Some(PublicKeyUse::Encryption)) {
                continue;
            }
            if let Ok(key) = DecodingKey::from_jwk(jwk) {
                keys.insert(kid, ProviderKey { key, algorithm });
            }
        }
        let count = keys.len();
        *self.keys.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(keys);
        Ok(count)
    }

    pub(crate) fn verify(&self, token: &str, header: &Header) -> Result<(Caller, u64), TokenError> {
        let kid = header.kid.as_deref().ok_or(TokenError::MissingKeyId)?;
        let keys = self.keys.read().unwrap_or_else(|e| e.into_inner()).clone();
        let key = keys
            .get(kid)
            .ok_or_else(|| TokenError::UnknownKey(kid.to_owned()))?;
        if !ALGORITHMS.contains(&header.alg) || key.algorithm.is_some_and(|a| a != header.alg) {
            return Err(TokenError::Algorithm);
        }
        let mut validation = Validation::new(header.alg);
        validation.leeway = LEEWAY.as_secs();
        validation.validate_nbf = true;
        validation.set_audience(&[&self.config.audience]);
        validation.set_issuer(&[&self.config.issuer]);
        // Not every provider sets nbf (Keycloak does not); it is checked
        // when present. iat is needed for revocations.
        validation.set_required_spec_claims(&["exp", "iat", "iss", "aud", "sub"]);
        let claims = jsonwebtoken::decode::<serde_json::Value>(token, &key.key, &validation)
            .map_err(jwt_error)?
            .claims;
        let issued_at = claims
            .get("iat")
            .and_then(|v| v.as_u64())
            .ok_or_else(|| TokenError::MissingClaim("iat".into()))?;
        within_leeway(issued_at)?;
        Ok((self.config.map_claims(&claims)?, issued_at))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn keycloak() -> OidcProviderConfig {
        OidcProviderConfig {
            name: "kotra-sso".into(),
            issuer: "https://sso.kotra.example/realms/partners".into(),
            jwks_url: "https://sso.kotra.example/realms/partners/protocol/openid-connect/certs"
                .into(),
            audience: "onestop".into(),
            role_claim: "realm_access.roles".into(),
            role_prefix: "onestop-".into(),
            roles: vec![Role::Agency, Role::Dashboard],
            tenant: Some("kotra".into()),
            tenant_claim: None,
        }
    }

    #[test]
    fn roles_and_tenant_come_from_the_mapping() {
        let caller = keycloak()
            .map_claims(&json!({
                "sub": "5f0c",
                "realm_access": {"roles": ["offline_access", "onestop-agency"]}
            }))
            .unwrap();
        assert_eq!(caller.role, Role::Agency);
        assert_eq!(caller.tenant.as_deref(), Some("kotra"));
        assert_eq!(caller.subject, "kotra-sso:5f0c");
    }

    #[test]
    fn roles_the_provider_may_not_grant_are_ignored() {
        let provider = keycloak();
        let admin = json!({"sub": "x", "realm_access": {"roles": ["onestop-admin"]}});
        assert_eq!(provider.map_claims(&admin), Err(TokenError::NoRole));
        let both =
            json!({"sub": "x", "realm_access": {"roles": ["onestop-agency", "onestop-dashboard"]}});
        assert_eq!(provider.map_claims(&both), Err(TokenError::AmbiguousRole));
    }

    #[test]
    fn a_tenant_claim_serves_many_tenants() {
        let provider = OidcProviderConfig {
            role_claim: "roles".into(),
            role_prefix: String::new(),
            roles: vec![Role::TradeOffice],
            tenant: None,
            tenant_claim: Some("office".into()),
            ..keycloak()
        };
        let caller = provider
            .map_claims(&json!({"sub": "x", "roles": "trade_office", "office": "kbc-hanoi"}))
            .unwrap();
        assert_eq!(caller.tenant.as_deref(), Some("kbc-hanoi"));
        assert_eq!(
            provider.map_claims(&json!({"sub": "x", "roles": "trade_office"})),
            Err(TokenError::MissingTenant(Role::TradeOffice))
        );
    }

    #[test]
    fn providers_may_not_grant_service_or_reuse_onestops_issuer() {
        let service = OidcProviderConfig {
            roles: vec![Role::Service],
            ..keycloak()
        };
        assert!(service.check().is_err());
        let own = OidcProviderConfig {
            issuer: ISSUER.into(),
            ..keycloak()
        };
        assert!(own.check().is_err());
        assert!(keycloak().check().is_ok());
    }
}
