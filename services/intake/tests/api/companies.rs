use onestop_contracts::common::v1::GrowthStage;
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_test_support::all_pages;
use prost_types::FieldMask;
use tonic::Code;

use crate::common::{Intake, registration_number, usd, violations};

fn mask(paths: &[&str]) -> Option<FieldMask> {
    Some(FieldMask {
        paths: paths.iter().map(|path| (*path).to_owned()).collect(),
    })
}

fn update(
    company_id: &str,
    profile: pb::CompanyProfile,
    paths: &[&str],
) -> pb::UpdateCompanyRequest {
    pb::UpdateCompanyRequest {
        idempotency_key: String::new(),
        company_id: company_id.into(),
        profile: Some(profile),
        update_mask: mask(paths),
    }
}

#[tokio::test]
async fn updates_replace_the_masked_fields_and_move_the_stage() {
    let intake = Intake::start().await;
    let company = intake.register(&registration_number(300), 0, false).await;
    let updated = intake
        .kotra()
        .update_company(update(
            &company.company_id,
            pb::CompanyProfile {
                employees: 31,
                export_revenue: Some(usd(12_000_000)),
                name_en: "ignored: not in the mask".into(),
                ..Default::default()
            },
            &["employees", "export_revenue"],
        ))
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
        [
            IntakeEvent::CompanyRegistered,
            IntakeEvent::PartnerChanged,
            IntakeEvent::CompanyUpdated,
            IntakeEvent::CompanyStageChanged,
            // DOMESTIC -> PROMISING crosses two rungs of the ladder: their
            // follow-on needs (advisor, buyers, markets, finance) open on
            // a case of their own.
            IntakeEvent::CaseOpened,
            IntakeEvent::NeedOpened,
            IntakeEvent::NeedOpened,
            IntakeEvent::NeedOpened,
            IntakeEvent::NeedOpened,
        ]
        .map(IntakeEvent::name)
    );
    let changed: Vec<pb::CompanyUpdated> = intake.event_payloads(IntakeEvent::CompanyUpdated).await;
    assert_eq!(changed[0].changed_fields, ["employees", "export_revenue"]);

    // The mask is judged first: each unknown path is named.
    let bad_region = pb::CompanyProfile {
        business_registration_number: registration_number(301),
        region: "Busan".into(),
        ..Default::default()
    };
    let status = intake
        .kotra()
        .update_company(update(
            &company.company_id,
            bad_region.clone(),
            &["region", "colour", "business_registration_number"],
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        ["update_mask.paths[1]", "update_mask.paths[2]"]
    );
    // Then the profile it makes, whole: the number never changes.
    let status = intake
        .kotra()
        .update_company(update(&company.company_id, bad_region, &["region"]))
        .await
        .unwrap_err();
    assert_eq!(
        violations(&status),
        ["profile.business_registration_number", "profile.region"]
    );
    // An empty or missing mask replaces nothing: it is refused.
    for update_mask in [None, mask(&[])] {
        let status = intake
            .kotra()
            .update_company(pb::UpdateCompanyRequest {
                idempotency_key: String::new(),
                company_id: company.company_id.clone(),
                profile: Some(pb::CompanyProfile {
                    employees: 99,
                    ..Default::default()
                }),
                update_mask,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violations(&status), ["update_mask"]);
    }
    // Registration, KOTRA's partnership, the update, the stage change and
    // its follow-on case with four needs: none of the refused updates added
    // any.
    assert_eq!(intake.count("event_log").await, 9);
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
        let mut client = intake.kotra();
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
    let all = all_pages(|token| async {
        let page = list(GrowthStage::Unspecified, false, token).await;
        (page.companies, page.next_page_token)
    })
    .await;
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
        .kotra()
        .list_companies(pb::ListCompaniesRequest {
            page_size: -1,
            page_token: "forged".into(),
            region: "KR-00".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        violations(&status),
        vec!["page_size", "page_token", "region"]
    );
    // Past the largest page is lowered to it, not refused.
    let capped = intake
        .kotra()
        .list_companies(pb::ListCompaniesRequest {
            page_size: 100_000,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(capped.companies.len(), 7);
}
