//! Intake on the shared harness: its real server on port 0 over a fresh
//! database, and the companies the tests register.

use onestop_contracts::intake::v1 as pb;
use onestop_intake::startup::Application;
use onestop_intake::upstreams::UpstreamSettings;
use onestop_platform::config::ServerSettings;
pub use onestop_test_support::fixtures::{
    company_profile as profile, krw, registration_number, usd,
};
use onestop_test_support::{Bearer, IntakeClient, TestDb, TestServer};
pub use onestop_test_support::{error_reason, violations};

/// The shared company profile registered as `number`, with
/// `export_usd_cents` of exports over the last year (which sets its stage).
pub fn exporter(number: &str, export_usd_cents: i64, small_merchant: bool) -> pb::CompanyProfile {
    let mut profile = profile(number);
    profile.export_revenue = Some(usd(export_usd_cents));
    profile.small_merchant = small_merchant;
    profile
}

/// A running intake server on port 0 over its own fresh database.
pub struct Intake {
    pub server: TestServer<IntakeClient>,
}

impl std::ops::Deref for Intake {
    type Target = TestServer<IntakeClient>;
    fn deref(&self) -> &Self::Target {
        &self.server
    }
}

impl Intake {
    pub async fn start() -> Self {
        Self::start_with(|_| {}).await
    }

    pub async fn start_with(configure: impl FnOnce(&mut ServerSettings)) -> Self {
        Self::start_on(TestDb::new().await, configure).await
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
        let server = TestServer::start_on(db, |mut settings| {
            configure(&mut settings);
            Application::build_with_upstreams(settings, upstreams)
        })
        .await;
        Self { server }
    }

    /// KOTRA's staff: the partner most tests act as.
    pub fn kotra(&self) -> IntakeClient {
        self.server.agency("kotra")
    }

    /// KOTRA registers a company with `export_usd_cents` of exports (and
    /// so works with it).
    pub async fn register(
        &self,
        number: &str,
        export_usd_cents: i64,
        small_merchant: bool,
    ) -> pb::Company {
        self.register_by(
            Bearer::agency("kotra"),
            number,
            export_usd_cents,
            small_merchant,
        )
        .await
    }

    /// As [`Intake::register`], by `bearer`'s holder: a service or an
    /// admin registers without becoming a partner, so the feed carries the
    /// registration alone.
    pub async fn register_by(
        &self,
        bearer: Bearer,
        number: &str,
        export_usd_cents: i64,
        small_merchant: bool,
    ) -> pb::Company {
        self.api(bearer)
            .register_company(pb::RegisterCompanyRequest {
                idempotency_key: String::new(),
                profile: Some(exporter(number, export_usd_cents, small_merchant)),
                ..Default::default()
            })
            .await
            .expect("registers")
            .into_inner()
    }
}

/// The case's timeline as `reader` reads it: one page of up to 500 lines,
/// more than any test writes.
pub async fn timeline(mut reader: IntakeClient, case_id: &str) -> Vec<pb::TimelineEntry> {
    reader
        .get_case_timeline(pb::GetCaseTimelineRequest {
            case_id: case_id.into(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .expect("timeline reads")
        .into_inner()
        .entries
}

/// The kinds of the case's timeline lines, oldest first, as `reader`
/// reads them.
pub async fn timeline_kinds(reader: IntakeClient, case_id: &str) -> Vec<String> {
    timeline(reader, case_id)
        .await
        .into_iter()
        .map(|line| line.kind)
        .collect()
}

impl Intake {
    /// KOTRA registers the company of `profile` (and so works with it) and
    /// opens a case for it with `needs`.
    pub async fn kotra_case(
        &self,
        profile: pb::CompanyProfile,
        needs: Vec<pb::NeedRequest>,
    ) -> (pb::Company, pb::Case) {
        let company = self
            .kotra()
            .register_company(pb::RegisterCompanyRequest {
                profile: Some(profile),
                ..Default::default()
            })
            .await
            .expect("registers")
            .into_inner();
        let case = self
            .kotra()
            .open_case(pb::OpenCaseRequest {
                company_id: company.company_id.clone(),
                needs,
                ..Default::default()
            })
            .await
            .expect("case opens")
            .into_inner();
        (company, case)
    }
}
