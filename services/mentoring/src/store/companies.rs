//! The companies intake handed over (their latest snapshot, which matching
//! and the cadence follow) and each need they came with.

use chrono::{DateTime, Utc};
use onestop_domain::GrowthStage;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::matching::CompanyFeatures;
use crate::domain::request::AdvisorRequest;

#[derive(Debug, Clone)]
pub struct CompanyRecord {
    pub id: Uuid,
    pub stage: GrowthStage,
    pub features: CompanyFeatures,
}

/// Stores the latest snapshot and locks the company's row until commit, so
/// hand-offs for one company run one at a time.
pub async fn upsert_company(
    conn: &mut PgConnection,
    request: &AdvisorRequest,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let f = &request.features;
    sqlx::query(
        "INSERT INTO company (id, region, industry_ksic, hs_chapters, target_markets,
             languages_needed, stage, small_merchant, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
         ON CONFLICT (id) DO UPDATE SET region = EXCLUDED.region,
             industry_ksic = EXCLUDED.industry_ksic, hs_chapters = EXCLUDED.hs_chapters,
             target_markets = EXCLUDED.target_markets, languages_needed = EXCLUDED.languages_needed,
             stage = EXCLUDED.stage, small_merchant = EXCLUDED.small_merchant,
             updated_at = EXCLUDED.updated_at",
    )
    .bind(request.company_id)
    .bind(&f.region)
    .bind(&f.industry_ksic)
    .bind(&f.hs_chapters)
    .bind(&f.target_markets)
    .bind(&f.languages_needed)
    .bind(request.stage.as_str())
    .bind(request.small_merchant)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn lock_company(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<CompanyRecord>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT id, region, industry_ksic, hs_chapters, target_markets, languages_needed, stage
           FROM company WHERE id = $1 FOR UPDATE",
    )
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.map(|row| CompanyRecord {
        id: row.get("id"),
        stage: GrowthStage::from_stored(row.get::<&str, _>("stage"))
            .unwrap_or(GrowthStage::Domestic),
        features: CompanyFeatures {
            region: row.get("region"),
            industry_ksic: row.get("industry_ksic"),
            hs_chapters: row.get("hs_chapters"),
            target_markets: row.get("target_markets"),
            languages_needed: row.get("languages_needed"),
        },
    }))
}

pub async fn insert_need(
    conn: &mut PgConnection,
    request: &AdvisorRequest,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO need_request (need_id, case_id, company_id, category, detail, received_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(request.need_id)
    .bind(request.case_id)
    .bind(request.company_id)
    .bind(request.category.as_str())
    .bind(&request.detail)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Every need the company has handed over, oldest first; an assignment
/// serves them all, so a successor inherits them.
pub async fn attach_company_needs(
    conn: &mut PgConnection,
    assignment_id: Uuid,
    company_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO assignment_need (assignment_id, need_id, case_id)
         SELECT $1, need_id, case_id FROM need_request WHERE company_id = $2
         ON CONFLICT DO NOTHING",
    )
    .bind(assignment_id)
    .bind(company_id)
    .execute(conn)
    .await?;
    Ok(())
}
