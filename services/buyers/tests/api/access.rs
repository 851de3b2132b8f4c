//! Buyers scopes every company's records to the partners of that company
//! (as intake's feed says) and to the trade office that owns the buyer:
//! each test fails if a partner could reach another's records.

use chrono::{Duration, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_platform::Role;
use onestop_platform::company_feed::record_partner;
use onestop_platform::time::Clock;
use onestop_test_support::BuyersClient;
use tonic::Code;

use crate::common::{Buyers, buyer_profile, company};
use crate::followups::{import, lead};

/// Intake's word that `agency` works with the company.
async fn partner_of(buyers: &Buyers, company_id: &str, role: Role, tenant: &str) {
    let mut conn = buyers.pool.acquire().await.unwrap();
    record_partner(&mut conn, company_id, role, tenant, true)
        .await
        .unwrap();
}

/// Intake's hand-off of a buyer-discovery need of `company_id`; returns the
/// proposed matches.
async fn search(buyers: &Buyers, company_id: &str, need_id: &str) -> pb::BuyerSearch {
    buyers
        .service()
        .open_buyer_search(pb::OpenBuyerSearchRequest {
            need_id: need_id.into(),
            case_id: format!("case-of-{need_id}"),
            category: onestop_contracts::common::v1::NeedCategory::BuyerDiscovery as i32,
            company: Some(company(company_id, &["330499"], &["en"])),
            count: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn matches_reach_the_buyers_office_and_the_companys_partners_only() {
    let buyers = Buyers::start().await;
    buyers
        .verified(
            "kbc-newyork",
            buyer_profile("NY", "US", &["330499"], &["en"]),
            80,
        )
        .await;
    search(&buyers, "company-a", "need-a").await;
    partner_of(&buyers, "company-a", Role::Agency, "kotra").await;
    let list = |client: BuyersClient| async move {
        let mut client = client;
        client
            .list_matches(pb::ListMatchesRequest {
                company_id: "company-a".into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .matches
    };
    let seen = list(buyers.agency("kotra")).await;
    assert_eq!(seen.len(), 1, "KOTRA works with the company");
    assert!(list(buyers.agency("sbc")).await.is_empty());
    assert!(list(buyers.advisor("advisor-1")).await.is_empty());
    assert!(list(buyers.trade_office("kbc-tokyo")).await.is_empty());
    assert_eq!(list(buyers.trade_office("kbc-newyork")).await.len(), 1);
    let get = pb::GetMatchRequest {
        match_id: seen[0].match_id.clone(),
    };
    for mut stranger in [
        buyers.agency("sbc"),
        buyers.advisor("advisor-1"),
        buyers.trade_office("kbc-tokyo"),
    ] {
        let status = stranger.get_match(get.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    buyers
        .agency("kotra")
        .get_match(get)
        .await
        .expect("a partner reads it");
}

#[tokio::test]
async fn a_trade_office_starts_sample_tests_only_for_needs_buyers_serves_with_its_own_buyers() {
    let buyers = Buyers::start().await;
    let own = buyers
        .verified(
            "kbc-newyork",
            buyer_profile("NY", "US", &["330499"], &["en"]),
            80,
        )
        .await;
    let other = buyers
        .verified(
            "kbc-tokyo",
            buyer_profile("JP", "JP", &["330499"], &["ja"]),
            70,
        )
        .await;
    search(&buyers, "company-b", "need-b").await;
    let start = |need_id: &str, company_id: &str, buyer: &str| pb::StartSampleTestRequest {
        company_id: company_id.into(),
        product_name: "Toner".into(),
        hs_code: "330499".into(),
        buyer_ids: vec![buyer.into()],
        need_id: need_id.into(),
        case_id: format!("case-of-{need_id}"),
        ..Default::default()
    };
    let mut office = buyers.trade_office("kbc-newyork");
    // Another company's need, a need buyers never got, a company the
    // office's buyers are not matched with: all absent.
    for request in [
        start("need-b", "company-victim", &own),
        start("need-unknown", "company-b", &own),
    ] {
        let status = office.start_sample_test(request).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
    }
    let status = buyers
        .trade_office("kbc-paris")
        .start_sample_test(start("need-b", "company-b", &own))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::NotFound,
        "no buyer of Paris is matched there"
    );
    let status = office
        .start_sample_test(start("need-b", "company-b", &other))
        .await
        .unwrap_err();
    assert_eq!(
        status.code(),
        Code::InvalidArgument,
        "another office's buyer"
    );
    assert_eq!(buyers.count("sample_test").await, 0);

    let test = office
        .start_sample_test(start("need-b", "company-b", &own))
        .await
        .expect("its own buyer, for a need buyers serves")
        .into_inner();
    let report = |mut client: BuyersClient| {
        let id = test.sample_test_id.clone();
        async move {
            client
                .get_sample_test_report(pb::GetSampleTestReportRequest { sample_test_id: id })
                .await
        }
    };
    let status = report(buyers.trade_office("kbc-tokyo")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = report(buyers.agency("kotra")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    report(buyers.trade_office("kbc-newyork"))
        .await
        .expect("its own buyer's test");
}

#[tokio::test]
async fn leads_reach_the_companys_partners_and_a_reimport_never_returns_stored_contacts() {
    let buyers = Buyers::start().await;
    let show = Utc::now() - Duration::days(30);
    let mut first = import(show, vec![lead("Glow Inc", "US")]);
    first.company_id = "company-c".into();
    partner_of(&buyers, "company-c", Role::Agency, "kotra").await;
    buyers
        .service()
        .import_trade_show_leads(first.clone())
        .await
        .unwrap();

    // SBC does not work with the company: it imports nothing for it.
    let status = buyers
        .agency("sbc")
        .import_trade_show_leads(first.clone())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    // KOTRA re-imports the same lead without contacts: it gets back what
    // it sent, never the contacts stored by the first import.
    let mut again = first.clone();
    again.leads[0].contacts.clear();
    let response = buyers
        .agency("kotra")
        .import_trade_show_leads(again)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(response.already_present, 1);
    let profile = response.leads[0].profile.clone().unwrap();
    assert!(profile.contacts.is_empty(), "{profile:?}");

    let lead_id = response.leads[0].lead_id.clone();
    let status = buyers
        .agency("sbc")
        .record_follow_up(pb::RecordFollowUpRequest {
            lead_id: lead_id.clone(),
            outcome: pb::FollowUpOutcome::InTouch as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    buyers.clock.set(Utc::now() + Duration::days(400));
    onestop_buyers::sweeper::sweep_once(&buyers.pool, buyers.clock.now())
        .await
        .unwrap();
    let due = |mut client: BuyersClient| async move {
        client
            .list_due_follow_ups(pb::ListDueFollowUpsRequest::default())
            .await
            .unwrap()
            .into_inner()
            .due
            .len()
            + client
                .list_reactivation_leads(pb::ListReactivationLeadsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .leads
                .len()
    };
    assert!(due(buyers.agency("kotra")).await > 0);
    assert_eq!(due(buyers.agency("sbc")).await, 0);
    assert_eq!(due(buyers.trade_office("kbc-tokyo")).await, 0);
}

#[tokio::test]
async fn vetting_notes_and_other_offices_buyers_stay_with_their_office() {
    let buyers = Buyers::start().await;
    let tokyo = buyers
        .register("kbc-tokyo", buyer_profile("JP", "JP", &["330499"], &["ja"]))
        .await;
    buyers
        .trade_office("kbc-tokyo")
        .vet_buyer(pb::VetBuyerRequest {
            buyer_id: tokyo.buyer_id.clone(),
            status: pb::VettingStatus::Verified as i32,
            criteria_met: vec![pb::VettingCriterion::RegistryChecked as i32],
            quality_score: 80,
            note: "owner is a friend of the consul".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let read = |mut client: BuyersClient| {
        let id = tokyo.buyer_id.clone();
        async move { client.get_buyer(pb::GetBuyerRequest { buyer_id: id }).await }
    };
    let own = read(buyers.trade_office("kbc-tokyo"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.vetting.unwrap().note, "owner is a friend of the consul");
    let agency = read(buyers.agency("kotra")).await.unwrap().into_inner();
    assert!(agency.vetting.unwrap().note.is_empty());
    assert!(agency.vetting_history.iter().all(|v| v.note.is_empty()));
    let status = read(buyers.trade_office("kbc-newyork")).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let found = buyers
        .trade_office("kbc-newyork")
        .find_buyers(pb::FindBuyersRequest {
            company: Some(company("company-d", &["330499"], &["ja"])),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .candidates;
    assert!(
        found.is_empty(),
        "another office's buyers do not exist for it"
    );
    let found = buyers
        .trade_office("kbc-tokyo")
        .find_buyers(pb::FindBuyersRequest {
            company: Some(company("company-d", &["330499"], &["ja"])),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .candidates;
    assert_eq!(found.len(), 1);
}
