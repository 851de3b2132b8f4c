use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use onestop_contracts::common::v1::{CompanySnapshot, GrowthStage, Money, NeedCategory};
use onestop_contracts::events::v1::event_feed_client::EventFeedClient;
use onestop_contracts::referral::v1 as pb;
use onestop_contracts::referral::v1::referral_service_client::ReferralServiceClient;
use onestop_platform::Role;
use onestop_platform::server::CancellationToken;
use onestop_referral::startup::{Application, ReferralSettings};
use onestop_test_support::{Bearer, ManualClock, TestDb, channel};
pub use onestop_test_support::{error_reason, violations};
use prost::Message;
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Client = ReferralServiceClient<InterceptedService<Channel, Bearer>>;
pub type Feed = EventFeedClient<InterceptedService<Channel, Bearer>>;

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()
}

/// A running referral server on port 0 over its own fresh database, on a
/// manual clock.
pub struct Referral {
    pub addr: std::net::SocketAddr,
    pub pool: PgPool,
    pub clock: ManualClock,
    pub shutdown: CancellationToken,
    _db: TestDb,
}

impl Referral {
    /// The in-server sweeper ticks hourly here, so tests drive
    /// `sweep_once` themselves.
    pub async fn start() -> Self {
        Self::start_sweeping_every(Duration::from_secs(3600)).await
    }

    pub async fn start_sweeping_every(interval: Duration) -> Self {
        onestop_platform::telemetry::init_for_tests();
        let db = TestDb::new().await;
        let settings = onestop_test_support::settings(&db.url);
        let clock = ManualClock::at(start_time());
        let app = Application::build_with(
            settings,
            ReferralSettings {
                sla_sweep_interval: interval,
            },
            Arc::new(clock.clone()),
        )
        .await
        .expect("referral builds");
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        tokio::spawn(app.run_until_stopped());
        let pool = db.pool().await;
        Self {
            addr,
            pool,
            clock,
            shutdown,
            _db: db,
        }
    }

    pub fn client(&self, bearer: Bearer) -> Client {
        ReferralServiceClient::with_interceptor(channel(self.addr), bearer)
    }

    pub fn admin(&self) -> Client {
        self.client(Bearer::admin())
    }

    pub fn service(&self) -> Client {
        self.client(Bearer::role(Role::Service, None))
    }

    pub fn dashboard(&self) -> Client {
        self.client(Bearer::role(Role::Dashboard, None))
    }

    pub fn agency(&self, agency_id: &str) -> Client {
        self.client(Bearer::role(Role::Agency, Some(agency_id)))
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

    /// Event types on the log, oldest first.
    pub async fn event_types(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT event_type FROM event_log ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .unwrap()
    }

    /// (type, referral payload) of every referral.* event.
    pub async fn referral_events(&self) -> Vec<(String, pb::Referral)> {
        let rows: Vec<(String, Vec<u8>)> = sqlx::query_as(
            "SELECT event_type, payload FROM event_log WHERE event_type LIKE 'referral.%' ORDER BY id",
        )
        .fetch_all(&self.pool)
        .await
        .unwrap();
        rows.into_iter()
            .map(|(t, payload)| (t, pb::Referral::decode(payload.as_slice()).unwrap()))
            .collect()
    }

    pub async fn add_agency(&self, agency_id: &str) {
        self.admin()
            .upsert_agency(pb::UpsertAgencyRequest {
                agency: Some(agency(agency_id)),
            })
            .await
            .expect("agency upserts");
    }

    pub async fn add_program(&self, program: pb::Program) -> pb::Program {
        self.admin()
            .upsert_program(pb::UpsertProgramRequest {
                program: Some(program),
            })
            .await
            .expect("program upserts")
            .into_inner()
    }

    /// Agencies alpha, beta and gamma, each with one open EXPORT_FINANCE
    /// program of `slots` slots and a 48h SLA; alpha's is the most
    /// specific, so routing prefers alpha, then beta, then gamma.
    pub async fn three_lenders(&self, slots: u32) {
        for id in ["alpha", "beta", "gamma"] {
            self.add_agency(id).await;
        }
        let mut alpha = program("alpha.loans", "alpha", NeedCategory::ExportFinance);
        alpha.eligibility = Some(pb::Eligibility {
            stages: vec![
                GrowthStage::Domestic as i32,
                GrowthStage::FirstExport as i32,
            ],
            max_employees: 300,
            ..Default::default()
        });
        let mut beta = program("beta.loans", "beta", NeedCategory::ExportFinance);
        beta.eligibility = Some(pb::Eligibility {
            max_employees: 300,
            ..Default::default()
        });
        let gamma = program("gamma.loans", "gamma", NeedCategory::ExportFinance);
        for mut p in [alpha, beta, gamma] {
            p.capacity.as_mut().unwrap().total_slots = slots;
            self.add_program(p).await;
        }
    }

    pub async fn create(&self, need_id: &str) -> pb::Referral {
        self.create_with(create_request(need_id, NeedCategory::ExportFinance))
            .await
    }

    /// Hands `request` over as intake would.
    pub async fn create_with(&self, request: pb::CreateReferralRequest) -> pb::Referral {
        self.service()
            .create_referral(request)
            .await
            .expect("referral created")
            .into_inner()
    }

    pub async fn get(&self, id: &str) -> pb::Referral {
        self.dashboard()
            .get_referral(pb::GetReferralRequest {
                referral_id: id.into(),
            })
            .await
            .expect("get")
            .into_inner()
    }
}

impl Drop for Referral {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn agency(agency_id: &str) -> pb::Agency {
    pb::Agency {
        agency_id: agency_id.into(),
        name_ko: format!("{agency_id} 기관"),
        name_en: format!("{agency_id} agency"),
        short_name: agency_id.to_uppercase(),
        units: vec![pb::AgencyUnit {
            unit_id: format!("{agency_id}.hq"),
            name_ko: "본부".into(),
            name_en: "Headquarters".into(),
            kind: pb::UnitKind::Headquarters as i32,
            region: "KR-11".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// An active program open to everyone, 10 slots, 48h SLA.
pub fn program(program_id: &str, agency_id: &str, category: NeedCategory) -> pb::Program {
    pb::Program {
        program_id: program_id.into(),
        agency_id: agency_id.into(),
        name_ko: format!("{program_id} 사업"),
        name_en: format!("{program_id} program"),
        categories: vec![category as i32],
        eligibility: Some(pb::Eligibility::default()),
        capacity: Some(pb::ProgramCapacity {
            total_slots: 10,
            availability: pb::Availability::Yes as i32,
            ..Default::default()
        }),
        response_sla: Some(prost_types::Duration {
            seconds: 48 * 3600,
            nanos: 0,
        }),
        status: pb::ProgramStatus::Active as i32,
        ..Default::default()
    }
}

pub fn krw(amount: i64) -> Money {
    Money {
        currency_code: "KRW".into(),
        amount_minor: amount,
    }
}

/// A domestic cosmetics maker in Busan, 24 staff, 3.2 billion KRW revenue.
pub fn company() -> CompanySnapshot {
    CompanySnapshot {
        company_id: "0190f0a8-0000-7000-8000-000000000001".into(),
        business_registration_number: "1248100998".into(),
        name_ko: "한빛화장품".into(),
        name_en: "Hanbit Cosmetics".into(),
        region: "KR-26".into(),
        industry_ksic: "20423".into(),
        hs_codes: vec!["330499".into()],
        employees: 24,
        annual_revenue: Some(krw(3_200_000_000)),
        export_revenue: Some(Money {
            currency_code: "USD".into(),
            amount_minor: 0,
        }),
        stage: GrowthStage::Domestic as i32,
        ..Default::default()
    }
}

pub fn create_request(need_id: &str, category: NeedCategory) -> pb::CreateReferralRequest {
    pb::CreateReferralRequest {
        need_id: need_id.into(),
        case_id: format!("case-of-{need_id}"),
        category: category as i32,
        company: Some(company()),
        target_markets: vec!["VN".into()],
        hs_codes: vec!["3304".into()],
        detail: "Working capital to adapt packaging for Vietnam".into(),
        ..Default::default()
    }
}

pub fn current_program(referral: &pb::Referral) -> &str {
    referral
        .legs
        .last()
        .map(|l| l.program_id.as_str())
        .unwrap_or_default()
}

pub fn status(referral: &pb::Referral) -> pb::ReferralStatus {
    pb::ReferralStatus::try_from(referral.status).unwrap()
}
