//! The fee ledger: one charge per fee-charging assignment and month.

use chrono::{DateTime, Utc};
use onestop_contracts::common::v1::Money;
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::key_parts;
use crate::domain::fees::{FeeFilter, FeeKey};

/// Charges every month (Asia/Seoul) in which a fee-charging assignment was
/// ACTIVE or HANDOVER, from three months back to `now`, once per
/// assignment and month: the unique key makes racing sweepers charge once.
pub async fn accrue_fees(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<pb::FeeCharge>, sqlx::Error> {
    let rows = sqlx::query(
        "INSERT INTO fee_charge (id, assignment_id, company_id, advisor_id, program_id, month,
             currency, amount_minor, charged_at)
         SELECT gen_random_uuid(), a.id, a.company_id, a.advisor_id, a.program_id,
                to_char(m, 'YYYY-MM'), a.fee_currency, a.fee_minor, $1
           FROM assignment a
           CROSS JOIN LATERAL generate_series(
                GREATEST(date_trunc('month', a.started_at AT TIME ZONE 'Asia/Seoul'),
                         date_trunc('month', $1 AT TIME ZONE 'Asia/Seoul') - interval '3 months'),
                date_trunc('month', LEAST(coalesce(a.ended_at, $1), $1) AT TIME ZONE 'Asia/Seoul'),
                interval '1 month') AS m
          WHERE a.fee_minor IS NOT NULL AND a.fee_minor > 0 AND a.fee_currency IS NOT NULL
            AND a.started_at <= $1
            AND (a.ended_at IS NULL OR a.ended_at >= $1 - interval '4 months')
         ON CONFLICT (assignment_id, month) DO NOTHING
         RETURNING id, assignment_id, company_id, advisor_id, program_id, month, currency,
                   amount_minor, charged_at",
    )
    .bind(now)
    .fetch_all(conn)
    .await?;
    Ok(rows.iter().map(fee_from_row).collect())
}

fn fee_from_row(row: &sqlx::postgres::PgRow) -> pb::FeeCharge {
    pb::FeeCharge {
        charge_id: row.get::<Uuid, _>("id").to_string(),
        assignment_id: row.get::<Uuid, _>("assignment_id").to_string(),
        company_id: row.get::<Uuid, _>("company_id").to_string(),
        advisor_id: row.get::<Uuid, _>("advisor_id").to_string(),
        program_id: row.get("program_id"),
        month: row.get("month"),
        amount: Some(Money {
            currency_code: row.get("currency"),
            amount_minor: row.get("amount_minor"),
        }),
        charged_at: Some(to_timestamp(row.get("charged_at"))),
    }
}

const FEE_WHERE: &str = "($1::uuid IS NULL OR company_id = $1)
            AND ($2::text IS NULL OR month = $2)
            AND ($3::uuid IS NULL OR advisor_id = $3)
            AND ($4::text IS NULL OR program_id = $4)";

/// Months newest first, charges within a month in the order they were made.
pub async fn list_fee_charges(
    conn: &mut PgConnection,
    filter: &FeeFilter,
    page: &Page<FeeKey>,
) -> Result<Vec<(FeeKey, pb::FeeCharge)>, sqlx::Error> {
    let (month, charged_at, id) = key_parts(page.after.clone());
    let rows = sqlx::query(&format!(
        "SELECT id, assignment_id, company_id, advisor_id, program_id, month, currency,
                amount_minor, charged_at
           FROM fee_charge WHERE {FEE_WHERE}
            AND ($5::text IS NULL OR month < $5 OR (month = $5 AND (charged_at, id) > ($6, $7)))
          ORDER BY month DESC, charged_at, id
          LIMIT $8"
    ))
    .bind(filter.company_id)
    .bind(&filter.month)
    .bind(filter.advisor_id)
    .bind(&filter.program_id)
    .bind(month)
    .bind(charged_at)
    .bind(id)
    .bind(page.fetch_limit())
    .fetch_all(conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let key = (row.get("month"), row.get("charged_at"), row.get("id"));
            (key, fee_from_row(row))
        })
        .collect())
}

/// Sums over every charge the filter matches (all pages), per currency.
pub async fn fee_totals(
    conn: &mut PgConnection,
    filter: &FeeFilter,
) -> Result<Vec<Money>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT currency, sum(amount_minor)::bigint AS total FROM fee_charge WHERE {FEE_WHERE}
          GROUP BY currency ORDER BY currency"
    ))
    .bind(filter.company_id)
    .bind(&filter.month)
    .bind(filter.advisor_id)
    .bind(&filter.program_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Money {
            currency_code: row.get("currency"),
            amount_minor: row.get("total"),
        })
        .collect())
}
