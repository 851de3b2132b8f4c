//! The matching index: verified, freshly vetted buyers by the codes they
//! seek, searched best level first.

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{buyer_summaries, texts};
use crate::domain::matching::{self, Candidate, HsLevel, MatchQuery};

#[derive(sqlx::FromRow)]
struct CandidateRow {
    buyer_id: Uuid,
    buyer_code: String,
    country: String,
    languages: Vec<String>,
    quality_score: i32,
}

/// A buyer matching found, with its score.
#[derive(Debug, Clone)]
pub struct FoundBuyer {
    pub buyer_id: Uuid,
    pub summary: pb::BuyerSummary,
    pub score: pb::BuyerMatchScore,
}

/// The best `limit` matchable buyers for `query`, best first, scored.
/// Because the HS level outranks everything else, the levels are searched
/// best first and the search stops once the page is full: the common case
/// reads a few dozen index rows, never a whole chapter.
pub async fn find_buyers(
    conn: &mut PgConnection,
    query: &MatchQuery,
    fresh_since: DateTime<Utc>,
    exclude: &[Uuid],
    limit: u32,
) -> Result<Vec<FoundBuyer>, sqlx::Error> {
    let mut taken: Vec<Uuid> = exclude.to_vec();
    let mut rows: Vec<CandidateRow> = Vec::new();
    for level in [HsLevel::Exact, HsLevel::Heading, HsLevel::Chapter] {
        let wanted = limit as usize - rows.len();
        if wanted == 0 {
            break;
        }
        let (join, min_len, width) = match level {
            HsLevel::Exact => ("h.code = q.code", 6, 6),
            HsLevel::Heading => ("h.heading = q.code", 4, 4),
            HsLevel::Chapter => ("h.chapter = q.code", 2, 2),
        };
        let mut codes: Vec<String> = query
            .hs_codes
            .iter()
            .map(|c| c.as_str())
            .filter(|c| c.len() >= min_len)
            .map(|c| c[..width].to_owned())
            .collect();
        codes.sort();
        codes.dedup();
        if codes.is_empty() {
            continue;
        }
        let sql = format!(
            "WITH q AS (SELECT unnest($1::text[]) AS code)
             SELECT buyer_id, buyer_code, country, languages, quality_score FROM (
                 SELECT DISTINCT ON (h.buyer_id)
                        h.buyer_id, h.code AS buyer_code, h.country, h.languages, h.quality_score,
                        CASE WHEN h.country = ANY($2) THEN $4::float8 ELSE 0 END
                        + CASE WHEN h.languages && $3 THEN $5::float8 ELSE 0 END
                        + h.quality_score * $6::float8 AS rest
                   FROM q JOIN buyer_hs h ON {join}
                  WHERE h.vetted_at > $7 AND NOT (h.buyer_id = ANY($8))
                  ORDER BY h.buyer_id, h.code
             ) best
             ORDER BY rest DESC, quality_score DESC, buyer_id
             LIMIT $9"
        );
        let found: Vec<CandidateRow> = sqlx::query_as(&sql)
            .bind(&codes)
            .bind(texts(&query.target_markets, |c| c.as_str()))
            .bind(texts(&query.languages, |c| c.as_str()))
            .bind(matching::MARKET_POINTS)
            .bind(matching::LANGUAGE_POINTS)
            .bind(matching::QUALITY_POINTS_MAX / 100.0)
            .bind(fresh_since)
            .bind(&taken)
            .bind(wanted as i64)
            .fetch_all(&mut *conn)
            .await?;
        taken.extend(found.iter().map(|r| r.buyer_id));
        rows.extend(found);
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.buyer_id).collect();
    let summaries = buyer_summaries(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let candidate = Candidate {
                buyer_code: row.buyer_code,
                country: row.country,
                languages: row.languages,
                quality_score: row.quality_score.clamp(0, 100) as u32,
            };
            let score = matching::score(query, &candidate)?;
            let (summary, _) = summaries.get(&row.buyer_id)?.clone();
            Some(FoundBuyer {
                buyer_id: row.buyer_id,
                summary,
                score,
            })
        })
        .collect())
}
