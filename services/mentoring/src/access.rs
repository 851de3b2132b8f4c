//! What each caller may read here beyond its role: advisors only their own
//! records (assignments, history, sessions), dashboards no free text
//! (session topics and follow-up actions, end and change notes), and every
//! read that shows an advisor's contact is recorded in the audit log.

use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::audit::{self, PersonalData};
use onestop_platform::{Caller, Role};
use sqlx::PgConnection;

fn shows_free_text(caller: &Caller) -> bool {
    caller.role != Role::Dashboard
}

pub fn present_assignment(caller: &Caller, mut assignment: pb::Assignment) -> pb::Assignment {
    if !shows_free_text(caller) {
        assignment.end_note.clear();
    }
    assignment
}

pub fn present_history(caller: &Caller, mut history: pb::AdvisorHistory) -> pb::AdvisorHistory {
    if !shows_free_text(caller) {
        for assignment in &mut history.assignments {
            assignment.end_note.clear();
        }
        for change in &mut history.changes {
            change.note.clear();
        }
    }
    history
}

pub fn present_session(caller: &Caller, mut session: pb::Session) -> pb::Session {
    if !shows_free_text(caller) {
        session.topics.clear();
        for action in &mut session.follow_up_actions {
            action.description.clear();
        }
    }
    session
}

/// Records in the audit log that the response shows these advisors'
/// contacts (those it shows).
pub async fn audit_contacts(
    conn: &mut PgConnection,
    advisors: &[&pb::Advisor],
) -> Result<(), sqlx::Error> {
    let shown: Vec<String> = advisors
        .iter()
        .filter(|advisor| {
            advisor
                .profile
                .as_ref()
                .is_some_and(|profile| profile.contact.is_some())
        })
        .map(|advisor| advisor.advisor_id.clone())
        .collect();
    audit::record_read(conn, "advisor", &shown, PersonalData::Contacts).await
}
