//! Bearer tokens: HS256-signed JWTs naming a role and, for partner roles, the
//! one agency, advisor or overseas office the holder acts for.
//!
//! Every service verifies tokens with the same shared secret
//! (`ONESTOP_AUTH_SECRET`); `issue-token` on any binary mints them.

use std::fmt;
use std::str::FromStr;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;

use crate::error::ApiError;

/// Used when `ONESTOP_AUTH_SECRET` is unset, so a laptop run needs no setup.
/// Startup warns loudly whenever it is in use.
pub const DEV_AUTH_SECRET: &str = "onestop-dev-secret-not-for-production";
const ISSUER: &str = "onestop";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Staff of one partner agency (KOTRA, SBC, ...); bound to its agency id.
    Agency,
    /// One advisor; bound to its advisor id.
    Advisor,
    /// One overseas trade office; bound to its office id.
    TradeOffice,
    /// Read-only: feeds and lists for internal dashboards.
    Dashboard,
    /// Another OneStop service.
    Service,
    Admin,
}

impl Role {
    pub const ALL: [Role; 6] = [
        Role::Agency,
        Role::Advisor,
        Role::TradeOffice,
        Role::Dashboard,
        Role::Service,
        Role::Admin,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Role::Agency => "agency",
            Role::Advisor => "advisor",
            Role::TradeOffice => "trade_office",
            Role::Dashboard => "dashboard",
            Role::Service => "service",
            Role::Admin => "admin",
        }
    }

    /// Partner roles act for exactly one tenant.
    pub fn needs_tenant(self) -> bool {
        matches!(self, Role::Agency | Role::Advisor | Role::TradeOffice)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| {
                let names: Vec<&str> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!("unknown role {s:?}; one of {}", names.join(", "))
            })
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// Who holds the token (a person's or system's handle, not personal data).
    pub sub: String,
    pub role: Role,
    /// Agency, advisor or office id for partner roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
    pub iat: u64,
    pub exp: u64,
}

/// The verified identity behind a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    pub subject: String,
    pub role: Role,
    pub tenant: Option<String>,
}

impl Caller {
    /// Fails with PERMISSION_DENIED unless the caller has one of `roles`.
    pub fn require(&self, roles: &[Role]) -> Result<(), ApiError> {
        if roles.contains(&self.role) {
            Ok(())
        } else {
            Err(ApiError::PermissionDenied(format!(
                "role {} may not call this method",
                self.role
            )))
        }
    }

    /// The tenant id when the caller holds `role`, e.g. the agency id of an
    /// agency token; None for any other role.
    pub fn tenant_for(&self, role: Role) -> Option<&str> {
        if self.role == role {
            self.tenant.as_deref()
        } else {
            None
        }
    }

    /// Scope for idempotency keys: two callers never share a key space.
    pub fn scope(&self) -> String {
        match &self.tenant {
            Some(tenant) => format!("{}:{}:{}", self.role, tenant, self.subject),
            None => format!("{}:{}", self.role, self.subject),
        }
    }

    /// Reads the caller the auth layer attached to the request.
    pub fn of<T>(request: &tonic::Request<T>) -> Result<Caller, ApiError> {
        request
            .extensions()
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::Unauthenticated("missing bearer token".into()))
    }
}

/// Signs and verifies tokens with one shared secret.
#[derive(Clone)]
pub struct TokenKeys {
    secret: Vec<u8>,
}

impl fmt::Debug for TokenKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKeys(..)")
    }
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("unsupported token algorithm")]
    Algorithm,
    #[error("bad token signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token issuer is not onestop")]
    Issuer,
    #[error("role {0} needs a tenant id")]
    MissingTenant(Role),
    #[error("role {0} takes no tenant id")]
    UnexpectedTenant(Role),
}

#[derive(Serialize, Deserialize)]
struct Header {
    alg: String,
    typ: String,
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default()
}

impl TokenKeys {
    pub fn new(secret: impl AsRef<[u8]>) -> Self {
        Self {
            secret: secret.as_ref().to_vec(),
        }
    }

    pub fn is_dev_secret(&self) -> bool {
        self.secret == DEV_AUTH_SECRET.as_bytes()
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.secret).expect("HMAC takes keys of any length")
    }

    pub fn issue(
        &self,
        subject: &str,
        role: Role,
        tenant: Option<&str>,
        ttl: Duration,
    ) -> Result<String, TokenError> {
        check_tenant(role, tenant)?;
        let iat = now_secs();
        let claims = Claims {
            iss: ISSUER.into(),
            sub: subject.into(),
            role,
            tenant: tenant.map(str::to_owned),
            iat,
            exp: iat + ttl.as_secs(),
        };
        let header = Header {
            alg: "HS256".into(),
            typ: "JWT".into(),
        };
        let signing_input = format!(
            "{}.{}",
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&header).expect("header serializes")),
            URL_SAFE_NO_PAD.encode(serde_json::to_vec(&claims).expect("claims serialize")),
        );
        let mut mac = self.mac();
        mac.update(signing_input.as_bytes());
        let signature = URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes());
        Ok(format!("{signing_input}.{signature}"))
    }

    pub fn verify(&self, token: &str) -> Result<Caller, TokenError> {
        let mut parts = token.split('.');
        let (Some(header), Some(payload), Some(signature), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(TokenError::Malformed);
        };
        let header: Header = decode_json(header)?;
        if header.alg != "HS256" {
            return Err(TokenError::Algorithm);
        }
        let signature = URL_SAFE_NO_PAD
            .decode(signature)
            .map_err(|_| TokenError::Malformed)?;
        let (signed, _) = token.rsplit_once('.').ok_or(TokenError::Malformed)?;
        let mut mac = self.mac();
        mac.update(signed.as_bytes());
        mac.verify_slice(&signature)
            .map_err(|_| TokenError::Signature)?;
        let claims: Claims = decode_json(payload)?;
        if claims.iss != ISSUER {
            return Err(TokenError::Issuer);
        }
        if claims.exp <= now_secs() {
            return Err(TokenError::Expired);
        }
        check_tenant(claims.role, claims.tenant.as_deref())?;
        Ok(Caller {
            subject: claims.sub,
            role: claims.role,
            tenant: claims.tenant,
        })
    }
}

fn decode_json<T: for<'de> Deserialize<'de>>(part: &str) -> Result<T, TokenError> {
    let bytes = URL_SAFE_NO_PAD
        .decode(part)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&bytes).map_err(|_| TokenError::Malformed)
}

fn check_tenant(role: Role, tenant: Option<&str>) -> Result<(), TokenError> {
    match (role.needs_tenant(), tenant.filter(|t| !t.is_empty())) {
        (true, None) => Err(TokenError::MissingTenant(role)),
        (false, Some(_)) => Err(TokenError::UnexpectedTenant(role)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn issued_tokens_verify_and_carry_the_tenant() {
        let keys = TokenKeys::new("secret");
        let token = keys
            .issue(
                "kotra-ops",
                Role::Agency,
                Some("kotra"),
                Duration::from_secs(60),
            )
            .unwrap();
        let caller = keys.verify(&token).unwrap();
        assert_eq!(caller.role, Role::Agency);
        assert_eq!(caller.tenant_for(Role::Agency), Some("kotra"));
        assert_eq!(caller.tenant_for(Role::Advisor), None);
    }

    #[test]
    fn tampered_foreign_and_expired_tokens_are_refused() {
        let keys = TokenKeys::new("secret");
        let token = keys
            .issue("ops", Role::Dashboard, None, Duration::from_secs(60))
            .unwrap();
        let other = TokenKeys::new("other secret");
        assert_eq!(other.verify(&token), Err(TokenError::Signature));

        let (head, _) = token.rsplit_once('.').unwrap();
        let forged_claims = URL_SAFE_NO_PAD
            .encode(br#"{"iss":"onestop","sub":"ops","role":"admin","iat":0,"exp":99999999999}"#);
        let header = head.split('.').next().unwrap();
        let signature = token.rsplit('.').next().unwrap();
        let forged = format!("{header}.{forged_claims}.{signature}");
        assert_eq!(keys.verify(&forged), Err(TokenError::Signature));

        let expired = keys
            .issue("ops", Role::Dashboard, None, Duration::ZERO)
            .unwrap();
        assert_eq!(keys.verify(&expired), Err(TokenError::Expired));
        assert_eq!(keys.verify("not-a-token"), Err(TokenError::Malformed));
    }

    #[test]
    fn partner_roles_need_exactly_one_tenant() {
        let keys = TokenKeys::new("secret");
        let ttl = Duration::from_secs(60);
        assert_eq!(
            keys.issue("x", Role::TradeOffice, None, ttl),
            Err(TokenError::MissingTenant(Role::TradeOffice))
        );
        assert_eq!(
            keys.issue("x", Role::Admin, Some("kotra"), ttl),
            Err(TokenError::UnexpectedTenant(Role::Admin))
        );
    }
}
