//! Readiness assessments: every diagnosis is kept, versioned per company,
//! and the latest one sets the company's stage and score.

use onestop_contracts::intake::v1 as pb;
use onestop_domain::GrowthStage;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use sqlx::postgres::PgRow;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::stage_proto;
use crate::domain::readiness::{Diagnosis, ScoreItem};

/// One diagnosis as it is kept.
pub struct NewAssessment<'a> {
    pub id: Uuid,
    pub company_id: Uuid,
    pub version: i32,
    pub previous_stage: GrowthStage,
    pub answers: &'a pb::ReadinessAnswers,
    pub diagnosis: &'a Diagnosis,
}

/// Keeps the assessment and moves the company to its stage and score.
pub async fn insert_assessment(
    conn: &mut PgConnection,
    assessment: &NewAssessment<'_>,
) -> Result<(), sqlx::Error> {
    let NewAssessment {
        id,
        company_id,
        version,
        previous_stage,
        answers,
        diagnosis,
    } = assessment;
    sqlx::query(
        "INSERT INTO assessment (id, company_id, version, score, stage, previous_stage, answers, breakdown, rationale)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(id)
    .bind(company_id)
    .bind(version)
    .bind(diagnosis.score as i32)
    .bind(diagnosis.stage.as_str())
    .bind(previous_stage.as_str())
    .bind(prost::Message::encode_to_vec(*answers))
    .bind(serde_json::to_value(&diagnosis.breakdown).unwrap_or_default())
    .bind(&diagnosis.rationale)
    .execute(&mut *conn)
    .await?;
    let export_cents = answers
        .export_revenue
        .as_ref()
        .map(|m| m.amount_minor)
        .unwrap_or(0);
    sqlx::query(
        "UPDATE company SET stage = $2, readiness_score = $3, assessment_version = $4,
             export_revenue_currency = 'USD', export_revenue_minor = $5, updated_at = now()
         WHERE id = $1",
    )
    .bind(company_id)
    .bind(diagnosis.stage.as_str())
    .bind(diagnosis.score as i32)
    .bind(version)
    .bind(export_cents)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

const ASSESSMENT_COLUMNS: &str = "id, company_id, version, score, stage, previous_stage, answers, breakdown, rationale, assessed_at";

fn assessment(row: &PgRow) -> pb::Assessment {
    let breakdown: Vec<ScoreItem> =
        serde_json::from_value(row.get("breakdown")).unwrap_or_default();
    let answers: &[u8] = row.get("answers");
    pb::Assessment {
        assessment_id: row.get::<Uuid, _>("id").to_string(),
        company_id: row.get::<Uuid, _>("company_id").to_string(),
        version: row.get::<i32, _>("version").max(0) as u32,
        score: row.get::<i32, _>("score").max(0) as u32,
        stage: stage_proto(row.get("stage")),
        previous_stage: stage_proto(row.get("previous_stage")),
        breakdown: breakdown
            .into_iter()
            .map(|item| pb::ScoreItem {
                criterion: item.criterion,
                points: item.points,
                max_points: item.max_points,
            })
            .collect(),
        rationale: row.get("rationale"),
        answers: prost::Message::decode(answers).ok(),
        assessed_at: Some(to_timestamp(row.get("assessed_at"))),
    }
}

pub async fn load_assessment(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<pb::Assessment>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {ASSESSMENT_COLUMNS} FROM assessment WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(assessment))
}

/// Newest first; the page key is the version.
pub async fn list_assessments(
    conn: &mut PgConnection,
    company_id: Uuid,
    page: &Page<i32>,
) -> Result<Vec<pb::Assessment>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {ASSESSMENT_COLUMNS} FROM assessment
          WHERE company_id = $1 AND ($2::integer IS NULL OR version < $2)
          ORDER BY version DESC
          LIMIT $3"
    ))
    .bind(company_id)
    .bind(page.after)
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(assessment).collect())
}
