//! Companies' requests to agencies left unanswered past their due date,
//! as intake reports them, for the advisors following up.

use chrono::{DateTime, Utc};
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::time::to_timestamp;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// A request intake reported overdue.
pub struct ReportedOverdue<'a> {
    pub request_id: Uuid,
    pub case_id: Uuid,
    pub company_id: Uuid,
    pub answering_agency_id: &'a str,
    pub kind: &'a str,
    pub escalation_level: i32,
    pub due_at: DateTime<Utc>,
}

/// Keeps the request while the company has an ACTIVE assignment; returns
/// whether it was kept.
pub async fn keep_overdue_request(
    conn: &mut PgConnection,
    request: &ReportedOverdue<'_>,
) -> Result<bool, sqlx::Error> {
    let kept = sqlx::query(
        "INSERT INTO overdue_request (request_id, case_id, company_id, answering_agency_id, kind,
                                      escalation_level, due_at)
         SELECT $1, $2, $3, $4, $5, $6, $7
          WHERE EXISTS (SELECT 1 FROM assignment WHERE company_id = $3 AND status = 'ACTIVE')
         ON CONFLICT (request_id) DO UPDATE
            SET answering_agency_id = EXCLUDED.answering_agency_id,
                escalation_level = EXCLUDED.escalation_level, due_at = EXCLUDED.due_at",
    )
    .bind(request.request_id)
    .bind(request.case_id)
    .bind(request.company_id)
    .bind(request.answering_agency_id)
    .bind(request.kind)
    .bind(request.escalation_level)
    .bind(request.due_at)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(kept > 0)
}

/// Forgets the request: answered, or escalated with a new due date.
pub async fn forget_overdue_request(
    conn: &mut PgConnection,
    request_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM overdue_request WHERE request_id = $1")
        .bind(request_id)
        .execute(conn)
        .await?;
    Ok(())
}

/// The overdue requests of companies with an ACTIVE assignment (to
/// `advisor_id` when set), oldest due first, at most `limit`.
pub async fn list_overdue_requests(
    conn: &mut PgConnection,
    advisor_id: Option<Uuid>,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<pb::OverdueRequest>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT r.request_id, r.case_id, r.company_id, r.answering_agency_id, r.kind,
                r.escalation_level, r.due_at, a.id AS assignment_id, a.advisor_id
           FROM overdue_request r
           JOIN assignment a ON a.company_id = r.company_id AND a.status = 'ACTIVE'
          WHERE $1::uuid IS NULL OR a.advisor_id = $1
          ORDER BY r.due_at, r.request_id
          LIMIT $2",
    )
    .bind(advisor_id)
    .bind(limit)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let due_at: DateTime<Utc> = row.get("due_at");
            pb::OverdueRequest {
                request_id: row.get::<Uuid, _>("request_id").to_string(),
                case_id: row.get::<Uuid, _>("case_id").to_string(),
                company_id: row.get::<Uuid, _>("company_id").to_string(),
                advisor_id: row.get::<Uuid, _>("advisor_id").to_string(),
                assignment_id: row.get::<Uuid, _>("assignment_id").to_string(),
                answering_agency_id: row.get("answering_agency_id"),
                kind: row.get("kind"),
                escalation_level: row.get::<i32, _>("escalation_level").max(0) as u32,
                due_at: Some(to_timestamp(due_at)),
                days_overdue: (now - due_at).num_days().max(0) as u32,
            }
        })
        .collect())
}
