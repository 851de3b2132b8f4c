use std::time::Duration;

use chrono::Duration as Span;
use onestop_contracts::events::v1::WatchRequest;
use onestop_contracts::referral::v1::{
    self as pb, DeclineReason, DeclinedBy, LegStatus, ReferralStatus,
};
use onestop_referral::sweeper::sweep_once;
use onestop_test_support::next_event;
use prost::Message;

use crate::common::{Referral, current_program, start_time, status};
use crate::lifecycle::{Move, make};

pub(crate) async fn decline(referral: &Referral, agency: &str, id: &str) -> pb::Referral {
    referral
        .agency(agency)
        .decline_referral(pb::DeclineReferralRequest {
            referral_id: id.into(),
            reason: DeclineReason::NotEligible as i32,
            declined_by: DeclinedBy::Agency as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn each_decline_reroutes_to_the_next_program_until_exhausted() {
    let referral = Referral::start().await;
    referral.three_lenders(5).await;
    let sent = referral.create("need-1").await;
    let id = sent.referral_id.clone();
    assert_eq!(current_program(&sent), "alpha.loans");

    let second = decline(&referral, "alpha", &id).await;
    // Alpha's response shows only alpha's leg; the full history has both.
    assert_eq!(second.legs.len(), 1);
    assert_eq!(second.legs[0].status, LegStatus::Declined as i32);
    let history = referral.get(&id).await;
    assert_eq!(status(&history), ReferralStatus::Sent);
    assert_eq!(current_program(&history), "beta.loans");

    decline(&referral, "beta", &id).await;
    assert_eq!(current_program(&referral.get(&id).await), "gamma.loans");
    decline(&referral, "gamma", &id).await;

    let exhausted = referral.get(&id).await;
    assert_eq!(status(&exhausted), ReferralStatus::Exhausted);
    let legs: Vec<(u32, &str, i32)> = exhausted
        .legs
        .iter()
        .map(|l| (l.leg_number, l.program_id.as_str(), l.status))
        .collect();
    let declined = LegStatus::Declined as i32;
    assert_eq!(
        legs,
        [
            (1, "alpha.loans", declined),
            (2, "beta.loans", declined),
            (3, "gamma.loans", declined)
        ]
    );
    assert!(
        exhausted
            .legs
            .iter()
            .all(|l| l.decline_reason == DeclineReason::NotEligible as i32)
    );

    // The feed tells the story, every payload keyed by need and case.
    let events = referral.referral_events().await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        [
            "referral.created",
            "referral.routed",
            "referral.declined",
            "referral.rerouted",
            "referral.routed",
            "referral.declined",
            "referral.rerouted",
            "referral.routed",
            "referral.declined",
            "referral.exhausted",
        ]
    );
    assert!(
        events
            .iter()
            .all(|(_, r)| r.need_id == "need-1" && r.case_id == "case-of-need-1")
    );
    assert_eq!(events[9].1.legs.len(), 3);

    // Once exhausted nothing moves it but a cancel.
    let error = make(&mut referral.agency("gamma"), Move::Accept, &id)
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::FailedPrecondition);
    // Alpha was re-routed away from it: it can still read its leg but not act.
    let error = make(&mut referral.agency("alpha"), Move::Accept, &id)
        .await
        .unwrap_err();
    assert_eq!(error.code(), tonic::Code::FailedPrecondition);
}

#[tokio::test]
async fn a_leg_not_accepted_within_its_sla_is_rerouted_by_the_sweeper() {
    let referral = Referral::start().await;
    referral.three_lenders(5).await;
    let sent = referral.create("need-sla").await;
    let accepted = referral.create("need-ok").await;
    make(
        &mut referral.agency("alpha"),
        Move::Accept,
        &accepted.referral_id,
    )
    .await
    .unwrap();

    let almost = start_time() + Span::hours(48) - Span::seconds(1);
    assert_eq!(sweep_once(&referral.pool, almost).await.unwrap(), 0);
    let due = start_time() + Span::hours(48);
    assert_eq!(sweep_once(&referral.pool, due).await.unwrap(), 1);
    assert_eq!(
        sweep_once(&referral.pool, due).await.unwrap(),
        0,
        "once only"
    );

    let moved = referral.get(&sent.referral_id).await;
    assert_eq!(status(&moved), ReferralStatus::Sent);
    assert_eq!(moved.legs.len(), 2);
    assert_eq!(moved.legs[0].status, LegStatus::SlaBreached as i32);
    assert_eq!(
        moved.legs[0].ended_at.as_ref().unwrap().seconds,
        due.timestamp()
    );
    let next = &moved.legs[1];
    assert_eq!(next.program_id, "beta.loans");
    assert_eq!(next.sent_at.as_ref().unwrap().seconds, due.timestamp());
    assert_eq!(
        next.sla_due_at.as_ref().unwrap().seconds,
        (due + Span::hours(48)).timestamp()
    );
    // The accepted referral is left alone.
    assert_eq!(referral.get(&accepted.referral_id).await.legs.len(), 1);

    let types: Vec<String> = referral
        .referral_events()
        .await
        .into_iter()
        .map(|(t, _)| t)
        .filter(|t| t == "referral.sla_breached" || t == "referral.rerouted")
        .collect();
    assert_eq!(types, ["referral.sla_breached", "referral.rerouted"]);

    // Two more breaches exhaust it.
    sweep_once(&referral.pool, due + Span::hours(48))
        .await
        .unwrap();
    sweep_once(&referral.pool, due + Span::hours(96))
        .await
        .unwrap();
    let exhausted = referral.get(&sent.referral_id).await;
    assert_eq!(status(&exhausted), ReferralStatus::Exhausted);
    assert!(
        exhausted
            .legs
            .iter()
            .all(|l| l.status == LegStatus::SlaBreached as i32)
    );
}

#[tokio::test]
async fn two_sweepers_racing_reroute_each_leg_exactly_once() {
    let referral = Referral::start().await;
    referral.three_lenders(100).await;
    let mut ids = Vec::new();
    for n in 0..30 {
        ids.push(referral.create(&format!("need-{n}")).await.referral_id);
    }
    let other_replica = sqlx::postgres::PgPoolOptions::new()
        .max_connections(5)
        .connect_with(referral.pool.connect_options().as_ref().clone())
        .await
        .unwrap();
    for round in 1..=2 {
        let now = start_time() + Span::hours(48 * round);
        let (a, b) = tokio::join!(
            sweep_once(&referral.pool, now),
            sweep_once(&other_replica, now)
        );
        assert_eq!(a.unwrap() + b.unwrap(), 30, "round {round}");
        for id in &ids {
            let r = referral.get(id).await;
            assert_eq!(r.legs.len() as i64, round + 1, "one new leg per round");
        }
    }
    let breaches: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_log WHERE event_type = 'referral.sla_breached'",
    )
    .fetch_one(&referral.pool)
    .await
    .unwrap();
    assert_eq!(breaches, 60);
}

#[tokio::test]
async fn the_server_runs_the_sweeper_on_its_clock_and_the_feed_carries_the_events() {
    let referral = Referral::start_sweeping_every(Duration::from_millis(100)).await;
    referral.three_lenders(5).await;
    let sent = referral.create("need-live").await;
    let mut stream = referral
        .feed()
        .watch(WatchRequest {
            types: vec!["referral.*".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    referral.clock.advance(Span::hours(49));
    let mut seen = Vec::new();
    while !seen.contains(&"referral.rerouted".to_owned()) {
        let event = next_event(&mut stream, Duration::from_secs(10))
            .await
            .expect("the sweeper re-routes without a test calling it");
        let payload = pb::Referral::decode(event.payload.unwrap().value.as_slice()).unwrap();
        assert_eq!(payload.need_id, "need-live");
        assert_eq!(payload.case_id, "case-of-need-live");
        assert_eq!(event.aggregate_id, sent.referral_id);
        seen.push(event.r#type);
    }
    assert_eq!(
        seen,
        [
            "referral.created",
            "referral.routed",
            "referral.sla_breached",
            "referral.rerouted"
        ]
    );
    assert_eq!(
        current_program(&referral.get(&sent.referral_id).await),
        "beta.loans"
    );
}

#[tokio::test]
async fn a_referral_that_cannot_be_rerouted_does_not_hold_up_the_others() {
    let referral = Referral::start().await;
    referral.three_lenders(5).await;
    let broken = referral.create("need-broken").await;
    let sound = referral.create("need-sound").await;
    // A record that no longer reads, overdue first.
    sqlx::query("UPDATE referral SET body = '\\xffffffff' WHERE id = $1::uuid")
        .bind(&broken.referral_id)
        .execute(&referral.pool)
        .await
        .unwrap();

    let due = start_time() + Span::hours(48);
    assert_eq!(sweep_once(&referral.pool, due).await.unwrap(), 1);
    let moved = referral.get(&sound.referral_id).await;
    assert_eq!(moved.legs.len(), 2);
    assert_eq!(moved.legs[0].status, LegStatus::SlaBreached as i32);
    // The broken one is left as it was, for the next sweep and an operator.
    let (status,): (String,) = sqlx::query_as("SELECT status FROM referral WHERE id = $1::uuid")
        .bind(&broken.referral_id)
        .fetch_one(&referral.pool)
        .await
        .unwrap();
    assert_eq!(status, "SENT");
    assert_eq!(sweep_once(&referral.pool, due).await.unwrap(), 0);
}
