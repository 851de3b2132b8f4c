use std::time::Duration;

use onestop_contracts::common::v1::Money;
use onestop_contracts::events::v1::event_feed_client::EventFeedClient;
use onestop_contracts::events::v1::{Event, WatchRequest};
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::intake::v1::intake_service_client::IntakeServiceClient;
use onestop_intake::startup::Application;
use onestop_intake::upstreams::UpstreamSettings;
use onestop_platform::Role;
use onestop_platform::config::ServerSettings;
use onestop_platform::server::CancellationToken;
use onestop_test_support::{Bearer, TestDb, channel};
pub use onestop_test_support::{error_reason, violations};
use sqlx::PgPool;
use tokio_stream::StreamExt;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Client = IntakeServiceClient<InterceptedService<Channel, Bearer>>;
pub type Feed = EventFeedClient<InterceptedService<Channel, Bearer>>;

/// A running intake server on port 0 over its own fresh database.
pub struct Intake {
    pub addr: std::net::SocketAddr,
    pub pool: PgPool,
    pub database_url: String,
    pub shutdown: CancellationToken,
    /// Dropped last: the database outlives the server and the pool.
    _db: TestDb,
}

impl Intake {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut ServerSettings)) -> Self {
        let db = TestDb::new().await;
        Self::start_on(db, configure).await
    }

    /// Starts over `db`, with settings adjusted by `configure`.
    pub async fn start_on(db: TestDb, configure: impl FnOnce(&mut ServerSettings)) -> Self {
        Self::start_wired(db, configure, UpstreamSettings::default()).await
    }

    /// Starts over `db`, handing needs to and following `upstreams`.
    pub async fn start_wired(
        db: TestDb,
        configure: impl FnOnce(&mut ServerSettings),
        upstreams: UpstreamSettings,
    ) -> Self {
        onestop_platform::telemetry::init_for_tests();
        let mut settings = onestop_test_support::settings(&db.url);
        configure(&mut settings);
        let app = Application::build_with_upstreams(settings, upstreams)
            .await
            .expect("intake builds");
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        tokio::spawn(app.run_until_stopped());
        let pool = db.pool().await;
        Self {
            addr,
            pool,
            database_url: db.url.clone(),
            shutdown,
            _db: db,
        }
    }

    pub fn client(&self, bearer: Bearer) -> Client {
        IntakeServiceClient::with_interceptor(channel(self.addr), bearer)
    }

    pub fn agency(&self) -> Client {
        self.client(Bearer::role(Role::Agency, Some("kotra")))
    }

    pub fn admin(&self) -> Client {
        self.client(Bearer::admin())
    }

    pub fn feed(&self) -> Feed {
        EventFeedClient::with_interceptor(channel(self.addr), Bearer::role(Role::Dashboard, None))
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    /// Registers a company with `export_usd_cents` of exports.
    pub async fn register(
        &self,
        number: &str,
        export_usd_cents: i64,
        small_merchant: bool,
    ) -> pb::Company {
        let mut profile = profile(number);
        profile.export_revenue = Some(usd(export_usd_cents));
        profile.small_merchant = small_merchant;
        self.agency()
            .register_company(pb::RegisterCompanyRequest {
                idempotency_key: String::new(),
                profile: Some(profile),
            })
            .await
            .expect("registers")
            .into_inner()
    }

    /// Every event currently on the feed (after `after`), read with a
    /// Watch that is dropped once it has caught up.
    pub async fn events_after(&self, after: i64) -> Vec<Event> {
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log WHERE id > $1")
            .bind(after)
            .fetch_one(&self.pool)
            .await
            .unwrap();
        let mut stream = self
            .feed()
            .watch(WatchRequest {
                after,
                ..Default::default()
            })
            .await
            .expect("watch")
            .into_inner();
        let mut events = Vec::new();
        while (events.len() as i64) < total {
            let event = tokio::time::timeout(Duration::from_secs(10), stream.next())
                .await
                .expect("event arrives")
                .expect("stream open")
                .expect("event");
            events.push(event);
        }
        events
    }
}

impl Drop for Intake {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn usd(cents: i64) -> Money {
    Money {
        currency_code: "USD".into(),
        amount_minor: cents,
    }
}

/// A valid registration number made from `seed` (check digit computed).
pub fn registration_number(seed: u32) -> String {
    let body = format!("{:09}", 100_000_000 + seed % 800_000_000);
    let d: Vec<u32> = body.chars().map(|c| c.to_digit(10).unwrap()).collect();
    let weights = [1, 3, 7, 1, 3, 7, 1, 3, 5];
    let sum: u32 = d.iter().zip(weights).map(|(a, b)| a * b).sum::<u32>() + d[8] * 5 / 10;
    format!("{body}{}", (10 - sum % 10) % 10)
}

pub fn profile(number: &str) -> pb::CompanyProfile {
    pb::CompanyProfile {
        business_registration_number: number.into(),
        name_ko: "한빛화장품".into(),
        name_en: "Hanbit Cosmetics Co., Ltd.".into(),
        region: "KR-26".into(),
        industry_ksic: "20423".into(),
        hs_codes: vec!["330499".into(), "330420".into()],
        employees: 24,
        annual_revenue: Some(Money {
            currency_code: "KRW".into(),
            amount_minor: 3_200_000_000,
        }),
        export_revenue: Some(usd(0)),
        export_countries: vec![],
        languages: vec!["ko".into(), "en".into()],
        small_merchant: false,
        contacts: vec![pb::Contact {
            name: "Kim Jiwoo".into(),
            title: "Export manager".into(),
            email: "jiwoo.kim@hanbit-cosmetics.kr".into(),
            phone: "+82 51-555-0142".into(),
        }],
    }
}
