//! Bearer tokens: JWTs signed with Ed25519 keys (EdDSA) that name a role
//! and, for partner roles, the one agency, advisor or overseas office the
//! holder acts for.
//!
//! Who signs what:
//! - the *issuer key* signs partner, dashboard and admin tokens. No service
//!   holds it: only `issue-token` and the seed commands, run by an
//!   operator, read it (`ONESTOP_ISSUER_KEY`).
//! - each service has its *own service key* (`ONESTOP_SERVICE_KEY`) and
//!   signs only `service` tokens naming itself, so every hand-off is
//!   attributable to the service that made it.
//! - external OpenID Connect providers sign their users' tokens; a mapping
//!   per provider says which OneStop role and tenant they carry.
//!
//! Services verify against a key set of public keys (JWKS files,
//! `ONESTOP_JWKS`) and a revocation list, both reloaded while running, so
//! keys rotate and partners are cut off without a restart.

mod keys;
mod oidc;
mod revocation;
mod verify;

pub use keys::{
    DEV_SERVICES, Jwks, KeyDirectory, KeyOwner, PublicJwk, SigningKey, TokenIssuer, dev_issuer_key,
    dev_jwks, dev_service_key, is_development_key,
};
pub(crate) use keys::{create_dir, write_atomically};
pub use oidc::OidcProviderConfig;
pub use revocation::{Revocation, RevocationList};
pub use verify::TokenVerifier;

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::ApiError;

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

/// The issuer (`iss`) of every token OneStop's own keys sign.
pub const ISSUER: &str = "onestop";

/// Clock skew tolerated on `exp`, `nbf` and `iat`.
pub const LEEWAY: Duration = Duration::from_secs(60);

/// The longest lifetime any issued token may have: a leaked token stays
/// useful at most this long even if nobody revokes it.
pub const MAX_TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 86_400);

/// The claims of a OneStop token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    pub iss: String,
    /// Who holds the token (a person's or system's handle, not personal
    /// data); for `service` tokens, the service's name.
    pub sub: String,
    /// The suite the token is for (`ONESTOP_AUDIENCE`), so a token minted
    /// for one deployment is refused by another.
    pub aud: String,
    pub iat: u64,
    pub nbf: u64,
    pub exp: u64,
    pub role: Role,
    /// Agency, advisor or office id for partner roles.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant: Option<String>,
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

/// Where keys, revocations and external identity providers come from.
#[derive(Debug, Clone, clap::Args)]
pub struct AuthSettings {
    /// Trust the fixed development key set (publicly known, so anyone can
    /// mint any token). For a laptop or a test run only; every process
    /// warns loudly while it is on. Off, the development keys are refused.
    #[arg(long, env = "ONESTOP_DEV_MODE", default_value = "false",
          value_parser = clap::builder::BoolishValueParser::new())]
    pub dev_mode: bool,

    /// JWKS file(s), comma-separated, with the public keys tokens are
    /// verified against (`keys generate` writes one). Reloaded every
    /// ONESTOP_KEYS_RELOAD. Required unless ONESTOP_DEV_MODE is true.
    #[arg(long, env = "ONESTOP_JWKS", value_delimiter = ',')]
    pub jwks: Vec<PathBuf>,

    /// This service's own signing key (PKCS#8 PEM), for the calls it makes
    /// to other services. Only intake needs one today.
    #[arg(long, env = "ONESTOP_SERVICE_KEY")]
    pub service_key: Option<PathBuf>,

    /// The issuer key (PKCS#8 PEM) that signs partner, dashboard and admin
    /// tokens. Only `issue-token` and the seed commands read it; never
    /// give it to a running service.
    #[arg(long, env = "ONESTOP_ISSUER_KEY")]
    pub issuer_key: Option<PathBuf>,

    /// The audience (`aud`) tokens must name: one value per deployment.
    #[arg(long, env = "ONESTOP_AUDIENCE", default_value = "onestop")]
    pub audience: String,

    /// Revocation list (`keys revoke` edits one): a file path or an
    /// http(s) URL, reloaded every ONESTOP_KEYS_RELOAD.
    #[arg(long, env = "ONESTOP_REVOCATIONS")]
    pub revocations: Option<String>,

    /// External OpenID Connect providers whose tokens are accepted: a JSON
    /// file listing each provider's issuer, JWKS URL, audience and claims
    /// mapping (see the README).
    #[arg(long, env = "ONESTOP_OIDC_PROVIDERS")]
    pub oidc_providers: Option<PathBuf>,

    /// How often key sets, the revocation list and the providers' JWKS are
    /// reloaded. A revocation holds on every replica within this (plus a
    /// fetch deadline of a few seconds).
    #[arg(long, env = "ONESTOP_KEYS_RELOAD", default_value = "30s", value_parser = crate::config::parse_positive_duration)]
    pub keys_reload: Duration,
}

impl AuthSettings {
    /// The key `issue-token` and the seed commands sign with: the issuer key
    /// file, or in development mode the development issuer key.
    pub fn issuer(&self) -> anyhow::Result<TokenIssuer> {
        let key = match &self.issuer_key {
            Some(path) => {
                let key = SigningKey::from_pem_file(path)?;
                self.refuse_development_key(&key, path)?;
                key
            }
            None if self.dev_mode => {
                warn_development_mode();
                dev_issuer_key()
            }
            None => anyhow::bail!(
                "no issuer key: set ONESTOP_ISSUER_KEY to the issuer key file that \
                 `keys generate` wrote (operator/issuer.key.pem), or ONESTOP_DEV_MODE=true \
                 on a development machine"
            ),
        };
        Ok(TokenIssuer::new(key, KeyOwner::Issuer, &self.audience))
    }

    /// The key `service` signs its calls with: its own service key file, or
    /// in development mode the development key of that service.
    pub fn service_issuer(&self, service: &str) -> anyhow::Result<TokenIssuer> {
        let key = match &self.service_key {
            Some(path) => {
                let key = SigningKey::from_pem_file(path)?;
                self.refuse_development_key(&key, path)?;
                key
            }
            None if self.dev_mode => dev_service_key(service),
            None => anyhow::bail!(
                "no service key: set ONESTOP_SERVICE_KEY to {service}'s key file that \
                 `keys generate` wrote ({service}/service.key.pem), or ONESTOP_DEV_MODE=true \
                 on a development machine"
            ),
        };
        Ok(TokenIssuer::new(
            key,
            KeyOwner::Service(service.to_owned()),
            &self.audience,
        ))
    }

    fn refuse_development_key(
        &self,
        key: &SigningKey,
        path: &std::path::Path,
    ) -> anyhow::Result<()> {
        if is_development_key(key.kid()) && !self.dev_mode {
            anyhow::bail!(
                "{} is a development key, which everyone knows; generate real keys with \
                 `keys generate`, or set ONESTOP_DEV_MODE=true on a development machine",
                path.display()
            );
        }
        Ok(())
    }
}

/// Logged (and printed) whenever development keys are in use.
pub fn warn_development_mode() {
    const WARNING: &str = "ONESTOP_DEV_MODE is true: the publicly known development keys are \
        trusted and anyone can mint an admin token. Never run this way outside a development machine.";
    tracing::warn!("{WARNING}");
    eprintln!("WARNING: {WARNING}");
}

/// Why a token was refused; every one of these is UNAUTHENTICATED.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    #[error("malformed token")]
    Malformed,
    #[error("token names no key id (kid)")]
    MissingKeyId,
    #[error("token is signed by an unknown key {0:?}")]
    UnknownKey(String),
    #[error("token issuer {0:?} is not trusted")]
    UnknownIssuer(String),
    #[error("unsupported token algorithm")]
    Algorithm,
    #[error("bad token signature")]
    Signature,
    #[error("token expired")]
    Expired,
    #[error("token is not valid yet")]
    NotYetValid,
    #[error("token was issued in the future")]
    IssuedInFuture,
    #[error("token is for another audience")]
    Audience,
    #[error("token lacks the {0} claim")]
    MissingClaim(String),
    #[error("token lifetime must be positive and at most {} days", MAX_TOKEN_LIFETIME.as_secs() / 86_400)]
    Lifetime,
    #[error("token was revoked")]
    Revoked,
    #[error("a service key signs only its own service's `service` tokens")]
    ServiceKeyMisuse,
    #[error("`service` tokens must be signed by the service's own key")]
    ServiceRoleNeedsServiceKey,
    #[error("token carries no OneStop role this provider may grant")]
    NoRole,
    #[error("token carries more than one OneStop role")]
    AmbiguousRole,
    #[error("role {0} needs a tenant id")]
    MissingTenant(Role),
    #[error("role {0} takes no tenant id")]
    UnexpectedTenant(Role),
    #[error("cannot sign token: {0}")]
    Signing(String),
}

pub(crate) fn check_tenant(role: Role, tenant: Option<&str>) -> Result<(), TokenError> {
    match (role.needs_tenant(), tenant.filter(|t| !t.is_empty())) {
        (true, None) => Err(TokenError::MissingTenant(role)),
        (false, Some(_)) => Err(TokenError::UnexpectedTenant(role)),
        _ => Ok(()),
    }
}
