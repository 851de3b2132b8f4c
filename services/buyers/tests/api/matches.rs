use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::common::v1::{Money, NeedCategory};
use onestop_contracts::event_types::BuyersEvent;
use tonic::Code;

use crate::common::{Buyers, all_at_once, buyer_profile, company, error_reason};

pub fn search_request(need: &str, company_id: &str, count: u32) -> pb::OpenBuyerSearchRequest {
    pb::OpenBuyerSearchRequest {
        need_id: need.into(),
        case_id: format!("case-of-{need}"),
        category: NeedCategory::BuyerDiscovery as i32,
        company: Some(company(company_id, &["330499"], &["en"])),
        count,
        target_markets: vec!["US".into()],
        ..Default::default()
    }
}

/// Three verified buyers in "kbc-newyork" and one open search; returns
/// the proposed matches, best first.
pub async fn proposed(buyers: &Buyers) -> Vec<pb::Match> {
    for (name, score) in [("A", 90), ("B", 80), ("C", 70)] {
        buyers
            .verified(
                "kbc-newyork",
                buyer_profile(name, "US", &["330499"], &["en"]),
                score,
            )
            .await;
    }
    buyers
        .service()
        .open_buyer_search(search_request("need-1", "company-1", 3))
        .await
        .unwrap()
        .into_inner()
        .matches
}

#[tokio::test]
async fn open_buyer_search_proposes_the_top_n_with_need_and_case_on_events() {
    let buyers = Buyers::start().await;
    let matches = proposed(&buyers).await;
    assert_eq!(matches.len(), 3);
    assert!(
        matches
            .iter()
            .all(|m| m.status == pb::MatchStatus::Proposed as i32)
    );
    assert_eq!(matches[0].buyer.as_ref().unwrap().company_name, "A");
    assert_eq!(matches[0].need_id, "need-1");
    let events: Vec<pb::MatchProposed> = buyers.event_payloads(BuyersEvent::MatchProposed).await;
    assert_eq!(events.len(), 3);
    assert!(
        events
            .iter()
            .all(|e| e.need_id == "need-1" && e.case_id == "case-of-need-1")
    );
    assert_eq!(events[0].rank, 1);

    // A second need for the same company skips the buyers already open.
    let second = buyers
        .service()
        .open_buyer_search(search_request("need-2", "company-1", 3))
        .await
        .unwrap()
        .into_inner();
    assert!(second.matches.is_empty());
    assert_eq!(buyers.count("buyer_search").await, 2);

    // Every buyers-owned need is accepted; a trade-show follow-up proposes nothing.
    let open = |need: &str, category: NeedCategory| {
        let mut request = search_request(need, "company-2", 3);
        request.category = category as i32;
        let mut client = buyers.service();
        async move { client.open_buyer_search(request).await }
    };
    let recorded = open("need-3", NeedCategory::TradeShowFollowUp)
        .await
        .unwrap();
    assert!(recorded.into_inner().matches.is_empty());
    let status = open("need-4", NeedCategory::ExportFinance)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(buyers.count("buyer_search").await, 3);
    // Intake sends only need, case, category and company: five proposals by default.
    let mut minimal = search_request("need-5", "company-3", 0);
    minimal.target_markets.clear();
    let minimal = buyers
        .service()
        .open_buyer_search(minimal)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(minimal.count, 5);
    assert_eq!(minimal.matches.len(), 3);
}

/// Verified buyers in the US for cosmetics (330499), by name and score,
/// all of one trade office.
async fn verified_us_buyers(buyers: &Buyers, named: &[(&str, u32)]) {
    for &(name, score) in named {
        buyers
            .verified("o", buyer_profile(name, "US", &["330499"], &["en"]), score)
            .await;
    }
}

#[tokio::test]
async fn open_buyer_search_is_idempotent_under_concurrent_duplicates() {
    let buyers = Buyers::start().await;
    verified_us_buyers(&buyers, &[("A", 90), ("B", 80)]).await;
    let calls = (0..10).map(|_| {
        let mut client = buyers.service();
        async move {
            client
                .open_buyer_search(search_request("need-7", "company-7", 2))
                .await
                .map(|r| r.into_inner())
        }
    });
    let results = all_at_once(calls).await;
    let first = results[0].as_ref().expect("succeeds").clone();
    for result in &results {
        assert_eq!(result.as_ref().expect("succeeds"), &first);
    }
    assert_eq!(buyers.count("buyer_search").await, 1);
    assert_eq!(buyers.count("buyer_match").await, 2);
    assert_eq!(buyers.count_events(BuyersEvent::MatchProposed).await, 2);

    // The need belongs to one company.
    let status = buyers
        .service()
        .open_buyer_search(search_request("need-7", "company-8", 2))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "IDEMPOTENCY_KEY_REUSED");
}

/// Cases of one company opened together reach buyers together (the
/// hand-off sends several needs at once): each search sees the others'
/// matches, so no buyer is proposed to the company twice and none fails.
#[tokio::test]
async fn searches_for_one_company_opened_at_once_never_propose_a_buyer_twice() {
    let buyers = Buyers::start().await;
    verified_us_buyers(&buyers, &[("A", 90), ("B", 80), ("C", 70)]).await;
    let calls = (0..8).map(|n| {
        let mut client = buyers.service();
        async move {
            client
                .open_buyer_search(search_request(&format!("need-{n}"), "company-9", 3))
                .await
                .map(|r| r.into_inner())
        }
    });
    for result in all_at_once(calls).await {
        result.expect("every search succeeds");
    }
    assert_eq!(buyers.count("buyer_search").await, 8);
    assert_eq!(
        buyers.count("buyer_match").await,
        3,
        "each buyer proposed to the company once"
    );
    assert_eq!(buyers.count_events(BuyersEvent::MatchProposed).await, 3);
}

pub async fn advance(
    buyers: &Buyers,
    match_id: &str,
    to: pb::MatchStatus,
    reason: pb::NoDealReason,
) -> Result<pb::Match, tonic::Status> {
    buyers
        .trade_office("kbc-newyork")
        .advance_match(pb::AdvanceMatchRequest {
            match_id: match_id.into(),
            to_status: to as i32,
            no_deal_reason: reason as i32,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

pub async fn record_deal(buyers: &Buyers, match_id: &str) -> Result<pb::Deal, tonic::Status> {
    buyers
        .trade_office("kbc-newyork")
        .record_deal(pb::RecordDealRequest {
            match_id: match_id.into(),
            deal_type: pb::DealType::Distributorship as i32,
            value: Some(Money {
                currency_code: "EUR".into(),
                amount_minor: 12_500_000,
            }),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn every_legal_and_illegal_lifecycle_move() {
    use pb::MatchStatus::*;
    let buyers = Buyers::start().await;
    let matches = proposed(&buyers).await;
    let none = pb::NoDealReason::Unspecified;
    let path = [Introduced, MeetingScheduled, Negotiating];
    let all = [
        Proposed,
        Introduced,
        MeetingScheduled,
        Negotiating,
        ClosedNoDeal,
    ];

    let id = matches[0].match_id.clone();
    let mut current = Proposed;
    for next in path {
        for target in all {
            if target == next || target == ClosedNoDeal || target == Proposed {
                continue;
            }
            let status = advance(&buyers, &id, target, none).await.unwrap_err();
            assert_eq!(
                status.code(),
                Code::FailedPrecondition,
                "{current:?} -> {target:?}"
            );
            assert_eq!(error_reason(&status), "ILLEGAL_TRANSITION");
        }
        // DEAL only from NEGOTIATING.
        assert_eq!(
            record_deal(&buyers, &id).await.unwrap_err().code(),
            Code::FailedPrecondition
        );
        let moved = advance(&buyers, &id, next, none).await.unwrap();
        assert_eq!(moved.status, next as i32);
        current = next;
    }
    assert_eq!(current, Negotiating);
    for target in [Introduced, MeetingScheduled, Negotiating] {
        let status = advance(&buyers, &id, target, none).await.unwrap_err();
        assert_eq!(
            status.code(),
            Code::FailedPrecondition,
            "NEGOTIATING -> {target:?}"
        );
    }
    let deal = record_deal(&buyers, &id).await.unwrap();
    assert_eq!(deal.deal_type, pb::DealType::Distributorship as i32);
    assert!(!deal.confirmed);
    // DEAL is final.
    for target in all {
        let reason = if target == ClosedNoDeal {
            pb::NoDealReason::Price
        } else {
            none
        };
        let status = advance(&buyers, &id, target, reason).await;
        if target == Proposed {
            assert_eq!(status.unwrap_err().code(), Code::InvalidArgument);
        } else {
            assert_eq!(status.unwrap_err().code(), Code::FailedPrecondition);
        }
    }
    let history = buyers
        .trade_office("kbc-newyork")
        .get_match(pb::GetMatchRequest {
            match_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.status, Deal as i32);
    assert_eq!(history.history.len(), 5);
    assert_eq!(history.deal.unwrap().deal_id, deal.deal_id);

    // CLOSED_NO_DEAL from each open status, with a reason, and final.
    let closable = [
        (matches[1].match_id.clone(), vec![]),
        (
            matches[2].match_id.clone(),
            vec![Introduced, MeetingScheduled, Negotiating],
        ),
    ];
    for (id, steps) in closable {
        for step in steps {
            advance(&buyers, &id, step, none).await.unwrap();
        }
        let status = advance(&buyers, &id, ClosedNoDeal, none).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        let closed = advance(&buyers, &id, ClosedNoDeal, pb::NoDealReason::Certification)
            .await
            .unwrap();
        assert_eq!(
            closed.no_deal_reason,
            pb::NoDealReason::Certification as i32
        );
        let again = advance(&buyers, &id, Introduced, none).await.unwrap_err();
        assert_eq!(again.code(), Code::FailedPrecondition);
    }
    let advanced: Vec<pb::MatchAdvanced> = buyers.event_payloads(BuyersEvent::MatchAdvanced).await;
    assert_eq!(advanced.len(), 4 + 1 + 4);
    assert!(
        advanced
            .iter()
            .all(|e| e.need_id == "need-1" && e.case_id == "case-of-need-1")
    );

    // Another office cannot move these matches.
    let status = buyers
        .trade_office("kbc-hanoi")
        .advance_match(pb::AdvanceMatchRequest {
            match_id: matches[0].match_id.clone(),
            to_status: Introduced as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn deals_are_confirmed_by_the_company_and_unconfirmed_ones_listed_apart() {
    use pb::MatchStatus::*;
    let buyers = Buyers::start().await;
    let matches = proposed(&buyers).await;
    let mut deals = Vec::new();
    for m in &matches[..2] {
        for step in [Introduced, MeetingScheduled, Negotiating] {
            advance(&buyers, &m.match_id, step, pb::NoDealReason::Unspecified)
                .await
                .unwrap();
        }
        deals.push(record_deal(&buyers, &m.match_id).await.unwrap());
    }
    let recorded: Vec<pb::DealRecorded> = buyers.event_payloads(BuyersEvent::DealRecorded).await;
    assert_eq!(recorded.len(), 2);
    assert_eq!(recorded[0].value.as_ref().unwrap().currency_code, "EUR");
    assert_eq!(recorded[0].need_id, "need-1");
    assert_eq!(recorded[0].case_id, "case-of-need-1");

    let unconfirmed = |office: &'static str| {
        let mut client = buyers.trade_office(office);
        async move {
            client
                .list_unconfirmed_deals(pb::ListUnconfirmedDealsRequest::default())
                .await
                .unwrap()
                .into_inner()
                .deals
        }
    };
    assert_eq!(unconfirmed("kbc-newyork").await.len(), 2);
    assert!(unconfirmed("kbc-hanoi").await.is_empty());

    // Only the company's side (intake) confirms, not the office.
    let denied = buyers
        .trade_office("kbc-newyork")
        .confirm_deal(pb::ConfirmDealRequest {
            deal_id: deals[0].deal_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    for _ in 0..2 {
        let confirmed = buyers
            .service()
            .confirm_deal(pb::ConfirmDealRequest {
                deal_id: deals[0].deal_id.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(confirmed.confirmed);
    }
    let confirmed: Vec<pb::DealConfirmed> = buyers.event_payloads(BuyersEvent::DealConfirmed).await;
    assert_eq!(confirmed.len(), 1);
    assert_eq!(confirmed[0].case_id, "case-of-need-1");
    let left = unconfirmed("kbc-newyork").await;
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].deal_id, deals[1].deal_id);

    // A bad deal is refused field by field.
    let status = buyers
        .trade_office("kbc-newyork")
        .record_deal(pb::RecordDealRequest {
            match_id: matches[2].match_id.clone(),
            deal_type: 0,
            value: Some(Money {
                currency_code: "XXX1".into(),
                amount_minor: 5,
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(buyers.count("deal").await, 2);
}

#[tokio::test]
async fn a_disputed_deal_is_never_confirmed_and_unconfirmed_ones_are_chased_once_a_period() {
    use pb::MatchStatus::*;
    let buyers = Buyers::start().await;
    let matches = proposed(&buyers).await;
    let mut deals = Vec::new();
    for m in &matches[..2] {
        for step in [Introduced, MeetingScheduled, Negotiating] {
            advance(&buyers, &m.match_id, step, pb::NoDealReason::Unspecified)
                .await
                .unwrap();
        }
        deals.push(record_deal(&buyers, &m.match_id).await.unwrap());
    }
    let recorded_at = deals[0].recorded_at.unwrap();
    let recorded_at = chrono::DateTime::from_timestamp(recorded_at.seconds, 0).unwrap();
    let chase = |days: i64| {
        onestop_buyers::sweeper::chase_unconfirmed_deals(
            &buyers.pool,
            recorded_at + chrono::Duration::days(days) + chrono::Duration::minutes(1),
        )
    };
    // Nothing before a week; then each deal once per week, however often
    // the sweeper runs.
    assert_eq!(chase(6).await.unwrap(), 0);
    assert_eq!(chase(7).await.unwrap(), 2);
    assert_eq!(chase(7).await.unwrap(), 0);

    // A dispute needs a reason (and words for OTHER), names the company if
    // it names one, and is idempotent.
    let dispute = |reason: pb::DealDisputeReason, note: &str, company_id: &str| {
        let request = pb::DisputeDealRequest {
            deal_id: deals[0].deal_id.clone(),
            reason: reason as i32,
            note: note.into(),
            company_id: company_id.into(),
            ..Default::default()
        };
        let mut client = buyers.service();
        async move { client.dispute_deal(request).await.map(|r| r.into_inner()) }
    };
    let status = dispute(pb::DealDisputeReason::Other, "", "")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let status = dispute(pb::DealDisputeReason::WrongValue, "", "company-2")
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "another company's deal");
    for _ in 0..2 {
        let disputed = dispute(
            pb::DealDisputeReason::WrongValue,
            "it was USD, not EUR",
            "company-1",
        )
        .await
        .unwrap();
        assert!(disputed.disputed_at.is_some());
        assert_eq!(
            disputed.dispute_reason,
            pb::DealDisputeReason::WrongValue as i32
        );
        assert_eq!(disputed.confirmation_chases, 1);
    }
    let disputed: Vec<pb::DealDisputed> = buyers.event_payloads(BuyersEvent::DealDisputed).await;
    assert_eq!(disputed.len(), 1);
    assert_eq!(disputed[0].need_id, "need-1");
    let status = buyers
        .service()
        .confirm_deal(pb::ConfirmDealRequest {
            deal_id: deals[0].deal_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "DEAL_DISPUTED");

    // The second deal is confirmed; a confirmed deal is not disputed.
    buyers
        .service()
        .confirm_deal(pb::ConfirmDealRequest {
            deal_id: deals[1].deal_id.clone(),
            company_id: "company-1".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let status = buyers
        .service()
        .dispute_deal(pb::DisputeDealRequest {
            deal_id: deals[1].deal_id.clone(),
            reason: pb::DealDisputeReason::NoDeal as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error_reason(&status), "DEAL_CONFIRMED");

    // Neither is chased again: one disputed, one confirmed.
    assert_eq!(chase(30).await.unwrap(), 0);
    let due: Vec<pb::DealConfirmationDue> = buyers
        .event_payloads(BuyersEvent::DealConfirmationDue)
        .await;
    assert_eq!(due.len(), 2);
    assert!(
        due.iter()
            .all(|d| d.chase == 1 && d.trade_office_id == "kbc-newyork")
    );
}
