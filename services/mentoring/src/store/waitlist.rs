//! The waitlist: companies waiting for an advisor with a free slot, in fill
//! order, and the lock that serialises queueing with filling.

use chrono::{DateTime, Utc};
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::time::to_timestamp;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{id_text, key_parts};
use crate::domain::waitlist::{WaitlistKey, WaitlistQuery, WaitlistStatus};

/// Advisory lock key serialising waitlist inserts with waitlist fills, so
/// a request never queues behind capacity that freed while it looked.
const WAITLIST_LOCK: i64 = 0x6d65_6e74_5f77_6169;

/// Takes the waitlist lock until the transaction ends.
pub async fn lock_waitlist(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(WAITLIST_LOCK)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn insert_waitlist_entry(
    conn: &mut PgConnection,
    id: Uuid,
    need: Option<(Uuid, Uuid)>,
    company_id: Uuid,
    outgoing: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO waitlist_entry (id, need_id, case_id, company_id, status, priority,
             outgoing_assignment_id, requested_at)
         VALUES ($1, $2, $3, $4, 'WAITING', $5, $6, $7)",
    )
    .bind(id)
    .bind(need.map(|(need_id, _)| need_id))
    .bind(need.map(|(_, case_id)| case_id))
    .bind(company_id)
    .bind(if outgoing.is_some() { 0 } else { 1 })
    .bind(outgoing)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

const WAITLIST_SELECT: &str = "SELECT w.id, w.need_id, w.case_id, w.company_id, w.status,
        w.outgoing_assignment_id, w.requested_at, w.assignment_id, w.filled_at,
        CASE WHEN w.status = 'WAITING' THEN
            (SELECT count(*) FROM waitlist_entry o WHERE o.status = 'WAITING'
               AND (o.priority, o.requested_at, o.id) <= (w.priority, w.requested_at, w.id))
        ELSE 0 END AS position,
        CASE WHEN w.status = 'WAITING' THEN w.priority ELSE 2 END AS sort_group,
        CASE WHEN w.status = 'WAITING'
             THEN (extract(epoch FROM w.requested_at) * 1000000)::bigint
             ELSE -(extract(epoch FROM coalesce(w.filled_at, w.requested_at)) * 1000000)::bigint
        END AS sort_time
   FROM waitlist_entry w";

fn waitlist_from_row(row: &sqlx::postgres::PgRow) -> pb::WaitlistEntry {
    pb::WaitlistEntry {
        waitlist_entry_id: row.get::<Uuid, _>("id").to_string(),
        need_id: id_text(row.get("need_id")),
        case_id: id_text(row.get("case_id")),
        company_id: row.get::<Uuid, _>("company_id").to_string(),
        status: WaitlistStatus::proto_from_stored(row.get("status")),
        position: row.get::<i64, _>("position").max(0) as u32,
        outgoing_assignment_id: id_text(row.get("outgoing_assignment_id")),
        requested_at: Some(to_timestamp(row.get("requested_at"))),
        assignment_id: id_text(row.get("assignment_id")),
        filled_at: row
            .get::<Option<DateTime<Utc>>, _>("filled_at")
            .map(to_timestamp),
    }
}

pub async fn load_waitlist_entry(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<pb::WaitlistEntry>, sqlx::Error> {
    let row = sqlx::query(&format!("{WAITLIST_SELECT} WHERE w.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.as_ref().map(waitlist_from_row))
}

/// The waitlist entry of a need handed over before, whatever its status.
pub async fn waitlist_entry_of_need(
    conn: &mut PgConnection,
    need_id: Uuid,
) -> Result<Option<pb::WaitlistEntry>, sqlx::Error> {
    let row = sqlx::query(&format!("{WAITLIST_SELECT} WHERE w.need_id = $1"))
        .bind(need_id)
        .fetch_optional(conn)
        .await?;
    Ok(row.as_ref().map(waitlist_from_row))
}

pub async fn waiting_entry_of_company(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<Option<pb::WaitlistEntry>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "{WAITLIST_SELECT} WHERE w.company_id = $1 AND w.status = 'WAITING'"
    ))
    .bind(company_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(waitlist_from_row))
}

pub struct Waiting {
    pub id: Uuid,
    pub company_id: Uuid,
    pub outgoing: Option<Uuid>,
}

/// The waiting entries in fill order, locked; entries another replica is
/// filling are skipped.
pub async fn claim_waiting(conn: &mut PgConnection) -> Result<Vec<Waiting>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, company_id, outgoing_assignment_id FROM waitlist_entry
          WHERE status = 'WAITING'
          ORDER BY priority, requested_at, id
          LIMIT 200
          FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Waiting {
            id: row.get("id"),
            company_id: row.get("company_id"),
            outgoing: row.get("outgoing_assignment_id"),
        })
        .collect())
}

pub async fn mark_filled(
    conn: &mut PgConnection,
    id: Uuid,
    assignment_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE waitlist_entry SET status = 'FILLED', assignment_id = $2, filled_at = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(assignment_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// WAITING entries in fill order first, then FILLED ones newest first.
pub async fn list_waitlist(
    conn: &mut PgConnection,
    query: &WaitlistQuery,
) -> Result<Vec<(WaitlistKey, pb::WaitlistEntry)>, sqlx::Error> {
    let (group, time, id) = key_parts(query.page.after);
    let rows = sqlx::query(&format!(
        "SELECT * FROM ({WAITLIST_SELECT}) w
          WHERE ($1::text IS NULL OR w.status = $1) AND ($2::uuid IS NULL OR w.company_id = $2)
            AND ($3::int IS NULL OR (w.sort_group, w.sort_time, w.id) > ($3, $4, $5))
          ORDER BY w.sort_group, w.sort_time, w.id
          LIMIT $6"
    ))
    .bind(query.status.map(WaitlistStatus::as_str))
    .bind(query.company_id)
    .bind(group)
    .bind(time)
    .bind(id)
    .bind(query.page.fetch_limit())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let key = (row.get("sort_group"), row.get("sort_time"), row.get("id"));
            (key, waitlist_from_row(row))
        })
        .collect())
}
