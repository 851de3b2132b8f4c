use std::time::Duration;

use onestop_contracts::event_types::MentoringEvent;
use onestop_contracts::events::v1::WatchRequest;
use onestop_contracts::mentoring::v1 as pb;
use onestop_test_support::{
    Bearer, Connect, FeedClient, MentoringClient, ServiceProcess, TestDb, channel, eventually,
    next_event,
};
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

use crate::common::{assigned, company, need_for, plain_advisor};

const BINARY: &str = env!("CARGO_BIN_EXE_onestop-mentoring");

#[tokio::test]
async fn the_binary_serves_health_the_feed_and_its_configured_cadence() {
    let db = TestDb::new().await;
    let mut service = ServiceProcess::spawn(
        BINARY,
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ONESTOP_CADENCE_FIRST_EXPORT_DAYS", "14"),
            ("ONESTOP_SHUTDOWN_GRACE", "2s"),
        ],
    )
    .await;
    let addr = service.addr;
    let serving = || async move {
        HealthClient::new(channel(addr))
            .check(HealthCheckRequest {
                service: "onestop.mentoring.v1.MentoringService".into(),
            })
            .await
            .is_ok_and(|r| r.into_inner().status == ServingStatus::Serving as i32)
    };
    assert!(eventually(Duration::from_secs(10), serving).await);

    let client = |bearer| MentoringClient::connect(channel(addr), bearer);
    let status = client(Bearer::anonymous())
        .list_advisors(pb::ListAdvisorsRequest::default())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);

    client(Bearer::admin())
        .register_advisor(pb::RegisterAdvisorRequest {
            idempotency_key: String::new(),
            profile: Some(plain_advisor()),
        })
        .await
        .unwrap();
    let response = client(Bearer::service())
        .request_advisor(need_for(&company()))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(assigned(&response).contact_interval_days, 14);

    let mut stream = FeedClient::connect(channel(addr), Bearer::dashboard())
        .watch(WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    let mut types = Vec::new();
    while types.len() < 2 {
        let event = next_event(&mut stream, Duration::from_secs(5))
            .await
            .expect("event arrives");
        assert_eq!(event.source, "mentoring");
        types.push(event.r#type);
    }
    assert_eq!(
        types,
        [
            MentoringEvent::AdvisorRegistered.name(),
            MentoringEvent::AssignmentCreated.name()
        ]
    );

    service.terminate();
    let exit = tokio::time::timeout(Duration::from_secs(8), service.child.wait())
        .await
        .expect("exits within the drain bound")
        .unwrap();
    assert!(exit.success(), "{exit:?}");
}

#[tokio::test]
async fn seeding_the_demo_advisors_twice_registers_each_once() {
    let mentoring = crate::common::Mentoring::start().await;
    let url = format!("http://{}", mentoring.addr);
    for _ in 0..2 {
        let output = tokio::process::Command::new(BINARY)
            .args(["seed-advisors", "--url", &url])
            .env("RUST_LOG", "warn")
            .output()
            .await
            .expect("seed-advisors runs");
        assert!(
            output.status.success(),
            "seed-advisors failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let advisors = mentoring
        .admin()
        .list_advisors(pb::ListAdvisorsRequest::default())
        .await
        .expect("lists advisors")
        .into_inner()
        .advisors;
    assert_eq!(advisors.len(), 3);
    let retired = advisors
        .iter()
        .find(|a| {
            a.profile
                .as_ref()
                .is_some_and(|p| p.kind == pb::AdvisorKind::RetiredExpert as i32)
        })
        .expect("the KINTEX retired expert");
    let fee = retired
        .profile
        .as_ref()
        .and_then(|p| p.program.as_ref())
        .and_then(|p| p.monthly_fee.as_ref())
        .expect("charges a fee");
    assert_eq!(
        (fee.currency_code.as_str(), fee.amount_minor),
        ("KRW", 100_000)
    );
}
