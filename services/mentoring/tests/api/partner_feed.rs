//! An advisor's partner feed: its Watch stream on mentoring's event feed
//! carries its own assignments (created, sessions, handed on) and nothing
//! of another advisor's companies; its cursor resumes like anyone's.

use chrono::Duration as Span;
use onestop_contracts::events::v1::Event;
use onestop_contracts::mentoring::v1 as pb;
use onestop_test_support::{Bearer, events_until_quiet};

use crate::common::{Mentoring, plain_advisor};
use crate::continuity::reassign;
use crate::sessions::session;

/// Everything `advisor_id` may watch after `after`.
async fn watch_all(mentoring: &Mentoring, advisor_id: &str, after: i64) -> Vec<Event> {
    events_until_quiet(mentoring.client(Bearer::advisor(advisor_id)), after).await
}

/// Whether the event's payload names `id` anywhere.
fn mentions(event: &Event, id: &str) -> bool {
    let payload = event.payload.as_ref().map_or(&[][..], |p| &p.value[..]);
    payload.windows(id.len()).any(|w| w == id.as_bytes())
}

#[tokio::test]
async fn an_advisor_watches_only_its_own_assignments() {
    let mentoring = Mentoring::start().await;
    let mut single = plain_advisor();
    single.capacity = 1;
    let first = mentoring.register(single).await;
    let second = mentoring.register(plain_advisor()).await;
    let mine = mentoring.assign_new_company().await;
    assert_eq!(mine.advisor_id, first.advisor_id);
    let theirs = mentoring.assign_new_company().await;
    assert_eq!(theirs.advisor_id, second.advisor_id);
    let now = mentoring.clock.advance(Span::hours(2));
    mentoring
        .advisor(&first.advisor_id)
        .log_session(session(&mine.assignment_id, now, 5))
        .await
        .expect("the advisor logs a session");
    mentoring
        .advisor(&second.advisor_id)
        .log_session(session(&theirs.assignment_id, now, 5))
        .await
        .expect("the other advisor logs one too");
    let handed_on = mentoring
        .admin()
        .reassign_advisor(reassign(
            &mine.assignment_id,
            pb::ReassignReason::CompanyRequest,
        ))
        .await
        .expect("reassigned")
        .into_inner()
        .current
        .unwrap();
    assert_eq!(handed_on.advisor_id, second.advisor_id);

    let firsts = watch_all(&mentoring, &first.advisor_id, 0).await;
    let types: Vec<&str> = firsts.iter().map(|e| e.r#type.as_str()).collect();
    assert!(
        types.starts_with(&["assignment.created", "session.logged"]),
        "{types:?}"
    );
    assert!(types.contains(&"assignment.reassigned"), "{types:?}");
    for event in &firsts {
        assert!(mentions(event, &first.advisor_id), "{}", event.r#type);
        assert!(
            !mentions(event, &theirs.assignment_id) && !mentions(event, &theirs.company_id),
            "{}: nothing of the other advisor's company",
            event.r#type
        );
        assert!(event.traceparent.is_empty());
    }
    // Nothing about advisors themselves (their profiles) reaches a partner.
    assert!(!types.iter().any(|t| t.starts_with("advisor.")));

    // The successor hears of both its companies, the handed-on one included.
    let seconds = watch_all(&mentoring, &second.advisor_id, 0).await;
    assert!(seconds.iter().any(|e| mentions(e, &theirs.assignment_id)));
    assert!(
        seconds
            .iter()
            .any(|e| mentions(e, &handed_on.assignment_id))
    );
    assert!(seconds.iter().all(|e| mentions(e, &second.advisor_id)));

    // Resuming from an event it handled gives the rest, nothing again.
    let resumed = watch_all(&mentoring, &first.advisor_id, firsts[0].id).await;
    let ids = |events: &[Event]| events.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(&resumed), ids(&firsts[1..]));
}
