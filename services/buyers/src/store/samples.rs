//! Sample tests, the buyers a sample went to, and their feedback.

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_platform::time::to_timestamp;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Lock;
use crate::domain::sample::NewSampleTest;

pub async fn insert_sample_test(
    conn: &mut PgConnection,
    id: Uuid,
    test: &NewSampleTest,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sample_test (id, company_id, product_name, hs_code, need_id, case_id, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(&test.company_id)
    .bind(&test.product_name)
    .bind(test.hs_code.as_str())
    .bind(&test.need_id)
    .bind(&test.case_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO sample_test_buyer (sample_test_id, position, buyer_id)
         SELECT $1, ordinality::int, buyer_id FROM unnest($2::uuid[]) WITH ORDINALITY AS t(buyer_id, ordinality)",
    )
    .bind(id)
    .bind(&test.buyer_ids)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn load_sample_test(
    conn: &mut PgConnection,
    id: Uuid,
    lock: Lock,
) -> Result<Option<pb::SampleTest>, sqlx::Error> {
    type TestRow = (
        String,
        String,
        String,
        String,
        String,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
    );
    let sql = format!(
        "SELECT company_id, product_name, hs_code, need_id, case_id, started_at, completed_at
           FROM sample_test WHERE id = $1{}",
        lock.clause()
    );
    let Some((company_id, product_name, hs_code, need_id, case_id, started_at, completed_at)) =
        sqlx::query_as::<_, TestRow>(&sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
    else {
        return Ok(None);
    };
    let buyer_ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT buyer_id FROM sample_test_buyer WHERE sample_test_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let received: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sample_feedback WHERE sample_test_id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    Ok(Some(pb::SampleTest {
        sample_test_id: id.to_string(),
        company_id,
        product_name,
        hs_code,
        buyer_ids: buyer_ids.iter().map(Uuid::to_string).collect(),
        status: if completed_at.is_some() {
            pb::SampleTestStatus::Completed
        } else {
            pb::SampleTestStatus::Collecting
        } as i32,
        feedback_received: received.max(0) as u32,
        need_id,
        case_id,
        started_at: Some(to_timestamp(started_at)),
        completed_at: completed_at.map(to_timestamp),
    }))
}

pub async fn insert_feedback(
    conn: &mut PgConnection,
    feedback: &pb::SampleFeedback,
    id: Uuid,
    test_id: Uuid,
    buyer_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let ratings = feedback.ratings.unwrap_or_default();
    sqlx::query(
        "INSERT INTO sample_feedback (id, sample_test_id, buyer_id, country, price, quality, packaging,
             labelling, certification_gaps, would_order, comment, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id)
    .bind(test_id)
    .bind(buyer_id)
    .bind(&feedback.country)
    .bind(ratings.price as i32)
    .bind(ratings.quality as i32)
    .bind(ratings.packaging as i32)
    .bind(ratings.labelling as i32)
    .bind(&feedback.certification_gaps)
    .bind(feedback.would_order)
    .bind(&feedback.comment)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Marks the test complete once every buyer answered; true when this
/// call completed it.
pub async fn complete_sample_test(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let completed = sqlx::query(
        "UPDATE sample_test SET completed_at = $2
          WHERE id = $1 AND completed_at IS NULL
            AND (SELECT count(*) FROM sample_feedback WHERE sample_test_id = $1)
                >= (SELECT count(*) FROM sample_test_buyer WHERE sample_test_id = $1)",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(completed == 1)
}

#[derive(sqlx::FromRow)]
struct FeedbackRow {
    id: Uuid,
    buyer_id: Uuid,
    country: String,
    price: i32,
    quality: i32,
    packaging: i32,
    labelling: i32,
    certification_gaps: Vec<String>,
    would_order: bool,
    comment: String,
    recorded_at: DateTime<Utc>,
}

pub async fn list_feedback(
    conn: &mut PgConnection,
    test_id: Uuid,
    only: Option<Uuid>,
) -> Result<Vec<pb::SampleFeedback>, sqlx::Error> {
    let rows: Vec<FeedbackRow> = sqlx::query_as(
        "SELECT id, buyer_id, country, price, quality, packaging, labelling, certification_gaps,
                would_order, comment, recorded_at
           FROM sample_feedback
          WHERE sample_test_id = $1 AND ($2::uuid IS NULL OR id = $2)
          ORDER BY recorded_at, id",
    )
    .bind(test_id)
    .bind(only)
    .fetch_all(conn)
    .await?;
    let rating = |value: i32| value.clamp(0, 5) as u32;
    Ok(rows
        .into_iter()
        .map(|row| pb::SampleFeedback {
            feedback_id: row.id.to_string(),
            sample_test_id: test_id.to_string(),
            buyer_id: row.buyer_id.to_string(),
            country: row.country,
            ratings: Some(pb::SampleRatings {
                price: rating(row.price),
                quality: rating(row.quality),
                packaging: rating(row.packaging),
                labelling: rating(row.labelling),
            }),
            certification_gaps: row.certification_gaps,
            would_order: row.would_order,
            comment: row.comment,
            recorded_at: Some(to_timestamp(row.recorded_at)),
        })
        .collect())
}
