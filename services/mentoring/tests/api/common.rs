use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};
use onestop_contracts::common::v1::{CompanySnapshot, NeedCategory};
use onestop_contracts::mentoring::v1 as pb;
use onestop_mentoring::continuity::Rules;
use onestop_mentoring::startup::{Application, MentoringSettings};
use onestop_test_support::fixtures::krw;
pub use onestop_test_support::fixtures::{company_snapshot as company, timestamp as ts};
use onestop_test_support::{ManualClock, MentoringClient, TestServer};
pub use onestop_test_support::{error_reason, violations};
use uuid::Uuid;

/// Mid-month, so a month's time either way stays in a neighbouring month.
pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 16, 1, 0, 0).unwrap()
}

/// A running mentoring server on port 0 over its own fresh database, on a
/// manual clock starting at [`start_time`].
pub struct Mentoring {
    pub server: TestServer<MentoringClient>,
    pub rules: Rules,
    pub clock: ManualClock,
}

impl std::ops::Deref for Mentoring {
    type Target = TestServer<MentoringClient>;
    fn deref(&self) -> &Self::Target {
        &self.server
    }
}

impl Mentoring {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut MentoringSettings)) -> Self {
        let mut settings = MentoringSettings {
            // Tests drive the sweep themselves.
            background_sweep: false,
            ..MentoringSettings::default()
        };
        configure(&mut settings);
        let rules = settings.rules();
        let clock = ManualClock::at(start_time());
        let app_clock = Arc::new(clock.clone());
        let server = TestServer::start(|mut server| {
            // Room for the tests that race dozens of calls.
            server.db_max_connections = 20;
            Application::build_with(server, settings, app_clock)
        })
        .await;
        Self {
            server,
            rules,
            clock,
        }
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

    /// The company's whole advisor history in one page, read as an admin.
    pub async fn history(&self, company_id: &str) -> pb::AdvisorHistory {
        let history = self
            .admin()
            .get_advisor_history(history_of(company_id))
            .await
            .expect("history")
            .into_inner();
        assert!(history.next_page_token.is_empty(), "one page");
        history
    }

    /// Requests an advisor for a fresh company and returns its assignment.
    pub async fn assign_new_company(&self) -> pb::Assignment {
        assigned(&self.request(need_for(&company())).await).clone()
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
        monthly_fee: Some(krw(100_000)),
    }
}

/// A mentoring need of `company` heading for the US, as intake hands it over.
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

pub fn history_of(company_id: &str) -> pb::GetAdvisorHistoryRequest {
    pb::GetAdvisorHistoryRequest {
        company_id: company_id.into(),
        ..Default::default()
    }
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

/// A mask naming `paths`.
pub fn mask(paths: &[&str]) -> Option<prost_types::FieldMask> {
    Some(prost_types::FieldMask {
        paths: paths.iter().map(|p| (*p).to_owned()).collect(),
    })
}
