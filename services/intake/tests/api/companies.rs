use onestop_contracts::common::v1::GrowthStage;
use onestop_contracts::intake::v1 as pb;
use tonic::Code;

use crate::common::{Intake, registration_number, usd, violations};

#[tokio::test]
async fn updates_replace_the_masked_fields_and_move_the_stage() {
    let intake = Intake::start().await;
    let company = intake.register(&registration_number(300), 0, false).await;
    let updated = intake
        .agency()
        .update_company(pb::UpdateCompanyRequest {
            idempotency_key: String::new(),
            company_id: company.company_id.clone(),
            profile: Some(pb::CompanyProfile {
                employees: 31,
                export_revenue: Some(usd(12_000_000)),
                name_en: "ignored: not in the mask".into(),
                ..Default::default()
            }),
            update_mask: vec!["employees".into(), "export_revenue".into()],
        })
        .await
        .unwrap()
        .into_inner();
    let profile = updated.profile.as_ref().unwrap();
    assert_eq!(profile.employees, 31);
    assert_eq!(profile.name_en, "Hanbit Cosmetics Co., Ltd.");
    assert_eq!(updated.stage, GrowthStage::Promising as i32);

    let events = intake.events_after(0).await;
    let types: Vec<&str> = events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        vec![
            "company.registered",
            "company.updated",
            "company.stage_changed"
        ]
    );

    let status = intake
        .agency()
        .update_company(pb::UpdateCompanyRequest {
            idempotency_key: String::new(),
            company_id: company.company_id.clone(),
            profile: Some(pb::CompanyProfile {
                business_registration_number: registration_number(301),
                region: "Busan".into(),
                ..Default::default()
            }),
            update_mask: vec!["region".into(), "colour".into()],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec![
            "profile.business_registration_number",
            "profile.region",
            "update_mask[1]"
        ]
    );
    assert_eq!(intake.count("event_log").await, 3);
}

#[tokio::test]
async fn companies_list_by_filter_and_page() {
    let intake = Intake::start().await;
    for seed in 0..7 {
        let small = seed % 2 == 0;
        let cents = if seed < 3 { 0 } else { 20_000_000 };
        intake
            .register(&registration_number(310 + seed), cents, small)
            .await;
    }
    let list = |stage: GrowthStage, small: bool, token: String| {
        let mut client = intake.agency();
        async move {
            client
                .list_companies(pb::ListCompaniesRequest {
                    page_size: 2,
                    page_token: token,
                    region: "KR-26".into(),
                    stage: stage as i32,
                    small_merchants_only: small,
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let mut all = Vec::new();
    let mut token = String::new();
    loop {
        let page = list(GrowthStage::Unspecified, false, token).await;
        all.extend(page.companies);
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    assert_eq!(all.len(), 7);
    let mut ids: Vec<&str> = all.iter().map(|c| c.company_id.as_str()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 7);

    let promising = list(GrowthStage::Promising, false, String::new()).await;
    assert_eq!(promising.companies.len(), 2);
    assert!(
        promising
            .companies
            .iter()
            .all(|c| c.stage == GrowthStage::Promising as i32)
    );
    let small_domestic = list(GrowthStage::Domestic, true, String::new()).await;
    assert_eq!(small_domestic.companies.len(), 2); // seeds 0 and 2

    let status = intake
        .agency()
        .list_companies(pb::ListCompaniesRequest {
            page_size: 1000,
            page_token: "forged".into(),
            region: "KR-00".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        violations(&status),
        vec!["page.page_size", "page.page_token", "region"]
    );
}
