//! Signed webhooks: the partners that cannot hold a Watch stream register
//! an endpoint once, here, for the event types they want, whichever
//! service writes them, and intake POSTs each such event to it, signed as
//! the Standard Webhooks specification says.
//!
//! # What a partner gets
//!
//! Exactly what its own Watch stream would carry. The dispatcher watches
//! each source's feed (intake's own and every configured owner's) *on
//! behalf of* the endpoint's partner (`WatchRequest.on_behalf_of`), so the
//! source applies its own partner filter and its own trim: one rule per
//! service for what a partner may read, whether it streams or is pushed
//! to. Deliveries start with the events that occurred after the endpoint
//! was registered; older events of a feed are passed over.
//!
//! # Order, retries and giving up
//!
//! One worker per enabled endpoint and source, with one delivery in flight:
//! events of one feed arrive in feed order, at least once. The cursor
//! (per endpoint and source, with the feed's epoch) moves past an event
//! only once the endpoint answered it with a 2xx, in the transaction that
//! logs that attempt, so an event is sent again only when no 2xx was seen
//! for it. Every attempt has a deadline
//! and lands in the endpoint's delivery log (the latest
//! [`DELIVERY_LOG`] attempts are kept). After a failed attempt the worker
//! waits, from the first retry delay doubling up to the longest, each wait
//! jittered down by up to half so endpoints that failed together do not
//! retry together, then reads the feed again from its cursor; it holds the
//! cursor's lease until then, so no other replica retries sooner, and the
//! endpoint shows when that is (`next_attempt_at`). When every
//! attempt has failed for the give-up period (24 hours by default) the
//! endpoint is DISABLED with `webhook.endpoint_disabled`; EnableWebhook
//! resumes it from its cursor, nothing skipped. A slow or broken endpoint
//! holds up only its own workers.
//!
//! Replicas share the work: a worker holds a lease on its cursor row and
//! renews it while it runs, so one replica delivers an endpoint's events
//! of a feed at a time.
//!
//! # Signing
//!
//! `webhook-id` is `{source}:{epoch}:{event id}`: unique across feeds and
//! feed incarnations, and the same on every attempt of one event, so a
//! receiver drops repeats by it. `webhook-timestamp` is the attempt's
//! time (receivers refuse stale ones), and `webhook-signature` is
//! `v1,` and the base64 HMAC-SHA256 of `{id}.{timestamp}.{body}` under the
//! endpoint's secret; for the overlap after a rotation the previous secret
//! signs too, space-separated, so receivers holding either verify.
//!
//! # Body
//!
//! `{"type", "timestamp", "data"}` as the specification suggests; `data`
//! holds the event as the feed carries it, the payload as protobuf JSON.
//!
//! Intake's own feed is read in-process through the same Watch, partner
//! filter and trim as over its listener, so intake's certificate need not
//! name the loopback address.

pub mod dispatch;

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use onestop_contracts::intake::v1 as pb;
use onestop_domain::EventTypeFilter;
use onestop_platform::limits;
use onestop_platform::time::to_timestamp;
use onestop_platform::{ApiError, Caller, Role, Violations};
use ring::rand::SecureRandom;
use uuid::Uuid;

use crate::domain::partner::{Partner, PartnerRole};

/// Attempts kept per endpoint in its delivery log.
pub const DELIVERY_LOG: i64 = 1000;
/// Endpoints one partner may hold.
pub const MAX_ENDPOINTS_PER_PARTNER: i64 = 10;
const SECRET_PREFIX: &str = "whsec_";
/// Bytes of a fresh secret.
const SECRET_BYTES: usize = 32;

/// How deliveries are timed; every duration can be set for tests.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookSettings {
    /// Longest one webhook delivery attempt may take before it counts as
    /// failed (timeout).
    #[arg(long, env = "ONESTOP_WEBHOOK_TIMEOUT", default_value = "10s", value_parser = onestop_platform::config::parse_positive_duration)]
    pub webhook_timeout: Duration,

    /// Wait after an endpoint's first failed delivery; it doubles with each
    /// further failure (jittered) up to ONESTOP_WEBHOOK_MAX_RETRY.
    #[arg(long, env = "ONESTOP_WEBHOOK_FIRST_RETRY", default_value = "5s", value_parser = onestop_platform::config::parse_positive_duration)]
    pub webhook_first_retry: Duration,

    /// Longest wait between two delivery attempts to a failing endpoint.
    #[arg(long, env = "ONESTOP_WEBHOOK_MAX_RETRY", default_value = "1h", value_parser = onestop_platform::config::parse_positive_duration)]
    pub webhook_max_retry: Duration,

    /// How long an endpoint may fail every attempt before it is disabled
    /// (webhook.endpoint_disabled).
    #[arg(long, env = "ONESTOP_WEBHOOK_GIVE_UP_AFTER", default_value = "24h", value_parser = onestop_platform::config::parse_positive_duration)]
    pub webhook_give_up_after: Duration,

    /// How long a rotated-out webhook secret keeps signing beside the new
    /// one.
    #[arg(long, env = "ONESTOP_WEBHOOK_SECRET_OVERLAP", default_value = "24h", value_parser = onestop_platform::config::parse_positive_duration)]
    pub webhook_secret_overlap: Duration,

    /// How often the dispatcher looks for endpoints registered, enabled or
    /// disabled through another replica.
    #[arg(long, env = "ONESTOP_WEBHOOK_RESCAN", default_value = "10s", value_parser = onestop_platform::config::parse_positive_duration)]
    pub webhook_rescan: Duration,
}

impl Default for WebhookSettings {
    fn default() -> Self {
        Self {
            webhook_timeout: Duration::from_secs(10),
            webhook_first_retry: Duration::from_secs(5),
            webhook_max_retry: Duration::from_secs(3600),
            webhook_give_up_after: Duration::from_secs(24 * 3600),
            webhook_secret_overlap: Duration::from_secs(24 * 3600),
            webhook_rescan: Duration::from_secs(10),
        }
    }
}

impl WebhookSettings {
    /// The wait after `failures` failed attempts in a row: doubling from
    /// the first retry delay up to the longest, less up to half of it
    /// (`jitter` in 0..1).
    pub fn retry_after(&self, failures: u32, jitter: f64) -> Duration {
        let full = onestop_platform::supervise::doubling(
            self.webhook_first_retry,
            failures,
            self.webhook_max_retry,
        );
        full.mul_f64(1.0 - 0.5 * jitter.clamp(0.0, 1.0))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Enabled,
    Disabled,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Enabled => "ENABLED",
            Self::Disabled => "DISABLED",
        }
    }

    pub fn from_stored(text: &str) -> Self {
        if text == "ENABLED" {
            Self::Enabled
        } else {
            Self::Disabled
        }
    }
}

/// Why an endpoint is disabled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DisableCause {
    Requested,
    Failing,
}

impl DisableCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Requested => "REQUESTED",
            Self::Failing => "FAILING",
        }
    }
}

/// A registered endpoint as stored.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub id: Uuid,
    pub partner: Partner,
    pub url: String,
    pub event_types: Vec<String>,
    pub secret: String,
    pub previous_secret: Option<String>,
    pub previous_secret_until: Option<DateTime<Utc>>,
    pub state: State,
    /// Empty unless disabled.
    pub disabled_cause: String,
    pub failures_in_a_row: i32,
    pub failing_since: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    /// While failing: when the next attempt is due.
    pub next_attempt_at: Option<DateTime<Utc>>,
}

impl Endpoint {
    /// The endpoint as its partner sees it: everything but the secrets.
    pub fn to_proto(&self) -> pb::Webhook {
        let cause = match self.disabled_cause.as_str() {
            "REQUESTED" => pb::WebhookDisableCause::Requested,
            "FAILING" => pb::WebhookDisableCause::Failing,
            _ => pb::WebhookDisableCause::Unspecified,
        };
        pb::Webhook {
            webhook_id: self.id.to_string(),
            partner_role: self.partner.role.to_proto() as i32,
            partner_tenant: self.partner.tenant.clone(),
            url: self.url.clone(),
            event_types: self.event_types.clone(),
            state: match self.state {
                State::Enabled => pb::WebhookState::Enabled,
                State::Disabled => pb::WebhookState::Disabled,
            } as i32,
            disabled_cause: cause as i32,
            failures_in_a_row: self.failures_in_a_row,
            failing_since: self.failing_since.map(to_timestamp),
            created_at: Some(to_timestamp(self.created_at)),
            previous_secret_until: self
                .previous_secret_until
                .filter(|until| *until > Utc::now())
                .map(to_timestamp),
            next_attempt_at: self.next_attempt_at.map(to_timestamp),
        }
    }

    /// The event's payload for the feed: who, in what state; never the URL
    /// or a secret.
    pub fn changed(&self) -> pb::WebhookEndpointChanged {
        let shown = self.to_proto();
        pb::WebhookEndpointChanged {
            webhook_id: shown.webhook_id,
            partner_role: shown.partner_role,
            partner_tenant: shown.partner_tenant,
            state: shown.state,
            disabled_cause: shown.disabled_cause,
            failures_in_a_row: shown.failures_in_a_row,
        }
    }

    /// The secrets that sign a delivery made at `now`: the current one, and
    /// the previous one during its overlap.
    pub fn signing_secrets(&self, now: DateTime<Utc>) -> Vec<&str> {
        let mut secrets = vec![self.secret.as_str()];
        if let (Some(previous), Some(until)) = (&self.previous_secret, self.previous_secret_until)
            && until > now
        {
            secrets.push(previous);
        }
        secrets
    }
}

/// A fresh secret: `whsec_` and 32 random bytes in base64.
pub fn new_secret() -> Result<String, ApiError> {
    let mut bytes = [0u8; SECRET_BYTES];
    ring::rand::SystemRandom::new()
        .fill(&mut bytes)
        .map_err(|_| ApiError::Internal(anyhow::anyhow!("no randomness for a secret")))?;
    Ok(format!("{SECRET_PREFIX}{}", STANDARD.encode(bytes)))
}

/// `webhook-signature`: one `v1,<base64 HMAC-SHA256>` per secret, space
/// separated, over `{id}.{timestamp}.{body}`.
pub fn signature(secrets: &[&str], message_id: &str, timestamp: i64, body: &[u8]) -> String {
    let mut signed = Vec::with_capacity(message_id.len() + body.len() + 24);
    signed.extend_from_slice(format!("{message_id}.{timestamp}.").as_bytes());
    signed.extend_from_slice(body);
    secrets
        .iter()
        .filter_map(|secret| {
            let key = STANDARD
                .decode(secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret))
                .ok()?;
            let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &key);
            Some(format!(
                "v1,{}",
                STANDARD.encode(ring::hmac::sign(&key, &signed).as_ref())
            ))
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// The partner a call acts for: a partner itself, or the one an admin
/// names. A partner naming another is refused.
pub fn acting_partner(
    caller: &Caller,
    role: i32,
    tenant: &str,
    violations: &mut Violations,
) -> Result<Option<Partner>, ApiError> {
    let named = PartnerRole::from_proto(role);
    if let Some(own) = Partner::of(caller) {
        let other = named.is_some_and(|named| named != own.role)
            || (!tenant.is_empty() && tenant != own.tenant);
        if other {
            return Err(ApiError::PermissionDenied(
                "a partner manages only its own webhooks".into(),
            ));
        }
        return Ok(Some(own));
    }
    if caller.role != Role::Admin {
        return Err(ApiError::PermissionDenied(format!(
            "role {} may not call this method",
            caller.role
        )));
    }
    limits::check_text("partner_tenant", tenant, limits::MAX_LABEL, violations);
    match (named, tenant.trim().is_empty()) {
        (None, true) => Ok(None),
        (Some(role), false) => Ok(Some(Partner {
            role,
            tenant: tenant.trim().to_owned(),
        })),
        (None, false) => {
            violations.add("partner_role", "AGENCY, ADVISOR or TRADE_OFFICE");
            Ok(None)
        }
        (Some(_), true) => {
            violations.add("partner_tenant", "required with partner_role");
            Ok(None)
        }
    }
}

/// A validated registration.
pub struct Registration {
    pub url: String,
    pub event_types: Vec<String>,
}

/// Checks the URL and event types of a registration.
pub fn registration(
    request: &pb::RegisterWebhookRequest,
    violations: &mut Violations,
) -> Registration {
    let url = request.url.trim();
    if url.is_empty() {
        violations.add("url", "required");
    } else if limits::check_text("url", url, limits::MAX_URL, violations)
        && let Err(problem) = check_url(url)
    {
        violations.add("url", problem);
    }
    let types = limits::bounded(
        "event_types",
        &request.event_types,
        limits::MAX_EVENT_TYPES,
        violations,
    );
    if request.event_types.is_empty() {
        violations.add("event_types", "at least one event type or family");
    }
    let mut event_types = Vec::with_capacity(types.len());
    for (i, event_type) in types.iter().enumerate() {
        match EventTypeFilter::parse(event_type.trim()) {
            Ok(_) => event_types.push(event_type.trim().to_owned()),
            Err(invalid) => violations.add(format!("event_types[{i}]"), invalid.to_string()),
        }
    }
    limits::dedupe(&mut event_types);
    Registration {
        url: url.to_owned(),
        event_types,
    }
}

/// An https URL with a host and no credentials; http only to a loopback
/// host, where nothing crosses a network.
fn check_url(url: &str) -> Result<(), &'static str> {
    let uri: http::Uri = url
        .parse()
        .map_err(|_| "an absolute https URL, e.g. https://hooks.example.com/onestop")?;
    let authority = uri.authority().ok_or("an absolute https URL with a host")?;
    if authority.as_str().contains('@') {
        return Err("no user name or password in the URL: the signature authenticates");
    }
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    if host.is_empty() {
        return Err("an absolute https URL with a host");
    }
    match uri.scheme_str() {
        Some("https") => Ok(()),
        Some("http") if is_loopback(host) => Ok(()),
        Some("http") => Err("https, or http only to a loopback host (development)"),
        _ => Err("an https URL"),
    }
}

fn is_loopback(host: &str) -> bool {
    host.eq_ignore_ascii_case("localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_https_or_loopback_http_without_credentials() {
        for good in [
            "https://hooks.example.com/onestop",
            "https://hooks.example.com:8443/a?b=c",
            "http://127.0.0.1:8080/hook",
            "http://[::1]:9000/",
            "http://localhost/hook",
        ] {
            assert!(check_url(good).is_ok(), "{good}");
        }
        for bad in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "https://user:pw@hooks.example.com/",
            "/relative",
            "hooks.example.com",
        ] {
            assert!(check_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn retries_double_up_to_the_cap_and_jitter_shortens_by_at_most_half() {
        let settings = WebhookSettings::default();
        assert_eq!(settings.retry_after(1, 0.0), Duration::from_secs(5));
        assert_eq!(settings.retry_after(2, 0.0), Duration::from_secs(10));
        assert_eq!(settings.retry_after(40, 0.0), Duration::from_secs(3600));
        assert_eq!(settings.retry_after(1, 1.0), Duration::from_millis(2500));
    }

    #[test]
    fn a_rotated_out_secret_signs_only_until_its_overlap_ends() {
        let now = Utc::now();
        let endpoint = |until: DateTime<Utc>| Endpoint {
            id: Uuid::nil(),
            partner: Partner::agency("sbc"),
            url: "https://hooks.example.com/".into(),
            event_types: vec!["referral.*".into()],
            secret: "whsec_bmV3".into(),
            previous_secret: Some("whsec_b2xk".into()),
            previous_secret_until: Some(until),
            state: State::Enabled,
            disabled_cause: String::new(),
            failures_in_a_row: 0,
            failing_since: None,
            created_at: now,
            next_attempt_at: None,
        };
        let during = endpoint(now + chrono::Duration::hours(1));
        assert_eq!(during.signing_secrets(now), ["whsec_bmV3", "whsec_b2xk"]);
        assert!(during.to_proto().previous_secret_until.is_some());
        let after = endpoint(now - chrono::Duration::seconds(1));
        assert_eq!(after.signing_secrets(now), ["whsec_bmV3"]);
        assert!(after.to_proto().previous_secret_until.is_none());
    }

    #[test]
    fn signatures_follow_the_specification_example() {
        // The example of the Standard Webhooks specification's test vectors.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(&[secret], "msg_p5jXN8AQM9LWM0D4loKWxJek", 1614265330, body),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
        let two = signature(&[secret, secret], "m", 1, b"{}");
        assert_eq!(two.split(' ').count(), 2);
    }
}
