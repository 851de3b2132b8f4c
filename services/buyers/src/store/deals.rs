//! Deals recorded on matches, and the company's confirmations of them.

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::common::v1::Money;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use sqlx::PgConnection;
use uuid::Uuid;

use super::Lock;
use crate::domain::matches::{DealFilter, NewDeal};

#[derive(sqlx::FromRow)]
struct DealRow {
    id: Uuid,
    match_id: Uuid,
    need_id: String,
    case_id: String,
    company_id: String,
    buyer_id: Uuid,
    trade_office_id: String,
    deal_type: String,
    currency: String,
    amount_minor: i64,
    note: String,
    recorded_at: DateTime<Utc>,
    recorded_by: String,
    confirmed_at: Option<DateTime<Utc>>,
    disputed_at: Option<DateTime<Utc>>,
    dispute_reason: String,
    dispute_note: String,
    confirmation_chases: i32,
}

const DEAL_COLUMNS: &str = "id, match_id, need_id, case_id, company_id, buyer_id, trade_office_id, deal_type, \
     currency, amount_minor, note, recorded_at, recorded_by, confirmed_at, disputed_at, dispute_reason, \
     dispute_note, confirmation_chases";

impl DealRow {
    fn into_proto(self) -> pb::Deal {
        pb::Deal {
            deal_id: self.id.to_string(),
            match_id: self.match_id.to_string(),
            need_id: self.need_id,
            company_id: self.company_id,
            buyer_id: self.buyer_id.to_string(),
            trade_office_id: self.trade_office_id,
            deal_type: pb::DealType::from_str_name(&self.deal_type).unwrap_or_default() as i32,
            value: Some(Money {
                currency_code: self.currency,
                amount_minor: self.amount_minor,
            }),
            note: self.note,
            recorded_at: Some(to_timestamp(self.recorded_at)),
            recorded_by: self.recorded_by,
            confirmed: self.confirmed_at.is_some(),
            confirmed_at: self.confirmed_at.map(to_timestamp),
            case_id: self.case_id,
            disputed_at: self.disputed_at.map(to_timestamp),
            dispute_reason: pb::DealDisputeReason::from_str_name(&self.dispute_reason)
                .unwrap_or_default() as i32,
            dispute_note: self.dispute_note,
            confirmation_chases: self.confirmation_chases.max(0) as u32,
        }
    }
}

/// The deals of `match_ids`, for loading matches whole.
pub(super) async fn deals_of_matches(
    conn: &mut PgConnection,
    match_ids: &[Uuid],
) -> Result<Vec<pb::Deal>, sqlx::Error> {
    let sql = format!("SELECT {DEAL_COLUMNS} FROM deal WHERE match_id = ANY($1)");
    let rows: Vec<DealRow> = sqlx::query_as(&sql).bind(match_ids).fetch_all(conn).await?;
    Ok(rows.into_iter().map(DealRow::into_proto).collect())
}

/// Records `deal` on `matched`, for the office that found its buyer.
pub async fn insert_deal(
    conn: &mut PgConnection,
    id: Uuid,
    matched: &pb::Match,
    deal: &NewDeal,
    recorded_by: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let buyer = matched.buyer.as_ref();
    let buyer_id = buyer
        .and_then(|b| Uuid::parse_str(&b.buyer_id).ok())
        .unwrap_or_default();
    let office = buyer
        .map(|b| b.trade_office_id.as_str())
        .unwrap_or_default();
    sqlx::query(
        "INSERT INTO deal (id, match_id, need_id, company_id, buyer_id, trade_office_id, deal_type,
             currency, amount_minor, note, recorded_at, recorded_by, case_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(id)
    .bind(Uuid::parse_str(&matched.match_id).unwrap_or_default())
    .bind(&matched.need_id)
    .bind(&matched.company_id)
    .bind(buyer_id)
    .bind(office)
    .bind(deal.deal_type.as_str_name())
    .bind(deal.value.currency.as_str())
    .bind(deal.value.amount_minor)
    .bind(&deal.note)
    .bind(now)
    .bind(recorded_by)
    .bind(&matched.case_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn load_deal(
    conn: &mut PgConnection,
    id: Uuid,
    lock: Lock,
) -> Result<Option<pb::Deal>, sqlx::Error> {
    let sql = format!(
        "SELECT {DEAL_COLUMNS} FROM deal WHERE id = $1{}",
        lock.clause()
    );
    let row: Option<DealRow> = sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?;
    Ok(row.map(DealRow::into_proto))
}

pub async fn confirm_deal(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE deal SET confirmed_at = $2 WHERE id = $1 AND confirmed_at IS NULL")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Records the company's dispute of an unconfirmed deal.
pub async fn dispute_deal(
    conn: &mut PgConnection,
    id: Uuid,
    reason: pb::DealDisputeReason,
    note: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE deal SET disputed_at = $2, dispute_reason = $3, dispute_note = $4
          WHERE id = $1 AND confirmed_at IS NULL AND disputed_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .bind(reason.as_str_name())
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deals neither confirmed nor disputed whose next chase is due at `now`
/// (every `every_days` from recording), locked; rows another sweeper holds
/// are skipped.
pub async fn claim_deals_to_chase(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    every_days: i32,
    limit: i64,
) -> Result<Vec<pb::Deal>, sqlx::Error> {
    let sql = format!(
        "SELECT {DEAL_COLUMNS} FROM deal
          WHERE confirmed_at IS NULL AND disputed_at IS NULL
            AND recorded_at + make_interval(days => $2 * (confirmation_chases + 1)) <= $1
          ORDER BY recorded_at, id LIMIT $3
          FOR UPDATE SKIP LOCKED"
    );
    let rows: Vec<DealRow> = sqlx::query_as(&sql)
        .bind(now)
        .bind(every_days)
        .bind(limit)
        .fetch_all(conn)
        .await?;
    Ok(rows.into_iter().map(DealRow::into_proto).collect())
}

/// Counts one more chase of the deal; false when another sweeper got there
/// first.
pub async fn mark_chased(
    conn: &mut PgConnection,
    id: Uuid,
    from: i32,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE deal SET confirmation_chases = $2 + 1
          WHERE id = $1 AND confirmation_chases = $2",
    )
    .bind(id)
    .bind(from)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// Oldest first.
pub async fn list_unconfirmed_deals(
    conn: &mut PgConnection,
    filter: &DealFilter,
    page: &Page<(DateTime<Utc>, Uuid)>,
) -> Result<Vec<((DateTime<Utc>, Uuid), pb::Deal)>, sqlx::Error> {
    let after = page.after;
    let sql = format!(
        "SELECT {DEAL_COLUMNS} FROM deal
          WHERE confirmed_at IS NULL
            AND ($1::text IS NULL OR trade_office_id = $1)
            AND ($2::text IS NULL OR company_id = $2)
            AND ($3::timestamptz IS NULL OR recorded_at < $3)
            AND ($4::timestamptz IS NULL OR (recorded_at, id) > ($4, $5))
          ORDER BY recorded_at, id LIMIT $6"
    );
    let rows: Vec<DealRow> = sqlx::query_as(&sql)
        .bind(&filter.office)
        .bind(&filter.company_id)
        .bind(filter.recorded_before)
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id))
        .bind(page.fetch_limit())
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| ((row.recorded_at, row.id), row.into_proto()))
        .collect())
}
