//! Consultations booked between a company and a buyer, stored in UTC.

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

pub struct NewConsultation<'a> {
    pub id: Uuid,
    pub matched: &'a pb::Match,
    pub buyer_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub buyer_time_zone: &'a str,
    pub interpreter_language: &'a str,
    pub overseas_desk: bool,
}

pub async fn insert_consultation(
    conn: &mut PgConnection,
    c: &NewConsultation<'_>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO consultation (id, match_id, company_id, buyer_id, start_at, end_at,
             buyer_time_zone, interpreter_language, overseas_desk, booked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(c.id)
    .bind(Uuid::parse_str(&c.matched.match_id).unwrap_or_default())
    .bind(&c.matched.company_id)
    .bind(c.buyer_id)
    .bind(c.start)
    .bind(c.end)
    .bind(c.buyer_time_zone)
    .bind(c.interpreter_language)
    .bind(c.overseas_desk)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Starts already booked by the buyer or the company within [from, to).
pub async fn booked_starts(
    conn: &mut PgConnection,
    buyer_id: Uuid,
    company_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT start_at FROM consultation
          WHERE (buyer_id = $1 OR company_id = $2) AND start_at >= $3 AND start_at < $4",
    )
    .bind(buyer_id)
    .bind(company_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}
