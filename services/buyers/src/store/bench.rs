//! What the FindBuyers benchmark does to the database directly: a scratch
//! database of its own, and a synthetic registry loaded in bulk rather
//! than through the API.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;
use uuid::Uuid;

use super::reindex_buyers;

/// One batch of synthetic buyers, column by column.
#[derive(Debug, Default)]
pub struct SyntheticBuyers {
    pub ids: Vec<Uuid>,
    pub countries: Vec<String>,
    /// Sought codes, comma-separated.
    pub codes: Vec<String>,
    /// Languages, comma-separated.
    pub languages: Vec<String>,
    pub statuses: Vec<String>,
    pub quality_scores: Vec<i32>,
    pub vetted_at: Vec<Option<DateTime<Utc>>>,
}

/// Stores the batch and indexes it for matching.
pub async fn insert_synthetic_buyers(
    conn: &mut PgConnection,
    batch: &SyntheticBuyers,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO buyer (id, trade_office_id, company_name, country, city, time_zone, hs_codes,
             industries_ksic, import_volume_usd_minor, languages, website, status, quality_score,
             criteria_met, vetted_at, vetted_by)
         SELECT id, 'bench-office-' || (ordinality % 100), 'Synthetic buyer ' || id, country, 'City',
                'UTC', string_to_array(codes, ','), '{}', 100000000, string_to_array(langs, ','), '',
                status, score, '{VETTING_CRITERION_REGISTRY_CHECKED}', vetted_at,
                CASE WHEN vetted_at IS NULL THEN '' ELSE 'bench' END
           FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::timestamptz[])
                WITH ORDINALITY AS t(id, country, codes, langs, status, score, vetted_at, ordinality)",
    )
    .bind(&batch.ids)
    .bind(&batch.countries)
    .bind(&batch.codes)
    .bind(&batch.languages)
    .bind(&batch.statuses)
    .bind(&batch.quality_scores)
    .bind(&batch.vetted_at)
    .execute(&mut *conn)
    .await?;
    reindex_buyers(conn, &batch.ids).await
}

/// Refreshes the planner's statistics after a bulk load.
pub async fn analyze(conn: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::query("ANALYZE").execute(conn).await?;
    Ok(())
}

/// Buyers matching would consider: verified and vetted after `fresh_since`.
pub async fn count_matchable(
    conn: &mut PgConnection,
    fresh_since: DateTime<Utc>,
) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar("SELECT count(*) FROM buyer WHERE status = 'VERIFIED' AND vetted_at > $1")
        .bind(fresh_since)
        .fetch_one(conn)
        .await
}

/// Up to `limit` buyer ids picked at random.
pub async fn random_buyer_ids(
    conn: &mut PgConnection,
    limit: i64,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM buyer ORDER BY random() LIMIT $1")
        .bind(limit)
        .fetch_all(conn)
        .await
}

/// `name` is made by the caller from digits and letters only: database
/// names cannot be bound as parameters.
pub async fn create_database(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(conn)
        .await?;
    Ok(())
}

/// Drops `name`, closing any connection still open to it.
pub async fn drop_database(conn: &mut PgConnection, name: &str) -> Result<(), sqlx::Error> {
    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        .execute(conn)
        .await?;
    Ok(())
}
