use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_test_support::all_at_once;
use tonic::Code;

use crate::common::{Intake, error_reason, profile, registration_number};

fn request(key: &str, number: &str) -> pb::RegisterCompanyRequest {
    pb::RegisterCompanyRequest {
        idempotency_key: key.into(),
        profile: Some(profile(number)),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_retry_returns_the_first_result_without_a_second_row_or_event() {
    let intake = Intake::start().await;
    let number = registration_number(7);
    let first = intake
        .kotra()
        .register_company(request("reg-7", &number))
        .await
        .unwrap()
        .into_inner();
    let retry = intake
        .kotra()
        .register_company(request("reg-7", &number))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, retry);
    assert_eq!(intake.count("company").await, 1);
    assert_eq!(intake.count_events(IntakeEvent::CompanyRegistered).await, 1);
}

#[tokio::test]
async fn the_same_key_with_a_different_request_is_refused() {
    let intake = Intake::start().await;
    intake
        .kotra()
        .register_company(request("reg-8", &registration_number(8)))
        .await
        .unwrap();
    let status = intake
        .kotra()
        .register_company(request("reg-8", &registration_number(9)))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "IDEMPOTENCY_KEY_REUSED");
    assert_eq!(intake.count("company").await, 1);
}

#[tokio::test]
async fn concurrent_duplicates_do_the_work_once() {
    let intake = Intake::start().await;
    let number = registration_number(10);
    let calls = all_at_once((0..12).map(|_| {
        let mut client = intake.kotra();
        let request = request("reg-10", &number);
        async move { client.register_company(request).await }
    }))
    .await;
    let mut ids: Vec<String> = calls
        .into_iter()
        .map(|call| {
            call.expect("every duplicate succeeds")
                .into_inner()
                .company_id
        })
        .collect();
    ids.dedup();
    assert_eq!(ids.len(), 1);
    assert_eq!(intake.count("company").await, 1);
    assert_eq!(intake.count_events(IntakeEvent::CompanyRegistered).await, 1);
}

#[tokio::test]
async fn keys_are_scoped_to_the_caller() {
    let intake = Intake::start().await;
    let kotra = intake.kotra();
    let mut sbc = intake.agency("sbc");
    kotra
        .clone()
        .register_company(request("shared-key", &registration_number(11)))
        .await
        .unwrap();
    sbc.register_company(request("shared-key", &registration_number(12)))
        .await
        .unwrap();
    assert_eq!(intake.count("company").await, 2);
}
