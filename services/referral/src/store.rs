//! Referral's SQL. Directory entries and referrals are stored as their wire
//! message (body) beside the columns that queries filter on.

use chrono::{DateTime, Utc};
use onestop_contracts::referral::v1::{
    self as pb, Availability, LegStatus, ProgramStatus, ReferralStatus,
};
use onestop_platform::pagination::Page;
use onestop_platform::time::{from_timestamp, to_timestamp};
use onestop_platform::{ApiError, ApiResult};
use prost::Message;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use crate::domain::lifecycle::{leg_status_name, status_name};

fn decode<M: Message + Default>(bytes: &[u8]) -> ApiResult<M> {
    M::decode(bytes).map_err(|error| ApiError::Internal(anyhow::anyhow!("stored record: {error}")))
}

fn category_name(value: i32) -> String {
    onestop_contracts::common::v1::NeedCategory::try_from(value)
        .map(|c| {
            c.as_str_name()
                .trim_start_matches("NEED_CATEGORY_")
                .to_owned()
        })
        .unwrap_or_default()
}

fn availability_name(value: i32) -> &'static str {
    Availability::try_from(value)
        .unwrap_or(Availability::Unspecified)
        .as_str_name()
        .trim_start_matches("AVAILABILITY_")
}

fn program_status_name(value: i32) -> &'static str {
    ProgramStatus::try_from(value)
        .unwrap_or(ProgramStatus::Unspecified)
        .as_str_name()
        .trim_start_matches("PROGRAM_STATUS_")
}

pub fn referral_status_name(value: i32) -> &'static str {
    status_name(ReferralStatus::try_from(value).unwrap_or(ReferralStatus::Unspecified))
}

// ---------------------------------------------------------------- agencies

pub async fn load_agency(conn: &mut PgConnection, id: &str) -> ApiResult<Option<pb::Agency>> {
    let row = sqlx::query("SELECT body, updated_at FROM agency WHERE agency_id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    row.map(|row| agency_from_row(&row)).transpose()
}

fn agency_from_row(row: &sqlx::postgres::PgRow) -> ApiResult<pb::Agency> {
    let mut agency: pb::Agency = decode(row.get::<&[u8], _>("body"))?;
    agency.updated_at = Some(to_timestamp(row.get("updated_at")));
    Ok(agency)
}

/// Stores the agency unless it is unchanged; returns whether it changed.
pub async fn upsert_agency(conn: &mut PgConnection, agency: &pb::Agency) -> ApiResult<bool> {
    let changed = sqlx::query(
        "INSERT INTO agency (agency_id, body) VALUES ($1, $2)
         ON CONFLICT (agency_id) DO UPDATE SET body = EXCLUDED.body, updated_at = now()
          WHERE agency.body IS DISTINCT FROM EXCLUDED.body",
    )
    .bind(&agency.agency_id)
    .bind(agency.encode_to_vec())
    .execute(&mut *conn)
    .await?
    .rows_affected();
    Ok(changed == 1)
}

pub async fn list_agencies(conn: &mut PgConnection, page: &Page) -> ApiResult<Vec<pb::Agency>> {
    let rows = sqlx::query(
        "SELECT body, updated_at FROM agency
          WHERE ($1::text IS NULL OR agency_id > $1)
          ORDER BY agency_id LIMIT $2",
    )
    .bind(&page.after)
    .bind(page.fetch_limit())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(agency_from_row).collect()
}

// ---------------------------------------------------------------- programs

const PROGRAM_COLUMNS: &str = "body, updated_at, total_slots, slots_in_use";

fn program_from_row(row: &sqlx::postgres::PgRow) -> ApiResult<pb::Program> {
    let mut program: pb::Program = decode(row.get::<&[u8], _>("body"))?;
    program.updated_at = Some(to_timestamp(row.get("updated_at")));
    let total: i32 = row.get("total_slots");
    let in_use: i32 = row.get("slots_in_use");
    let capacity = program.capacity.get_or_insert_with(Default::default);
    capacity.slots_in_use = in_use.max(0) as u32;
    capacity.open_slots = (total - in_use).max(0) as u32;
    Ok(program)
}

pub async fn load_program(conn: &mut PgConnection, id: &str) -> ApiResult<Option<pb::Program>> {
    let row = sqlx::query(&format!(
        "SELECT {PROGRAM_COLUMNS} FROM program WHERE program_id = $1"
    ))
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| program_from_row(&row)).transpose()
}

/// Stores the program unless it is unchanged (slots in use are kept);
/// returns the stored program and whether it changed.
pub async fn upsert_program(
    conn: &mut PgConnection,
    program: &pb::Program,
) -> ApiResult<Option<pb::Program>> {
    let capacity = program.capacity.unwrap_or_default();
    let categories: Vec<String> = program
        .categories
        .iter()
        .map(|c| category_name(*c))
        .collect();
    let regions = program
        .eligibility
        .as_ref()
        .map(|e| e.regions.clone())
        .unwrap_or_default();
    let row = sqlx::query(&format!(
        "INSERT INTO program (program_id, agency_id, status, categories, regions, total_slots,
                              availability, body)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (program_id) DO UPDATE SET
             agency_id = EXCLUDED.agency_id, status = EXCLUDED.status,
             categories = EXCLUDED.categories, regions = EXCLUDED.regions,
             total_slots = EXCLUDED.total_slots, availability = EXCLUDED.availability,
             body = EXCLUDED.body, updated_at = now()
          WHERE program.body IS DISTINCT FROM EXCLUDED.body
         RETURNING {PROGRAM_COLUMNS}"
    ))
    .bind(&program.program_id)
    .bind(&program.agency_id)
    .bind(program_status_name(program.status))
    .bind(&categories)
    .bind(&regions)
    .bind(capacity.total_slots as i32)
    .bind(availability_name(capacity.availability))
    .bind(program.encode_to_vec())
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| program_from_row(&row)).transpose()
}

#[derive(Debug, Default)]
pub struct ProgramFilter {
    pub agency_id: Option<String>,
    pub category: Option<String>,
    pub status: Option<String>,
    pub region: Option<String>,
}

pub async fn list_programs(
    conn: &mut PgConnection,
    filter: &ProgramFilter,
    page: &Page,
) -> ApiResult<Vec<pb::Program>> {
    let rows = sqlx::query(&format!(
        "SELECT {PROGRAM_COLUMNS} FROM program
          WHERE ($1::text IS NULL OR program_id > $1)
            AND ($2::text IS NULL OR agency_id = $2)
            AND ($3::text IS NULL OR $3 = ANY(categories))
            AND ($4::text IS NULL OR status = $4)
            AND ($5::text IS NULL OR cardinality(regions) = 0 OR $5 = ANY(regions))
          ORDER BY program_id LIMIT $6"
    ))
    .bind(&page.after)
    .bind(&filter.agency_id)
    .bind(&filter.category)
    .bind(&filter.status)
    .bind(&filter.region)
    .bind(page.fetch_limit())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(program_from_row).collect()
}

/// Every active program serving `category`, for evaluation.
pub async fn active_programs_for(
    conn: &mut PgConnection,
    category: &str,
) -> ApiResult<Vec<pb::Program>> {
    let rows = sqlx::query(&format!(
        "SELECT {PROGRAM_COLUMNS} FROM program
          WHERE status = 'ACTIVE' AND $1 = ANY(categories)
          ORDER BY program_id"
    ))
    .bind(category)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(program_from_row).collect()
}

/// Takes a slot if one is open; None when the program is full.
pub async fn take_slot(
    conn: &mut PgConnection,
    program_id: &str,
) -> ApiResult<Option<pb::Program>> {
    let row = sqlx::query(&format!(
        "UPDATE program SET slots_in_use = slots_in_use + 1
          WHERE program_id = $1 AND slots_in_use < total_slots
         RETURNING {PROGRAM_COLUMNS}"
    ))
    .bind(program_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| program_from_row(&row)).transpose()
}

pub async fn free_slot(
    conn: &mut PgConnection,
    program_id: &str,
) -> ApiResult<Option<pb::Program>> {
    let row = sqlx::query(&format!(
        "UPDATE program SET slots_in_use = GREATEST(slots_in_use - 1, 0)
          WHERE program_id = $1
         RETURNING {PROGRAM_COLUMNS}"
    ))
    .bind(program_id)
    .fetch_optional(&mut *conn)
    .await?;
    row.map(|row| program_from_row(&row)).transpose()
}

// ---------------------------------------------------------------- referrals

fn at(timestamp: Option<&prost_types::Timestamp>) -> DateTime<Utc> {
    timestamp.and_then(from_timestamp).unwrap_or_else(Utc::now)
}

pub async fn insert_referral(
    conn: &mut PgConnection,
    id: Uuid,
    referral: &pb::Referral,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO referral (id, need_id, case_id, company_id, category, status, body,
                               created_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)",
    )
    .bind(id)
    .bind(&referral.need_id)
    .bind(&referral.case_id)
    .bind(&referral.company_id)
    .bind(category_name(referral.category))
    .bind(referral_status_name(referral.status))
    .bind(referral.encode_to_vec())
    .bind(at(referral.created_at.as_ref()))
    .execute(&mut *conn)
    .await?;
    save_legs(conn, id, referral).await
}

/// Stores the referral's new state and mirrors its legs.
pub async fn save_referral(
    conn: &mut PgConnection,
    id: Uuid,
    referral: &pb::Referral,
) -> ApiResult<()> {
    sqlx::query("UPDATE referral SET status = $2, body = $3, updated_at = $4 WHERE id = $1")
        .bind(id)
        .bind(referral_status_name(referral.status))
        .bind(referral.encode_to_vec())
        .bind(at(referral.updated_at.as_ref()))
        .execute(&mut *conn)
        .await?;
    save_legs(conn, id, referral).await?;
    Ok(())
}

async fn save_legs(
    conn: &mut PgConnection,
    id: Uuid,
    referral: &pb::Referral,
) -> Result<(), sqlx::Error> {
    for leg in &referral.legs {
        sqlx::query(
            "INSERT INTO referral_leg (referral_id, leg_number, program_id, agency_id, status, sla_due_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (referral_id, leg_number) DO UPDATE SET status = EXCLUDED.status",
        )
        .bind(id)
        .bind(leg.leg_number as i32)
        .bind(&leg.program_id)
        .bind(&leg.agency_id)
        .bind(leg_status_name(
            LegStatus::try_from(leg.status).unwrap_or(LegStatus::Unspecified),
        ))
        .bind(at(leg.sla_due_at.as_ref()))
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

pub async fn load_referral(
    conn: &mut PgConnection,
    id: Uuid,
    for_update: bool,
) -> ApiResult<Option<pb::Referral>> {
    let lock = if for_update { " FOR UPDATE" } else { "" };
    let body: Option<Vec<u8>> =
        sqlx::query_scalar(&format!("SELECT body FROM referral WHERE id = $1{lock}"))
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?;
    body.map(|body| decode(&body)).transpose()
}

pub async fn referral_by_need(
    conn: &mut PgConnection,
    need_id: &str,
) -> ApiResult<Option<pb::Referral>> {
    let body: Option<Vec<u8>> = sqlx::query_scalar("SELECT body FROM referral WHERE need_id = $1")
        .bind(need_id)
        .fetch_optional(&mut *conn)
        .await?;
    body.map(|body| decode(&body)).transpose()
}

#[derive(Debug, Default)]
pub struct ReferralFilter {
    pub statuses: Vec<String>,
    pub agency_id: Option<String>,
    pub include_rerouted_away: bool,
    pub program_id: Option<String>,
    pub company_id: Option<String>,
    pub case_id: Option<String>,
    pub need_id: Option<String>,
    pub category: Option<String>,
}

/// Newest first.
pub async fn list_referrals(
    conn: &mut PgConnection,
    filter: &ReferralFilter,
    page: &Page,
) -> ApiResult<Vec<(Uuid, pb::Referral)>> {
    let after = match &page.after {
        Some(key) => Some(Uuid::parse_str(key).map_err(|_| {
            ApiError::invalid("page.page_token", "not a token returned by this API")
        })?),
        None => None,
    };
    let rows = sqlx::query(
        "SELECT r.id, r.body FROM referral r
          WHERE ($1::uuid IS NULL OR r.id < $1)
            AND (cardinality($2::text[]) = 0 OR r.status = ANY($2))
            AND ($3::text IS NULL OR EXISTS (
                    SELECT 1 FROM referral_leg l
                     WHERE l.referral_id = r.id AND l.agency_id = $3
                       AND ($4 OR l.status NOT IN ('DECLINED', 'SLA_BREACHED'))))
            AND ($5::text IS NULL OR EXISTS (
                    SELECT 1 FROM referral_leg l WHERE l.referral_id = r.id AND l.program_id = $5))
            AND ($6::text IS NULL OR r.company_id = $6)
            AND ($7::text IS NULL OR r.case_id = $7)
            AND ($8::text IS NULL OR r.need_id = $8)
            AND ($9::text IS NULL OR r.category = $9)
          ORDER BY r.id DESC LIMIT $10",
    )
    .bind(after)
    .bind(&filter.statuses)
    .bind(&filter.agency_id)
    .bind(filter.include_rerouted_away)
    .bind(&filter.program_id)
    .bind(&filter.company_id)
    .bind(&filter.case_id)
    .bind(&filter.need_id)
    .bind(&filter.category)
    .bind(page.fetch_limit())
    .fetch_all(&mut *conn)
    .await?;
    rows.iter()
        .map(|row| Ok((row.get("id"), decode(row.get::<&[u8], _>("body"))?)))
        .collect()
}

/// Referrals whose current leg is past its response SLA, locked for this
/// sweeper; rows another sweeper holds are skipped, not waited for.
pub async fn claim_overdue(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> ApiResult<Vec<(Uuid, i32)>> {
    let rows = sqlx::query(
        "SELECT r.id, l.leg_number FROM referral r
           JOIN referral_leg l ON l.referral_id = r.id AND l.status = 'SENT'
          WHERE r.status = 'SENT' AND l.sla_due_at <= $1
          ORDER BY l.sla_due_at
          LIMIT $2
          FOR UPDATE OF r SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    Ok(rows
        .iter()
        .map(|row| (row.get("id"), row.get("leg_number")))
        .collect())
}
