//! The history of advisor changes: one row per change, completed with the
//! successor once there is one.

use chrono::{DateTime, Utc};
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::time::to_timestamp;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::id_text;
use crate::domain::change::ChangeReason;

pub struct NewChange {
    pub company_id: Uuid,
    pub from_assignment_id: Uuid,
    pub to_assignment_id: Option<Uuid>,
    pub from_advisor_id: Uuid,
    pub to_advisor_id: Option<Uuid>,
    pub reason: ChangeReason,
    pub note: String,
    pub changed_at: DateTime<Utc>,
    pub handover_until: Option<DateTime<Utc>>,
}

pub async fn insert_change(conn: &mut PgConnection, change: &NewChange) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO advisor_change (company_id, from_assignment_id, to_assignment_id,
             from_advisor_id, to_advisor_id, reason, note, changed_at, handover_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(change.company_id)
    .bind(change.from_assignment_id)
    .bind(change.to_assignment_id)
    .bind(change.from_advisor_id)
    .bind(change.to_advisor_id)
    .bind(change.reason.as_str())
    .bind(&change.note)
    .bind(change.changed_at)
    .bind(change.handover_until)
    .execute(conn)
    .await?;
    Ok(())
}

/// A change recorded while the successor was still being sought gets its
/// successor once the waitlist fills it.
pub async fn complete_change(
    conn: &mut PgConnection,
    from_assignment_id: Uuid,
    to_assignment_id: Uuid,
    to_advisor_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE advisor_change SET to_assignment_id = $2, to_advisor_id = $3
          WHERE from_assignment_id = $1 AND to_assignment_id IS NULL",
    )
    .bind(from_assignment_id)
    .bind(to_assignment_id)
    .bind(to_advisor_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// The changes that belong with a page of assignments, oldest first: the
/// ones that led to an assignment of the page, and the ones out of an
/// assignment of the page that have no successor (yet). Every change is
/// on exactly one page.
pub async fn changes_of_assignments(
    conn: &mut PgConnection,
    company_id: Uuid,
    assignment_ids: &[Uuid],
) -> Result<Vec<pb::AdvisorChange>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT from_assignment_id, to_assignment_id, from_advisor_id, to_advisor_id, reason, note,
                changed_at, handover_until
           FROM advisor_change
          WHERE company_id = $1
            AND (to_assignment_id = ANY($2)
                 OR (to_assignment_id IS NULL AND from_assignment_id = ANY($2)))
          ORDER BY id",
    )
    .bind(company_id)
    .bind(assignment_ids)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| pb::AdvisorChange {
            from_assignment_id: row.get::<Uuid, _>("from_assignment_id").to_string(),
            to_assignment_id: id_text(row.get("to_assignment_id")),
            from_advisor_id: row.get::<Uuid, _>("from_advisor_id").to_string(),
            to_advisor_id: id_text(row.get("to_advisor_id")),
            reason: ChangeReason::proto_from_stored(row.get("reason")),
            note: row.get("note"),
            changed_at: Some(to_timestamp(row.get("changed_at"))),
            handover_until: row
                .get::<Option<DateTime<Utc>>, _>("handover_until")
                .map(to_timestamp),
        })
        .collect())
}
