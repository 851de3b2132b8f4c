use chrono::{DateTime, Duration, Utc};
use onestop_contracts::common::v1::{GrowthStage, Money};
use onestop_contracts::event_types::MentoringEvent;
use onestop_contracts::mentoring::v1 as pb;
use onestop_mentoring::sweeper;
use onestop_platform::time::from_timestamp;

use crate::common::{
    Mentoring, assigned, company, kintex_program, need_for, plain_advisor, start_time, ts,
    violations,
};

fn started(assignment: &pb::Assignment) -> DateTime<Utc> {
    from_timestamp(assignment.started_at.as_ref().unwrap()).unwrap()
}

#[tokio::test]
async fn the_cadence_sweeper_raises_exactly_one_overdue_event_per_period() {
    let mentoring = Mentoring::start().await;
    mentoring.register(plain_advisor()).await;
    let assignment = mentoring.assign_new_company().await;
    let start = started(&assignment);
    let sweep = |days: i64| {
        let pool = mentoring.pool.clone();
        async move {
            sweeper::raise_overdue_contacts(&pool, start + Duration::days(days))
                .await
                .unwrap()
        }
    };

    assert_eq!(sweep(29).await, 0);
    assert_eq!(sweep(30).await, 1);
    assert_eq!(sweep(31).await, 0, "the same period is not raised twice");
    assert_eq!(sweep(45).await, 0);
    assert_eq!(
        mentoring.count_events(MentoringEvent::ContactOverdue).await,
        1
    );

    // Two replicas sweeping at once still raise the next period once.
    let at = start + Duration::days(61);
    let (a, b) = tokio::join!(
        sweeper::raise_overdue_contacts(&mentoring.pool, at),
        sweeper::raise_overdue_contacts(&mentoring.pool, at),
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    let events: Vec<pb::ContactOverdue> = mentoring
        .event_payloads(MentoringEvent::ContactOverdue)
        .await;
    let periods: Vec<u32> = events.iter().map(|e| e.period).collect();
    assert_eq!(periods, vec![1, 2]);
    assert_eq!(events[1].due_at, Some(ts(start + Duration::days(60))));

    mentoring.clock.set(at);
    let overdue = mentoring
        .dashboard()
        .list_overdue_contacts(pb::ListOverdueContactsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(overdue.contacts.len(), 1);
    assert_eq!(overdue.contacts[0].periods_overdue, 2);
    assert_eq!(overdue.contacts[0].days_overdue, 31);

    // A logged contact starts the count again.
    let advisor_id = assignment.advisor_id.clone();
    mentoring
        .advisor(&advisor_id)
        .log_session(pb::LogSessionRequest {
            idempotency_key: String::new(),
            assignment_id: assignment.assignment_id.clone(),
            held_at: Some(ts(at - Duration::hours(1))),
            channel: pb::SessionChannel::Phone as i32,
            minutes: 20,
            topics: vec!["follow-up".into()],
            follow_up_actions: vec![],
            interpreter_language: String::new(),
        })
        .await
        .unwrap();
    assert_eq!(sweep(62).await, 0);
    let cleared = mentoring
        .dashboard()
        .list_overdue_contacts(pb::ListOverdueContactsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(cleared.contacts.is_empty());
    assert_eq!(sweep(61 + 30).await, 1);
    let events: Vec<pb::ContactOverdue> = mentoring
        .event_payloads(MentoringEvent::ContactOverdue)
        .await;
    assert_eq!(events.last().unwrap().period, 1);
}

#[tokio::test]
async fn the_cadence_follows_the_stage_and_is_configurable() {
    let mentoring = Mentoring::start_with(|settings| settings.cadence.strong_days = 120).await;
    mentoring.register(plain_advisor()).await;
    let mut strong = company();
    strong.stage = GrowthStage::Strong as i32;
    let response = mentoring.request(need_for(&strong)).await;
    let assignment = assigned(&response);
    assert_eq!(assignment.contact_interval_days, 120);
    let start = started(assignment);
    assert_eq!(
        sweeper::raise_overdue_contacts(&mentoring.pool, start + Duration::days(100))
            .await
            .unwrap(),
        0
    );
}

#[tokio::test]
async fn fee_charging_programs_accrue_one_charge_per_month() {
    let mentoring = Mentoring::start().await;
    let mut kintex = plain_advisor();
    kintex.program = Some(kintex_program());
    mentoring.register(kintex).await;
    let assignment = mentoring.assign_new_company().await;
    assert_eq!(
        assignment.monthly_fee,
        Some(Money {
            currency_code: "KRW".into(),
            amount_minor: 100_000
        })
    );
    let start = started(&assignment);

    let (a, b) = tokio::join!(
        sweeper::accrue_fees(&mentoring.pool, start),
        sweeper::accrue_fees(&mentoring.pool, start),
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1, "racing sweepers charge once");
    assert_eq!(
        sweeper::accrue_fees(&mentoring.pool, start + Duration::minutes(5))
            .await
            .unwrap(),
        0
    );
    let next_month = start + Duration::days(35);
    assert_eq!(
        sweeper::accrue_fees(&mentoring.pool, next_month)
            .await
            .unwrap(),
        1
    );
    assert_eq!(mentoring.count("fee_charge").await, 2);
    assert_eq!(mentoring.count_events(MentoringEvent::FeeCharged).await, 2);

    let ledger = mentoring
        .dashboard()
        .list_fee_charges(pb::ListFeeChargesRequest {
            company_id: assignment.company_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ledger.charges.len(), 2);
    assert!(
        ledger.charges[0].month > ledger.charges[1].month,
        "newest first"
    );
    assert_eq!(
        ledger.totals,
        vec![Money {
            currency_code: "KRW".into(),
            amount_minor: 200_000
        }]
    );
    let month = ledger.charges[1].month.clone();
    let one_month = mentoring
        .dashboard()
        .list_fee_charges(pb::ListFeeChargesRequest {
            month: month.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(one_month.charges.len(), 1);
    assert_eq!(one_month.charges[0].month, month);

    let bad = mentoring
        .dashboard()
        .list_fee_charges(pb::ListFeeChargesRequest {
            month: "2026-13".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&bad), vec!["month"]);
}

#[tokio::test]
async fn free_programs_charge_nothing() {
    let mentoring = Mentoring::start().await;
    mentoring.register(plain_advisor()).await;
    let assignment = mentoring.assign_new_company().await;
    let report = sweeper::sweep_once(
        &mentoring.pool,
        &mentoring.rules,
        started(&assignment) + Duration::days(40),
    )
    .await
    .unwrap();
    assert_eq!(report.fees_charged, 0);
    assert_eq!(report.overdue_raised, 1);
}

#[tokio::test]
async fn racing_waitlist_fills_assign_each_free_slot_once() {
    let mentoring = Mentoring::start().await;
    let mut single = plain_advisor();
    single.capacity = 1;
    mentoring.register(single).await;
    mentoring.assign_new_company().await;
    for _ in 0..3 {
        mentoring.request(need_for(&company())).await;
    }
    // Capacity appears behind the API's back, as after a crash mid-change:
    // the sweep's fill is the safety net.
    sqlx::query("UPDATE advisor SET capacity = 3")
        .execute(&mentoring.pool)
        .await
        .unwrap();
    let now = start_time();
    let (a, b) = tokio::join!(
        sweeper::fill_waitlist(&mentoring.pool, &mentoring.rules, now),
        sweeper::fill_waitlist(&mentoring.pool, &mentoring.rules, now),
    );
    assert_eq!(a.unwrap() + b.unwrap(), 2);
    let load: i32 = sqlx::query_scalar("SELECT active_companies FROM advisor")
        .fetch_one(&mentoring.pool)
        .await
        .unwrap();
    assert_eq!(load, 3);
    let waiting: i64 =
        sqlx::query_scalar("SELECT count(*) FROM waitlist_entry WHERE status = 'WAITING'")
            .fetch_one(&mentoring.pool)
            .await
            .unwrap();
    assert_eq!(waiting, 1);
}

#[tokio::test]
async fn fee_months_follow_the_seoul_calendar() {
    let mentoring = Mentoring::start().await;
    let mut kintex = plain_advisor();
    kintex.program = Some(kintex_program());
    mentoring.register(kintex).await;
    // 16:00 UTC on 31 January is 01:00 on 1 February in Seoul.
    let start = DateTime::parse_from_rfc3339("2026-01-31T16:00:00Z")
        .unwrap()
        .with_timezone(&Utc);
    mentoring.clock.set(start);
    mentoring.assign_new_company().await;
    sweeper::accrue_fees(&mentoring.pool, start + Duration::hours(1))
        .await
        .unwrap();
    let months: Vec<String> = sqlx::query_scalar("SELECT month FROM fee_charge")
        .fetch_all(&mentoring.pool)
        .await
        .unwrap();
    assert_eq!(months, vec!["2026-02"]);
}

#[tokio::test]
async fn the_server_sweeps_on_its_own_with_the_injected_clock() {
    let mentoring = Mentoring::start_with(|settings| {
        settings.background_sweep = true;
        settings.sweep_interval = std::time::Duration::from_millis(100);
    })
    .await;
    mentoring.register(plain_advisor()).await;
    let assignment = mentoring.assign_new_company().await;
    mentoring
        .clock
        .set(started(&assignment) + Duration::days(31));
    let raised = onestop_test_support::eventually(std::time::Duration::from_secs(10), || async {
        mentoring.count_events(MentoringEvent::ContactOverdue).await == 1
    })
    .await;
    assert!(raised);
    // Later sweeps in the same period raise nothing more.
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    assert_eq!(
        mentoring.count_events(MentoringEvent::ContactOverdue).await,
        1
    );
}
