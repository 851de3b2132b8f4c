use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::referral::v1 as pb;
use onestop_referral::admin::seed;
use tonic::Code;

use crate::common::{Referral, agency, program, violations};

#[tokio::test]
async fn agencies_and_programs_upsert_by_stable_id_and_list_with_filters() {
    let referral = Referral::start().await;
    referral.add_agency("kotra").await;
    // Same agency again, renamed: still one agency.
    let mut renamed = agency("kotra");
    renamed.name_en = "Korea Trade-Investment Promotion Agency".into();
    let stored = referral
        .admin()
        .upsert_agency(pb::UpsertAgencyRequest {
            agency: Some(renamed),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stored.name_en, "Korea Trade-Investment Promotion Agency");
    assert!(stored.updated_at.is_some());
    assert_eq!(referral.count("agency").await, 1);

    referral.add_agency("sbc").await;
    let mut busan = program("sbc.busan-desk", "sbc", NeedCategory::Certification);
    busan.unit_id = "sbc.hq".into();
    busan.eligibility.as_mut().unwrap().regions = vec!["KR-26".into()];
    referral.add_program(busan).await;
    referral
        .add_program(program("kotra.listing", "kotra", NeedCategory::Marketing))
        .await;
    let mut retired = program("kotra.retired", "kotra", NeedCategory::Marketing);
    retired.status = pb::ProgramStatus::Inactive as i32;
    referral.add_program(retired).await;

    let list = |request: pb::ListProgramsRequest| {
        let mut client = referral.agency("kotra");
        async move {
            client
                .list_programs(request)
                .await
                .unwrap()
                .into_inner()
                .programs
                .into_iter()
                .map(|p| p.program_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        list(pb::ListProgramsRequest {
            agency_id: "kotra".into(),
            ..Default::default()
        })
        .await,
        ["kotra.listing", "kotra.retired"]
    );
    assert_eq!(
        list(pb::ListProgramsRequest {
            status: pb::ProgramStatus::Active as i32,
            category: NeedCategory::Marketing as i32,
            ..Default::default()
        })
        .await,
        ["kotra.listing"]
    );
    // Open to Seoul companies: the nationwide program, not Busan's desk.
    assert_eq!(
        list(pb::ListProgramsRequest {
            region: "KR-11".into(),
            ..Default::default()
        })
        .await,
        ["kotra.listing", "kotra.retired"]
    );
    assert_eq!(
        list(pb::ListProgramsRequest {
            region: "KR-26".into(),
            ..Default::default()
        })
        .await,
        ["kotra.listing", "kotra.retired", "sbc.busan-desk"]
    );

    // Cursor pagination over agencies.
    let mut client = referral.dashboard();
    let first = client
        .list_agencies(pb::ListAgenciesRequest {
            page_size: 1,
            page_token: String::new(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first.agencies[0].agency_id, "kotra");
    let second = client
        .list_agencies(pb::ListAgenciesRequest {
            page_size: 1,
            page_token: first.next_page_token,
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(second.agencies[0].agency_id, "sbc");
    assert!(second.next_page_token.is_empty());
}

#[tokio::test]
async fn only_admins_edit_the_directory() {
    let referral = Referral::start().await;
    for mut client in [
        referral.agency("kotra"),
        referral.service(),
        referral.dashboard(),
    ] {
        let status = client
            .upsert_agency(pb::UpsertAgencyRequest {
                agency: Some(agency("kotra")),
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
    }
    assert_eq!(referral.count("agency").await, 0);
}

#[tokio::test]
async fn bad_directory_entries_get_field_violations_and_store_nothing() {
    let referral = Referral::start().await;
    let mut bad_agency = agency("Bad Id");
    bad_agency.name_ko.clear();
    bad_agency.units[0].region = "KR-99".into();
    let status = referral
        .admin()
        .upsert_agency(pb::UpsertAgencyRequest {
            agency: Some(bad_agency),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        [
            "agency.agency_id",
            "agency.name_ko",
            "agency.units[0].region",
            "agency.units[0].unit_id"
        ]
    );

    referral.add_agency("kotra").await;
    let mut bad = program("kotra.bad", "kotra", NeedCategory::Marketing);
    bad.categories.clear();
    bad.capacity.as_mut().unwrap().total_slots = 0;
    bad.response_sla = None;
    let eligibility = bad.eligibility.as_mut().unwrap();
    eligibility.stages = vec![99];
    eligibility.industries_ksic = vec!["2x".into()];
    eligibility.max_annual_revenue = Some(crate::common::krw(-1));
    let status = referral
        .admin()
        .upsert_program(pb::UpsertProgramRequest { program: Some(bad) })
        .await
        .unwrap_err();
    assert_eq!(
        violations(&status),
        [
            "program.capacity.total_slots",
            "program.categories",
            "program.eligibility.industries_ksic[0]",
            "program.eligibility.max_annual_revenue",
            "program.eligibility.stages[0]",
            "program.response_sla",
        ]
    );
    // A program of an unknown agency or unit is refused too.
    let mut orphan = program("nobody.program", "nobody", NeedCategory::Marketing);
    let status = referral
        .admin()
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(orphan.clone()),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["program.agency_id"]);
    orphan.agency_id = "kotra".into();
    orphan.unit_id = "kotra.nowhere".into();
    let status = referral
        .admin()
        .upsert_program(pb::UpsertProgramRequest {
            program: Some(orphan),
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["program.unit_id"]);
    assert_eq!(referral.count("program").await, 0);
}

#[tokio::test]
async fn capacity_changes_on_upsert_raise_an_event_and_unchanged_upserts_raise_none() {
    let referral = Referral::start().await;
    referral.add_agency("kotra").await;
    let listing = program("kotra.listing", "kotra", NeedCategory::Marketing);
    referral.add_program(listing.clone()).await;
    referral.add_program(listing.clone()).await;
    let mut bigger = listing;
    bigger.capacity.as_mut().unwrap().total_slots = 20;
    let stored = referral.add_program(bigger).await;
    assert_eq!(stored.capacity.unwrap().open_slots, 20);
    let types = referral.event_types().await;
    assert_eq!(
        types,
        [
            "agency.upserted",
            "program.upserted",
            "program.capacity_changed",
            "program.upserted",
            "program.capacity_changed",
        ]
    );
}

#[tokio::test]
async fn the_seed_directory_loads_twice_into_one_directory() {
    let referral = Referral::start().await;
    let first = seed::load(&referral.pool, seed::BUILT_IN).await.unwrap();
    assert!(first.agencies >= 5 && first.programs >= 17 + 11);
    assert_eq!(first.agencies_changed, first.agencies);
    let agencies = referral.count("agency").await;
    let programs = referral.count("program").await;
    let events = referral.count("event_log").await;

    let second = seed::load(&referral.pool, seed::BUILT_IN).await.unwrap();
    assert_eq!(second.agencies_changed, 0);
    assert_eq!(second.programs_changed, 0);
    assert_eq!(referral.count("agency").await, agencies);
    assert_eq!(referral.count("program").await, programs);
    assert_eq!(referral.count("event_log").await, events);

    // The directory the brief names, with stable ids agency tokens bind to.
    let all = referral
        .dashboard()
        .list_programs(pb::ListProgramsRequest {
            page_size: 500,
            page_token: String::new(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .programs;
    let ids: Vec<&str> = all.iter().map(|p| p.program_id.as_str()).collect();
    for expected in [
        "kotra.export-first-step",
        "kotra.branch-office-service",
        "kotra.buykorea-listing",
        "kotra.sample-test-marketing",
        "kotra.import-regulation-response",
        "kotra.market-diversification",
        "sbc.export-financing",
        "sbc.online-export",
        "sbc.buyer-matching",
        "semas.first-step-training-school",
        "semas.online-export-marketing",
        "kintex.post-show-expert-marketing",
    ] {
        assert!(ids.contains(&expected), "{expected} missing");
    }
    let regional: Vec<_> = all
        .iter()
        .filter(|p| p.agency_id == "export-centers")
        .collect();
    assert_eq!(regional.len(), 17);
    assert!(
        regional
            .iter()
            .all(|p| p.eligibility.as_ref().unwrap().regions.len() == 1)
    );
    let kintex = all
        .iter()
        .find(|p| p.program_id == "kintex.post-show-expert-marketing")
        .unwrap();
    assert_eq!(kintex.monthly_fee.as_ref().unwrap().amount_minor, 100_000);
    let kotra = referral
        .dashboard()
        .list_agencies(pb::ListAgenciesRequest::default())
        .await
        .unwrap()
        .into_inner()
        .agencies
        .into_iter()
        .find(|a| a.agency_id == "kotra")
        .unwrap();
    assert!(
        kotra
            .units
            .iter()
            .any(|u| u.kind == pb::UnitKind::OverseasTradeOffice as i32)
    );
}

#[tokio::test]
async fn a_broken_seed_file_loads_nothing() {
    let referral = Referral::start().await;
    let mut text: serde_json::Value = serde_json::from_str(seed::BUILT_IN).unwrap();
    text["programs"][3]["categories"] = serde_json::json!(["NOT_A_CATEGORY"]);
    let error = seed::load(&referral.pool, &text.to_string())
        .await
        .unwrap_err();
    assert!(error.to_string().contains("categories"), "{error}");
    assert_eq!(referral.count("agency").await, 0);
    assert_eq!(referral.count("program").await, 0);
}
