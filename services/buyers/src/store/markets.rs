//! Matchable buyer demand per market, read from the matching index.

use chrono::{DateTime, Utc};
use sqlx::PgConnection;

use crate::domain::markets::MarketDemand;

/// Matchable buyer demand for `codes` per market, markets in `skip` left
/// out. Each buyer counts once, at its best level.
pub async fn market_demand(
    conn: &mut PgConnection,
    codes: &[String],
    skip: &[String],
    fresh_since: DateTime<Utc>,
) -> Result<Vec<MarketDemand>, sqlx::Error> {
    sqlx::query_as(
        "WITH q AS (SELECT unnest($1::text[]) AS code),
         hits AS (
             SELECT h.buyer_id, h.country,
                    max(CASE WHEN length(q.code) = 6 AND q.code = h.code THEN 3
                             WHEN length(q.code) >= 4 AND left(q.code, 4) = h.heading THEN 2
                             ELSE 1 END) AS level
               FROM q JOIN buyer_hs h ON h.chapter = left(q.code, 2)
              WHERE h.vetted_at > $3 AND NOT (h.country = ANY($2))
              GROUP BY h.buyer_id, h.country
         )
         SELECT hits.country,
                count(*) AS buyers,
                count(*) FILTER (WHERE level = 3) AS exact,
                count(*) FILTER (WHERE level = 2) AS heading,
                count(*) FILTER (WHERE level = 1) AS chapter,
                COALESCE(sum(b.import_volume_usd_minor), 0)::bigint AS import_volume,
                COALESCE(avg(b.quality_score), 0)::float8 AS average_quality
           FROM hits JOIN buyer b ON b.id = hits.buyer_id
          GROUP BY hits.country",
    )
    .bind(codes)
    .bind(skip)
    .bind(fresh_since)
    .fetch_all(conn)
    .await
}
