//! Test harness for OneStop services: a fresh database per test on the real
//! Postgres, servers on port 0 with connected clients, bearer tokens for
//! every role, a TCP proxy that can cut the database connection, a private
//! Postgres cluster a test may crash, helpers to run the real binaries as
//! child processes, generated keys and certificates, and a webhook
//! receiver.
//!
//! Servers under test run in development mode, so the tokens below (signed
//! with the development keys) are accepted; [`TestKeys`] gives a test its
//! own key set instead.

mod clock;
mod cluster;
mod credentials;
pub mod fixtures;
mod postgres;
mod process;
mod proxy;
mod server;
mod suite;
mod webhooks;

use std::net::SocketAddr;
use std::time::Duration;

use onestop_contracts::audit::v1::audit_service_client::AuditServiceClient;
use onestop_contracts::buyers::v1::buyer_service_client::BuyerServiceClient;
use onestop_contracts::events::v1::event_feed_service_client::EventFeedServiceClient;
use onestop_contracts::insights::v1::insights_service_client::InsightsServiceClient;
use onestop_contracts::intake::v1::intake_service_client::IntakeServiceClient;
use onestop_contracts::mentoring::v1::mentoring_service_client::MentoringServiceClient;
use onestop_contracts::referral::v1::referral_service_client::ReferralServiceClient;
use onestop_platform::auth::{KeyOwner, Role, TokenIssuer, dev_issuer_key, dev_service_key};
use onestop_platform::config::ServerSettings;
use tonic::metadata::MetadataValue;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};

pub use clock::ManualClock;
pub use cluster::PrivateCluster;
pub use credentials::{StaticHttps, TestKeys, TestPki};
pub use postgres::{TestDb, server_url};
pub use process::ServiceProcess;
pub use proxy::TcpProxy;
pub use server::TestServer;
pub use suite::{OWNERS, Suite};
pub use webhooks::{Received, WebhookReceiver};

/// The service `service` tokens speak for: intake, which makes every
/// hand-off.
pub const CALLING_SERVICE: &str = "intake";

/// The development issuer, which signs every role but `service`.
pub fn issuer() -> TokenIssuer {
    TokenIssuer::new(dev_issuer_key(), KeyOwner::Issuer, AUDIENCE)
}

/// The audience of the servers under test (the default).
pub const AUDIENCE: &str = "onestop";

/// A bearer token for `role` acting for `tenant`, signed with the
/// development keys: `service` tokens with intake's own key (subject
/// "intake"), every other role with the issuer key (subject "test").
pub fn token(role: Role, tenant: Option<&str>) -> String {
    let intake = TokenIssuer::new(
        dev_service_key(CALLING_SERVICE),
        KeyOwner::Service(CALLING_SERVICE.into()),
        AUDIENCE,
    );
    mint(&issuer(), &intake, role, tenant)
}

/// An hour's token for `role`: `service` ones from intake's key, the rest
/// from the issuer's.
pub(crate) fn mint(
    issuer: &TokenIssuer,
    intake: &TokenIssuer,
    role: Role,
    tenant: Option<&str>,
) -> String {
    let ttl = Duration::from_secs(3600);
    match role {
        Role::Service => intake.issue(CALLING_SERVICE, role, tenant, ttl),
        _ => issuer.issue("test", role, tenant, ttl),
    }
    .expect("valid role and tenant")
}

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Clone)]
pub struct Bearer {
    value: Option<MetadataValue<tonic::metadata::Ascii>>,
    /// The role and tenant it was made for, so it can be signed again with
    /// other keys.
    identity: Option<(Role, Option<String>)>,
}

fn bearer_value(token: &str) -> MetadataValue<tonic::metadata::Ascii> {
    format!("Bearer {token}").parse().expect("ascii token")
}

impl Bearer {
    pub fn new(token: &str) -> Self {
        Self {
            value: Some(bearer_value(token)),
            identity: None,
        }
    }

    pub fn role(role: Role, tenant: Option<&str>) -> Self {
        Self {
            value: Some(bearer_value(&token(role, tenant))),
            identity: Some((role, tenant.map(str::to_owned))),
        }
    }

    /// The same role and tenant signed with `keys` instead of the
    /// development keys; one made from a given token stays as it is.
    pub fn signed_with(self, keys: &TestKeys) -> Self {
        match &self.identity {
            Some((role, tenant)) => Self {
                value: Some(bearer_value(&keys.token(*role, tenant.as_deref()))),
                identity: self.identity.clone(),
            },
            None => self,
        }
    }

    pub fn admin() -> Self {
        Self::role(Role::Admin, None)
    }

    pub fn dashboard() -> Self {
        Self::role(Role::Dashboard, None)
    }

    pub fn service() -> Self {
        Self::role(Role::Service, None)
    }

    /// Staff of the agency `agency_id` ("kotra", "sbc", ...).
    pub fn agency(agency_id: &str) -> Self {
        Self::role(Role::Agency, Some(agency_id))
    }

    pub fn advisor(advisor_id: &str) -> Self {
        Self::role(Role::Advisor, Some(advisor_id))
    }

    /// The overseas trade office `office_id` ("kbc-newyork", ...).
    pub fn trade_office(office_id: &str) -> Self {
        Self::role(Role::TradeOffice, Some(office_id))
    }

    /// No token at all.
    pub fn anonymous() -> Self {
        Self {
            value: None,
            identity: None,
        }
    }
}

impl tonic::service::Interceptor for Bearer {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.value {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// A generated client that a test connects with a token.
pub trait Connect {
    fn connect(channel: Channel, bearer: Bearer) -> Self;
}

macro_rules! clients {
    ($($(#[$doc:meta])* $alias:ident = $client:ident;)+) => {$(
        $(#[$doc])*
        pub type $alias = $client<InterceptedService<Channel, Bearer>>;
        impl Connect for $alias {
            fn connect(channel: Channel, bearer: Bearer) -> Self {
                $client::with_interceptor(channel, bearer)
            }
        }
    )+};
}

clients! {
    IntakeClient = IntakeServiceClient;
    MentoringClient = MentoringServiceClient;
    BuyersClient = BuyerServiceClient;
    ReferralClient = ReferralServiceClient;
    InsightsClient = InsightsServiceClient;
    /// Any service's event feed.
    FeedClient = EventFeedServiceClient;
    /// Any service's audit log.
    AuditClient = AuditServiceClient;
}

/// A lazily connecting channel to `addr`.
pub fn channel(addr: SocketAddr) -> Channel {
    Endpoint::from_shared(format!("http://{addr}"))
        .expect("valid uri")
        .connect_timeout(Duration::from_secs(5))
        .connect_lazy()
}

/// Settings for a server under test: loopback port 0, `database_url`, a
/// quick health probe, development keys.
pub fn settings(database_url: &str) -> ServerSettings {
    let mut settings = ServerSettings::for_database(database_url);
    settings.auth.dev_mode = true;
    // Tests run side by side, some with five services each: a small pool per
    // service keeps the suite inside Postgres' default 100 connections.
    settings.db_max_connections = 6;
    settings.health_interval = Duration::from_millis(200);
    settings.shutdown_grace = Duration::from_secs(3);
    settings
}

/// Polls `check` every 50 ms until it returns true or `within` passes.
pub async fn eventually<F, Fut>(within: Duration, mut check: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = tokio::time::Instant::now() + within;
    loop {
        if check().await {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Runs every future on its own task, all at once (duplicates racing each
/// other, say), and returns their outputs in the order given.
pub async fn all_at_once<F>(futures: impl IntoIterator<Item = F>) -> Vec<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    let tasks: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::with_capacity(tasks.len());
    for task in tasks {
        outputs.push(task.await.expect("the task runs to completion"));
    }
    outputs
}

/// Field paths of the BadRequest violations in `status`, sorted.
pub fn violations(status: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt;
    let mut fields: Vec<String> = status
        .get_details_bad_request()
        .map(|bad| bad.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default();
    fields.sort();
    fields
}

/// The description of the BadRequest violation of `field` in `status`.
pub fn violation_description(status: &tonic::Status, field: &str) -> Option<String> {
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()?
        .field_violations
        .into_iter()
        .find(|violation| violation.field == field)
        .map(|violation| violation.description)
}

/// Every item of a paged list, in order: `page` fetches the page after a
/// token (empty for the first) and returns its items and next_page_token.
/// Panics when a token comes back a second time, which a list that
/// restarts instead of continuing would do, or past 1,000 pages.
pub async fn all_pages<T, F, Fut>(mut page: F) -> Vec<T>
where
    F: FnMut(String) -> Fut,
    Fut: std::future::Future<Output = (Vec<T>, String)>,
{
    let mut items = Vec::new();
    let mut seen = std::collections::HashSet::new();
    let mut token = String::new();
    for _ in 0..1000 {
        let (mut more, next) = page(token).await;
        items.append(&mut more);
        if next.is_empty() {
            return items;
        }
        assert!(seen.insert(next.clone()), "page token {next} came back");
        token = next;
    }
    panic!("more than 1000 pages");
}

/// The ErrorInfo reason in `status` (e.g. ILLEGAL_TRANSITION), or "".
pub fn error_reason(status: &tonic::Status) -> String {
    use tonic_types::StatusExt;
    status
        .get_details_error_info()
        .map(|info| info.reason)
        .unwrap_or_default()
}

/// The next event on a Watch stream, skipping feed status messages; None
/// when the stream ends or nothing arrives `within`.
pub async fn next_event(
    stream: &mut tonic::Streaming<onestop_contracts::events::v1::WatchResponse>,
    within: Duration,
) -> Option<onestop_contracts::events::v1::Event> {
    use onestop_contracts::events::v1::watch_response::Item;
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let message = tokio::time::timeout_at(deadline, stream.message())
            .await
            .ok()?
            .ok()??;
        if let Some(Item::Event(event)) = message.item {
            return Some(event);
        }
    }
}

/// Every event a Watch from `after` on `feed` delivers until the stream
/// has been quiet for a second: what the caller's token may see of the
/// feed so far.
pub async fn events_until_quiet(
    mut feed: FeedClient,
    after: i64,
) -> Vec<onestop_contracts::events::v1::Event> {
    let mut stream = feed
        .watch(onestop_contracts::events::v1::WatchRequest {
            after,
            ..Default::default()
        })
        .await
        .expect("the caller may watch")
        .into_inner();
    let mut events = Vec::new();
    while let Some(event) = next_event(&mut stream, Duration::from_secs(1)).await {
        events.push(event);
    }
    events
}
