//! Agencies and programs, and the slots programs hand out.

use onestop_contracts::referral::v1 as pb;
use onestop_platform::ApiResult;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use prost::Message;
use sqlx::{PgConnection, Row};

use crate::domain::directory::ProgramFilter;

use super::{availability_name, category_name, decode, program_status_name};

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

pub async fn list_agencies(
    conn: &mut PgConnection,
    page: &Page<String>,
) -> ApiResult<Vec<pb::Agency>> {
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

pub async fn list_programs(
    conn: &mut PgConnection,
    filter: &ProgramFilter,
    page: &Page<String>,
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
