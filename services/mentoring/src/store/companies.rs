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

/// The company a need was handed over for, if it was.
pub async fn company_of_need(
    conn: &mut PgConnection,
    need_id: Uuid,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT company_id FROM need_request WHERE need_id = $1")
        .bind(need_id)
        .fetch_optional(conn)
        .await
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

/// What one erasure blanked, by kind.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Erased {
    pub need_details: u64,
    pub session_notes: u64,
    pub assignment_notes: u64,
    pub stored_responses: u64,
}

async fn erase(conn: &mut PgConnection, sql: &str, company_id: Uuid) -> Result<u64, sqlx::Error> {
    Ok(sqlx::query(sql)
        .bind(company_id)
        .execute(conn)
        .await?
        .rows_affected())
}

/// Blanks every free text about the company and forgets the stored first
/// responses of calls about it (keyed by the company, its assignments and
/// its sessions' assignments), which repeat them.
pub async fn erase_company(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<Erased, sqlx::Error> {
    let stored_responses = erase(
        conn,
        "DELETE FROM idempotency_key WHERE resource_id IN (
             SELECT $1::text
             UNION ALL SELECT id::text FROM assignment WHERE company_id = $1)",
        company_id,
    )
    .await?;
    let need_details = erase(
        conn,
        "UPDATE need_request SET detail = '' WHERE company_id = $1 AND detail <> ''",
        company_id,
    )
    .await?;
    // Topics and follow-up actions are what the advisor wrote down.
    let session_notes = erase(
        conn,
        "UPDATE session SET topics = '{}', follow_up_actions = ''::bytea
          WHERE company_id = $1 AND (cardinality(topics) > 0 OR length(follow_up_actions) > 0)",
        company_id,
    )
    .await?;
    let assignment_notes = erase(
        conn,
        "UPDATE assignment SET end_note = '' WHERE company_id = $1 AND end_note <> ''",
        company_id,
    )
    .await?
        + erase(
            conn,
            "UPDATE advisor_change SET note = '' WHERE company_id = $1 AND note <> ''",
            company_id,
        )
        .await?;
    Ok(Erased {
        need_details,
        session_notes,
        assignment_notes,
        stored_responses,
    })
}
