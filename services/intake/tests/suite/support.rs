//! The whole suite as separate processes: the four real binaries on
//! ephemeral loopback ports, each on its own fresh database; in
//! development mode, or secured: keys generated for the run (no
//! development keys) and mutual TLS on every connection.

use std::time::Duration;

use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::intake::v1 as pb;
use onestop_test_support::fixtures::{company_profile, usd};
use onestop_test_support::{IntakeClient, eventually};

pub use onestop_test_support::Suite;

/// How long a journey waits for work that crosses the services.
pub const WITHIN: Duration = Duration::from_secs(30);

/// Starts mentoring, buyers and referral, then intake wired to them, in
/// development mode; `env` goes to every process.
pub async fn start(env: &[(&str, &str)]) -> Suite {
    Suite::start(env!("CARGO_BIN_EXE_onestop-intake"), &SERVICES, env).await
}

/// As [`start`], with keys generated for the run (development mode off)
/// and mutual TLS on every connection.
pub async fn start_secured(env: &[(&str, &str)]) -> Suite {
    Suite::start_secured(env!("CARGO_BIN_EXE_onestop-intake"), &SERVICES, env).await
}

/// Starts the suite exporting its traces to a receiver in this process,
/// with `env` added.
pub async fn start_traced(env: &[(&str, &str)]) -> (Suite, crate::otlp::Receiver) {
    let (collector, receiver) = crate::otlp::Receiver::start().await;
    let endpoint = format!("http://{collector}");
    let mut all = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ];
    all.extend_from_slice(env);
    (start(&all).await, receiver)
}

const SERVICES: [&str; 4] = ["mentoring", "buyers", "referral", "intake"];

/// The built binary of `service`, beside this test's intake binary (`cargo
/// test --workspace` builds every service's binary before any test runs).
pub fn built_binary(service: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_onestop-intake"))
        .with_file_name(format!("onestop-{service}"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}

/// Hanbit Cosmetics, the Busan cosmetics maker most journeys follow, with
/// one product line and `export_usd_cents` of exports over the last year.
pub fn hanbit(export_usd_cents: i64) -> pb::CompanyProfile {
    pb::CompanyProfile {
        hs_codes: vec!["330499".into()],
        annual_revenue: None,
        export_revenue: Some(usd(export_usd_cents)),
        contacts: vec![],
        ..company_profile("124-81-00998")
    }
}

/// The company `intake`'s caller registers under `key`.
pub async fn register_company(
    intake: &IntakeClient,
    key: &str,
    profile: pb::CompanyProfile,
) -> pb::Company {
    intake
        .clone()
        .register_company(pb::RegisterCompanyRequest {
            idempotency_key: key.into(),
            profile: Some(profile),
            ..Default::default()
        })
        .await
        .expect("company registers")
        .into_inner()
}

/// The case `intake`'s caller opens under `key` for the company with `needs`.
pub async fn open_case(
    intake: &IntakeClient,
    key: &str,
    company_id: &str,
    needs: Vec<pb::NeedRequest>,
) -> pb::Case {
    intake
        .clone()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: key.into(),
            company_id: company_id.into(),
            needs,
        })
        .await
        .expect("case opens")
        .into_inner()
}

/// Registers the company of `profile` and opens its case with `needs`,
/// under the keys `{key}-company` and `{key}-case`.
pub async fn company_with_case(
    intake: &IntakeClient,
    key: &str,
    profile: pb::CompanyProfile,
    needs: Vec<pb::NeedRequest>,
) -> (pb::Company, pb::Case) {
    let company = register_company(intake, &format!("{key}-company"), profile).await;
    let case = open_case(intake, &format!("{key}-case"), &company.company_id, needs).await;
    (company, case)
}

pub async fn case(intake: &IntakeClient, case_id: &str) -> pb::Case {
    intake
        .clone()
        .get_case(pb::GetCaseRequest {
            case_id: case_id.into(),
        })
        .await
        .expect("case reads")
        .into_inner()
}

/// Whether the case, read again and again, satisfies `check` within
/// [`WITHIN`].
pub async fn case_becomes(
    intake: &IntakeClient,
    case_id: &str,
    check: impl Fn(&pb::Case) -> bool,
) -> bool {
    eventually(WITHIN, || async { check(&case(intake, case_id).await) }).await
}

/// Whether every need of the case has reached its owner.
pub fn all_delivered(case: &pb::Case) -> bool {
    case.needs
        .iter()
        .all(|n| n.delivery == pb::DeliveryState::Delivered as i32)
}

pub fn need_of(case: &pb::Case, category: NeedCategory) -> Option<&pb::Need> {
    case.needs.iter().find(|n| n.category == category as i32)
}

/// The status of the case's need `need_id`, unspecified when it has none.
pub fn status_of(case: &pb::Case, need_id: &str) -> i32 {
    case.needs
        .iter()
        .find(|n| n.need_id == need_id)
        .map(|n| n.status)
        .unwrap_or_default()
}

/// The first item `list` returns, asking every 200 ms for up to
/// [`WITHIN`].
pub async fn first_listed<T, F, Fut>(mut list: F) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Vec<T>>,
{
    let started = std::time::Instant::now();
    while started.elapsed() < WITHIN {
        if let Some(first) = list().await.into_iter().next() {
            return Some(first);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}
