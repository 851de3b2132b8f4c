use onestop_contracts::common::v1::Money;
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::intake::v1::CompanyRegistered;
use prost::Message;
use tonic::Code;
use tonic_types::StatusExt;

use crate::common::{Intake, profile, registration_number, usd, violations};

#[tokio::test]
async fn registers_a_valid_company_with_its_stage_and_one_event() {
    let intake = Intake::start().await;
    let mut p = profile("124-81-00998");
    p.export_revenue = Some(usd(4_500_000)); // USD 45,000
    p.export_countries = vec!["VN".into(), "US".into(), "VN".into()];
    let company = intake
        .kotra()
        .register_company(pb::RegisterCompanyRequest {
            idempotency_key: String::new(),
            profile: Some(p),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let stored = company.profile.as_ref().unwrap();
    assert_eq!(stored.business_registration_number, "1248100998");
    assert_eq!(stored.export_countries, vec!["US", "VN"]);
    assert_eq!(
        company.stage,
        onestop_contracts::common::v1::GrowthStage::FirstExport as i32
    );
    assert_eq!(stored.contacts.len(), 1);

    let fetched = intake
        .kotra()
        .get_company(pb::GetCompanyRequest {
            company_id: company.company_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fetched, company);

    // The registration, and KOTRA working with the company from now on.
    let events = intake.events_after(0).await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].r#type, IntakeEvent::CompanyRegistered.name());
    assert_eq!(events[1].r#type, IntakeEvent::PartnerChanged.name());
    assert_eq!(events[0].aggregate_id, company.company_id);
    let payload = events[0].payload.as_ref().unwrap();
    assert_eq!(
        payload.type_url,
        "type.googleapis.com/onestop.intake.v1.CompanyRegistered"
    );
    let registered = CompanyRegistered::decode(payload.value.as_slice()).unwrap();
    assert_eq!(registered.company_id, company.company_id);
}

#[tokio::test]
async fn registration_numbers_are_checked_by_their_check_digit() {
    let intake = Intake::start().await;
    for valid in ["124-81-00998", "107-86-14075"] {
        let result = intake
            .kotra()
            .register_company(pb::RegisterCompanyRequest {
                idempotency_key: String::new(),
                profile: Some(profile(valid)),
                ..Default::default()
            })
            .await;
        assert!(result.is_ok(), "{valid}: {result:?}");
    }
    for invalid in ["124-81-00997", "107-86-14076", "1248100", "abc-de-fghij"] {
        let status = intake
            .kotra()
            .register_company(pb::RegisterCompanyRequest {
                idempotency_key: String::new(),
                profile: Some(profile(invalid)),
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{invalid}");
        assert_eq!(
            violations(&status),
            vec!["profile.business_registration_number"]
        );
    }
    assert_eq!(intake.count("company").await, 2);
}

#[tokio::test]
async fn every_invalid_field_gets_its_own_violation_and_nothing_is_stored() {
    let intake = Intake::start().await;
    let bad = pb::CompanyProfile {
        business_registration_number: "124-81-00997".into(),
        name_ko: "   ".into(),
        name_en: "한빛".into(),
        region: "KR-99".into(),
        industry_ksic: "2042A".into(),
        hs_codes: vec!["330499".into(), "3304".into()],
        employees: 3,
        annual_revenue: Some(Money {
            currency_code: "KRW".into(),
            amount_minor: -1,
        }),
        export_revenue: Some(Money {
            currency_code: "EUR".into(),
            amount_minor: 100,
        }),
        export_countries: vec!["XX".into()],
        languages: vec!["english".into()],
        small_merchant: false,
        contacts: vec![pb::Contact {
            name: String::new(),
            title: String::new(),
            email: "not-an-email".into(),
            phone: "call me".into(),
        }],
    };
    let status = intake
        .kotra()
        .register_company(pb::RegisterCompanyRequest {
            idempotency_key: String::new(),
            profile: Some(bad),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec![
            "profile.annual_revenue",
            "profile.business_registration_number",
            "profile.contacts[0].email",
            "profile.contacts[0].name",
            "profile.contacts[0].phone",
            "profile.export_countries[0]",
            "profile.export_revenue",
            "profile.hs_codes[1]",
            "profile.industry_ksic",
            "profile.languages[0]",
            "profile.name_en",
            "profile.name_ko",
            "profile.region",
        ]
    );
    let descriptions: Vec<String> = status
        .get_details_bad_request()
        .unwrap()
        .field_violations
        .into_iter()
        .map(|v| v.description)
        .collect();
    assert!(descriptions.iter().all(|d| !d.is_empty()));

    let missing = intake
        .kotra()
        .register_company(pb::RegisterCompanyRequest::default())
        .await
        .unwrap_err();
    assert_eq!(violations(&missing), vec!["profile"]);

    assert_eq!(intake.count("company").await, 0);
    assert_eq!(intake.count("company_contact").await, 0);
    assert_eq!(intake.count("event_log").await, 0);
}

#[tokio::test]
async fn a_registered_number_is_refused_naming_the_existing_company() {
    let intake = Intake::start().await;
    let number = registration_number(42);
    let first = intake.register(&number, 0, false).await;
    let mut dashed = profile(&format!(
        "{}-{}-{}",
        &number[..3],
        &number[3..5],
        &number[5..]
    ));
    dashed.name_en = "Another Name".into();
    let status = intake
        .kotra()
        .register_company(pb::RegisterCompanyRequest {
            idempotency_key: String::new(),
            profile: Some(dashed),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    let info = status.get_details_error_info().unwrap();
    assert_eq!(info.reason, "COMPANY_ALREADY_REGISTERED");
    assert_eq!(info.metadata.get("company_id"), Some(&first.company_id));
    assert_eq!(intake.count("company").await, 1);
}

/// KOTRA's registration of `profile`, refused as INVALID_ARGUMENT.
async fn refused(intake: &Intake, profile: pb::CompanyProfile) -> tonic::Status {
    let status = intake
        .kotra()
        .register_company(pb::RegisterCompanyRequest {
            profile: Some(profile),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    status
}

#[tokio::test]
async fn lists_over_their_bound_are_refused_by_length_and_a_long_phone_by_its_own() {
    let intake = Intake::start().await;
    let mut bad = profile(&registration_number(31));
    // Entries that would each be refused: over the bound, none is read.
    bad.hs_codes = vec!["?".into(); 51];
    bad.export_countries = vec!["??".into(); 51];
    bad.languages = vec!["??".into(); 51];
    bad.contacts = vec![pb::Contact::default(); 11];
    let status = refused(&intake, bad).await;
    assert_eq!(
        violations(&status),
        vec![
            "profile.contacts",
            "profile.export_countries",
            "profile.hs_codes",
            "profile.languages",
        ]
    );

    let mut long_phone = profile(&registration_number(32));
    long_phone.contacts[0].phone = format!("+82 {}", "1 ".repeat(40));
    long_phone.contacts[0].title = "a\0b".into();
    let status = refused(&intake, long_phone).await;
    assert_eq!(
        violations(&status),
        vec!["profile.contacts[0].phone", "profile.contacts[0].title"]
    );
    assert_eq!(intake.count("company").await, 0);
    assert_eq!(intake.count("event_log").await, 0);
}
