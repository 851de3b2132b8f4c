use chrono::{DateTime, Duration, Utc};
use onestop_contracts::event_types::MentoringEvent;
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::time::Clock;
use onestop_test_support::all_pages;
use tonic::Code;

use crate::common::{Mentoring, by_id, plain_advisor, ts, violations};

/// A video session held `minutes_ago` before `now`.
pub(crate) fn session(
    assignment_id: &str,
    now: DateTime<Utc>,
    minutes_ago: i64,
) -> pb::LogSessionRequest {
    pb::LogSessionRequest {
        idempotency_key: String::new(),
        assignment_id: assignment_id.into(),
        held_at: Some(ts(now - Duration::minutes(minutes_ago))),
        channel: pb::SessionChannel::Video as i32,
        minutes: 45,
        topics: vec!["US pricing".into(), "FDA cosmetics registration".into()],
        follow_up_actions: vec![pb::ActionItem {
            description: "Send the English catalog draft".into(),
            owner: pb::ActionOwner::Company as i32,
            due_at: Some(ts(now + Duration::days(7))),
        }],
        interpreter_language: String::new(),
    }
}

#[tokio::test]
async fn an_advisor_logs_sessions_only_on_its_own_assignments() {
    let mentoring = Mentoring::start().await;
    let mine = mentoring.register(plain_advisor()).await;
    let theirs = mentoring.register(plain_advisor()).await;
    // The assignment starts two hours before the sessions below.
    let assignment = mentoring.assign_new_company().await;
    let now = mentoring.clock.advance(Duration::hours(2));
    assert_eq!(assignment.advisor_id, mine.advisor_id);

    let status = mentoring
        .advisor(&theirs.advisor_id)
        .log_session(session(&assignment.assignment_id, now, 5))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let status = mentoring
        .service()
        .log_session(session(&assignment.assignment_id, now, 5))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    assert_eq!(mentoring.count("session").await, 0);

    let logged = mentoring
        .advisor(&mine.advisor_id)
        .log_session(session(&assignment.assignment_id, now, 5))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(logged.advisor_id, mine.advisor_id);
    assert_eq!(logged.logged_by, mine.advisor_id);
    assert_eq!(logged.follow_up_actions.len(), 1);
    mentoring
        .admin()
        .log_session(session(&assignment.assignment_id, now, 60))
        .await
        .unwrap();

    let events: Vec<pb::SessionLogged> = mentoring
        .event_payloads(MentoringEvent::SessionLogged)
        .await;
    assert_eq!(events.len(), 2);
    assert_eq!(events[0].follow_up_action_count, 1);

    // The contact resets the cadence clock.
    let current = mentoring
        .advisor(&mine.advisor_id)
        .get_assignment(by_id(&assignment.assignment_id))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(current.last_contact_at, logged.held_at);

    // Each advisor sees only its own sessions, newest first.
    let own = mentoring
        .advisor(&mine.advisor_id)
        .list_sessions(pb::ListSessionsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(own.sessions.len(), 2);
    assert_eq!(own.sessions[0].session_id, logged.session_id);
    let other = mentoring
        .advisor(&theirs.advisor_id)
        .list_sessions(pb::ListSessionsRequest {
            company_id: assignment.company_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(other.sessions.is_empty());
    let status = mentoring
        .advisor(&theirs.advisor_id)
        .get_assignment(by_id(&assignment.assignment_id))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
}

#[tokio::test]
async fn bad_sessions_get_field_violations_and_store_nothing() {
    let mentoring = Mentoring::start().await;
    let advisor = mentoring.register(plain_advisor()).await;
    let assignment = mentoring.assign_new_company().await;
    let now = mentoring.clock.now();
    let mut request = session(&assignment.assignment_id, now, 5);
    request.held_at = Some(ts(now + Duration::hours(2)));
    request.channel = 0;
    request.minutes = 0;
    request.topics = vec![" ".into()];
    request.follow_up_actions[0].owner = 0;
    request.interpreter_language = "english".into();
    let status = mentoring
        .advisor(&advisor.advisor_id)
        .log_session(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec![
            "channel",
            "follow_up_actions[0].owner",
            "held_at",
            "interpreter_language",
            "minutes",
            "topics[0]",
        ]
    );

    // Before the assignment started: said together with the rest.
    let mut before_start = session(&assignment.assignment_id, now, 3 * 24 * 60);
    before_start.minutes = 0;
    let status = mentoring
        .advisor(&advisor.advisor_id)
        .log_session(before_start)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violations(&status), vec!["held_at", "minutes"]);
    assert_eq!(mentoring.count("session").await, 0);
    assert_eq!(
        mentoring.count_events(MentoringEvent::SessionLogged).await,
        0
    );
}

#[tokio::test]
async fn sessions_page_newest_first_and_overdue_lists_are_scoped_to_the_advisor() {
    let mentoring = Mentoring::start().await;
    let mine = mentoring.register(plain_advisor()).await;
    let theirs = mentoring.register(plain_advisor()).await;
    let assignment = mentoring.assign_new_company().await;
    let other = mentoring.assign_new_company().await;
    let now = mentoring.clock.advance(Duration::days(40));
    assert_eq!(other.advisor_id, theirs.advisor_id);
    for minutes_ago in [300, 200, 100] {
        mentoring
            .admin()
            .log_session(session(&assignment.assignment_id, now, minutes_ago))
            .await
            .unwrap();
    }
    let held = all_pages(|page_token| {
        let mut dashboard = mentoring.dashboard();
        let request = pb::ListSessionsRequest {
            page_size: 2,
            page_token,
            assignment_id: assignment.assignment_id.clone(),
            ..Default::default()
        };
        async move {
            let page = dashboard.list_sessions(request).await.unwrap().into_inner();
            let held: Vec<i64> = page
                .sessions
                .into_iter()
                .map(|s| s.held_at.unwrap().seconds)
                .collect();
            (held, page.next_page_token)
        }
    })
    .await;
    assert_eq!(held.len(), 3);
    assert!(held.windows(2).all(|w| w[0] > w[1]), "newest first");

    // Only the other company is overdue; each advisor sees only its own.
    let all = mentoring
        .dashboard()
        .list_overdue_contacts(pb::ListOverdueContactsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(all.contacts.len(), 1);
    assert_eq!(all.contacts[0].assignment_id, other.assignment_id);
    let own = mentoring
        .advisor(&mine.advisor_id)
        .list_overdue_contacts(pb::ListOverdueContactsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(own.contacts.is_empty());
    let busan = mentoring
        .dashboard()
        .list_overdue_contacts(pb::ListOverdueContactsRequest {
            region: "KR-11".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert!(busan.contacts.is_empty(), "the companies are in KR-26");
}
