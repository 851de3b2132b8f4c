use onestop_contracts::common::v1::Money;
use onestop_contracts::referral::v1::{
    self as pb, DeclineReason, DeclinedBy, FailureReason, LegStatus, OutcomeKind, ReferralStatus,
};
use tonic::Code;

use crate::common::{Client, Referral, error_reason, krw, status, violations};

/// Every move, by its RPC, with valid arguments, as `client`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Move {
    Accept,
    Decline,
    Start,
    Complete,
    Fail,
    Cancel,
}

pub const ALL_MOVES: [Move; 6] = [
    Move::Accept,
    Move::Decline,
    Move::Start,
    Move::Complete,
    Move::Fail,
    Move::Cancel,
];

pub fn service_outcome() -> pb::ReferralOutcome {
    pb::ReferralOutcome {
        kind: OutcomeKind::ServiceDelivered as i32,
        ..Default::default()
    }
}

pub async fn make(
    client: &mut Client,
    action: Move,
    id: &str,
) -> Result<pb::Referral, tonic::Status> {
    let referral_id = id.to_owned();
    let result = match action {
        Move::Accept => {
            client
                .accept_referral(pb::AcceptReferralRequest {
                    referral_id,
                    ..Default::default()
                })
                .await
        }
        Move::Decline => {
            client
                .decline_referral(pb::DeclineReferralRequest {
                    referral_id,
                    reason: DeclineReason::NoCapacity as i32,
                    declined_by: DeclinedBy::Agency as i32,
                    ..Default::default()
                })
                .await
        }
        Move::Start => {
            client
                .start_referral(pb::StartReferralRequest {
                    referral_id,
                    ..Default::default()
                })
                .await
        }
        Move::Complete => {
            client
                .complete_referral(pb::CompleteReferralRequest {
                    referral_id,
                    outcome: Some(service_outcome()),
                    ..Default::default()
                })
                .await
        }
        Move::Fail => {
            client
                .fail_referral(pb::FailReferralRequest {
                    referral_id,
                    reason: FailureReason::CouldNotContact as i32,
                    ..Default::default()
                })
                .await
        }
        Move::Cancel => {
            client
                .cancel_referral(pb::CancelReferralRequest {
                    referral_id,
                    reason: "case closed".into(),
                    ..Default::default()
                })
                .await
        }
    };
    result.map(|r| r.into_inner())
}

/// The client allowed to make `action` (alpha's staff or the referrer).
fn actor(referral: &Referral, action: Move) -> Client {
    match action {
        Move::Cancel => referral.service(),
        _ => referral.agency("alpha"),
    }
}

/// A fresh referral at alpha, moved along `path`.
async fn referral_after(referral: &Referral, need: &str, path: &[Move]) -> pb::Referral {
    let mut current = referral.create(need).await;
    for step in path {
        current = make(&mut actor(referral, *step), *step, &current.referral_id)
            .await
            .unwrap_or_else(|e| panic!("{step:?} on the way: {e}"));
    }
    current
}

async fn slots_in_use(referral: &Referral, program_id: &str) -> i32 {
    sqlx::query_scalar("SELECT slots_in_use FROM program WHERE program_id = $1")
        .bind(program_id)
        .fetch_one(&referral.pool)
        .await
        .unwrap()
}

#[tokio::test]
async fn accept_start_complete_takes_and_frees_a_slot_and_records_the_outcome() {
    let referral = Referral::start().await;
    referral.three_lenders(2).await;
    let sent = referral.create("need-1").await;
    let mut alpha = referral.agency("alpha");
    let accepted = make(&mut alpha, Move::Accept, &sent.referral_id)
        .await
        .unwrap();
    assert_eq!(status(&accepted), ReferralStatus::Accepted);
    assert_eq!(accepted.legs[0].status, LegStatus::Accepted as i32);
    assert!(accepted.legs[0].accepted_at.is_some());
    assert_eq!(slots_in_use(&referral, "alpha.loans").await, 1);

    let started = make(&mut alpha, Move::Start, &sent.referral_id)
        .await
        .unwrap();
    assert_eq!(status(&started), ReferralStatus::InProgress);
    // A completion without an outcome, or a financing without an amount, is
    // refused and changes nothing.
    let status_of = |r: Result<_, tonic::Status>| r.unwrap_err();
    let missing = status_of(
        alpha
            .complete_referral(pb::CompleteReferralRequest {
                referral_id: sent.referral_id.clone(),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(missing.code(), Code::InvalidArgument);
    assert_eq!(violations(&missing), ["outcome"]);
    let no_amount = status_of(
        alpha
            .complete_referral(pb::CompleteReferralRequest {
                referral_id: sent.referral_id.clone(),
                outcome: Some(pb::ReferralOutcome {
                    kind: OutcomeKind::FinancingApproved as i32,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(violations(&no_amount), ["outcome.amount"]);
    let no_certificate = status_of(
        alpha
            .complete_referral(pb::CompleteReferralRequest {
                referral_id: sent.referral_id.clone(),
                outcome: Some(pb::ReferralOutcome {
                    kind: OutcomeKind::CertificateObtained as i32,
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(violations(&no_certificate), ["outcome.certification"]);
    assert_eq!(
        status(&referral.get(&sent.referral_id).await),
        ReferralStatus::InProgress
    );

    let completed = alpha
        .complete_referral(pb::CompleteReferralRequest {
            idempotency_key: "done-1".into(),
            referral_id: sent.referral_id.clone(),
            outcome: Some(pb::ReferralOutcome {
                kind: OutcomeKind::FinancingApproved as i32,
                amount: Some(krw(200_000_000)),
                note: "Loan approved".into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&completed), ReferralStatus::Completed);
    let outcome = completed.outcome.as_ref().unwrap();
    assert_eq!(outcome.amount, Some(krw(200_000_000)));
    assert!(outcome.achieved_at.is_some());
    assert_eq!(completed.legs[0].status, LegStatus::Completed as i32);
    assert_eq!(slots_in_use(&referral, "alpha.loans").await, 0);

    let types = referral.event_types().await;
    let routed = types.iter().position(|t| t == "referral.routed").unwrap();
    let tail: Vec<&str> = types[routed + 1..].iter().map(String::as_str).collect();
    assert_eq!(
        tail,
        [
            "referral.accepted",
            "program.capacity_changed",
            "referral.started",
            "referral.completed",
            "program.capacity_changed",
        ]
    );
    let events = referral.referral_events().await;
    assert!(
        events
            .iter()
            .all(|(_, r)| r.need_id == "need-1" && r.case_id == "case-of-need-1")
    );
    // Free text stays in the record, off the feed.
    let (_, last) = events.last().unwrap();
    assert!(last.detail.is_empty());
    assert!(last.outcome.as_ref().unwrap().note.is_empty());
    assert_eq!(completed.outcome.as_ref().unwrap().note, "Loan approved");
    assert!(!completed.detail.is_empty());
}

#[tokio::test]
async fn fail_and_cancel_free_the_slot_and_a_company_losing_interest_ends_the_referral() {
    let referral = Referral::start().await;
    referral.three_lenders(3).await;
    let failed = referral_after(&referral, "need-f", &[Move::Accept, Move::Fail]).await;
    assert_eq!(status(&failed), ReferralStatus::Failed);
    assert_eq!(
        failed.legs[0].failure_reason,
        FailureReason::CouldNotContact as i32
    );
    let failed_in_progress = referral_after(
        &referral,
        "need-g",
        &[Move::Accept, Move::Start, Move::Fail],
    )
    .await;
    assert_eq!(status(&failed_in_progress), ReferralStatus::Failed);
    for (need, path) in [
        ("need-c1", vec![Move::Cancel]),
        ("need-c2", vec![Move::Accept, Move::Cancel]),
        ("need-c3", vec![Move::Accept, Move::Start, Move::Cancel]),
    ] {
        let cancelled = referral_after(&referral, need, &path).await;
        assert_eq!(status(&cancelled), ReferralStatus::Cancelled);
        assert_eq!(cancelled.cancel_reason, "case closed");
        assert_eq!(cancelled.legs[0].status, LegStatus::Cancelled as i32);
    }
    assert_eq!(slots_in_use(&referral, "alpha.loans").await, 0);

    let sent = referral.create("need-d").await;
    let declined = referral
        .agency("alpha")
        .decline_referral(pb::DeclineReferralRequest {
            referral_id: sent.referral_id.clone(),
            reason: DeclineReason::NoLongerInterested as i32,
            declined_by: DeclinedBy::Company as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(status(&declined), ReferralStatus::Declined);
    assert_eq!(declined.legs.len(), 1, "not re-routed");
    assert_eq!(declined.legs[0].declined_by, DeclinedBy::Company as i32);
}

#[tokio::test]
async fn every_illegal_move_is_a_failed_precondition_and_changes_nothing() {
    let referral = Referral::start().await;
    referral.three_lenders(20).await;
    use Move::*;
    // Each reachable status and the moves that are legal from it.
    let states: [(&str, Vec<Move>, Vec<Move>); 7] = [
        ("sent", vec![], vec![Accept, Decline, Cancel]),
        ("accepted", vec![Accept], vec![Start, Fail, Cancel]),
        (
            "in-progress",
            vec![Accept, Start],
            vec![Complete, Fail, Cancel],
        ),
        ("completed", vec![Accept, Start, Complete], vec![]),
        ("failed", vec![Accept, Fail], vec![]),
        ("cancelled", vec![Cancel], vec![]),
        ("declined", vec![], vec![]),
    ];
    for (name, path, legal) in states {
        let mut current = referral_after(&referral, &format!("need-{name}"), &path).await;
        if name == "declined" {
            current = referral
                .agency("alpha")
                .decline_referral(pb::DeclineReferralRequest {
                    referral_id: current.referral_id.clone(),
                    reason: DeclineReason::NoLongerInterested as i32,
                    declined_by: DeclinedBy::Company as i32,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
        }
        for action in ALL_MOVES.into_iter().filter(|m| !legal.contains(m)) {
            let error = make(&mut actor(&referral, action), action, &current.referral_id)
                .await
                .expect_err(&format!("{action:?} from {name} must be refused"));
            assert_eq!(
                error.code(),
                Code::FailedPrecondition,
                "{action:?} from {name}"
            );
            assert_eq!(error_reason(&error), "ILLEGAL_TRANSITION");
        }
        assert_eq!(
            referral.get(&current.referral_id).await,
            current,
            "{name} unchanged"
        );
    }
    // Unroutable: only cancelling is legal.
    let unroutable = referral
        .create_with(crate::common::create_request(
            "need-u",
            onestop_contracts::common::v1::NeedCategory::LegalIp,
        ))
        .await;
    for action in [Accept, Decline, Start, Complete, Fail] {
        let error = make(
            &mut referral.agency("alpha"),
            action,
            &unroutable.referral_id,
        )
        .await
        .unwrap_err();
        // Alpha never received it, so to alpha it does not exist.
        assert_eq!(error.code(), Code::NotFound);
    }
    let cancelled = make(&mut referral.service(), Cancel, &unroutable.referral_id)
        .await
        .unwrap();
    assert_eq!(status(&cancelled), ReferralStatus::Cancelled);
}

#[tokio::test]
async fn only_the_receiving_agency_works_a_referral_and_only_the_referrer_cancels() {
    let referral = Referral::start().await;
    referral.three_lenders(5).await;
    let sent = referral.create("need-r").await;
    for action in [
        Move::Accept,
        Move::Decline,
        Move::Start,
        Move::Complete,
        Move::Fail,
    ] {
        for mut client in [referral.service(), referral.admin(), referral.dashboard()] {
            let error = make(&mut client, action, &sent.referral_id)
                .await
                .unwrap_err();
            assert_eq!(error.code(), Code::PermissionDenied, "{action:?}");
        }
    }
    for mut client in [referral.agency("alpha"), referral.dashboard()] {
        let error = make(&mut client, Move::Cancel, &sent.referral_id)
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied);
    }
    assert_eq!(referral.get(&sent.referral_id).await, sent);
}

#[tokio::test]
async fn a_full_program_cannot_accept_and_a_retry_with_the_same_key_answers_the_same() {
    let referral = Referral::start().await;
    referral.three_lenders(1).await;
    let mut alpha_program = crate::common::program(
        "alpha.loans",
        "alpha",
        onestop_contracts::common::v1::NeedCategory::ExportFinance,
    );
    alpha_program.eligibility = Some(pb::Eligibility {
        stages: vec![1, 2],
        max_employees: 300,
        ..Default::default()
    });
    alpha_program.capacity.as_mut().unwrap().availability = pb::Availability::Waitlist as i32;
    alpha_program.capacity.as_mut().unwrap().total_slots = 1;
    referral.add_program(alpha_program).await;
    let first = referral.create("need-1").await;
    let mut alpha = referral.agency("alpha");
    let request = pb::AcceptReferralRequest {
        idempotency_key: "accept-1".into(),
        referral_id: first.referral_id.clone(),
        note: "We will call tomorrow".into(),
    };
    let accepted = alpha
        .accept_referral(request.clone())
        .await
        .unwrap()
        .into_inner();
    let again = alpha.accept_referral(request).await.unwrap().into_inner();
    assert_eq!(accepted, again);
    assert_eq!(slots_in_use(&referral, "alpha.loans").await, 1);

    // Beta and gamma are full too after this, so the waitlist gets the next.
    for (need, agency) in [("need-2", "beta"), ("need-3", "gamma")] {
        let r = referral.create(need).await;
        make(&mut referral.agency(agency), Move::Accept, &r.referral_id)
            .await
            .unwrap();
    }
    let waiting = referral.create("need-4").await;
    assert_eq!(crate::common::current_program(&waiting), "alpha.loans");
    let error = make(&mut alpha, Move::Accept, &waiting.referral_id)
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&error), "NO_OPEN_SLOT");
    assert_eq!(
        status(&referral.get(&waiting.referral_id).await),
        ReferralStatus::Sent
    );
}

#[tokio::test]
async fn decline_and_fail_reasons_are_validated() {
    let referral = Referral::start().await;
    referral.three_lenders(5).await;
    let sent = referral.create("need-v").await;
    let mut alpha = referral.agency("alpha");
    let error = alpha
        .decline_referral(pb::DeclineReferralRequest {
            referral_id: sent.referral_id.clone(),
            reason: DeclineReason::Other as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::InvalidArgument);
    assert_eq!(violations(&error), ["declined_by", "note"]);
    let error = alpha
        .decline_referral(pb::DeclineReferralRequest {
            referral_id: sent.referral_id.clone(),
            declined_by: DeclinedBy::Agency as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&error), ["reason"]);
    let error = alpha
        .fail_referral(pb::FailReferralRequest {
            referral_id: sent.referral_id.clone(),
            reason: FailureReason::Other as i32,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&error), ["note"]);
    let error = alpha
        .accept_referral(pb::AcceptReferralRequest {
            referral_id: "not-a-uuid".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&error), ["referral_id"]);
    let error = alpha
        .complete_referral(pb::CompleteReferralRequest {
            referral_id: sent.referral_id.clone(),
            outcome: Some(pb::ReferralOutcome {
                kind: OutcomeKind::FinancingApproved as i32,
                amount: Some(Money {
                    currency_code: "WON".into(),
                    amount_minor: 5,
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&error), ["outcome.amount"]);
    assert_eq!(referral.get(&sent.referral_id).await, sent);
    assert_eq!(
        referral.count("idempotency_key").await,
        1,
        "only the hand-off's"
    );
}
