//! The advisor pool: profiles, status, and the slots that bound each
//! advisor's load.

use chrono::{DateTime, Utc};
use onestop_contracts::common::v1::Money;
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{Lock, money};
use crate::domain::advisor::{AdvisorFilter, AdvisorKind, AdvisorProfile, AdvisorStatus};
use crate::domain::matching::Candidate;

#[derive(sqlx::FromRow)]
struct AdvisorRow {
    id: Uuid,
    kind: String,
    contact_name: String,
    contact_email: String,
    contact_phone: String,
    languages: Vec<String>,
    industries_ksic: Vec<String>,
    hs_chapters: Vec<String>,
    markets: Vec<String>,
    region: String,
    capacity: i32,
    remote: bool,
    program_id: String,
    program_agency: String,
    program_name: String,
    fee_currency: Option<String>,
    fee_minor: Option<i64>,
    status: String,
    active_companies: i32,
    registered_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    deactivated_at: Option<DateTime<Utc>>,
}

const ADVISOR_COLUMNS: &str = "id, kind, contact_name, contact_email, contact_phone, languages, \
     industries_ksic, hs_chapters, markets, region, capacity, remote, program_id, program_agency, \
     program_name, fee_currency, fee_minor, status, active_companies, registered_at, updated_at, \
     deactivated_at";

impl AdvisorRow {
    fn into_proto(self) -> pb::Advisor {
        pb::Advisor {
            advisor_id: self.id.to_string(),
            profile: Some(pb::AdvisorProfile {
                kind: AdvisorKind::from_stored(&self.kind)
                    .map(|k| k.to_proto() as i32)
                    .unwrap_or_default(),
                contact: Some(pb::AdvisorContact {
                    name: self.contact_name,
                    email: self.contact_email,
                    phone: self.contact_phone,
                }),
                languages: self.languages,
                industries_ksic: self.industries_ksic,
                hs_chapters: self.hs_chapters,
                markets: self.markets,
                region: self.region,
                capacity: self.capacity.max(0) as u32,
                remote: self.remote,
                program: Some(pb::AdvisorProgram {
                    program_id: self.program_id,
                    agency: self.program_agency,
                    name: self.program_name,
                    monthly_fee: money(self.fee_currency, self.fee_minor),
                }),
            }),
            status: AdvisorStatus::proto_from_stored(&self.status),
            active_companies: self.active_companies.max(0) as u32,
            registered_at: Some(to_timestamp(self.registered_at)),
            updated_at: Some(to_timestamp(self.updated_at)),
            deactivated_at: self.deactivated_at.map(to_timestamp),
        }
    }
}

fn codes<T>(values: &[T], as_str: impl Fn(&T) -> &str) -> Vec<String> {
    values.iter().map(|v| as_str(v).to_owned()).collect()
}

/// Inserts a new advisor, or replaces the profile of an existing one (its
/// kind, status and load stay as they are).
pub async fn save_advisor(
    conn: &mut PgConnection,
    id: Uuid,
    profile: &AdvisorProfile,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO advisor (id, kind, contact_name, contact_email, contact_phone, languages,
             industries_ksic, hs_chapters, markets, region, capacity, remote, program_id,
             program_agency, program_name, fee_currency, fee_minor, status, registered_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, 'ACTIVE', $18, $18)
         ON CONFLICT (id) DO UPDATE SET contact_name = EXCLUDED.contact_name,
             contact_email = EXCLUDED.contact_email, contact_phone = EXCLUDED.contact_phone,
             languages = EXCLUDED.languages, industries_ksic = EXCLUDED.industries_ksic,
             hs_chapters = EXCLUDED.hs_chapters, markets = EXCLUDED.markets,
             region = EXCLUDED.region, capacity = EXCLUDED.capacity, remote = EXCLUDED.remote,
             program_id = EXCLUDED.program_id, program_agency = EXCLUDED.program_agency,
             program_name = EXCLUDED.program_name, fee_currency = EXCLUDED.fee_currency,
             fee_minor = EXCLUDED.fee_minor, updated_at = EXCLUDED.updated_at",
    )
    .bind(id)
    .bind(profile.kind.as_str())
    .bind(&profile.contact_name)
    .bind(&profile.contact_email)
    .bind(&profile.contact_phone)
    .bind(codes(&profile.languages, |c| c.as_str()))
    .bind(codes(&profile.industries_ksic, |c| c.as_str()))
    .bind(&profile.hs_chapters)
    .bind(codes(&profile.markets, |c| c.as_str()))
    .bind(profile.region.code())
    .bind(profile.capacity as i32)
    .bind(profile.remote)
    .bind(&profile.program.id)
    .bind(&profile.program.agency)
    .bind(&profile.program.name)
    .bind(profile.program.monthly_fee.as_ref().map(|m| m.currency.as_str()))
    .bind(profile.program.monthly_fee.as_ref().map(|m| m.amount_minor))
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn mark_advisor_inactive(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE advisor SET status = 'INACTIVE', deactivated_at = $2, updated_at = $2
          WHERE id = $1 AND status = 'ACTIVE'",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

/// `Lock::ForUpdate` keeps load and capacity as read until commit.
pub async fn load_advisor(
    conn: &mut PgConnection,
    id: Uuid,
    lock: Lock,
) -> Result<Option<pb::Advisor>, sqlx::Error> {
    let sql = format!(
        "SELECT {ADVISOR_COLUMNS} FROM advisor WHERE id = $1{}",
        lock.clause()
    );
    let row: Option<AdvisorRow> = sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?;
    Ok(row.map(AdvisorRow::into_proto))
}

/// By id, so in registration order.
pub async fn list_advisors(
    conn: &mut PgConnection,
    filter: &AdvisorFilter,
    page: &Page<Uuid>,
) -> Result<Vec<(Uuid, pb::Advisor)>, sqlx::Error> {
    let sql = format!(
        "SELECT {ADVISOR_COLUMNS} FROM advisor
          WHERE ($1::uuid IS NULL OR id > $1)
            AND ($2::text IS NULL OR kind = $2)
            AND ($3::text IS NULL OR status = $3)
            AND ($4::text IS NULL OR region = $4)
            AND ($5::text IS NULL OR $5 = ANY(languages))
            AND ($6::text IS NULL OR $6 = ANY(markets))
            AND (NOT $7 OR (status = 'ACTIVE' AND active_companies < capacity))
          ORDER BY id
          LIMIT $8"
    );
    let rows: Vec<AdvisorRow> = sqlx::query_as(&sql)
        .bind(page.after)
        .bind(filter.kind.map(AdvisorKind::as_str))
        .bind(filter.status.map(AdvisorStatus::as_str))
        .bind(&filter.region)
        .bind(&filter.language)
        .bind(&filter.market)
        .bind(filter.with_free_capacity_only)
        .bind(page.fetch_limit())
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.id, row.into_proto()))
        .collect())
}

/// Active advisors with a free slot, as matching sees them. Read without
/// locks: the slot itself is taken by [`claim_slot`].
pub async fn free_candidates(
    conn: &mut PgConnection,
    exclude: Option<Uuid>,
) -> Result<Vec<Candidate>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, industries_ksic, hs_chapters, markets, languages, region, remote, capacity,
                active_companies
           FROM advisor
          WHERE status = 'ACTIVE' AND active_companies < capacity
            AND ($1::uuid IS NULL OR id <> $1)
          ORDER BY id",
    )
    .bind(exclude)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Candidate {
            advisor_id: row.get("id"),
            industries_ksic: row.get("industries_ksic"),
            hs_chapters: row.get("hs_chapters"),
            markets: row.get("markets"),
            languages: row.get("languages"),
            region: row.get("region"),
            remote: row.get("remote"),
            capacity: row.get("capacity"),
            active_companies: row.get("active_companies"),
        })
        .collect())
}

/// What a slot claim does when another transaction is claiming the same
/// advisor.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnClaimed {
    /// Wait for it to finish (only with the waitlist lock held).
    Wait,
    /// Skip the advisor and let the caller try the next.
    Skip,
}

/// Takes one slot of the advisor's capacity, or nothing when it is full or
/// inactive; the conditional update is what keeps load within capacity.
///
/// An UPDATE that waits for a row and then finds it full still holds the
/// row's lock, so a transaction trying candidates one after another can
/// deadlock with another doing the same in a different order. Waiting is
/// therefore only for callers serialised by the waitlist lock; everyone
/// else skips a row another transaction is claiming and tries the next.
pub async fn claim_slot(
    conn: &mut PgConnection,
    advisor_id: Uuid,
    claiming: OnClaimed,
) -> Result<bool, sqlx::Error> {
    let sql = match claiming {
        OnClaimed::Wait => {
            "UPDATE advisor SET active_companies = active_companies + 1
          WHERE id = $1 AND status = 'ACTIVE' AND active_companies < capacity"
        }
        OnClaimed::Skip => {
            "UPDATE advisor SET active_companies = active_companies + 1
          WHERE id = (SELECT id FROM advisor
                       WHERE id = $1 AND status = 'ACTIVE' AND active_companies < capacity
                         FOR UPDATE SKIP LOCKED)
            AND status = 'ACTIVE' AND active_companies < capacity"
        }
    };
    let updated = sqlx::query(sql)
        .bind(advisor_id)
        .execute(conn)
        .await?
        .rows_affected();
    Ok(updated == 1)
}

pub async fn release_slot(conn: &mut PgConnection, advisor_id: Uuid) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE advisor SET active_companies = GREATEST(active_companies - 1, 0) WHERE id = $1",
    )
    .bind(advisor_id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Program and fee of the advisor, copied onto a new assignment.
pub async fn advisor_program(
    conn: &mut PgConnection,
    advisor_id: Uuid,
) -> Result<(String, Option<Money>), sqlx::Error> {
    let row = sqlx::query("SELECT program_id, fee_currency, fee_minor FROM advisor WHERE id = $1")
        .bind(advisor_id)
        .fetch_one(conn)
        .await?;
    Ok((
        row.get("program_id"),
        money(row.get("fee_currency"), row.get("fee_minor")),
    ))
}
