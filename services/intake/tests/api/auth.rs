use onestop_contracts::events::v1::WatchRequest;
use onestop_contracts::intake::v1 as pb;
use onestop_platform::Role;
use onestop_platform::auth::{KeyOwner, SigningKey, TokenIssuer};
use onestop_test_support::{Bearer, FeedClient, next_event};
use std::time::Duration;
use tonic::Code;

use crate::common::{Intake, profile, registration_number};

fn register() -> pb::RegisterCompanyRequest {
    pb::RegisterCompanyRequest {
        idempotency_key: String::new(),
        profile: Some(profile(&registration_number(1))),
        ..Default::default()
    }
}

#[tokio::test]
async fn calls_without_a_valid_token_are_unauthenticated() {
    let intake = Intake::start().await;
    // Signed by a key outside the trusted set.
    let (stranger, _) = SigningKey::generate().unwrap();
    let foreign = TokenIssuer::new(stranger, KeyOwner::Issuer, onestop_test_support::AUDIENCE)
        .issue("x", Role::Admin, None, Duration::from_secs(60))
        .unwrap();
    for bearer in [
        Bearer::anonymous(),
        Bearer::new("garbage"),
        Bearer::new(&foreign),
    ] {
        let status = intake
            .api(bearer)
            .register_company(register())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::Unauthenticated, "{status:?}");
    }
    assert_eq!(intake.count("company").await, 0);
}

#[tokio::test]
async fn roles_limit_what_a_caller_may_do() {
    let intake = Intake::start().await;
    let dashboard = || intake.dashboard();
    let trade_office = intake.trade_office("kbc-hanoi");

    let status = dashboard().register_company(register()).await.unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = trade_office
        .clone()
        .register_company(register())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let company = intake.register(&registration_number(2), 0, false).await;
    // Dashboards read the business record but never the contacts.
    let seen = dashboard()
        .get_company(pb::GetCompanyRequest {
            company_id: company.company_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(seen.profile.unwrap().contacts.is_empty());

    let status = intake
        .kotra()
        .erase_personal_data(pb::ErasePersonalDataRequest {
            company_id: company.company_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    // An agency's Watch is scoped to the events naming it: one that works
    // with no company here hears nothing of this one.
    let mut agency_feed: FeedClient = intake.client(Bearer::agency("semas"));
    let mut stream = agency_feed
        .watch(WatchRequest::default())
        .await
        .expect("partners may watch their own events")
        .into_inner();
    assert!(
        next_event(&mut stream, Duration::from_millis(500))
            .await
            .is_none()
    );
}
