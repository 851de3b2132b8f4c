//! Referrals, their legs, and the claim of overdue legs for the SLA sweeper.

use chrono::{DateTime, Utc};
use onestop_contracts::referral::v1::{self as pb, LegStatus};
use onestop_platform::ApiResult;
use onestop_platform::pagination::Page;
use onestop_platform::time::from_timestamp;
use prost::Message;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{category_name, decode, referral_status_name};
use crate::domain::lifecycle::leg_status_name;
use crate::domain::referral::ReferralFilter;

pub use onestop_platform::db::Lock;

fn at(timestamp: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    timestamp.and_then(from_timestamp).unwrap_or_else(Utc::now)
}

pub async fn insert_referral(
    conn: &mut PgConnection,
    id: Uuid,
    referral: &pb::Referral,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO referral (id, need_id, case_id, company_id, category, status, body,
                               created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(id)
    .bind(&referral.need_id)
    .bind(&referral.case_id)
    .bind(&referral.company_id)
    .bind(category_name(referral.category))
    .bind(referral_status_name(referral.status))
    .bind(referral.encode_to_vec())
    .bind(at(referral.created_at.as_ref()))
    .execute(&mut *conn)
    .await?;
    save_legs(conn, id, referral).await
}

/// Stores the referral's new state and mirrors its legs.
pub async fn save_referral(
    conn: &mut PgConnection,
    id: Uuid,
    referral: &pb::Referral,
) -> ApiResult<()> {
    sqlx::query("UPDATE referral SET status = $2, body = $3, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(referral_status_name(referral.status))
        .bind(referral.encode_to_vec())
        .bind(at(referral.updated_at.as_ref()))
        .execute(&mut *conn)
        .await?;
    save_legs(conn, id, referral).await?;
    Ok(())
}

async fn save_legs(
    conn: &mut PgConnection,
    id: Uuid,
    referral: &pb::Referral,
) -> Result<(), sqlx::Error> {
    for leg in &referral.legs {
        sqlx::query(
            "INSERT INTO referral_leg (referral_id, leg_number, program_id, agency_id, status, sla_due_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (referral_id, leg_number) DO UPDATE SET status = EXCLUDED.status",
        )
        .bind(id)
        .bind(leg.leg_number as i32)
        .bind(&leg.program_id)
        .bind(&leg.agency_id)
        .bind(leg_status_name(
            LegStatus::try_from(leg.status).unwrap_or(LegStatus::Unspecified),
        ))
        .bind(at(leg.sla_due_at.as_ref()))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn load_referral(
    conn: &mut PgConnection,
    id: Uuid,
    lock: Lock,
) -> ApiResult<Option<pb::Referral>> {
    let lock = lock.clause();
    let body: Option<Vec<u8>> =
        sqlx::query_scalar(&format!("SELECT body FROM referral WHERE id = $1{lock}"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    body.map(|body| decode(&body)).transpose()
}

pub async fn referral_by_need(
    conn: &mut PgConnection,
    need_id: &str,
) -> ApiResult<Option<pb::Referral>> {
    let body: Option<Vec<u8>> = sqlx::query_scalar("SELECT body FROM referral WHERE need_id = $1")
        .bind(need_id)
        .fetch_optional(&mut *conn)
        .await?;
    body.map(|body| decode(&body)).transpose()
}

/// Newest first.
pub async fn list_referrals(
    conn: &mut PgConnection,
    filter: &ReferralFilter,
    page: &Page<Uuid>,
) -> ApiResult<Vec<(Uuid, pb::Referral)>> {
    let rows = sqlx::query(
        "SELECT r.id, r.body FROM referral r
          WHERE ($1::uuid IS NULL OR r.id < $1)
            AND (cardinality($2::text[]) = 0 OR r.status = ANY($2))
            AND ($3::text IS NULL OR EXISTS (
                    SELECT 1 FROM referral_leg l
                     WHERE l.referral_id = r.id AND l.agency_id = $3
                       AND ($4 OR l.status NOT IN ('DECLINED', 'SLA_BREACHED'))))
            AND ($5::text IS NULL OR EXISTS (
                    SELECT 1 FROM referral_leg l WHERE l.referral_id = r.id AND l.program_id = $5))
            AND ($6::text IS NULL OR r.company_id = $6)
            AND ($7::text IS NULL OR r.case_id = $7)
            AND ($8::text IS NULL OR r.need_id = $8)
            AND ($9::text IS NULL OR r.category = $9)
          ORDER BY r.id DESC LIMIT $10",
    )
    .bind(page.after)
    .bind(&filter.statuses)
    .bind(&filter.agency_id)
    .bind(filter.include_rerouted_away)
    .bind(&filter.program_id)
    .bind(&filter.company_id)
    .bind(&filter.case_id)
    .bind(&filter.need_id)
    .bind(&filter.category)
    .bind(page.fetch_limit())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.get("id"), decode(row.get::<&[u8], _>("body"))?)))
        .collect()
}

/// Referrals whose current leg is past its response SLA, locked for this
/// sweeper; rows another sweeper holds are skipped, not waited for.
pub async fn claim_overdue(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
    except: &[Uuid],
) -> ApiResult<Vec<(Uuid, i32)>> {
    let rows = sqlx::query(
        "SELECT r.id, l.leg_number FROM referral r
           JOIN referral_leg l ON l.referral_id = r.id AND l.status = 'SENT'
          WHERE r.status = 'SENT' AND l.sla_due_at <= $1 AND r.id <> ALL($3)
          ORDER BY l.sla_due_at
          LIMIT $2
          FOR UPDATE OF r SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .bind(except)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get("id"), row.get("leg_number")))
        .collect())
}

/// Every referral of the company, locked, for erasing.
pub async fn lock_referrals_of_company(
    conn: &mut PgConnection,
    company_id: &str,
) -> ApiResult<Vec<(Uuid, pb::Referral)>> {
    let rows =
        sqlx::query("SELECT id, body FROM referral WHERE company_id = $1 ORDER BY id FOR UPDATE")
            .bind(company_id)
            .fetch_all(&mut *conn)
            .await?;
    rows.into_iter()
        .map(|row| Ok((row.get("id"), decode(row.get::<&[u8], _>("body"))?)))
        .collect()
}

/// Replaces the stored referral as it is (an erasure), keeping its
/// status and time.
pub async fn store_body(
    conn: &mut PgConnection,
    id: Uuid,
    referral: &pb::Referral,
) -> ApiResult<()> {
    sqlx::query("UPDATE referral SET body = $2 WHERE id = $1")
        .bind(id)
        .bind(referral.encode_to_vec())
        .execute(conn)
        .await?;
    Ok(())
}
