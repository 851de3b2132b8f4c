//! The contact cadence: assignments whose next contact is past due, and
//! the periods already announced.

use chrono::{DateTime, Utc};
use onestop_contracts::mentoring::v1 as pb;
use onestop_domain::GrowthStage;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::stage_proto;
use crate::domain::cadence::{OverdueFilter, periods_missed};

/// ACTIVE assignments whose next contact is past due at `now`, most
/// overdue first.
pub async fn list_overdue(
    conn: &mut PgConnection,
    filter: &OverdueFilter,
    now: DateTime<Utc>,
    page: &Page<(DateTime<Utc>, Uuid)>,
) -> Result<Vec<((DateTime<Utc>, Uuid), pb::OverdueContact)>, sqlx::Error> {
    let (after_due, after_id) = page.after.unzip();
    let rows = sqlx::query(
        "SELECT * FROM (
             SELECT a.id, a.company_id, a.advisor_id, a.stage, a.contact_interval_days,
                    a.last_contact_at, coalesce(a.last_contact_at, a.started_at) AS since,
                    coalesce(a.last_contact_at, a.started_at)
                        + make_interval(days => a.contact_interval_days) AS due_at
               FROM assignment a JOIN company c ON c.id = a.company_id
              WHERE a.status = 'ACTIVE'
                AND ($2::uuid IS NULL OR a.advisor_id = $2)
                AND ($3::text IS NULL OR c.region = $3)
                AND ($4::text IS NULL OR a.stage = $4)) o
          WHERE o.due_at <= $1
            AND ($5::timestamptz IS NULL OR (o.due_at, o.id) > ($5, $6))
          ORDER BY o.due_at, o.id
          LIMIT $7",
    )
    .bind(now)
    .bind(filter.advisor_id)
    .bind(&filter.region)
    .bind(filter.stage.map(GrowthStage::as_str))
    .bind(after_due)
    .bind(after_id)
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let interval: i32 = row.get("contact_interval_days");
            let since: DateTime<Utc> = row.get("since");
            let due_at: DateTime<Utc> = row.get("due_at");
            let id: Uuid = row.get("id");
            let contact = pb::OverdueContact {
                assignment_id: id.to_string(),
                company_id: row.get::<Uuid, _>("company_id").to_string(),
                advisor_id: row.get::<Uuid, _>("advisor_id").to_string(),
                stage: stage_proto(row.get("stage")),
                contact_interval_days: interval.max(0) as u32,
                last_contact_at: row
                    .get::<Option<DateTime<Utc>>, _>("last_contact_at")
                    .map(to_timestamp),
                due_at: Some(to_timestamp(due_at)),
                days_overdue: (now - due_at).num_days().max(0) as u32,
                periods_overdue: periods_missed(since, interval, now).clamp(0, i64::from(u32::MAX))
                    as u32,
            };
            ((due_at, id), contact)
        })
        .collect())
}

pub struct DueContact {
    pub id: Uuid,
    pub company_id: Uuid,
    pub advisor_id: Uuid,
    pub interval_days: i32,
    pub last_contact_at: Option<DateTime<Utc>>,
    pub since: DateTime<Utc>,
    pub periods_raised: i32,
}

/// ACTIVE assignments with a cadence period due and not yet announced,
/// locked; rows another sweeper holds are skipped.
pub async fn claim_due_contacts(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<DueContact>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, company_id, advisor_id, contact_interval_days, last_contact_at,
                coalesce(last_contact_at, started_at) AS since, overdue_periods_raised
           FROM assignment
          WHERE status = 'ACTIVE'
            AND coalesce(last_contact_at, started_at)
                + make_interval(days => contact_interval_days * (overdue_periods_raised + 1)) <= $1
          ORDER BY id
          LIMIT 500
          FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| DueContact {
            id: row.get("id"),
            company_id: row.get("company_id"),
            advisor_id: row.get("advisor_id"),
            interval_days: row.get("contact_interval_days"),
            last_contact_at: row.get("last_contact_at"),
            since: row.get("since"),
            periods_raised: row.get("overdue_periods_raised"),
        })
        .collect())
}

/// Records that periods up to `periods` were announced; false when another
/// sweeper got there first.
pub async fn mark_periods_raised(
    conn: &mut PgConnection,
    id: Uuid,
    from: i32,
    periods: i32,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE assignment SET overdue_periods_raised = $3
          WHERE id = $1 AND overdue_periods_raised = $2",
    )
    .bind(id)
    .bind(from)
    .bind(periods)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Most live assignments of one company a stage change moves.
const MAX_LIVE_ASSIGNMENTS: i64 = 20;

/// A live assignment moved to another stage's cadence.
#[derive(Debug)]
pub struct CadenceMove {
    pub assignment_id: Uuid,
    pub advisor_id: Uuid,
    pub previous_interval_days: i32,
}

/// Moves the company's live assignments (and the company's own record) to
/// `stage` and its contact interval: the ACTIVE one and any in HANDOVER,
/// whose outgoing advisor still works with the company until the window
/// ends and reads the same stage and next contact as its successor. Empty
/// when it has none or they follow that stage already. A company has one
/// ACTIVE assignment and a HANDOVER one per change of advisor within a
/// window, so [`MAX_LIVE_ASSIGNMENTS`] is never reached in practice.
pub async fn move_to_stage(
    conn: &mut PgConnection,
    company_id: Uuid,
    stage: GrowthStage,
    contact_interval_days: u32,
) -> Result<Vec<CadenceMove>, sqlx::Error> {
    sqlx::query("UPDATE company SET stage = $2, updated_at = now() WHERE id = $1")
        .bind(company_id)
        .bind(stage.as_str())
        .execute(&mut *conn)
        .await?;
    let rows = sqlx::query(
        "WITH live AS (
             SELECT id, contact_interval_days FROM assignment
              WHERE company_id = $1 AND status IN ('ACTIVE', 'HANDOVER')
              ORDER BY id
              LIMIT $4
              FOR UPDATE)
         UPDATE assignment a SET stage = $2, contact_interval_days = $3
           FROM live
          WHERE a.id = live.id
            AND (a.stage <> $2 OR a.contact_interval_days <> $3)
         RETURNING a.id, a.advisor_id, live.contact_interval_days AS previous",
    )
    .bind(company_id)
    .bind(stage.as_str())
    .bind(contact_interval_days as i32)
    .bind(MAX_LIVE_ASSIGNMENTS)
    .fetch_all(conn)
    .await?;
    let mut moved: Vec<CadenceMove> = rows
        .into_iter()
        .map(|row| CadenceMove {
            assignment_id: row.get("id"),
            advisor_id: row.get("advisor_id"),
            previous_interval_days: row.get("previous"),
        })
        .collect();
    // Events in a stable order, whatever order the update returned.
    moved.sort_by_key(|m| m.assignment_id);
    Ok(moved)
}
