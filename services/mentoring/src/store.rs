//! Mentoring's SQL. Rows map straight onto the wire messages they serve.

use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use onestop_contracts::common::v1::Money;
use onestop_contracts::mentoring::v1 as pb;
use onestop_domain::GrowthStage;
use onestop_platform::time::to_timestamp;
use prost::Message;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::advisor::{AdvisorKind, AdvisorProfile};
use crate::domain::matching::{Candidate, CompanyFeatures};
use crate::domain::request::AdvisorRequest;
use crate::domain::session::{Channel, SessionLog};

pub const ACTIVE: &str = "ACTIVE";
pub const INACTIVE: &str = "INACTIVE";
pub const HANDOVER: &str = "HANDOVER";
pub const ENDED: &str = "ENDED";
pub const WAITING: &str = "WAITING";
pub const FILLED: &str = "FILLED";

fn money(currency: Option<String>, minor: Option<i64>) -> Option<Money> {
    Some(Money {
        currency_code: currency?,
        amount_minor: minor?,
    })
}

fn stage_proto(stored: &str) -> i32 {
    GrowthStage::from_stored(stored)
        .map(|s| s.to_proto() as i32)
        .unwrap_or_default()
}

// ---------------------------------------------------------------- advisors

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
        let status = match self.status.as_str() {
            ACTIVE => pb::AdvisorStatus::Active,
            INACTIVE => pb::AdvisorStatus::Inactive,
            _ => pb::AdvisorStatus::Unspecified,
        };
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
            status: status as i32,
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

/// `lock` takes the row lock, so load and capacity stay as read until commit.
pub async fn load_advisor(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<pb::Advisor>, sqlx::Error> {
    let sql = format!(
        "SELECT {ADVISOR_COLUMNS} FROM advisor WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let row: Option<AdvisorRow> = sqlx::query_as(&sql).bind(id).fetch_optional(conn).await?;
    Ok(row.map(AdvisorRow::into_proto))
}

#[derive(Debug, Default)]
pub struct AdvisorFilter {
    pub kind: Option<&'static str>,
    pub status: Option<&'static str>,
    pub region: Option<String>,
    pub language: Option<String>,
    pub market: Option<String>,
    pub with_free_capacity_only: bool,
}

pub async fn list_advisors(
    pool: &PgPool,
    filter: &AdvisorFilter,
    after: Option<Uuid>,
    limit: i64,
) -> Result<Vec<pb::Advisor>, sqlx::Error> {
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
        .bind(after)
        .bind(filter.kind)
        .bind(filter.status)
        .bind(&filter.region)
        .bind(&filter.language)
        .bind(&filter.market)
        .bind(filter.with_free_capacity_only)
        .bind(limit)
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(AdvisorRow::into_proto).collect())
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

/// Takes one slot of the advisor's capacity, or nothing when it is full or
/// inactive; the conditional update is what keeps load within capacity.
///
/// An UPDATE that waits for a row and then finds it full still holds the
/// row's lock, so a transaction trying candidates one after another can
/// deadlock with another doing the same in a different order. `wait` is
/// therefore only for callers serialised by the waitlist lock; everyone
/// else skips a row another transaction is claiming and tries the next.
pub async fn claim_slot(
    conn: &mut PgConnection,
    advisor_id: Uuid,
    wait: bool,
) -> Result<bool, sqlx::Error> {
    let sql = if wait {
        "UPDATE advisor SET active_companies = active_companies + 1
          WHERE id = $1 AND status = 'ACTIVE' AND active_companies < capacity"
    } else {
        "UPDATE advisor SET active_companies = active_companies + 1
          WHERE id = (SELECT id FROM advisor
                       WHERE id = $1 AND status = 'ACTIVE' AND active_companies < capacity
                         FOR UPDATE SKIP LOCKED)
            AND status = 'ACTIVE' AND active_companies < capacity"
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

// --------------------------------------------------------------- companies

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

// ------------------------------------------------------------- assignments

pub struct NewAssignment<'a> {
    pub id: Uuid,
    pub company_id: Uuid,
    pub advisor_id: Uuid,
    pub stage: GrowthStage,
    pub score: &'a pb::AdvisorScore,
    pub started_at: DateTime<Utc>,
    pub committed_until: DateTime<Utc>,
    pub predecessor: Option<Uuid>,
    pub contact_interval_days: u32,
    pub program_id: String,
    pub monthly_fee: Option<Money>,
    pub from_waitlist: bool,
}

pub async fn insert_assignment(
    conn: &mut PgConnection,
    new: &NewAssignment<'_>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO assignment (id, company_id, advisor_id, status, stage, score, score_total,
             started_at, committed_until, predecessor_assignment_id, contact_interval_days,
             program_id, fee_currency, fee_minor, from_waitlist)
         VALUES ($1, $2, $3, 'ACTIVE', $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
    )
    .bind(new.id)
    .bind(new.company_id)
    .bind(new.advisor_id)
    .bind(new.stage.as_str())
    .bind(new.score.encode_to_vec())
    .bind(new.score.total)
    .bind(new.started_at)
    .bind(new.committed_until)
    .bind(new.predecessor)
    .bind(new.contact_interval_days as i32)
    .bind(&new.program_id)
    .bind(new.monthly_fee.as_ref().map(|m| m.currency_code.clone()))
    .bind(new.monthly_fee.as_ref().map(|m| m.amount_minor))
    .bind(new.from_waitlist)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AssignmentRow {
    id: Uuid,
    company_id: Uuid,
    advisor_id: Uuid,
    status: String,
    stage: String,
    score: Vec<u8>,
    started_at: DateTime<Utc>,
    committed_until: DateTime<Utc>,
    handover_until: Option<DateTime<Utc>>,
    ended_at: Option<DateTime<Utc>>,
    end_reason: Option<String>,
    end_note: String,
    predecessor_assignment_id: Option<Uuid>,
    successor_assignment_id: Option<Uuid>,
    contact_interval_days: i32,
    last_contact_at: Option<DateTime<Utc>>,
    program_id: String,
    fee_currency: Option<String>,
    fee_minor: Option<i64>,
    from_waitlist: bool,
}

const ASSIGNMENT_COLUMNS: &str = "id, company_id, advisor_id, status, stage, score, started_at, \
     committed_until, handover_until, ended_at, end_reason, end_note, predecessor_assignment_id, \
     successor_assignment_id, contact_interval_days, last_contact_at, program_id, fee_currency, \
     fee_minor, from_waitlist";

pub fn assignment_status(stored: &str) -> i32 {
    let status = match stored {
        ACTIVE => pb::AssignmentStatus::Active,
        HANDOVER => pb::AssignmentStatus::Handover,
        ENDED => pb::AssignmentStatus::Ended,
        _ => pb::AssignmentStatus::Unspecified,
    };
    status as i32
}

pub fn reason_proto(stored: &str) -> i32 {
    let reason = match stored {
        "ADVISOR_LEFT" => pb::ReassignReason::AdvisorLeft,
        "COMPANY_REQUEST" => pb::ReassignReason::CompanyRequest,
        "CONFLICT" => pb::ReassignReason::Conflict,
        "OTHER" => pb::ReassignReason::Other,
        _ => pb::ReassignReason::Unspecified,
    };
    reason as i32
}

impl AssignmentRow {
    fn into_proto(self, needs: Vec<pb::NeedRef>) -> pb::Assignment {
        let since = self.last_contact_at.unwrap_or(self.started_at);
        let next_due = since + Duration::days(i64::from(self.contact_interval_days));
        pb::Assignment {
            assignment_id: self.id.to_string(),
            company_id: self.company_id.to_string(),
            advisor_id: self.advisor_id.to_string(),
            status: assignment_status(&self.status),
            needs,
            stage: stage_proto(&self.stage),
            score: pb::AdvisorScore::decode(self.score.as_slice()).ok(),
            started_at: Some(to_timestamp(self.started_at)),
            committed_until: Some(to_timestamp(self.committed_until)),
            handover_until: self.handover_until.map(to_timestamp),
            ended_at: self.ended_at.map(to_timestamp),
            end_reason: self
                .end_reason
                .as_deref()
                .map(reason_proto)
                .unwrap_or_default(),
            end_note: self.end_note,
            predecessor_assignment_id: self
                .predecessor_assignment_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            successor_assignment_id: self
                .successor_assignment_id
                .map(|id| id.to_string())
                .unwrap_or_default(),
            contact_interval_days: self.contact_interval_days.max(0) as u32,
            last_contact_at: self.last_contact_at.map(to_timestamp),
            next_contact_due_at: (self.status != ENDED).then(|| to_timestamp(next_due)),
            program_id: self.program_id,
            monthly_fee: money(self.fee_currency, self.fee_minor),
            from_waitlist: self.from_waitlist,
        }
    }
}

async fn needs_of_many(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<pb::NeedRef>>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT an.assignment_id, an.need_id, an.case_id
           FROM assignment_need an JOIN need_request n ON n.need_id = an.need_id
          WHERE an.assignment_id = ANY($1)
          ORDER BY n.received_at, n.need_id",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let mut needs: HashMap<Uuid, Vec<pb::NeedRef>> = HashMap::new();
    for row in rows {
        needs
            .entry(row.get("assignment_id"))
            .or_default()
            .push(pb::NeedRef {
                need_id: row.get::<Uuid, _>("need_id").to_string(),
                case_id: row.get::<Uuid, _>("case_id").to_string(),
            });
    }
    Ok(needs)
}

async fn with_needs(
    conn: &mut PgConnection,
    rows: Vec<AssignmentRow>,
) -> Result<Vec<pb::Assignment>, sqlx::Error> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut needs = needs_of_many(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let of_row = needs.remove(&row.id).unwrap_or_default();
            row.into_proto(of_row)
        })
        .collect())
}

/// The one assignment matching `condition` (on `$1`), with its needs.
async fn one_assignment(
    conn: &mut PgConnection,
    condition: &str,
    key: Uuid,
) -> Result<Option<pb::Assignment>, sqlx::Error> {
    let sql = format!("SELECT {ASSIGNMENT_COLUMNS} FROM assignment WHERE {condition}");
    let row: Option<AssignmentRow> = sqlx::query_as(&sql)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(with_needs(conn, row.into_iter().collect()).await?.pop())
}

pub async fn load_assignment(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<pb::Assignment>, sqlx::Error> {
    let condition = if lock {
        "id = $1 FOR UPDATE"
    } else {
        "id = $1"
    };
    one_assignment(conn, condition, id).await
}

pub async fn active_assignment_of(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<Option<pb::Assignment>, sqlx::Error> {
    one_assignment(conn, "company_id = $1 AND status = 'ACTIVE'", company_id).await
}

pub async fn assignments_of_company(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<Vec<pb::Assignment>, sqlx::Error> {
    let sql = format!(
        "SELECT {ASSIGNMENT_COLUMNS} FROM assignment WHERE company_id = $1
          ORDER BY (status = 'ACTIVE'), started_at, id"
    );
    let rows: Vec<AssignmentRow> = sqlx::query_as(&sql)
        .bind(company_id)
        .fetch_all(&mut *conn)
        .await?;
    with_needs(conn, rows).await
}

/// Companies the advisor serves as their ACTIVE advisor.
pub async fn companies_of_advisor(
    conn: &mut PgConnection,
    advisor_id: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT company_id FROM assignment WHERE advisor_id = $1 AND status = 'ACTIVE'",
    )
    .bind(advisor_id)
    .fetch_all(conn)
    .await
}

pub async fn add_need_to_assignment(
    conn: &mut PgConnection,
    assignment_id: Uuid,
    need_id: Uuid,
    case_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO assignment_need (assignment_id, need_id, case_id) VALUES ($1, $2, $3)
         ON CONFLICT DO NOTHING",
    )
    .bind(assignment_id)
    .bind(need_id)
    .bind(case_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn set_stage(
    conn: &mut PgConnection,
    assignment_id: Uuid,
    stage: GrowthStage,
    contact_interval_days: u32,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE assignment SET stage = $2, contact_interval_days = $3
          WHERE id = $1 AND stage <> $2",
    )
    .bind(assignment_id)
    .bind(stage.as_str())
    .bind(contact_interval_days as i32)
    .execute(conn)
    .await?;
    Ok(())
}

/// Moves an ACTIVE assignment out of ACTIVE: to HANDOVER until
/// `handover_until`, or ENDED at once when that is None.
pub async fn retire_assignment(
    conn: &mut PgConnection,
    id: Uuid,
    reason: &str,
    note: &str,
    now: DateTime<Utc>,
    handover_until: Option<DateTime<Utc>>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE assignment
            SET status = CASE WHEN $5::timestamptz IS NULL THEN 'ENDED' ELSE 'HANDOVER' END,
                handover_until = $5,
                ended_at = CASE WHEN $5::timestamptz IS NULL THEN $4 END,
                end_reason = $2, end_note = $3
          WHERE id = $1 AND status = 'ACTIVE'",
    )
    .bind(id)
    .bind(reason)
    .bind(note)
    .bind(now)
    .bind(handover_until)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

pub async fn set_successor(
    conn: &mut PgConnection,
    id: Uuid,
    successor: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE assignment SET successor_assignment_id = $2 WHERE id = $1")
        .bind(id)
        .bind(successor)
        .execute(conn)
        .await?;
    Ok(())
}

/// HANDOVER assignments whose window has passed and whose successor is in
/// place, locked for ending; another replica's sweep skips them.
pub async fn claim_finished_handovers(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, Uuid, Uuid, String, Option<Uuid>)>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, company_id, advisor_id, end_reason, successor_assignment_id FROM assignment
          WHERE status = 'HANDOVER' AND handover_until <= $1 AND successor_assignment_id IS NOT NULL
          ORDER BY handover_until, id
          LIMIT 200
          FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            (
                row.get("id"),
                row.get("company_id"),
                row.get("advisor_id"),
                row.get::<Option<String>, _>("end_reason")
                    .unwrap_or_default(),
                row.get("successor_assignment_id"),
            )
        })
        .collect())
}

pub async fn end_handover(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE assignment SET status = 'ENDED', ended_at = $2 WHERE id = $1 AND status = 'HANDOVER'")
        .bind(id)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

pub struct NewChange {
    pub company_id: Uuid,
    pub from_assignment_id: Uuid,
    pub to_assignment_id: Option<Uuid>,
    pub from_advisor_id: Uuid,
    pub to_advisor_id: Option<Uuid>,
    pub reason: &'static str,
    pub note: String,
    pub changed_at: DateTime<Utc>,
    pub handover_until: Option<DateTime<Utc>>,
}

pub async fn insert_change(conn: &mut PgConnection, change: &NewChange) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO advisor_change (company_id, from_assignment_id, to_assignment_id,
             from_advisor_id, to_advisor_id, reason, note, changed_at, handover_until)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
    )
    .bind(change.company_id)
    .bind(change.from_assignment_id)
    .bind(change.to_assignment_id)
    .bind(change.from_advisor_id)
    .bind(change.to_advisor_id)
    .bind(change.reason)
    .bind(&change.note)
    .bind(change.changed_at)
    .bind(change.handover_until)
    .execute(conn)
    .await?;
    Ok(())
}

/// A change recorded while the successor was still being sought gets its
/// successor once the waitlist fills it.
pub async fn complete_change(
    conn: &mut PgConnection,
    from_assignment_id: Uuid,
    to_assignment_id: Uuid,
    to_advisor_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE advisor_change SET to_assignment_id = $2, to_advisor_id = $3
          WHERE from_assignment_id = $1 AND to_assignment_id IS NULL",
    )
    .bind(from_assignment_id)
    .bind(to_assignment_id)
    .bind(to_advisor_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn changes_of_company(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<Vec<pb::AdvisorChange>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT from_assignment_id, to_assignment_id, from_advisor_id, to_advisor_id, reason, note,
                changed_at, handover_until
           FROM advisor_change WHERE company_id = $1 ORDER BY id",
    )
    .bind(company_id)
    .fetch_all(conn)
    .await?;
    let id_text = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    Ok(rows
        .into_iter()
        .map(|row| pb::AdvisorChange {
            from_assignment_id: row.get::<Uuid, _>("from_assignment_id").to_string(),
            to_assignment_id: id_text(row.get("to_assignment_id")),
            from_advisor_id: row.get::<Uuid, _>("from_advisor_id").to_string(),
            to_advisor_id: id_text(row.get("to_advisor_id")),
            reason: reason_proto(row.get("reason")),
            note: row.get("note"),
            changed_at: Some(to_timestamp(row.get("changed_at"))),
            handover_until: row
                .get::<Option<DateTime<Utc>>, _>("handover_until")
                .map(to_timestamp),
        })
        .collect())
}

// ---------------------------------------------------------------- waitlist

pub async fn insert_waitlist_entry(
    conn: &mut PgConnection,
    id: Uuid,
    need: Option<(Uuid, Uuid)>,
    company_id: Uuid,
    outgoing: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO waitlist_entry (id, need_id, case_id, company_id, status, priority,
             outgoing_assignment_id, requested_at)
         VALUES ($1, $2, $3, $4, 'WAITING', $5, $6, $7)",
    )
    .bind(id)
    .bind(need.map(|(need_id, _)| need_id))
    .bind(need.map(|(_, case_id)| case_id))
    .bind(company_id)
    .bind(if outgoing.is_some() { 0 } else { 1 })
    .bind(outgoing)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

const WAITLIST_SELECT: &str = "SELECT w.id, w.need_id, w.case_id, w.company_id, w.status,
        w.outgoing_assignment_id, w.requested_at, w.assignment_id, w.filled_at,
        CASE WHEN w.status = 'WAITING' THEN
            (SELECT count(*) FROM waitlist_entry o WHERE o.status = 'WAITING'
               AND (o.priority, o.requested_at, o.id) <= (w.priority, w.requested_at, w.id))
        ELSE 0 END AS position
   FROM waitlist_entry w";

fn waitlist_from_row(row: &sqlx::postgres::PgRow) -> pb::WaitlistEntry {
    let id_text = |id: Option<Uuid>| id.map(|id| id.to_string()).unwrap_or_default();
    let status = match row.get::<&str, _>("status") {
        WAITING => pb::WaitlistStatus::Waiting,
        FILLED => pb::WaitlistStatus::Filled,
        _ => pb::WaitlistStatus::Unspecified,
    };
    pb::WaitlistEntry {
        waitlist_entry_id: row.get::<Uuid, _>("id").to_string(),
        need_id: id_text(row.get("need_id")),
        case_id: id_text(row.get("case_id")),
        company_id: row.get::<Uuid, _>("company_id").to_string(),
        status: status as i32,
        position: row.get::<i64, _>("position").max(0) as u32,
        outgoing_assignment_id: id_text(row.get("outgoing_assignment_id")),
        requested_at: Some(to_timestamp(row.get("requested_at"))),
        assignment_id: id_text(row.get("assignment_id")),
        filled_at: row
            .get::<Option<DateTime<Utc>>, _>("filled_at")
            .map(to_timestamp),
    }
}

pub async fn load_waitlist_entry(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<pb::WaitlistEntry>, sqlx::Error> {
    let row = sqlx::query(&format!("{WAITLIST_SELECT} WHERE w.id = $1"))
        .bind(id)
        .fetch_optional(conn)
        .await?;
    Ok(row.as_ref().map(waitlist_from_row))
}

pub async fn waiting_entry_of_company(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<Option<pb::WaitlistEntry>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "{WAITLIST_SELECT} WHERE w.company_id = $1 AND w.status = 'WAITING'"
    ))
    .bind(company_id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(waitlist_from_row))
}

pub struct Waiting {
    pub id: Uuid,
    pub company_id: Uuid,
    pub outgoing: Option<Uuid>,
}

/// The waiting entries in fill order, locked; entries another replica is
/// filling are skipped.
pub async fn claim_waiting(conn: &mut PgConnection) -> Result<Vec<Waiting>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, company_id, outgoing_assignment_id FROM waitlist_entry
          WHERE status = 'WAITING'
          ORDER BY priority, requested_at, id
          LIMIT 200
          FOR UPDATE SKIP LOCKED",
    )
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Waiting {
            id: row.get("id"),
            company_id: row.get("company_id"),
            outgoing: row.get("outgoing_assignment_id"),
        })
        .collect())
}

pub async fn mark_filled(
    conn: &mut PgConnection,
    id: Uuid,
    assignment_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE waitlist_entry SET status = 'FILLED', assignment_id = $2, filled_at = $3 WHERE id = $1",
    )
    .bind(id)
    .bind(assignment_id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// WAITING entries in fill order first, then FILLED ones newest first. The
/// page key is (group, sort time, id).
pub async fn list_waitlist(
    pool: &PgPool,
    status: Option<&'static str>,
    company_id: Option<Uuid>,
    offset: i64,
    limit: i64,
) -> Result<Vec<pb::WaitlistEntry>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "{WAITLIST_SELECT}
          WHERE ($1::text IS NULL OR w.status = $1) AND ($2::uuid IS NULL OR w.company_id = $2)
          ORDER BY (w.status <> 'WAITING'),
                   CASE WHEN w.status = 'WAITING' THEN w.priority END,
                   CASE WHEN w.status = 'WAITING' THEN w.requested_at END,
                   w.filled_at DESC, w.id
          OFFSET $3 LIMIT $4"
    ))
    .bind(status)
    .bind(company_id)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(waitlist_from_row).collect())
}

// ---------------------------------------------------------------- sessions

pub async fn insert_session(
    conn: &mut PgConnection,
    id: Uuid,
    assignment_id: Uuid,
    log: &SessionLog,
    now: DateTime<Utc>,
    logged_by: &str,
) -> Result<(), sqlx::Error> {
    let actions: Vec<u8> = log
        .follow_up_actions
        .iter()
        .flat_map(|action| action.encode_length_delimited_to_vec())
        .collect();
    sqlx::query(
        "INSERT INTO session (id, assignment_id, company_id, advisor_id, held_at, channel, minutes,
             topics, follow_up_actions, interpreter_language, logged_at, logged_by)
         SELECT $1, id, company_id, advisor_id, $3, $4, $5, $6, $7, $8, $9, $10
           FROM assignment WHERE id = $2",
    )
    .bind(id)
    .bind(assignment_id)
    .bind(log.held_at)
    .bind(log.channel.as_str())
    .bind(log.minutes as i32)
    .bind(&log.topics)
    .bind(actions)
    .bind(&log.interpreter_language)
    .bind(now)
    .bind(logged_by)
    .execute(&mut *conn)
    .await?;
    // A session logged late never moves the last contact backwards.
    sqlx::query(
        "UPDATE assignment
            SET last_contact_at = GREATEST(coalesce(last_contact_at, $2), $2),
                overdue_periods_raised = 0
          WHERE id = $1",
    )
    .bind(assignment_id)
    .bind(log.held_at)
    .execute(conn)
    .await?;
    Ok(())
}

fn decode_actions(bytes: &[u8]) -> Vec<pb::ActionItem> {
    let mut buf = bytes;
    let mut actions = Vec::new();
    while !buf.is_empty() {
        match pb::ActionItem::decode_length_delimited(&mut buf) {
            Ok(action) => actions.push(action),
            Err(_) => break,
        }
    }
    actions
}

fn session_from_row(row: &sqlx::postgres::PgRow) -> pb::Session {
    pb::Session {
        session_id: row.get::<Uuid, _>("id").to_string(),
        assignment_id: row.get::<Uuid, _>("assignment_id").to_string(),
        company_id: row.get::<Uuid, _>("company_id").to_string(),
        advisor_id: row.get::<Uuid, _>("advisor_id").to_string(),
        held_at: Some(to_timestamp(row.get("held_at"))),
        channel: Channel::proto_from_stored(row.get("channel")),
        minutes: row.get::<i32, _>("minutes").max(0) as u32,
        topics: row.get("topics"),
        follow_up_actions: decode_actions(row.get("follow_up_actions")),
        interpreter_language: row.get("interpreter_language"),
        logged_at: Some(to_timestamp(row.get("logged_at"))),
        logged_by: row.get("logged_by"),
    }
}

const SESSION_COLUMNS: &str = "id, assignment_id, company_id, advisor_id, held_at, channel, minutes, \
     topics, follow_up_actions, interpreter_language, logged_at, logged_by";

pub async fn load_session(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<pb::Session>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {SESSION_COLUMNS} FROM session WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(conn)
    .await?;
    Ok(row.as_ref().map(session_from_row))
}

#[derive(Debug, Default)]
pub struct SessionFilter {
    pub assignment_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub advisor_id: Option<Uuid>,
    pub held_from: Option<DateTime<Utc>>,
    pub held_to: Option<DateTime<Utc>>,
}

/// Newest first; the page key is (held_at, id) of the last row.
pub async fn list_sessions(
    pool: &PgPool,
    filter: &SessionFilter,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: i64,
) -> Result<Vec<pb::Session>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT {SESSION_COLUMNS} FROM session
          WHERE ($1::uuid IS NULL OR assignment_id = $1)
            AND ($2::uuid IS NULL OR company_id = $2)
            AND ($3::uuid IS NULL OR advisor_id = $3)
            AND ($4::timestamptz IS NULL OR held_at >= $4)
            AND ($5::timestamptz IS NULL OR held_at <= $5)
            AND ($6::timestamptz IS NULL OR (held_at, id) < ($6, $7))
          ORDER BY held_at DESC, id DESC
          LIMIT $8"
    ))
    .bind(filter.assignment_id)
    .bind(filter.company_id)
    .bind(filter.advisor_id)
    .bind(filter.held_from)
    .bind(filter.held_to)
    .bind(after.map(|(at, _)| at))
    .bind(after.map(|(_, id)| id))
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(session_from_row).collect())
}

// ----------------------------------------------------------------- cadence

#[derive(Debug, Default)]
pub struct OverdueFilter {
    pub advisor_id: Option<Uuid>,
    pub region: Option<String>,
    pub stage: Option<&'static str>,
}

/// ACTIVE assignments whose next contact is past due at `now`, most
/// overdue first.
pub async fn list_overdue(
    pool: &PgPool,
    filter: &OverdueFilter,
    now: DateTime<Utc>,
    offset: i64,
    limit: i64,
) -> Result<Vec<pb::OverdueContact>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT a.id, a.company_id, a.advisor_id, a.stage, a.contact_interval_days,
                a.last_contact_at, coalesce(a.last_contact_at, a.started_at) AS since,
                coalesce(a.last_contact_at, a.started_at)
                    + make_interval(days => a.contact_interval_days) AS due_at
           FROM assignment a JOIN company c ON c.id = a.company_id
          WHERE a.status = 'ACTIVE'
            AND coalesce(a.last_contact_at, a.started_at)
                    + make_interval(days => a.contact_interval_days) <= $1
            AND ($2::uuid IS NULL OR a.advisor_id = $2)
            AND ($3::text IS NULL OR c.region = $3)
            AND ($4::text IS NULL OR a.stage = $4)
          ORDER BY due_at, a.id
          OFFSET $5 LIMIT $6",
    )
    .bind(now)
    .bind(filter.advisor_id)
    .bind(&filter.region)
    .bind(filter.stage)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let interval: i32 = row.get("contact_interval_days");
            let since: DateTime<Utc> = row.get("since");
            let due_at: DateTime<Utc> = row.get("due_at");
            pb::OverdueContact {
                assignment_id: row.get::<Uuid, _>("id").to_string(),
                company_id: row.get::<Uuid, _>("company_id").to_string(),
                advisor_id: row.get::<Uuid, _>("advisor_id").to_string(),
                stage: stage_proto(row.get("stage")),
                contact_interval_days: interval.max(0) as u32,
                last_contact_at: row
                    .get::<Option<DateTime<Utc>>, _>("last_contact_at")
                    .map(to_timestamp),
                due_at: Some(to_timestamp(due_at)),
                days_overdue: (now - due_at).num_days().max(0) as u32,
                periods_overdue: crate::domain::cadence::periods_missed(since, interval, now)
                    .clamp(0, i64::from(u32::MAX)) as u32,
            }
        })
        .collect())
}

pub struct DueContact {
    pub id: Uuid,
    pub company_id: Uuid,
    pub advisor_id: Uuid,
    pub interval_days: i32,
    pub last_contact_at: Option<DateTime<Utc>>,
    pub since: DateTime<Utc>,
    pub periods_raised: i32,
}

/// ACTIVE assignments with a cadence period due and not yet announced,
/// locked; rows another sweeper holds are skipped.
pub async fn claim_due_contacts(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
) -> Result<Vec<DueContact>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, company_id, advisor_id, contact_interval_days, last_contact_at,
                coalesce(last_contact_at, started_at) AS since, overdue_periods_raised
           FROM assignment
          WHERE status = 'ACTIVE'
            AND coalesce(last_contact_at, started_at)
                + make_interval(days => contact_interval_days * (overdue_periods_raised + 1)) <= $1
          ORDER BY id
          LIMIT 500
          FOR UPDATE SKIP LOCKED",
    )
    .bind(now)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| DueContact {
            id: row.get("id"),
            company_id: row.get("company_id"),
            advisor_id: row.get("advisor_id"),
            interval_days: row.get("contact_interval_days"),
            last_contact_at: row.get("last_contact_at"),
            since: row.get("since"),
            periods_raised: row.get("overdue_periods_raised"),
        })
        .collect())
}

/// Records that periods up to `periods` were announced; false when another
/// sweeper got there first.
pub async fn mark_periods_raised(
    conn: &mut PgConnection,
    id: Uuid,
    from: i32,
    periods: i32,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE assignment SET overdue_periods_raised = $3
          WHERE id = $1 AND overdue_periods_raised = $2",
    )
    .bind(id)
    .bind(from)
    .bind(periods)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated == 1)
}

// -------------------------------------------------------------------- fees

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

#[derive(Debug, Default)]
pub struct FeeFilter {
    pub company_id: Option<Uuid>,
    pub month: Option<String>,
    pub advisor_id: Option<Uuid>,
    pub program_id: Option<String>,
}

const FEE_WHERE: &str = "($1::uuid IS NULL OR company_id = $1)
            AND ($2::text IS NULL OR month = $2)
            AND ($3::uuid IS NULL OR advisor_id = $3)
            AND ($4::text IS NULL OR program_id = $4)";

pub async fn list_fee_charges(
    pool: &PgPool,
    filter: &FeeFilter,
    offset: i64,
    limit: i64,
) -> Result<Vec<pb::FeeCharge>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT id, assignment_id, company_id, advisor_id, program_id, month, currency,
                amount_minor, charged_at
           FROM fee_charge WHERE {FEE_WHERE}
          ORDER BY month DESC, charged_at, id
          OFFSET $5 LIMIT $6"
    ))
    .bind(filter.company_id)
    .bind(&filter.month)
    .bind(filter.advisor_id)
    .bind(&filter.program_id)
    .bind(offset)
    .bind(limit)
    .fetch_all(pool)
    .await?;
    Ok(rows.iter().map(fee_from_row).collect())
}

pub async fn fee_totals(pool: &PgPool, filter: &FeeFilter) -> Result<Vec<Money>, sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT currency, sum(amount_minor)::bigint AS total FROM fee_charge WHERE {FEE_WHERE}
          GROUP BY currency ORDER BY currency"
    ))
    .bind(filter.company_id)
    .bind(&filter.month)
    .bind(filter.advisor_id)
    .bind(&filter.program_id)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| Money {
            currency_code: row.get("currency"),
            amount_minor: row.get("total"),
        })
        .collect())
}
