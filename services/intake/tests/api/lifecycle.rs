//! A case's life after it opens: needs added and cancelled, the case
//! closed by a partner or by itself once every need is finished, illegal
//! moves refused, and reasons and outcomes kept off the feed.

use onestop_contracts::common::v1::{NeedCategory, NeedOwner};
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use tonic::Code;

use crate::common::{
    Intake, error_reason, exporter, registration_number, timeline, timeline_kinds, violations,
};

const REASON: &str = "Kim Jiwoo found a distributor on her own (010-2222-3333)";
const OUTCOME: &str = "Two orders shipped to Hanoi; Kim Jiwoo now runs exports alone";

fn need(category: NeedCategory) -> pb::NeedRequest {
    pb::NeedRequest {
        category: category as i32,
        detail: format!("{category:?} for our cushion compact"),
        target_markets: vec!["VN".into()],
        hs_codes: vec!["3304".into()],
        ..Default::default()
    }
}

/// A PROMISING company (so no need is added by rule) with a case KOTRA
/// opened for `needs`.
async fn case_with(intake: &Intake, seed: u32, needs: &[NeedCategory]) -> pb::Case {
    let promising = exporter(&registration_number(seed), 50_000_000, false);
    let (_, case) = intake
        .kotra_case(promising, needs.iter().map(|c| need(*c)).collect())
        .await;
    case
}

async fn finance_and_buyers(intake: &Intake, seed: u32) -> pb::Case {
    case_with(
        intake,
        seed,
        &[NeedCategory::ExportFinance, NeedCategory::BuyerDiscovery],
    )
    .await
}

fn cancel(case: &pb::Case, position: usize, key: &str) -> pb::CancelNeedRequest {
    pb::CancelNeedRequest {
        idempotency_key: key.into(),
        case_id: case.case_id.clone(),
        need_id: case.needs[position].need_id.clone(),
        reason: REASON.into(),
    }
}

/// KOTRA, the case's partner, cancels the need at `position` under `key`.
async fn kotra_cancels(intake: &Intake, case: &pb::Case, position: usize, key: &str) -> pb::Case {
    intake
        .kotra()
        .cancel_need(cancel(case, position, key))
        .await
        .expect("KOTRA cancels the need")
        .into_inner()
}

fn close(case: &pb::Case, key: &str, outcome: &str) -> pb::CloseCaseRequest {
    pb::CloseCaseRequest {
        idempotency_key: key.into(),
        case_id: case.case_id.clone(),
        outcome_summary: outcome.into(),
    }
}

/// Every payload on the feed as text, to look for free text in it.
async fn feed_text(intake: &Intake) -> String {
    let raw: Vec<u8> = intake
        .events_after(0)
        .await
        .iter()
        .flat_map(|e| e.payload.as_ref().unwrap().value.clone())
        .collect();
    String::from_utf8_lossy(&raw).into_owned()
}

#[tokio::test]
async fn added_needs_are_routed_and_handed_over_like_opened_ones() {
    let intake = Intake::start().await;
    let case = case_with(&intake, 1_401, &[NeedCategory::ExportFinance]).await;
    let request = pb::AddNeedsRequest {
        idempotency_key: "add-1".into(),
        case_id: case.case_id.clone(),
        needs: vec![
            need(NeedCategory::BuyerDiscovery),
            need(NeedCategory::Mentoring),
        ],
    };
    let added = intake
        .kotra()
        .add_needs(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(added.needs.len(), 3);
    assert_eq!(added.needs[1].owner, NeedOwner::Buyers as i32);
    assert_eq!(added.needs[2].owner, NeedOwner::Mentoring as i32);
    assert!(added.needs.iter().all(|n| !n.added_by_rule));
    assert_eq!(intake.count_events(IntakeEvent::NeedOpened).await, 3);

    // A retry returns the first answer and adds nothing.
    let again = intake
        .kotra()
        .add_needs(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, added);
    assert_eq!(intake.count("need").await, 3);

    let bad = intake
        .kotra()
        .add_needs(pb::AddNeedsRequest {
            case_id: case.case_id.clone(),
            needs: vec![pb::NeedRequest::default()],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(bad.code(), Code::InvalidArgument);
    assert_eq!(violations(&bad), vec!["needs[0].category"]);
    assert_eq!(intake.count("need").await, 3);

    // Another agency does not learn the case exists.
    let stranger = intake
        .agency("semas")
        .add_needs(pb::AddNeedsRequest {
            case_id: case.case_id.clone(),
            needs: vec![need(NeedCategory::Training)],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound);
}

#[tokio::test]
async fn a_cancelled_need_keeps_its_reason_off_the_feed_and_is_never_handed_over() {
    let intake = Intake::start().await;
    let case = finance_and_buyers(&intake, 1_402).await;

    let missing = intake
        .kotra()
        .cancel_need(pb::CancelNeedRequest {
            reason: "  ".into(),
            ..cancel(&case, 0, "")
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert_eq!(violations(&missing), vec!["reason"]);

    let cancelled = kotra_cancels(&intake, &case, 0, "cancel-1").await;
    let need = &cancelled.needs[0];
    assert_eq!(need.status, pb::NeedStatus::Cancelled as i32);
    assert_eq!(need.cancel_reason, REASON);
    assert!(need.finished_at.is_some());
    // The owner was never told of it, so it never will be.
    assert_eq!(need.delivery, pb::DeliveryState::Withdrawn as i32);
    assert_eq!(cancelled.status, pb::CaseStatus::Open as i32);

    let changes: Vec<pb::NeedStatusChanged> =
        intake.event_payloads(IntakeEvent::NeedStatusChanged).await;
    assert_eq!(
        changes,
        vec![pb::NeedStatusChanged {
            need_id: need.need_id.clone(),
            case_id: case.case_id.clone(),
            from: pb::NeedStatus::Open as i32,
            to: pb::NeedStatus::Cancelled as i32,
            cause: "need.cancelled".into(),
            owner: NeedOwner::Referral as i32,
        }]
    );
    assert!(!feed_text(&intake).await.contains("Kim Jiwoo"));

    // The same key returns the first answer; a new cancel is refused.
    let retried = kotra_cancels(&intake, &case, 0, "cancel-1").await;
    assert_eq!(retried, cancelled);
    let twice = intake
        .kotra()
        .cancel_need(cancel(&case, 0, "cancel-2"))
        .await
        .unwrap_err();
    assert_eq!(twice.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&twice), "NEED_FINISHED");
    assert_eq!(intake.count_events(IntakeEvent::NeedStatusChanged).await, 1);

    // Partners read the reason; dashboards never.
    let read = |case: pb::Case| case.needs[0].cancel_reason.clone();
    let get = pb::GetCaseRequest {
        case_id: case.case_id.clone(),
    };
    let by_admin = intake.admin().get_case(get.clone()).await.unwrap();
    assert_eq!(read(by_admin.into_inner()), REASON);
    let by_dashboard = intake.dashboard().get_case(get).await.unwrap();
    assert_eq!(read(by_dashboard.into_inner()), "");

    // Trade offices do not change cases; strangers do not see them.
    let office = intake
        .trade_office("kbc-new-york")
        .cancel_need(cancel(&case, 1, ""))
        .await
        .unwrap_err();
    assert_eq!(office.code(), Code::PermissionDenied);
    let stranger = intake
        .agency("semas")
        .cancel_need(cancel(&case, 1, ""))
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound);
    let other_case = case_with(&intake, 1_403, &[NeedCategory::Training]).await;
    let foreign_need = intake
        .kotra()
        .cancel_need(pb::CancelNeedRequest {
            need_id: other_case.needs[0].need_id.clone(),
            ..cancel(&case, 1, "")
        })
        .await
        .unwrap_err();
    assert_eq!(foreign_need.code(), Code::NotFound);
}

#[tokio::test]
async fn a_case_closes_by_itself_with_its_last_need() {
    let intake = Intake::start().await;
    let case = finance_and_buyers(&intake, 1_404).await;
    kotra_cancels(&intake, &case, 0, "").await;
    assert_eq!(intake.count_events(IntakeEvent::CaseClosed).await, 0);
    let closed = kotra_cancels(&intake, &case, 1, "").await;
    assert_eq!(closed.status, pb::CaseStatus::Closed as i32);
    assert_eq!(closed.close_cause, pb::CaseCloseCause::NeedsFinished as i32);
    assert!(closed.closed_at.is_some());
    assert_eq!(closed.outcome_summary, "");

    // The last need's change and the closing, in that order, once.
    let types = intake.event_types().await;
    assert_eq!(
        &types[types.len() - 2..],
        ["need.status_changed", "case.closed"]
    );
    let payloads: Vec<pb::CaseClosed> = intake.event_payloads(IntakeEvent::CaseClosed).await;
    assert_eq!(
        payloads,
        vec![pb::CaseClosed {
            case_id: case.case_id.clone(),
            company_id: case.company_id.clone(),
            cause: pb::CaseCloseCause::NeedsFinished as i32,
            needs_done: 0,
            needs_cancelled: 2,
        }]
    );

    // A closed case takes no new needs.
    let refused = intake
        .kotra()
        .add_needs(pb::AddNeedsRequest {
            case_id: case.case_id.clone(),
            needs: vec![need(NeedCategory::Training)],
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&refused), "CASE_CLOSED");
    assert_eq!(intake.count("need").await, 2);

    let listed = intake
        .kotra()
        .list_cases(pb::ListCasesRequest {
            status: pb::CaseStatus::Closed as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.cases.len(), 1);
}

#[tokio::test]
async fn closing_a_case_cancels_its_open_needs_and_keeps_the_outcome_off_the_feed() {
    let intake = Intake::start().await;
    let case = finance_and_buyers(&intake, 1_405).await;
    kotra_cancels(&intake, &case, 0, "").await;

    let missing = intake
        .kotra()
        .close_case(close(&case, "", ""))
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert_eq!(violations(&missing), vec!["outcome_summary"]);

    let first = close(&case, "close-1", OUTCOME);
    let closed = intake
        .kotra()
        .close_case(first.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(closed.status, pb::CaseStatus::Closed as i32);
    assert_eq!(
        closed.close_cause,
        pb::CaseCloseCause::ClosedByPartner as i32
    );
    assert_eq!(closed.outcome_summary, OUTCOME);
    let second = &closed.needs[1];
    assert_eq!(second.status, pb::NeedStatus::Cancelled as i32);
    assert_eq!(second.cancel_reason, "case closed");
    // The first need keeps its own reason.
    assert_eq!(closed.needs[0].cancel_reason, REASON);

    let changes: Vec<pb::NeedStatusChanged> =
        intake.event_payloads(IntakeEvent::NeedStatusChanged).await;
    assert_eq!(changes.len(), 2);
    assert_eq!(changes[1].cause, "case.closed");
    assert_eq!(changes[1].owner, NeedOwner::Buyers as i32);
    let payloads: Vec<pb::CaseClosed> = intake.event_payloads(IntakeEvent::CaseClosed).await;
    assert_eq!(payloads.len(), 1);
    assert_eq!(
        payloads[0].cause,
        pb::CaseCloseCause::ClosedByPartner as i32
    );
    assert_eq!(payloads[0].needs_cancelled, 2);
    let feed = feed_text(&intake).await;
    assert!(!feed.contains("Hanoi") && !feed.contains("Kim Jiwoo"));

    // Retried with its key: the first answer; closed again: refused.
    let retried = intake.kotra().close_case(first).await.unwrap().into_inner();
    assert_eq!(retried, closed);
    let again = intake
        .kotra()
        .close_case(close(&case, "", "again"))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&again), "CASE_CLOSED");
    assert_eq!(intake.count_events(IntakeEvent::CaseClosed).await, 1);

    let by_dashboard = intake
        .dashboard()
        .get_case(pb::GetCaseRequest {
            case_id: case.case_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_dashboard.outcome_summary, "");

    // The timeline says what happened, in its own words only.
    let lines = timeline(intake.kotra(), &case.case_id).await;
    assert_eq!(lines.last().unwrap().kind, "case.closed");
    assert!(
        lines
            .iter()
            .all(|e| !e.summary.contains("Hanoi") && !e.summary.contains("Kim Jiwoo"))
    );
}

#[tokio::test]
async fn a_cancelled_need_closes_its_owners_record() {
    use onestop_contracts::buyers::v1 as buyers_pb;
    use onestop_contracts::event_types::MentoringEvent;
    use onestop_contracts::mentoring::v1 as mentoring_pb;
    use onestop_contracts::referral::v1 as referral_pb;

    let wired = crate::wired::Wired::start().await;
    let (company, case) = crate::owners::company_with_case(&wired, 1_406).await;
    let get = pb::GetCaseRequest {
        case_id: case.case_id.clone(),
    };
    wired
        .until("every need reached its owner", || async {
            let case = wired.intake.admin().get_case(get.clone()).await.unwrap();
            case.into_inner()
                .needs
                .iter()
                .all(|n| n.delivery == pb::DeliveryState::Delivered as i32)
        })
        .await;
    wired
        .until("the advisor is assigned", || async {
            wired
                .mentoring
                .count_events(MentoringEvent::AssignmentCreated)
                .await
                == 1
        })
        .await;

    for position in 0..case.needs.len() {
        kotra_cancels(&wired.intake, &case, position, "").await;
    }
    let closed = wired.intake.admin().get_case(get.clone()).await.unwrap();
    assert_eq!(closed.into_inner().status, pb::CaseStatus::Closed as i32);

    // Referral: the referral is cancelled, its program's slot free again.
    let finance = case.needs[1].need_id.clone();
    wired
        .until("the referral is cancelled", || async {
            let referrals = wired
                .referral
                .admin()
                .list_referrals(referral_pb::ListReferralsRequest {
                    need_id: finance.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .referrals;
            referrals[0].status == referral_pb::ReferralStatus::Cancelled as i32
        })
        .await;
    // Buyers: the search's open matches close, the company withdrew.
    wired
        .until("the buyer search is closed", || async {
            let matches = wired
                .buyers
                .admin()
                .list_matches(buyers_pb::ListMatchesRequest {
                    company_id: company.company_id.clone(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .matches;
            !matches.is_empty()
                && matches.iter().all(|m| {
                    m.status == buyers_pb::MatchStatus::ClosedNoDeal as i32
                        && m.no_deal_reason == buyers_pb::NoDealReason::CompanyWithdrew as i32
                })
        })
        .await;
    // Mentoring: the request is withdrawn, the advisor stays.
    wired
        .until("the advisor request is withdrawn", || async {
            wired
                .mentoring
                .count_events(MentoringEvent::RequestWithdrawn)
                .await
                == 1
        })
        .await;
    let withdrawn: Vec<mentoring_pb::AdvisorRequestWithdrawn> = wired
        .mentoring
        .event_payloads(MentoringEvent::RequestWithdrawn)
        .await;
    assert_eq!(withdrawn[0].need_id, case.needs[2].need_id);
    assert!(!withdrawn[0].assignment_id.is_empty());
    let assignment = wired
        .mentoring
        .admin()
        .get_assignment(mentoring_pb::GetAssignmentRequest {
            lookup: Some(mentoring_pb::get_assignment_request::Lookup::CompanyId(
                company.company_id.clone(),
            )),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        assignment.status,
        mentoring_pb::AssignmentStatus::Active as i32
    );

    // The owners' answers reach the case's timeline; nothing moves twice.
    wired
        .until("the owners' closings are on the timeline", || async {
            let kinds = timeline_kinds(wired.intake.kotra(), &case.case_id).await;
            kinds.iter().any(|k| k == "referral.cancelled")
                && kinds.iter().any(|k| k == "request.withdrawn")
        })
        .await;
    let changes: Vec<pb::NeedStatusChanged> = wired
        .intake
        .event_payloads(IntakeEvent::NeedStatusChanged)
        .await;
    let cancellations = changes
        .iter()
        .filter(|c| c.to == pb::NeedStatus::Cancelled as i32)
        .count();
    assert_eq!(cancellations, 3);
    assert_eq!(wired.intake.count_events(IntakeEvent::CaseClosed).await, 1);
}
