//! Assignments: a company's advisor, the needs it serves, its way out of
//! ACTIVE (handover, end) and the pages of a company's history.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use onestop_contracts::common::v1::Money;
use onestop_contracts::mentoring::v1 as pb;
use onestop_domain::GrowthStage;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use prost::Message;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{Lock, id_text, key_parts, money, stage_proto};
use crate::domain::change::{ChangeReason, HistoryKey};

const ACTIVE: &str = "ACTIVE";
const HANDOVER: &str = "HANDOVER";
const ENDED: &str = "ENDED";

pub struct NewAssignment<'a> {
    pub id: Uuid,
    pub company_id: Uuid,
    pub advisor_id: Uuid,
    pub stage: GrowthStage,
    pub score: &'a pb::AdvisorScore,
    pub started_at: DateTime<Utc>,
    pub committed_until: DateTime<Utc>,
    pub predecessor: Option<Uuid>,
    pub contact_interval_days: u32,
    pub program_id: String,
    pub monthly_fee: Option<Money>,
    pub from_waitlist: bool,
}

pub async fn insert_assignment(
    conn: &mut PgConnection,
    new: &NewAssignment<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO assignment (id, company_id, advisor_id, status, stage, score, score_total,
             started_at, committed_until, predecessor_assignment_id, contact_interval_days,
             program_id, fee_currency, fee_minor, from_waitlist)
         VALUES ($1, $2, $3, 'ACTIVE', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(new.id)
    .bind(new.company_id)
    .bind(new.advisor_id)
    .bind(new.stage.as_str())
    .bind(new.score.encode_to_vec())
    .bind(new.score.total)
    .bind(new.started_at)
    .bind(new.committed_until)
    .bind(new.predecessor)
    .bind(new.contact_interval_days as i32)
    .bind(&new.program_id)
    .bind(new.monthly_fee.as_ref().map(|m| m.currency_code.clone()))
    .bind(new.monthly_fee.as_ref().map(|m| m.amount_minor))
    .bind(new.from_waitlist)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AssignmentRow {
    id: Uuid,
    company_id: Uuid,
    advisor_id: Uuid,
    status: String,
    stage: String,
    score: Vec<u8>,
    started_at: DateTime<Utc>,
    committed_until: DateTime<Utc>,
    handover_until: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    end_reason: Option<String>,
    end_note: String,
    predecessor_assignment_id: Option<Uuid>,
    successor_assignment_id: Option<Uuid>,
    contact_interval_days: i32,
    last_contact_at: Option<DateTime<Utc>>,
    program_id: String,
    fee_currency: Option<String>,
    fee_minor: Option<i64>,
    from_waitlist: bool,
}

const ASSIGNMENT_COLUMNS: &str = "id, company_id, advisor_id, status, stage, score, started_at, \
     committed_until, handover_until, ended_at, end_reason, end_note, predecessor_assignment_id, \
     successor_assignment_id, contact_interval_days, last_contact_at, program_id, fee_currency, \
     fee_minor, from_waitlist";

fn assignment_status(stored: &str) -> i32 {
    let status = match stored {
        ACTIVE => pb::AssignmentStatus::Active,
        HANDOVER => pb::AssignmentStatus::Handover,
        ENDED => pb::AssignmentStatus::Ended,
        _ => pb::AssignmentStatus::Unspecified,
    };
    status as i32
}

impl AssignmentRow {
    fn into_proto(self, needs: Vec<pb::NeedRef>) -> pb::Assignment {
        let since = self.last_contact_at.unwrap_or(self.started_at);
        let next_due = since + Duration::days(i64::from(self.contact_interval_days));
        pb::Assignment {
            assignment_id: self.id.to_string(),
            company_id: self.company_id.to_string(),
            advisor_id: self.advisor_id.to_string(),
            status: assignment_status(&self.status),
            needs,
            stage: stage_proto(&self.stage),
            score: pb::AdvisorScore::decode(self.score.as_slice()).ok(),
            started_at: Some(to_timestamp(self.started_at)),
            committed_until: Some(to_timestamp(self.committed_until)),
            handover_until: self.handover_until.map(to_timestamp),
            ended_at: self.ended_at.map(to_timestamp),
            end_reason: ChangeReason::proto_from_stored(self.end_reason.as_deref()),
            end_note: self.end_note,
            predecessor_assignment_id: id_text(self.predecessor_assignment_id),
            successor_assignment_id: id_text(self.successor_assignment_id),
            contact_interval_days: self.contact_interval_days.max(0) as u32,
            last_contact_at: self.last_contact_at.map(to_timestamp),
            next_contact_due_at: (self.status != ENDED).then(|| to_timestamp(next_due)),
            program_id: self.program_id,
            monthly_fee: money(self.fee_currency, self.fee_minor),
            from_waitlist: self.from_waitlist,
        }
    }
}

/// Needs an assignment shows: every later need of the company joins its
/// assignment, so over the years the list would grow without bound; the
/// first ones (the need that created it first) name its cases, and each
/// need stays on its case in intake.
pub const NEEDS_SHOWN: i64 = 50;

async fn needs_of_many(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<pb::NeedRef>>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT assignment_id, need_id, case_id FROM (
                SELECT an.assignment_id, an.need_id, an.case_id, n.received_at,
                       row_number() OVER (PARTITION BY an.assignment_id
                                          ORDER BY n.received_at, n.need_id) AS nth
                  FROM assignment_need an JOIN need_request n ON n.need_id = an.need_id
                 WHERE an.assignment_id = ANY($1)) ranked
          WHERE nth <= $2
          ORDER BY received_at, need_id",
    )
    .bind(ids)
    .bind(NEEDS_SHOWN)
    .fetch_all(conn)
    .await?;
    let mut needs: HashMap<Uuid, Vec<pb::NeedRef>> = HashMap::new();
    for row in rows {
        needs
            .entry(row.get("assignment_id"))
            .or_default()
            .push(pb::NeedRef {
                need_id: row.get::<Uuid, _>("need_id").to_string(),
                case_id: row.get::<Uuid, _>("case_id").to_string(),
            });
    }
    Ok(needs)
}

async fn with_needs(
    conn: &mut PgConnection,
    rows: Vec<AssignmentRow>,
) -> Result<Vec<pb::Assignment>, sqlx::Error> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut needs = needs_of_many(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let of_row = needs.remove(&row.id).unwrap_or_default();
            row.into_proto(of_row)
        })
        .collect())
}

/// The one assignment matching `condition` (on `$1`), with its needs.
async fn one_assignment(
    conn: &mut PgConnection,
    condition: &str,
    key: Uuid,
) -> Result<Option<pb::Assignment>, sqlx::Error> {
    let sql = format!("SELECT {ASSIGNMENT_COLUMNS} FROM assignment WHERE {condition}");
    let row: Option<AssignmentRow> = sqlx::query_as(&sql)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(with_needs(conn, row.into_iter().collect()).await?.pop())
}

pub async fn load_assignment(
    conn: &mut PgConnection,
    id: Uuid,
    lock: Lock,
) -> Result<Option<pb::Assignment>, sqlx::Error> {
    one_assignment(conn, &format!("id = $1{}", lock.clause()), id).await
}

/// The assignment serving a need handed over before: the active one if
/// any, else the latest.
pub async fn assignment_serving_need(
    conn: &mut PgConnection,
    need_id: Uuid,
) -> Result<Option<pb::Assignment>, sqlx::Error> {
    one_assignment(
        conn,
        "id = (SELECT a.id FROM assignment_need an JOIN assignment a ON a.id = an.assignment_id
                WHERE an.need_id = $1
                ORDER BY (a.status = 'ACTIVE') DESC, a.id DESC LIMIT 1)",
        need_id,
    )
    .await
}

pub async fn active_assignment_of(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<Option<pb::Assignment>, sqlx::Error> {
    one_assignment(conn, "company_id = $1 AND status = 'ACTIVE'", company_id).await
}

/// A page of the company's assignments, oldest first with the ACTIVE one
/// last.
/// A page of the company's assignments; only `advisor`'s when given.
pub async fn assignments_of_company(
    conn: &mut PgConnection,
    company_id: Uuid,
    advisor: Option<Uuid>,
    page: &Page<HistoryKey>,
) -> Result<Vec<(HistoryKey, pb::Assignment)>, sqlx::Error> {
    let (active, started_at, id) = key_parts(page.after);
    let sql = format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignment
          WHERE company_id = $1
            AND ($6::uuid IS NULL OR advisor_id = $6)
            AND ($2::int IS NULL OR ((status = 'ACTIVE')::int, started_at, id) > ($2, $3, $4))
          ORDER BY (status = 'ACTIVE'), started_at, id
          LIMIT $5"
    );
    let rows: Vec<AssignmentRow> = sqlx::query_as(&sql)
        .bind(company_id)
        .bind(active)
        .bind(started_at)
        .bind(id)
        .bind(page.fetch_limit())
        .bind(advisor)
        .fetch_all(&mut *conn)
        .await?;
    let keys: Vec<HistoryKey> = rows
        .iter()
        .map(|row| (i32::from(row.status == ACTIVE), row.started_at, row.id))
        .collect();
    Ok(keys
        .into_iter()
        .zip(with_needs(conn, rows).await?)
        .collect())
}

/// Every advisor the company has had, to decide who may read its history.
pub async fn advisors_of_company(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT DISTINCT advisor_id FROM assignment WHERE company_id = $1")
        .bind(company_id)
        .fetch_all(conn)
        .await
}

/// Companies the advisor serves as their ACTIVE advisor.
pub async fn companies_of_advisor(
    conn: &mut PgConnection,
    advisor_id: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT company_id FROM assignment WHERE advisor_id = $1 AND status = 'ACTIVE'",
    )
    .bind(advisor_id)
    .fetch_all(conn)
    .await
}

pub async fn add_need_to_assignment(
    conn: &mut PgConnection,
    assignment_id: Uuid,
    need_id: Uuid,
    case_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO assignment_need (assignment_id, need_id, case_id) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(assignment_id)
    .bind(need_id)
    .bind(case_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_stage(
    conn: &mut PgConnection,
    assignment_id: Uuid,
    stage: GrowthStage,
    contact_interval_days: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE assignment SET stage = $2, contact_interval_days = $3
          WHERE id = $1 AND stage <> $2",
    )
    .bind(assignment_id)
    .bind(stage.as_str())
    .bind(contact_interval_days as i32)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves an ACTIVE assignment out of ACTIVE: to HANDOVER until
/// `handover_until`, or ENDED at once when that is None.
pub async fn retire_assignment(
    conn: &mut PgConnection,
    id: Uuid,
    reason: ChangeReason,
    note: &str,
    now: DateTime<Utc>,
    handover_until: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE assignment
            SET status = CASE WHEN $5::timestamptz IS NULL THEN 'ENDED' ELSE 'HANDOVER' END,
                handover_until = $5,
                ended_at = CASE WHEN $5::timestamptz IS NULL THEN $4 END,
                end_reason = $2, end_note = $3
          WHERE id = $1 AND status = 'ACTIVE'",
    )
    .bind(id)
    .bind(reason.as_str())
    .bind(note)
    .bind(now)
    .bind(handover_until)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

pub async fn set_successor(
    conn: &mut PgConnection,
    id: Uuid,
    successor: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE assignment SET successor_assignment_id = $2 WHERE id = $1")
        .bind(id)
        .bind(successor)
        .execute(conn)
        .await?;
    Ok(())
}

/// A HANDOVER assignment whose window has passed.
pub struct FinishedHandover {
    pub id: Uuid,
    pub company_id: Uuid,
    pub advisor_id: Uuid,
    /// The wire value of the reason it was replaced.
    pub reason: i32,
    pub successor: Uuid,
}

/// HANDOVER assignments whose window has passed and whose successor is in
/// place, locked for ending; another replica's sweep skips them.
pub async fn claim_finished_handovers(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<FinishedHandover>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, company_id, advisor_id, end_reason, successor_assignment_id FROM assignment
          WHERE status = 'HANDOVER' AND handover_until <= $1 AND successor_assignment_id IS NOT NULL
          ORDER BY handover_until, id
          LIMIT 200
          FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| FinishedHandover {
            id: row.get("id"),
            company_id: row.get("company_id"),
            advisor_id: row.get("advisor_id"),
            reason: ChangeReason::proto_from_stored(row.get("end_reason")),
            successor: row.get("successor_assignment_id"),
        })
        .collect())
}

pub async fn end_handover(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE assignment SET status = 'ENDED', ended_at = $2 WHERE id = $1 AND status = 'HANDOVER'")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}
