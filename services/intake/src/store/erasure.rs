//! Each service's part of erasing a company's personal data.

use chrono::{DateTime, Utc};
use onestop_contracts::common::v1::ErasedCount;
use onestop_contracts::intake::v1 as pb;
use onestop_platform::time::to_timestamp;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

fn to_json(erased: &[ErasedCount]) -> String {
    serde_json::Value::Array(
        erased
            .iter()
            .map(|count| serde_json::json!({"kind": count.kind, "count": count.count}))
            .collect(),
    )
    .to_string()
}

fn from_json(text: &str) -> Vec<ErasedCount> {
    let value: serde_json::Value = serde_json::from_str(text).unwrap_or_default();
    value
        .as_array()
        .into_iter()
        .flatten()
        .map(|item| ErasedCount {
            kind: item["kind"].as_str().unwrap_or_default().to_owned(),
            count: item["count"].as_u64().unwrap_or_default() as u32,
        })
        .collect()
}

/// Starts an erasure: `service`'s part waits for its report (a new request
/// starts every part again).
pub async fn request_erasure(
    conn: &mut PgConnection,
    company_id: Uuid,
    service: &str,
    requested_at: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO erasure (company_id, service, requested_at) VALUES ($1, $2, $3)
         ON CONFLICT (company_id, service)
         DO UPDATE SET requested_at = EXCLUDED.requested_at, erased_at = NULL, erased = '[]'",
    )
    .bind(company_id)
    .bind(service)
    .bind(requested_at)
    .execute(conn)
    .await?;
    Ok(())
}

/// Records what `service` erased; ignored when no erasure of the company
/// was requested (a report intake never asked for).
pub async fn record_erased(
    conn: &mut PgConnection,
    company_id: Uuid,
    service: &str,
    erased: &[ErasedCount],
    at: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE erasure SET erased_at = $3, erased = $4::jsonb WHERE company_id = $1 AND service = $2",
    )
    .bind(company_id)
    .bind(service)
    .bind(at)
    .bind(to_json(erased))
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated > 0)
}

/// The latest erasure of the company, each service's part in name order;
/// None when none was requested.
pub async fn erasure_status(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<Option<pb::ErasureStatus>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT service, requested_at, erased_at, erased::text AS erased FROM erasure
          WHERE company_id = $1 ORDER BY service",
    )
    .bind(company_id)
    .fetch_all(conn)
    .await?;
    let Some(requested_at) = rows
        .iter()
        .map(|row| row.get::<DateTime<Utc>, _>("requested_at"))
        .max()
    else {
        return Ok(None);
    };
    let services = rows
        .iter()
        .map(|row| {
            let erased_at: Option<DateTime<Utc>> = row.get("erased_at");
            pb::ServiceErasure {
                service: row.get("service"),
                state: if erased_at.is_some() {
                    pb::ErasureState::Done
                } else {
                    pb::ErasureState::Pending
                } as i32,
                erased: from_json(row.get("erased")),
                erased_at: erased_at.map(to_timestamp),
            }
        })
        .collect();
    Ok(Some(pb::ErasureStatus {
        company_id: company_id.to_string(),
        requested_at: Some(to_timestamp(requested_at)),
        services,
    }))
}
