use std::collections::HashMap;

use onestop_contracts::event_types::MentoringEvent;
use onestop_contracts::mentoring::v1 as pb;
use pb::request_advisor_response::Outcome;
use tonic::Code;
use uuid::Uuid;

use crate::common::{
    Mentoring, assigned, by_company, company, error_reason, mask, need_for, plain_advisor,
    violations, waitlisted,
};

fn with_capacity(capacity: u32) -> pb::AdvisorProfile {
    let mut profile = plain_advisor();
    profile.capacity = capacity;
    profile
}

/// `need` handed over again for a new company is refused.
async fn refused_for_another_company(mentoring: &Mentoring, mut need: pb::RequestAdvisorRequest) {
    need.company = Some(company());
    let status = mentoring.service().request_advisor(need).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "IDEMPOTENCY_KEY_REUSED");
}

#[tokio::test]
async fn fifty_concurrent_requests_never_put_an_advisor_over_capacity() {
    let mentoring = Mentoring::start().await;
    let mut capacities = HashMap::new();
    for capacity in [3, 5, 7] {
        let advisor = mentoring.register(with_capacity(capacity)).await;
        capacities.insert(advisor.advisor_id, capacity as usize);
    }
    let calls: Vec<_> = (0..50)
        .map(|_| {
            let mut client = mentoring.service();
            let request = need_for(&company());
            tokio::spawn(async move { client.request_advisor(request).await })
        })
        .collect();
    let mut per_advisor: HashMap<String, usize> = HashMap::new();
    let mut positions = Vec::new();
    for call in calls {
        let response = call
            .await
            .unwrap()
            .expect("every request succeeds")
            .into_inner();
        match response.outcome.unwrap() {
            Outcome::Assigned(a) => *per_advisor.entry(a.advisor_id).or_default() += 1,
            Outcome::Waitlisted(w) => positions.push(w.position),
            Outcome::AlreadyAssigned(_) => panic!("every company is new"),
        }
    }
    assert_eq!(per_advisor, capacities);
    assert_eq!(positions.len(), 35);
    let loads: Vec<(i32, i32)> = sqlx::query_as("SELECT active_companies, capacity FROM advisor")
        .fetch_all(&mentoring.pool)
        .await
        .unwrap();
    assert!(loads.iter().all(|(load, capacity)| load == capacity));
    assert_eq!(
        mentoring
            .count_events(MentoringEvent::AssignmentCreated)
            .await,
        15
    );
    assert_eq!(
        mentoring
            .count_events(MentoringEvent::AssignmentWaitlisted)
            .await,
        35
    );

    // The queue shows every waiting company once, in order, 1 to 35.
    let queue = mentoring
        .dashboard()
        .list_waitlist(pb::ListWaitlistRequest {
            status: pb::WaitlistStatus::Waiting as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let listed: Vec<u32> = queue.entries.iter().map(|e| e.position).collect();
    assert_eq!(listed, (1..=35).collect::<Vec<u32>>());
}

#[tokio::test]
async fn concurrent_duplicates_of_a_need_yield_one_record_and_one_response() {
    let mentoring = Mentoring::start().await;
    mentoring.register(plain_advisor()).await;
    let request = need_for(&company());
    let calls: Vec<_> = (0..12)
        .map(|_| {
            let mut client = mentoring.service();
            let request = request.clone();
            tokio::spawn(async move { client.request_advisor(request).await })
        })
        .collect();
    let mut responses = Vec::new();
    for call in calls {
        responses.push(
            call.await
                .unwrap()
                .expect("duplicate succeeds")
                .into_inner(),
        );
    }
    assert!(responses.iter().all(|r| r == &responses[0]));
    assert_eq!(mentoring.count("assignment").await, 1);
    assert_eq!(mentoring.count("need_request").await, 1);
    assert_eq!(
        mentoring
            .count_events(MentoringEvent::AssignmentCreated)
            .await,
        1
    );

    let created: Vec<pb::AssignmentCreated> = mentoring
        .event_payloads(MentoringEvent::AssignmentCreated)
        .await;
    assert_eq!(created[0].need_id, request.need_id);
    assert_eq!(created[0].case_id, request.case_id);

    // A redelivery with a fresher snapshot of the same company replays.
    let mut fresher = request.clone();
    fresher.company.as_mut().unwrap().readiness_score = 80;
    let replay = mentoring.request(fresher).await;
    assert_eq!(replay, responses[0]);

    // The same need for another company is a different request.
    refused_for_another_company(&mentoring, request.clone()).await;
}

#[tokio::test]
async fn a_company_never_gets_a_second_active_assignment() {
    let mentoring = Mentoring::start().await;
    mentoring.register(plain_advisor()).await;
    mentoring.register(plain_advisor()).await;
    let hanbit = company();
    let first = mentoring.request(need_for(&hanbit)).await;
    let first = assigned(&first).clone();

    // A second need of the same company, a day later, joins the current
    // assignment.
    mentoring.clock.advance(chrono::Duration::days(1));
    let second_need = need_for(&hanbit);
    let second = mentoring.request(second_need.clone()).await;
    let Some(Outcome::AlreadyAssigned(joined)) = second.outcome else {
        panic!("expected the existing assignment");
    };
    assert_eq!(joined.assignment_id, first.assignment_id);
    assert_eq!(joined.needs.len(), 2);
    assert_eq!(joined.needs[1].need_id, second_need.need_id);
    assert_eq!(mentoring.count("assignment").await, 1);

    // Concurrent needs of one new company also end with one assignment.
    let busan = company();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let mut client = mentoring.service();
            let request = need_for(&busan);
            tokio::spawn(async move { client.request_advisor(request).await })
        })
        .collect();
    for call in calls {
        call.await.unwrap().expect("each need is accepted");
    }
    let active: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM assignment WHERE company_id = $1 AND status = 'ACTIVE'",
    )
    .bind(Uuid::parse_str(&busan.company_id).unwrap())
    .fetch_one(&mentoring.pool)
    .await
    .unwrap();
    assert_eq!(active, 1);

    // And the database itself refuses a second ACTIVE row.
    let refused = sqlx::query(
        "INSERT INTO assignment (id, company_id, advisor_id, status, stage, score, score_total,
             started_at, committed_until, contact_interval_days, program_id, from_waitlist)
         SELECT $1, company_id, advisor_id, 'ACTIVE', stage, score, score_total, started_at,
                committed_until, contact_interval_days, program_id, false
           FROM assignment WHERE id = $2",
    )
    .bind(Uuid::now_v7())
    .bind(Uuid::parse_str(&first.assignment_id).unwrap())
    .execute(&mentoring.pool)
    .await
    .unwrap_err();
    assert!(
        refused
            .to_string()
            .contains("assignment_one_active_per_company")
    );
}

#[tokio::test]
async fn a_waitlisted_request_is_filled_when_capacity_frees() {
    let mentoring = Mentoring::start().await;
    let advisor = mentoring.register(with_capacity(1)).await;
    mentoring.assign_new_company().await;
    let waiting_need = need_for(&company());
    let second = mentoring.request(waiting_need.clone()).await;
    let entry = waitlisted(&second).clone();
    assert_eq!(entry.position, 1);
    assert_eq!(entry.status, pb::WaitlistStatus::Waiting as i32);
    let third = mentoring.request(need_for(&company())).await;
    assert_eq!(waitlisted(&third).position, 2);

    mentoring
        .admin()
        .update_advisor(pb::UpdateAdvisorRequest {
            idempotency_key: String::new(),
            advisor_id: advisor.advisor_id.clone(),
            profile: Some(with_capacity(2)),
            update_mask: mask(&["capacity"]),
        })
        .await
        .unwrap();

    let current = mentoring
        .service()
        .get_assignment(by_company(&entry.company_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(current.advisor_id, advisor.advisor_id);
    assert!(current.from_waitlist);
    assert_eq!(current.needs[0].need_id, waiting_need.need_id);

    let queue = mentoring
        .admin()
        .list_waitlist(pb::ListWaitlistRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(queue.entries.len(), 2);
    assert_eq!(queue.entries[0].position, 1, "the third request moved up");
    assert_eq!(queue.entries[1].status, pb::WaitlistStatus::Filled as i32);
    assert_eq!(queue.entries[1].assignment_id, current.assignment_id);

    let created: Vec<pb::AssignmentCreated> = mentoring
        .event_payloads(MentoringEvent::AssignmentCreated)
        .await;
    let filled = created.last().unwrap();
    assert!(filled.from_waitlist);
    assert_eq!(filled.need_id, waiting_need.need_id);
    assert_eq!(filled.case_id, waiting_need.case_id);
}

#[tokio::test]
async fn bad_hand_offs_get_field_violations_and_store_nothing() {
    let mentoring = Mentoring::start().await;
    mentoring.register(plain_advisor()).await;
    let mut snapshot = company();
    snapshot.region = "Busan".into();
    snapshot.industry_ksic = "2".into();
    snapshot.hs_codes = vec!["33".into()];
    snapshot.stage = 0;
    let mut request = need_for(&snapshot);
    request.need_id = "need-1".into();
    request.target_markets = vec!["USA".into()];
    request.languages_needed = vec!["english".into()];
    let status = mentoring
        .service()
        .request_advisor(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec![
            "company.hs_codes[0]",
            "company.industry_ksic",
            "company.region",
            "company.stage",
            "languages_needed[0]",
            "need_id",
            "target_markets[0]",
        ]
    );
    for table in [
        "company",
        "need_request",
        "assignment",
        "waitlist_entry",
        "idempotency_key",
    ] {
        assert_eq!(mentoring.count(table).await, 0, "{table}");
    }
    assert_eq!(
        mentoring.count("event_log").await,
        1,
        "only advisor.registered"
    );

    let status = mentoring
        .dashboard()
        .request_advisor(need_for(&company()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn a_hand_off_delivered_again_after_its_key_was_pruned_gets_the_need_as_it_stands() {
    let mentoring = Mentoring::start().await;
    mentoring.register(with_capacity(1)).await;
    let first_need = need_for(&company());
    let first = mentoring.request(first_need.clone()).await;
    let assignment = assigned(&first).clone();
    let second_need = need_for(&company());
    let entry = waitlisted(&mentoring.request(second_need.clone()).await).clone();

    // The keys are pruned after their retention; the needs are kept.
    sqlx::query("DELETE FROM idempotency_key")
        .execute(&mentoring.pool)
        .await
        .unwrap();
    let events_before = mentoring.count("event_log").await;

    let again = mentoring.request(first_need.clone()).await;
    assert_eq!(assigned(&again).assignment_id, assignment.assignment_id);
    let again = mentoring.request(second_need).await;
    assert_eq!(
        waitlisted(&again).waitlist_entry_id,
        entry.waitlist_entry_id
    );
    assert_eq!(mentoring.count("event_log").await, events_before);
    assert_eq!(mentoring.count("assignment").await, 1);
    assert_eq!(mentoring.count("waitlist_entry").await, 1);

    // The same need for another company is still refused.
    refused_for_another_company(&mentoring, first_need).await;
}

#[tokio::test]
async fn an_assignment_shows_the_first_fifty_of_the_needs_that_joined_it() {
    let mentoring = Mentoring::start().await;
    mentoring.register(plain_advisor()).await;
    let hanbit = company();
    let first = need_for(&hanbit);
    mentoring.request(first.clone()).await;
    let mut last = None;
    for _ in 0..54 {
        mentoring.clock.advance(chrono::Duration::minutes(1));
        last = Some(mentoring.request(need_for(&hanbit)).await);
    }
    let Some(Outcome::AlreadyAssigned(joined)) = last.unwrap().outcome else {
        panic!("expected the existing assignment");
    };
    let stored: i64 = sqlx::query_scalar("SELECT count(*) FROM assignment_need")
        .fetch_one(&mentoring.pool)
        .await
        .unwrap();
    assert_eq!(stored, 55, "every need joined");
    assert_eq!(joined.needs.len(), 50);
    assert_eq!(
        joined.needs[0].need_id, first.need_id,
        "the first need first"
    );
}
