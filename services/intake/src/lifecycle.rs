//! How needs finish and cases close. A need finishes when its owner
//! reports it DONE or CANCELLED, or when a partner cancels it; the case
//! closes in the same transaction as its last need's change, or when a
//! partner closes it. Every change appends its event in that transaction.
//!
//! Callers lock the case (`store::lock_case_status`) before its needs, so
//! two needs finishing at once cannot both miss that the case is done.
//! Reasons and outcome summaries are people's words: they stay in intake's
//! tables and never reach the feed or the timeline.

use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_platform::events::NewEvent;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::domain::case::{CloseCause, NeedStatus};
use crate::relationships;
use crate::startup::SERVICE_NAME;
use crate::store::{self, LockedNeed, NewEntry};

/// `cause` for a need a partner cancelled with CancelNeed.
pub const CANCELLED_BY_PARTNER: &str = "need.cancelled";
/// The reason stored on needs CloseCase cancels.
pub const CLOSED_WITH_CASE: &str = "case closed";

/// The `need.status_changed` event for the need's move.
pub fn status_changed(case_id: Uuid, need: &LockedNeed, to: NeedStatus, cause: &str) -> NewEvent {
    NewEvent::new(
        IntakeEvent::NeedStatusChanged,
        case_id,
        &pb::NeedStatusChanged {
            need_id: need.need_id.to_string(),
            case_id: case_id.to_string(),
            from: need.status.to_proto() as i32,
            to: to.to_proto() as i32,
            cause: cause.to_owned(),
            owner: need.owner.to_proto() as i32,
        },
    )
}

/// Cancels the need (not yet finished) with `reason`; its owner learns of
/// it from the `need.status_changed` event and closes its record.
pub async fn cancel_need(
    conn: &mut PgConnection,
    case_id: Uuid,
    need: &LockedNeed,
    reason: &str,
    cause: &str,
) -> anyhow::Result<()> {
    store::cancel_need(conn, need.need_id, reason).await?;
    store::add_timeline_entry(
        conn,
        &NewEntry {
            case_id,
            need_id: Some(need.need_id),
            service: SERVICE_NAME,
            kind: IntakeEvent::NeedStatusChanged.name(),
            summary: &format!(
                "Need {} cancelled; its owner closes its record",
                need.category.as_str()
            ),
            at: None,
            source_event: None,
            agency_only: None,
        },
    )
    .await?;
    relationships::append_for_case(
        conn,
        case_id,
        [status_changed(case_id, need, NeedStatus::Cancelled, cause)],
    )
    .await?;
    Ok(())
}

/// Closes the open case when every need is DONE or CANCELLED; returns
/// whether it did.
pub async fn close_if_finished(
    conn: &mut PgConnection,
    case_id: Uuid,
    company_id: Uuid,
) -> anyhow::Result<bool> {
    let tally = store::tally_needs(conn, case_id).await?;
    if tally.unfinished > 0 || tally.done + tally.cancelled == 0 {
        return Ok(false);
    }
    close_case(conn, case_id, company_id, CloseCause::NeedsFinished, "").await?;
    Ok(true)
}

/// Closes the open case, whose needs are all finished by now.
pub async fn close_case(
    conn: &mut PgConnection,
    case_id: Uuid,
    company_id: Uuid,
    cause: CloseCause,
    outcome_summary: &str,
) -> anyhow::Result<()> {
    let tally = store::tally_needs(conn, case_id).await?;
    store::close_case(conn, case_id, cause, outcome_summary).await?;
    let why = match cause {
        CloseCause::NeedsFinished => "every need is done or cancelled",
        CloseCause::ClosedByPartner => "closed by a partner with an outcome summary",
    };
    let closed = IntakeEvent::CaseClosed;
    store::add_timeline_entry(
        conn,
        &NewEntry {
            case_id,
            need_id: None,
            service: SERVICE_NAME,
            kind: closed.name(),
            summary: &format!(
                "Case closed: {why} ({} done, {} cancelled)",
                tally.done, tally.cancelled
            ),
            at: None,
            source_event: None,
            agency_only: None,
        },
    )
    .await?;
    relationships::append_for_case(
        conn,
        case_id,
        [NewEvent::new(
            closed,
            case_id,
            &pb::CaseClosed {
                case_id: case_id.to_string(),
                company_id: company_id.to_string(),
                cause: cause.to_proto() as i32,
                needs_done: tally.done,
                needs_cancelled: tally.cancelled,
            },
        )],
    )
    .await?;
    tracing::info!(case_id = %case_id, cause = cause.as_str(), "case closed");
    Ok(())
}
