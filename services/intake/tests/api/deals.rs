//! Deals confirmed by the company: a deal a trade office records stays
//! unconfirmed, and its need open, until the company confirms it through
//! its agency or advisor at intake, which relays it to buyers; the need
//! is DONE only on buyers' deal.confirmed. A dispute keeps the need open.

use onestop_contracts::buyers::v1 as buyers_pb;
use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::intake::v1 as pb;
use onestop_test_support::Bearer;
use tonic::Code;

use crate::common::{error_reason, profile, registration_number, timeline_kinds, usd};
use crate::wired::{OFFICE, Wired};

/// KOTRA's company with a buyer-discovery case; its need and the deal the
/// New York office recorded on the match buyers proposed.
async fn recorded_deal(wired: &Wired, seed: u32) -> (pb::Case, pb::Need, buyers_pb::Deal) {
    let (_, case) = wired
        .intake
        .kotra_case(
            profile(&registration_number(seed)),
            vec![pb::NeedRequest {
                category: NeedCategory::BuyerDiscovery as i32,
                target_markets: vec!["US".into()],
                hs_codes: vec!["330499".into()],
                ..Default::default()
            }],
        )
        .await;
    let need = case.needs[0].clone();
    let mut found = None;
    for _ in 0..200 {
        let matches = wired
            .buyers
            .trade_office(OFFICE)
            .list_matches(buyers_pb::ListMatchesRequest {
                need_id: need.need_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .matches;
        if let Some(found_match) = matches.into_iter().next() {
            found = Some(found_match);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let proposed = found.expect("buyers proposes the New York buyer");
    for step in [
        buyers_pb::MatchStatus::Introduced,
        buyers_pb::MatchStatus::MeetingScheduled,
        buyers_pb::MatchStatus::Negotiating,
    ] {
        wired
            .buyers
            .trade_office(OFFICE)
            .advance_match(buyers_pb::AdvanceMatchRequest {
                match_id: proposed.match_id.clone(),
                to_status: step as i32,
                ..Default::default()
            })
            .await
            .unwrap();
    }
    let deal = wired
        .buyers
        .trade_office(OFFICE)
        .record_deal(buyers_pb::RecordDealRequest {
            match_id: proposed.match_id.clone(),
            deal_type: buyers_pb::DealType::Order as i32,
            value: Some(usd(4_000_000)),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    (case, need, deal)
}

async fn need_now(wired: &Wired, case_id: &str) -> pb::Need {
    wired
        .intake
        .admin()
        .get_case(pb::GetCaseRequest {
            case_id: case_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .needs[0]
        .clone()
}

async fn on_timeline(wired: &Wired, case_id: &str, kind: &str) -> bool {
    timeline_kinds(wired.intake.admin(), case_id)
        .await
        .iter()
        .any(|line| line == kind)
}

#[tokio::test]
async fn the_companys_agency_confirms_a_deal_through_intake_and_only_that_finishes_the_need() {
    let wired = Wired::start().await;
    let (case, need, deal) = recorded_deal(&wired, 501).await;
    wired
        .until("the recorded deal reaches the timeline", || {
            on_timeline(&wired, &case.case_id, "deal.recorded")
        })
        .await;
    assert_ne!(
        need_now(&wired, &case.case_id).await.status,
        pb::NeedStatus::Done as i32,
        "a recorded deal alone does not finish the need"
    );
    let confirm = |bearer: Bearer, company_id: &str, key: &str| {
        let request = pb::ConfirmDealRequest {
            idempotency_key: key.into(),
            company_id: company_id.into(),
            deal_id: deal.deal_id.clone(),
        };
        let mut client = wired.intake.api(bearer);
        async move { client.confirm_deal(request).await.map(|r| r.into_inner()) }
    };
    // Who may speak for the company: not an agency that does not work
    // with it, not the office that recorded the deal.
    let status = confirm(Bearer::agency("semas"), &case.company_id, "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let status = confirm(Bearer::trade_office(OFFICE), &case.company_id, "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // Nor through another company KOTRA works with.
    let other = wired
        .intake
        .register(&registration_number(502), 0, false)
        .await;
    let status = confirm(Bearer::agency("kotra"), &other.company_id, "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    for _ in 0..2 {
        let confirmed = confirm(Bearer::agency("kotra"), &case.company_id, "confirm-order-1")
            .await
            .expect("KOTRA confirms for the company");
        assert!(confirmed.confirmed);
    }
    wired
        .until("the confirmed deal finishes the need", || async {
            need_now(&wired, &case.case_id).await.status == pb::NeedStatus::Done as i32
        })
        .await;
    let status = wired
        .intake
        .kotra()
        .dispute_deal(pb::DisputeDealRequest {
            company_id: case.company_id.clone(),
            deal_id: deal.deal_id.clone(),
            reason: buyers_pb::DealDisputeReason::NoDeal as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "DEAL_CONFIRMED");
    assert_eq!(need.need_id, need_now(&wired, &case.case_id).await.need_id);
}

#[tokio::test]
async fn a_disputed_deal_keeps_the_need_open_and_says_so_on_the_timeline() {
    let wired = Wired::start().await;
    let (case, _, deal) = recorded_deal(&wired, 503).await;
    let refused = wired
        .intake
        .kotra()
        .dispute_deal(pb::DisputeDealRequest {
            company_id: case.company_id.clone(),
            deal_id: deal.deal_id.clone(),
            reason: buyers_pb::DealDisputeReason::Other as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument, "OTHER needs words");
    let disputed = wired
        .intake
        .kotra()
        .dispute_deal(pb::DisputeDealRequest {
            idempotency_key: "dispute-1".into(),
            company_id: case.company_id.clone(),
            deal_id: deal.deal_id.clone(),
            reason: buyers_pb::DealDisputeReason::WrongValue as i32,
            note: "the order was half that".into(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(disputed.disputed_at.is_some());
    wired
        .until("the dispute reaches the timeline", || {
            on_timeline(&wired, &case.case_id, "deal.disputed")
        })
        .await;
    assert_ne!(
        need_now(&wired, &case.case_id).await.status,
        pb::NeedStatus::Done as i32
    );
    let status = wired
        .intake
        .kotra()
        .confirm_deal(pb::ConfirmDealRequest {
            company_id: case.company_id.clone(),
            deal_id: deal.deal_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error_reason(&status), "DEAL_DISPUTED");
}
