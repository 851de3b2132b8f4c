//! Advisor requests withdrawn because their need was cancelled at intake.

use chrono::{DateTime, Utc};
use sqlx::{PgConnection, Row};
use uuid::Uuid;

/// What withdrawing a request changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Withdrawal {
    pub case_id: Uuid,
    pub company_id: Uuid,
    pub left_waitlist: bool,
    /// The live assignment the request led to, which continues.
    pub assignment_id: Option<Uuid>,
}

/// Withdraws the request for `need_id`; None when there is none or it was
/// withdrawn already.
pub async fn withdraw_request(
    conn: &mut PgConnection,
    need_id: Uuid,
    now: DateTime<Utc>,
) -> Result<Option<Withdrawal>, sqlx::Error> {
    let Some(row) = sqlx::query(
        "UPDATE need_request SET withdrawn_at = $2
          WHERE need_id = $1 AND withdrawn_at IS NULL
      RETURNING case_id, company_id",
    )
    .bind(need_id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let left = sqlx::query(
        "UPDATE waitlist_entry SET status = 'WITHDRAWN' WHERE need_id = $1 AND status = 'WAITING'",
    )
    .bind(need_id)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    let assignment_id: Option<Uuid> = sqlx::query_scalar(
        "SELECT a.id FROM assignment_need n JOIN assignment a ON a.id = n.assignment_id
          WHERE n.need_id = $1 AND a.status IN ('ACTIVE', 'HANDOVER')
          LIMIT 1",
    )
    .bind(need_id)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(Some(Withdrawal {
        case_id: row.get("case_id"),
        company_id: row.get("company_id"),
        left_waitlist: left > 0,
        assignment_id,
    }))
}
