use std::sync::{Arc, Mutex};

use chrono::{DateTime, Utc};
use onestop_contracts::common::v1::{CompanySnapshot, GrowthStage, Money, NeedCategory};
use onestop_contracts::mentoring::v1 as pb;
use onestop_contracts::mentoring::v1::mentoring_service_client::MentoringServiceClient;
use onestop_mentoring::continuity::Rules;
use onestop_mentoring::startup::{Application, MentoringSettings};
use onestop_platform::Role;
use onestop_platform::server::CancellationToken;
use onestop_platform::time::Clock;
use onestop_test_support::{Bearer, TestDb, channel};
pub use onestop_test_support::{error_reason, violations};
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;
use uuid::Uuid;

pub type Client = MentoringServiceClient<InterceptedService<Channel, Bearer>>;

/// Real time unless a test pins it.
#[derive(Clone, Default)]
pub struct TestClock(Arc<Mutex<Option<DateTime<Utc>>>>);

impl TestClock {
    pub fn set(&self, at: DateTime<Utc>) {
        *self.0.lock().unwrap() = Some(at);
    }

    /// Back to real time.
    pub fn release(&self) {
        *self.0.lock().unwrap() = None;
    }
}

impl Clock for TestClock {
    fn now(&self) -> DateTime<Utc> {
        self.0.lock().unwrap().unwrap_or_else(Utc::now)
    }
}

/// A running mentoring server on port 0 over its own fresh database.
pub struct Mentoring {
    pub pool: PgPool,
    pub rules: Rules,
    pub clock: TestClock,
    pub addr: std::net::SocketAddr,
    shutdown: CancellationToken,
    _db: TestDb,
}

impl Mentoring {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut MentoringSettings)) -> Self {
        onestop_platform::telemetry::init_for_tests();
        let db = TestDb::new().await;
        let mut settings = MentoringSettings {
            // Tests drive the sweep themselves.
            sweep_interval: std::time::Duration::from_secs(3600),
            ..MentoringSettings::default()
        };
        configure(&mut settings);
        let mut server = onestop_test_support::settings(&db.url);
        server.db_max_connections = 20;
        let clock = TestClock::default();
        let app = Application::build_with_clock(server, settings, Arc::new(clock.clone()))
            .await
            .expect("mentoring builds");
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        let rules = app.rules();
        tokio::spawn(app.run_until_stopped());
        let pool = db.pool().await;
        Self {
            pool,
            rules,
            clock,
            addr,
            shutdown,
            _db: db,
        }
    }

    pub fn client(&self, bearer: Bearer) -> Client {
        MentoringServiceClient::with_interceptor(channel(self.addr), bearer)
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

    pub fn advisor(&self, advisor_id: &str) -> Client {
        self.client(Bearer::role(Role::Advisor, Some(advisor_id)))
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    pub async fn count_events(&self, event_type: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM event_log WHERE event_type = $1")
            .bind(event_type)
            .fetch_one(&self.pool)
            .await
            .expect("count events")
    }

    /// Payloads of every `event_type` event, in feed order.
    pub async fn events<M: prost::Message + Default>(&self, event_type: &str) -> Vec<M> {
        let payloads: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT payload FROM event_log WHERE event_type = $1 ORDER BY id")
                .bind(event_type)
                .fetch_all(&self.pool)
                .await
                .expect("events");
        payloads
            .iter()
            .map(|p| M::decode(p.as_slice()).expect("payload decodes"))
            .collect()
    }

    pub async fn register(&self, profile: pb::AdvisorProfile) -> pb::Advisor {
        self.admin()
            .register_advisor(pb::RegisterAdvisorRequest {
                idempotency_key: String::new(),
                profile: Some(profile),
            })
            .await
            .expect("advisor registers")
            .into_inner()
    }

    pub async fn request(&self, request: pb::RequestAdvisorRequest) -> pb::RequestAdvisorResponse {
        self.service()
            .request_advisor(request)
            .await
            .expect("request is accepted")
            .into_inner()
    }

    pub async fn get_advisor_status(&self, advisor_id: &str) -> i32 {
        self.admin()
            .get_advisor(pb::GetAdvisorRequest {
                advisor_id: advisor_id.into(),
            })
            .await
            .expect("advisor")
            .into_inner()
            .status
    }

    /// The company's advisor history, read as an admin.
    pub async fn history(&self, company_id: &str) -> pb::AdvisorHistory {
        self.admin()
            .get_advisor_history(pb::GetAdvisorHistoryRequest {
                company_id: company_id.into(),
            })
            .await
            .expect("history")
            .into_inner()
    }

    /// Requests an advisor for a fresh company and returns its assignment.
    pub async fn assign_new_company(&self) -> pb::Assignment {
        match self.request(need_for(&company())).await.outcome {
            Some(pb::request_advisor_response::Outcome::Assigned(a)) => a,
            other => panic!("expected an assignment, got {other:?}"),
        }
    }
}

impl Drop for Mentoring {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// An advisor that fits the standard company on nothing but load.
pub fn plain_advisor() -> pb::AdvisorProfile {
    pb::AdvisorProfile {
        kind: pb::AdvisorKind::RetiredExpert as i32,
        contact: Some(pb::AdvisorContact {
            name: "Park Minho".into(),
            email: "minho.park@example.kr".into(),
            phone: "+82 2-555-0101".into(),
        }),
        languages: vec!["ko".into()],
        industries_ksic: vec!["10".into()],
        hs_chapters: vec!["01".into()],
        markets: vec!["JP".into()],
        region: "KR-11".into(),
        capacity: 5,
        remote: false,
        program: Some(pb::AdvisorProgram {
            program_id: "kotra.export-mentor".into(),
            agency: "KOTRA".into(),
            name: "Export mentor".into(),
            monthly_fee: None,
        }),
    }
}

pub fn kintex_program() -> pb::AdvisorProgram {
    pb::AdvisorProgram {
        program_id: "kintex.retired-expert-marketing".into(),
        agency: "KINTEX".into(),
        name: "Retired expert marketing".into(),
        monthly_fee: Some(Money {
            currency_code: "KRW".into(),
            amount_minor: 100_000,
        }),
    }
}

/// A Busan cosmetics maker heading for the US.
pub fn company() -> CompanySnapshot {
    CompanySnapshot {
        company_id: Uuid::new_v4().to_string(),
        business_registration_number: "1248100998".into(),
        name_ko: "한빛화장품".into(),
        name_en: "Hanbit Cosmetics".into(),
        region: "KR-26".into(),
        industry_ksic: "20423".into(),
        hs_codes: vec!["330499".into()],
        employees: 24,
        annual_revenue: None,
        export_revenue: None,
        export_countries: vec![],
        languages: vec!["ko".into()],
        small_merchant: false,
        stage: GrowthStage::FirstExport as i32,
        readiness_score: 55,
    }
}

pub fn need_for(company: &CompanySnapshot) -> pb::RequestAdvisorRequest {
    pb::RequestAdvisorRequest {
        need_id: Uuid::new_v4().to_string(),
        case_id: Uuid::new_v4().to_string(),
        category: NeedCategory::Mentoring as i32,
        company: Some(company.clone()),
        target_markets: vec!["US".into()],
        languages_needed: vec!["en".into()],
        hs_codes: vec![],
        detail: "first order shipped; needs a long-term advisor".into(),
    }
}

pub fn assigned(response: &pb::RequestAdvisorResponse) -> &pb::Assignment {
    match &response.outcome {
        Some(pb::request_advisor_response::Outcome::Assigned(a)) => a,
        other => panic!("expected an assignment, got {other:?}"),
    }
}

pub fn waitlisted(response: &pb::RequestAdvisorResponse) -> &pb::WaitlistEntry {
    match &response.outcome {
        Some(pb::request_advisor_response::Outcome::Waitlisted(w)) => w,
        other => panic!("expected a waitlist entry, got {other:?}"),
    }
}

pub fn ts(at: DateTime<Utc>) -> prost_types::Timestamp {
    onestop_platform::time::to_timestamp(at)
}

pub fn by_id(assignment_id: &str) -> pb::GetAssignmentRequest {
    pb::GetAssignmentRequest {
        lookup: Some(pb::get_assignment_request::Lookup::AssignmentId(
            assignment_id.into(),
        )),
    }
}

pub fn by_company(company_id: &str) -> pb::GetAssignmentRequest {
    pb::GetAssignmentRequest {
        lookup: Some(pb::get_assignment_request::Lookup::CompanyId(
            company_id.into(),
        )),
    }
}
