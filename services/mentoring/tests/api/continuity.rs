use chrono::{Duration, Months};
use onestop_contracts::event_types::MentoringEvent;
use onestop_contracts::mentoring::v1 as pb;
use onestop_mentoring::sweeper;
use onestop_platform::time::from_timestamp;
use pb::handover::Successor;
use tonic::Code;

use onestop_test_support::all_pages;

use crate::common::{
    Mentoring, by_company, by_id, company, error_reason, history_of, mask, need_for, plain_advisor,
    start_time, violations, waitlisted,
};

pub(crate) fn reassign(
    assignment_id: &str,
    reason: pb::ReassignReason,
) -> pb::ReassignAdvisorRequest {
    pb::ReassignAdvisorRequest {
        idempotency_key: String::new(),
        assignment_id: assignment_id.into(),
        reason: reason as i32,
        note: String::new(),
        advisor_id: String::new(),
        handover_days: 0,
    }
}

async fn deactivate(
    mentoring: &Mentoring,
    advisor_id: &str,
    idempotency_key: impl Into<String>,
    handover_days: u32,
) -> Result<pb::DeactivateAdvisorResponse, tonic::Status> {
    mentoring
        .admin()
        .deactivate_advisor(pb::DeactivateAdvisorRequest {
            idempotency_key: idempotency_key.into(),
            advisor_id: advisor_id.into(),
            handover_days,
        })
        .await
        .map(tonic::Response::into_inner)
}

/// A refused change leaves the assignment active and records no change.
async fn assert_unchanged(mentoring: &Mentoring, assignment_id: &str) {
    let current = mentoring
        .admin()
        .get_assignment(by_id(assignment_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(current.status, pb::AssignmentStatus::Active as i32);
    assert_eq!(mentoring.count("advisor_change").await, 0);
}

#[tokio::test]
async fn an_assignment_commits_for_at_least_three_years() {
    let mentoring = Mentoring::start().await;
    mentoring.register(plain_advisor()).await;
    let assignment = mentoring.assign_new_company().await;
    let started = from_timestamp(assignment.started_at.as_ref().unwrap()).unwrap();
    let committed = from_timestamp(assignment.committed_until.as_ref().unwrap()).unwrap();
    assert!(committed >= started.checked_add_months(Months::new(36)).unwrap());
    assert_eq!(
        assignment.contact_interval_days, 30,
        "FIRST_EXPORT is monthly"
    );
}

#[tokio::test]
async fn reassignment_without_a_reason_is_refused_and_changes_nothing() {
    let mentoring = Mentoring::start().await;
    mentoring.register(plain_advisor()).await;
    mentoring.register(plain_advisor()).await;
    let assignment = mentoring.assign_new_company().await;

    let refusals = [
        (
            mentoring.admin(),
            pb::ReassignReason::Unspecified,
            Code::InvalidArgument,
            vec!["reason"],
        ),
        (
            mentoring.admin(),
            pb::ReassignReason::Other,
            Code::InvalidArgument,
            vec!["note"],
        ),
        (
            mentoring.service(),
            pb::ReassignReason::Conflict,
            Code::PermissionDenied,
            vec![],
        ),
    ];
    for (mut client, reason, code, fields) in refusals {
        let status = client
            .reassign_advisor(reassign(&assignment.assignment_id, reason))
            .await
            .unwrap_err();
        assert_eq!(status.code(), code, "{reason:?}");
        assert_eq!(violations(&status), fields, "{reason:?}");
    }

    assert_eq!(mentoring.count("advisor_change").await, 0);
    assert_eq!(
        mentoring
            .count_events(MentoringEvent::AssignmentReassigned)
            .await,
        0
    );
    assert_unchanged(&mentoring, &assignment.assignment_id).await;
}

#[tokio::test]
async fn reassignment_with_a_reason_keeps_the_history_and_frees_the_slot() {
    let mentoring = Mentoring::start().await;
    let mut single = plain_advisor();
    single.capacity = 1;
    let first = mentoring.register(single.clone()).await;
    let second = mentoring.register(plain_advisor()).await;
    let assignment = mentoring.assign_new_company().await;
    assert_eq!(assignment.advisor_id, first.advisor_id);

    let response = mentoring
        .admin()
        .reassign_advisor(reassign(
            &assignment.assignment_id,
            pb::ReassignReason::CompanyRequest,
        ))
        .await
        .unwrap()
        .into_inner();
    let previous = response.previous.unwrap();
    let current = response.current.unwrap();
    assert_eq!(previous.status, pb::AssignmentStatus::Ended as i32);
    assert_eq!(
        previous.end_reason,
        pb::ReassignReason::CompanyRequest as i32
    );
    assert_eq!(previous.successor_assignment_id, current.assignment_id);
    assert_eq!(current.advisor_id, second.advisor_id);
    assert_eq!(current.predecessor_assignment_id, previous.assignment_id);
    assert_eq!(
        current.needs, assignment.needs,
        "the successor inherits the needs"
    );

    let history = mentoring
        .service()
        .get_advisor_history(history_of(&assignment.company_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(history.assignments.len(), 2);
    assert_eq!(history.assignments[1].assignment_id, current.assignment_id);
    assert_eq!(history.changes.len(), 1);
    assert_eq!(history.changes[0].to_advisor_id, second.advisor_id);

    let reassigned: Vec<pb::AssignmentReassigned> = mentoring
        .event_payloads(MentoringEvent::AssignmentReassigned)
        .await;
    assert_eq!(reassigned[0].need_id, assignment.needs[0].need_id);
    assert_eq!(reassigned[0].case_id, assignment.needs[0].case_id);
    assert_eq!(
        mentoring
            .count_events(MentoringEvent::AssignmentEnded)
            .await,
        1
    );

    // The first advisor's slot is free again.
    let again = mentoring.assign_new_company().await;
    assert_eq!(again.advisor_id, first.advisor_id);

    // Reassigning an ended assignment is an illegal move.
    let status = mentoring
        .admin()
        .reassign_advisor(reassign(
            &previous.assignment_id,
            pb::ReassignReason::Conflict,
        ))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "ASSIGNMENT_NOT_ACTIVE");
}

#[tokio::test]
async fn deactivation_hands_every_company_over_with_history_intact() {
    let mentoring = Mentoring::start().await;
    let leaving = mentoring.register(plain_advisor()).await;
    let mut assignments = Vec::new();
    for _ in 0..3 {
        assignments.push(mentoring.assign_new_company().await);
    }
    let mut small = plain_advisor();
    small.capacity = 2;
    let successor = mentoring.register(small).await;

    let response = deactivate(&mentoring, &leaving.advisor_id, "leave-1", 14)
        .await
        .unwrap();
    let response_copy = response.clone();
    assert_eq!(
        response.advisor.unwrap().status,
        pb::AdvisorStatus::Inactive as i32
    );
    assert_eq!(response.handovers.len(), 3);
    let (mut handed, mut queued) = (0, 0);
    for handover in &response.handovers {
        match handover.successor.as_ref().unwrap() {
            Successor::SuccessorAssignment(a) => {
                assert_eq!(a.advisor_id, successor.advisor_id);
                handed += 1;
            }
            Successor::Waitlisted(w) => {
                assert_eq!(w.outgoing_assignment_id, handover.outgoing_assignment_id);
                queued += 1;
            }
        }
    }
    assert_eq!((handed, queued), (2, 1), "the successor had room for two");

    // During the window both advisors are listed for each company.
    for assignment in &assignments {
        let history = mentoring.history(&assignment.company_id).await;
        let first = &history.assignments[0];
        assert_eq!(first.assignment_id, assignment.assignment_id);
        assert_eq!(first.status, pb::AssignmentStatus::Handover as i32);
        assert_eq!(first.end_reason, pb::ReassignReason::AdvisorLeft as i32);
        assert_eq!(history.changes.len(), 1);
    }
    assert_eq!(
        mentoring
            .count_events(MentoringEvent::AssignmentHandoverStarted)
            .await,
        3
    );
    assert_eq!(
        mentoring
            .count_events(MentoringEvent::AdvisorDeactivated)
            .await,
        1
    );

    // A new advisor joins: the company still waiting is handed over too.
    let newcomer = mentoring.register(plain_advisor()).await;
    let mut successors = Vec::new();
    for assignment in &assignments {
        let history = mentoring.history(&assignment.company_id).await;
        assert_eq!(history.assignments.len(), 2, "old and new both kept");
        let current = &history.assignments[1];
        assert_eq!(current.status, pb::AssignmentStatus::Active as i32);
        assert_eq!(current.needs, assignment.needs);
        assert_eq!(history.changes[0].to_assignment_id, current.assignment_id);
        successors.push(current.advisor_id.clone());
    }
    assert!(successors.contains(&newcomer.advisor_id));

    // After the window the outgoing assignments end; the history stays.
    let after = start_time() + Duration::days(15);
    let report = sweeper::sweep_once(&mentoring.pool, &mentoring.rules, after)
        .await
        .unwrap();
    assert_eq!(report.handovers_ended, 3);
    let ended: i64 = sqlx::query_scalar("SELECT count(*) FROM assignment WHERE status = 'ENDED'")
        .fetch_one(&mentoring.pool)
        .await
        .unwrap();
    assert_eq!(ended, 3);
    let ended_events: Vec<pb::AssignmentEnded> = mentoring
        .event_payloads(MentoringEvent::AssignmentEnded)
        .await;
    assert!(ended_events.iter().all(|e| !e.need_id.is_empty()));

    // A retry of the deactivation returns its first response.
    let replay = deactivate(&mentoring, &leaving.advisor_id, "leave-1", 14)
        .await
        .unwrap();
    assert_eq!(replay, response_copy);

    // Deactivating again is an illegal move.
    let status = deactivate(&mentoring, &leaving.advisor_id, String::new(), 0)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
}

#[tokio::test]
async fn a_named_successor_without_room_leaves_the_current_advisor_in_place() {
    let mentoring = Mentoring::start().await;
    let mut single = plain_advisor();
    single.capacity = 1;
    mentoring.register(single.clone()).await;
    let full = mentoring.register(single).await;
    let assignment = mentoring.assign_new_company().await;
    mentoring.assign_new_company().await;

    let mut request = reassign(&assignment.assignment_id, pb::ReassignReason::Conflict);
    request.advisor_id = full.advisor_id.clone();
    let status = mentoring
        .admin()
        .reassign_advisor(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "NO_ADVISOR_AVAILABLE");
    assert_unchanged(&mentoring, &assignment.assignment_id).await;
    assert_eq!(mentoring.count("advisor_change").await, 0);
}

#[tokio::test]
async fn a_reassignment_with_a_window_lists_both_advisors_until_it_ends() {
    let mentoring = Mentoring::start().await;
    mentoring.register(plain_advisor()).await;
    let next = mentoring.register(plain_advisor()).await;
    let assignment = mentoring.assign_new_company().await;
    let mut request = reassign(&assignment.assignment_id, pb::ReassignReason::Other);
    request.note = "company moved its export office to Seoul".into();
    request.advisor_id = next.advisor_id.clone();
    request.handover_days = 7;
    let response = mentoring
        .admin()
        .reassign_advisor(request)
        .await
        .unwrap()
        .into_inner();
    let previous = response.previous.unwrap();
    assert_eq!(previous.status, pb::AssignmentStatus::Handover as i32);
    assert_eq!(
        previous.end_note,
        "company moved its export office to Seoul"
    );
    assert_eq!(response.current.unwrap().advisor_id, next.advisor_id);
    let started: Vec<pb::AssignmentHandoverStarted> = mentoring
        .event_payloads(MentoringEvent::AssignmentHandoverStarted)
        .await;
    assert_eq!(started[0].successor_advisor_id, next.advisor_id);
    assert_eq!(started[0].need_id, assignment.needs[0].need_id);

    let early = sweeper::end_handovers(&mentoring.pool, start_time() + Duration::days(6));
    assert_eq!(early.await.unwrap(), 0);
    let late = sweeper::end_handovers(&mentoring.pool, start_time() + Duration::days(8));
    assert_eq!(late.await.unwrap(), 1);
    let history = mentoring.history(&assignment.company_id).await;
    assert_eq!(
        history.assignments[0].status,
        pb::AssignmentStatus::Ended as i32
    );
    assert_eq!(history.changes[0].reason, pb::ReassignReason::Other as i32);
    assert_eq!(
        history.changes[0].note,
        "company moved its export office to Seoul"
    );
}

#[tokio::test]
async fn requests_deactivations_and_capacity_changes_racing_keep_the_books_straight() {
    let mentoring = Mentoring::start().await;
    let mut advisors = Vec::new();
    for _ in 0..4 {
        let mut profile = plain_advisor();
        profile.capacity = 4;
        advisors.push(mentoring.register(profile).await);
    }
    for _ in 0..6 {
        mentoring.assign_new_company().await;
    }
    let mut calls = Vec::new();
    for _ in 0..20 {
        let mut client = mentoring.service();
        let request = need_for(&company());
        calls.push(tokio::spawn(async move {
            client.request_advisor(request).await.map(|_| ())
        }));
    }
    for advisor in &advisors[..2] {
        let mut client = mentoring.admin();
        let advisor_id = advisor.advisor_id.clone();
        calls.push(tokio::spawn(async move {
            client
                .deactivate_advisor(pb::DeactivateAdvisorRequest {
                    idempotency_key: String::new(),
                    advisor_id,
                    handover_days: 3,
                })
                .await
                .map(|_| ())
        }));
    }
    {
        let mut client = mentoring.admin();
        let advisor_id = advisors[3].advisor_id.clone();
        calls.push(tokio::spawn(async move {
            let mut profile = plain_advisor();
            profile.capacity = 9;
            client
                .update_advisor(pb::UpdateAdvisorRequest {
                    idempotency_key: String::new(),
                    advisor_id,
                    profile: Some(profile),
                    update_mask: mask(&["capacity"]),
                })
                .await
                .map(|_| ())
        }));
    }
    for call in calls {
        call.await.unwrap().expect("every call succeeds");
    }

    // Load always equals the ACTIVE assignments and never passes capacity.
    let books: Vec<(i32, i32, i64, String)> = sqlx::query_as(
        "SELECT a.active_companies, a.capacity,
                (SELECT count(*) FROM assignment s WHERE s.advisor_id = a.id AND s.status = 'ACTIVE'),
                a.status
           FROM advisor a",
    )
    .fetch_all(&mentoring.pool)
    .await
    .unwrap();
    for (load, capacity, active, status) in &books {
        assert_eq!(i64::from(*load), *active);
        assert!(load <= capacity);
        if status == "INACTIVE" {
            assert_eq!(*load, 0);
        }
    }
    // 26 companies, 4 + 9 places left with the two active advisors: every
    // place is taken and the rest wait.
    let active: i64 = sqlx::query_scalar("SELECT count(*) FROM assignment WHERE status = 'ACTIVE'")
        .fetch_one(&mentoring.pool)
        .await
        .unwrap();
    let waiting: i64 =
        sqlx::query_scalar("SELECT count(*) FROM waitlist_entry WHERE status = 'WAITING'")
            .fetch_one(&mentoring.pool)
            .await
            .unwrap();
    assert_eq!(active, 13);
    assert_eq!(active + waiting, 26);
}

#[tokio::test]
async fn ending_an_assignment_needs_a_reason_and_fills_the_waitlist() {
    let mentoring = Mentoring::start().await;
    let mut single = plain_advisor();
    single.capacity = 1;
    let advisor = mentoring.register(single).await;
    let leaving = mentoring.assign_new_company().await;
    let waiting = mentoring.request(need_for(&company())).await;
    let entry = waitlisted(&waiting).clone();

    let end = |reason: pb::ReassignReason| pb::EndAssignmentRequest {
        idempotency_key: String::new(),
        assignment_id: leaving.assignment_id.clone(),
        reason: reason as i32,
        note: String::new(),
    };
    for reason in [
        pb::ReassignReason::Unspecified,
        pb::ReassignReason::AdvisorLeft,
    ] {
        let status = mentoring
            .admin()
            .end_assignment(end(reason))
            .await
            .unwrap_err();
        assert_eq!(violations(&status), vec!["reason"], "{reason:?}");
    }
    assert_unchanged(&mentoring, &leaving.assignment_id).await;

    let ended = mentoring
        .admin()
        .end_assignment(end(pb::ReassignReason::CompanyRequest))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(ended.status, pb::AssignmentStatus::Ended as i32);
    assert_eq!(ended.end_reason, pb::ReassignReason::CompanyRequest as i32);
    let ended_events: Vec<pb::AssignmentEnded> = mentoring
        .event_payloads(MentoringEvent::AssignmentEnded)
        .await;
    assert_eq!(ended_events[0].need_id, leaving.needs[0].need_id);

    // The freed slot went to the company that was waiting.
    let filled = mentoring
        .admin()
        .get_assignment(by_company(&entry.company_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(filled.advisor_id, advisor.advisor_id);
    assert!(filled.from_waitlist);
    let history = mentoring.history(&leaving.company_id).await;
    assert_eq!(history.assignments.len(), 1);
    assert_eq!(
        history.changes[0].reason,
        pb::ReassignReason::CompanyRequest as i32
    );
    assert!(history.changes[0].to_assignment_id.is_empty());
}

#[tokio::test]
async fn a_long_history_pages_oldest_first_with_the_changes_of_each_page() {
    let mentoring = Mentoring::start().await;
    mentoring.register(plain_advisor()).await;
    mentoring.register(plain_advisor()).await;
    let first = mentoring.assign_new_company().await;
    let company_id = first.company_id.clone();
    let mut chain = vec![first.assignment_id.clone()];
    // Four changes between the two advisors, a day apart; the last keeps
    // the outgoing advisor listed for a week.
    for (i, reason) in [
        pb::ReassignReason::CompanyRequest,
        pb::ReassignReason::Conflict,
        pb::ReassignReason::CompanyRequest,
        pb::ReassignReason::Conflict,
    ]
    .into_iter()
    .enumerate()
    {
        mentoring.clock.advance(Duration::days(1));
        let mut request = reassign(chain.last().unwrap(), reason);
        request.handover_days = if i == 3 { 7 } else { 0 };
        let response = mentoring
            .admin()
            .reassign_advisor(request)
            .await
            .unwrap()
            .into_inner();
        chain.push(response.current.unwrap().assignment_id);
    }

    let pages = all_pages(|page_token| {
        let mut admin = mentoring.admin();
        let request = pb::GetAdvisorHistoryRequest {
            page_size: 2,
            page_token,
            ..history_of(&company_id)
        };
        async move {
            let page = admin
                .get_advisor_history(request)
                .await
                .unwrap()
                .into_inner();
            let next = page.next_page_token.clone();
            (vec![page], next)
        }
    })
    .await;
    let assignments: Vec<pb::Assignment> = pages
        .iter()
        .flat_map(|page| page.assignments.clone())
        .collect();
    let ids: Vec<&str> = assignments
        .iter()
        .map(|a| a.assignment_id.as_str())
        .collect();
    assert_eq!(ids, chain, "oldest first, the current advisor last");
    assert_eq!(pages.len(), 3);
    assert_eq!(
        assignments.last().unwrap().status,
        pb::AssignmentStatus::Active as i32
    );
    assert_eq!(assignments[3].status, pb::AssignmentStatus::Handover as i32);
    // Each page carries the changes that led to its own assignments.
    for page in &pages {
        for change in &page.changes {
            assert!(
                page.assignments
                    .iter()
                    .any(|a| a.assignment_id == change.to_assignment_id),
                "{change:?}"
            );
        }
    }
    let changes: Vec<(String, String)> = pages
        .iter()
        .flat_map(|page| &page.changes)
        .map(|c| (c.from_assignment_id.clone(), c.to_assignment_id.clone()))
        .collect();
    let expected: Vec<(String, String)> = chain
        .windows(2)
        .map(|pair| (pair[0].clone(), pair[1].clone()))
        .collect();
    assert_eq!(changes, expected);
    assert_eq!(
        pages[0].changes.len(),
        1,
        "the change to the second assignment"
    );

    // One big page holds the same.
    let whole = mentoring.history(&company_id).await;
    assert_eq!(whole.assignments, assignments);
    assert_eq!(
        whole.changes,
        pages
            .into_iter()
            .flat_map(|page| page.changes)
            .collect::<Vec<_>>()
    );
}

#[tokio::test]
async fn an_advisor_reads_only_its_own_part_of_a_companys_history() {
    let mentoring = Mentoring::start().await;
    let mut single = plain_advisor();
    single.capacity = 1;
    let first = mentoring.register(single).await;
    let second = mentoring.register(plain_advisor()).await;
    let stranger = mentoring.register(plain_advisor()).await;
    let assignment = mentoring.assign_new_company().await;
    let mut request = reassign(&assignment.assignment_id, pb::ReassignReason::Other);
    request.note = "the owner asked for someone who knows Osaka".into();
    mentoring.admin().reassign_advisor(request).await.unwrap();

    let read = |advisor_id: &str| {
        let mut client = mentoring.advisor(advisor_id);
        let company_id = assignment.company_id.clone();
        async move { client.get_advisor_history(history_of(&company_id)).await }
    };
    let theirs = read(&second.advisor_id).await.unwrap().into_inner();
    assert_eq!(theirs.assignments.len(), 1, "only its own assignment");
    assert_eq!(theirs.assignments[0].advisor_id, second.advisor_id);
    let before = read(&first.advisor_id).await.unwrap().into_inner();
    assert_eq!(before.assignments.len(), 1);
    assert_eq!(before.assignments[0].advisor_id, first.advisor_id);
    let status = read(&stranger.advisor_id).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound);

    let as_dashboard = mentoring
        .dashboard()
        .get_advisor_history(history_of(&assignment.company_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(as_dashboard.assignments.len(), 2);
    assert!(
        as_dashboard
            .changes
            .iter()
            .all(|change| change.note.is_empty())
    );
    let as_admin = mentoring.history(&assignment.company_id).await;
    assert_eq!(
        as_admin.changes[0].note,
        "the owner asked for someone who knows Osaka"
    );
}
