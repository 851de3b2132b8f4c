use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::Utc;
use onestop_contracts::common::v1::{CompanySnapshot, NeedCategory};
use onestop_contracts::event_types::EventType;
use onestop_contracts::insights::v1 as pb;
use onestop_contracts::referral::v1 as referral;
use onestop_insights::domain::filter::Months;
use onestop_insights::startup::{Application, InsightsSettings};
use onestop_platform::events::{self, NewEvent};
use onestop_referral::admin::seed::{self, SeedArgs};
use onestop_test_support::{
    FeedClient, InsightsClient, ManualClock, ReferralClient, TestDb, TestServer, eventually,
};

/// The month the events of a test fall in (Asia/Seoul).
pub fn this_month() -> pb::Period {
    Months::current(Utc::now()).to_proto()
}

pub fn filter() -> pb::IndicatorFilter {
    pb::IndicatorFilter {
        period: Some(this_month()),
        ..Default::default()
    }
}

/// Buyers verified in the period, all offices together.
pub fn verified(indicators: &pb::Indicators) -> u64 {
    indicators
        .buyer_vetting
        .clone()
        .unwrap_or_default()
        .verified
        .unwrap_or_default()
        .count
}

/// An owner's feed: a real service over its own database, whose event log
/// a test appends events to as that owner would.
pub type Feed = TestServer<FeedClient>;

/// The four feeds insights follows. Referral is the real referral service
/// with the built-in directory; intake, mentoring and buyers are real event
/// logs served by a real feed, written with the owners' event types and
/// payloads.
pub struct Feeds {
    pub intake: Feed,
    pub mentoring: Feed,
    pub buyers: Feed,
    pub referral: TestServer<ReferralClient>,
}

async fn feed() -> Feed {
    TestServer::start(onestop_referral::startup::Application::build).await
}

impl Feeds {
    pub async fn start() -> Self {
        let referral = TestServer::start(onestop_referral::startup::Application::build).await;
        seed::run(
            &onestop_test_support::settings(&referral.database_url),
            &SeedArgs { file: None },
        )
        .await
        .expect("the built-in directory loads");
        Self {
            intake: feed().await,
            mentoring: feed().await,
            buyers: feed().await,
            referral,
        }
    }

    pub fn settings(&self) -> InsightsSettings {
        let url = |addr: SocketAddr| Some(format!("http://{addr}"));
        InsightsSettings {
            intake_url: url(self.intake.addr),
            mentoring_url: url(self.mentoring.addr),
            buyers_url: url(self.buyers.addr),
            referral_url: url(self.referral.addr),
            http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..InsightsSettings::default()
        }
    }

    /// Hands a need to referral as intake does; the referral is routed by
    /// the built-in directory.
    pub async fn refer(
        &self,
        category: NeedCategory,
        company: &CompanySnapshot,
    ) -> referral::Referral {
        self.referral
            .service()
            .create_referral(referral::CreateReferralRequest {
                need_id: uuid::Uuid::now_v7().to_string(),
                case_id: uuid::Uuid::now_v7().to_string(),
                category: category as i32,
                company: Some(company.clone()),
                ..Default::default()
            })
            .await
            .expect("referral created")
            .into_inner()
    }
}

/// Appends `payload` to `feed`'s event log as its owner would; returns the
/// event id.
pub async fn append<E: EventType, M: prost::Name>(feed: &Feed, kind: E, payload: &M) -> i64 {
    let mut tx = feed.pool.begin().await.unwrap();
    let id = events::append(&mut tx, NewEvent::new(kind, "test", payload))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    id
}

/// The insights server under test, on a clock set to now.
pub struct Insights {
    pub server: TestServer<InsightsClient>,
    /// The dashboard port (page and gRPC-Web).
    pub http: SocketAddr,
}

impl std::ops::Deref for Insights {
    type Target = TestServer<InsightsClient>;
    fn deref(&self) -> &Self::Target {
        &self.server
    }
}

impl Insights {
    pub async fn start(settings: InsightsSettings) -> Self {
        Self::start_on(TestDb::new().await, settings).await
    }

    /// Starts insights over `db` (e.g. the database an earlier run left).
    pub async fn start_on(db: TestDb, settings: InsightsSettings) -> Self {
        let http = Arc::new(Mutex::new(None));
        let seen = http.clone();
        let server = TestServer::start_on(db, |server_settings| async move {
            let app = Application::build_with(
                server_settings,
                settings,
                Arc::new(ManualClock::at(Utc::now())),
            )
            .await?;
            *seen.lock().unwrap() = Some(app.http_addr());
            Ok(app)
        })
        .await;
        let http = http.lock().unwrap().expect("built");
        Self { server, http }
    }

    pub async fn indicators(&self, filter: pb::IndicatorFilter) -> pb::Indicators {
        self.dashboard()
            .get_indicators(pb::GetIndicatorsRequest {
                filter: Some(filter),
            })
            .await
            .expect("indicators")
            .into_inner()
    }

    /// The indicators once `settled` holds for them (within 15 s).
    pub async fn once(
        &self,
        filter: pb::IndicatorFilter,
        settled: impl Fn(&pb::Indicators) -> bool,
    ) -> pb::Indicators {
        let latest = Mutex::new(None);
        let done = eventually(Duration::from_secs(15), || async {
            let indicators = self.indicators(filter.clone()).await;
            let ok = settled(&indicators);
            *latest.lock().unwrap() = Some(indicators);
            ok
        })
        .await;
        let latest = latest.into_inner().unwrap().expect("read at least once");
        assert!(done, "indicators never settled: {latest:#?}");
        latest
    }

    /// The cursor insights stored for `source`.
    pub async fn applied(&self, source: &str) -> i64 {
        sqlx::query_scalar("SELECT last_event_id FROM feed_cursor WHERE source = $1")
            .bind(source)
            .fetch_optional(&self.pool)
            .await
            .unwrap()
            .unwrap_or(0)
    }

    /// Waits until insights applied `feed` up to its newest event.
    pub async fn caught_up(&self, source: &str, feed: &Feed) {
        let head: i64 = sqlx::query_scalar("SELECT coalesce(max(id), 0) FROM event_log")
            .fetch_one(&feed.pool)
            .await
            .unwrap();
        assert!(
            eventually(Duration::from_secs(15), || async {
                self.applied(source).await >= head
            })
            .await,
            "{source} never caught up with event {head}"
        );
    }
}
