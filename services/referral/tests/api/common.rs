use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeZone, Utc};
use onestop_contracts::common::v1::{CompanySnapshot, GrowthStage, NeedCategory};
use onestop_contracts::event_types::ReferralEvent;
use onestop_contracts::referral::v1 as pb;
use onestop_referral::startup::{Application, ReferralSettings};
pub use onestop_test_support::fixtures::{krw, usd};
use onestop_test_support::{ManualClock, ReferralClient, TestServer};
pub use onestop_test_support::{error_reason, violations};
use prost::Message;

pub type Client = ReferralClient;

pub fn start_time() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap()
}

/// A running referral server on port 0 over its own fresh database, on a
/// manual clock.
pub struct Referral {
    pub server: TestServer<ReferralClient>,
    pub clock: ManualClock,
}

impl std::ops::Deref for Referral {
    type Target = TestServer<ReferralClient>;
    fn deref(&self) -> &Self::Target {
        &self.server
    }
}

impl Referral {
    /// The in-server sweeper ticks hourly here, so tests drive
    /// `sweep_once` themselves.
    pub async fn start() -> Self {
        Self::start_sweeping_every(Duration::from_secs(3600)).await
    }

    pub async fn start_sweeping_every(interval: Duration) -> Self {
        let clock = ManualClock::at(start_time());
        let app_clock = Arc::new(clock.clone());
        let server = TestServer::start(|settings| {
            Application::build_with(
                settings,
                ReferralSettings {
                    sla_sweep_interval: interval,
                    ..Default::default()
                },
                app_clock,
            )
        })
        .await;
        Self { server, clock }
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
            .map(|(t, payload)| {
                assert!(ReferralEvent::parse(&t).is_some(), "unknown event type {t}");
                (t, pb::Referral::decode(payload.as_slice()).unwrap())
            })
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

    /// The referral as an admin reads it: all of it, free text included.
    pub async fn get(&self, id: &str) -> pb::Referral {
        self.admin()
            .get_referral(pb::GetReferralRequest {
                referral_id: id.into(),
            })
            .await
            .expect("get")
            .into_inner()
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
        export_revenue: Some(usd(0)),
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
