//! Trade-show follow-up cadence: each lead is checked one week, three
//! months and six months after the show.

use chrono::{DateTime, Duration, Months, Utc};
use onestop_contracts::buyers::v1 as pb;

pub const CHECKPOINTS: [pb::CheckpointKind; 3] = [
    pb::CheckpointKind::OneWeek,
    pb::CheckpointKind::ThreeMonths,
    pb::CheckpointKind::SixMonths,
];

pub fn due_at(show_date: DateTime<Utc>, kind: pb::CheckpointKind) -> DateTime<Utc> {
    match kind {
        pb::CheckpointKind::OneWeek => show_date + Duration::days(7),
        pb::CheckpointKind::ThreeMonths => show_date
            .checked_add_months(Months::new(3))
            .unwrap_or(show_date),
        pb::CheckpointKind::SixMonths | pb::CheckpointKind::Unspecified => show_date
            .checked_add_months(Months::new(6))
            .unwrap_or(show_date),
    }
}

/// Progress beyond a failed attempt: anything better than NO_CONTACT.
pub fn is_progress(outcome: i32) -> bool {
    outcome > pb::FollowUpOutcome::NoContact as i32
}

pub fn is_valid_outcome(outcome: i32) -> bool {
    matches!(
        pb::FollowUpOutcome::try_from(outcome),
        Ok(o) if o != pb::FollowUpOutcome::Unspecified
    )
}

/// What a lead becomes when its six-month checkpoint falls due without an
/// agreement.
pub fn status_after_cadence(best_outcome: i32) -> pb::LeadStatus {
    if is_progress(best_outcome) {
        pb::LeadStatus::CadenceCompleted
    } else {
        pb::LeadStatus::Reactivation
    }
}
