//! Intake's SQL. Rows map straight onto the wire messages they serve.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use onestop_contracts::common::v1::{self as common, Money};
use onestop_contracts::intake::v1 as pb;
use onestop_domain::{GrowthStage, NeedCategory, NeedOwner};
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use sqlx::{PgConnection, PgPool, Row};
use uuid::Uuid;

use crate::domain::case::PlannedNeed;
use crate::domain::company::{CompanyProfile, Contact};
use crate::domain::readiness::{Answers, Diagnosis, ScoreItem};

#[derive(sqlx::FromRow)]
struct CompanyRow {
    id: Uuid,
    registration_number: String,
    name_ko: String,
    name_en: String,
    region: String,
    industry_ksic: String,
    hs_codes: Vec<String>,
    employees: i32,
    annual_revenue_currency: String,
    annual_revenue_minor: i64,
    export_revenue_currency: String,
    export_revenue_minor: i64,
    export_countries: Vec<String>,
    languages: Vec<String>,
    small_merchant: bool,
    stage: String,
    readiness_score: i32,
    assessment_version: i32,
    registered_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    personal_data_erased_at: Option<DateTime<Utc>>,
}

const COMPANY_COLUMNS: &str = "id, registration_number, name_ko, name_en, region, industry_ksic, hs_codes, \
     employees, annual_revenue_currency, annual_revenue_minor, export_revenue_currency, \
     export_revenue_minor, export_countries, languages, small_merchant, stage, readiness_score, \
     assessment_version, registered_at, updated_at, personal_data_erased_at";

fn stage_proto(stored: &str) -> i32 {
    GrowthStage::from_stored(stored)
        .map(|s| s.to_proto() as i32)
        .unwrap_or_default()
}

impl CompanyRow {
    fn into_proto(self, contacts: Vec<pb::Contact>) -> pb::Company {
        pb::Company {
            company_id: self.id.to_string(),
            profile: Some(pb::CompanyProfile {
                business_registration_number: self.registration_number,
                name_ko: self.name_ko,
                name_en: self.name_en,
                region: self.region,
                industry_ksic: self.industry_ksic,
                hs_codes: self.hs_codes,
                employees: self.employees.max(0) as u32,
                annual_revenue: Some(Money {
                    currency_code: self.annual_revenue_currency,
                    amount_minor: self.annual_revenue_minor,
                }),
                export_revenue: Some(Money {
                    currency_code: self.export_revenue_currency,
                    amount_minor: self.export_revenue_minor,
                }),
                export_countries: self.export_countries,
                languages: self.languages,
                small_merchant: self.small_merchant,
                contacts,
            }),
            stage: stage_proto(&self.stage),
            readiness_score: self.readiness_score.max(0) as u32,
            assessment_version: self.assessment_version.max(0) as u32,
            registered_at: Some(to_timestamp(self.registered_at)),
            updated_at: Some(to_timestamp(self.updated_at)),
            personal_data_erased_at: self.personal_data_erased_at.map(to_timestamp),
        }
    }
}

pub async fn company_id_by_registration_number(
    conn: &mut PgConnection,
    number: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM company WHERE registration_number = $1")
        .bind(number)
        .fetch_optional(conn)
        .await
}

pub async fn insert_company(
    conn: &mut PgConnection,
    id: Uuid,
    profile: &CompanyProfile,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO company (id, registration_number, name_ko, name_en, region, industry_ksic, hs_codes,
             employees, annual_revenue_currency, annual_revenue_minor, export_revenue_currency,
             export_revenue_minor, export_countries, languages, small_merchant, stage)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)",
    )
    .bind(id)
    .bind(profile.registration_number.as_str())
    .bind(&profile.name_ko)
    .bind(&profile.name_en)
    .bind(profile.region.code())
    .bind(profile.industry.as_str())
    .bind(profile.hs_codes.iter().map(|c| c.as_str()).collect::<Vec<_>>())
    .bind(profile.employees.min(i32::MAX as u32) as i32)
    .bind(profile.annual_revenue.currency.as_str())
    .bind(profile.annual_revenue.amount_minor)
    .bind(profile.export_revenue.currency.as_str())
    .bind(profile.export_revenue.amount_minor)
    .bind(profile.export_countries.iter().map(|c| c.as_str()).collect::<Vec<_>>())
    .bind(profile.languages.iter().map(|c| c.as_str()).collect::<Vec<_>>())
    .bind(profile.small_merchant)
    .bind(profile.stage().as_str())
    .execute(&mut *conn)
    .await?;
    replace_contacts(conn, id, &profile.contacts).await
}

pub async fn update_company(
    conn: &mut PgConnection,
    id: Uuid,
    profile: &CompanyProfile,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE company SET name_ko = $2, name_en = $3, region = $4, industry_ksic = $5, hs_codes = $6,
             employees = $7, annual_revenue_currency = $8, annual_revenue_minor = $9,
             export_revenue_currency = $10, export_revenue_minor = $11, export_countries = $12,
             languages = $13, small_merchant = $14, stage = $15, updated_at = now()
         WHERE id = $1",
    )
    .bind(id)
    .bind(&profile.name_ko)
    .bind(&profile.name_en)
    .bind(profile.region.code())
    .bind(profile.industry.as_str())
    .bind(profile.hs_codes.iter().map(|c| c.as_str()).collect::<Vec<_>>())
    .bind(profile.employees.min(i32::MAX as u32) as i32)
    .bind(profile.annual_revenue.currency.as_str())
    .bind(profile.annual_revenue.amount_minor)
    .bind(profile.export_revenue.currency.as_str())
    .bind(profile.export_revenue.amount_minor)
    .bind(profile.export_countries.iter().map(|c| c.as_str()).collect::<Vec<_>>())
    .bind(profile.languages.iter().map(|c| c.as_str()).collect::<Vec<_>>())
    .bind(profile.small_merchant)
    .bind(profile.stage().as_str())
    .execute(&mut *conn)
    .await?;
    replace_contacts(conn, id, &profile.contacts).await
}

async fn replace_contacts(
    conn: &mut PgConnection,
    id: Uuid,
    contacts: &[Contact],
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM company_contact WHERE company_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for (position, contact) in contacts.iter().enumerate() {
        sqlx::query(
            "INSERT INTO company_contact (company_id, position, name, title, email, phone)
             VALUES ($1, $2, $3, $4, $5, $6)",
        )
        .bind(id)
        .bind(position as i32)
        .bind(&contact.name)
        .bind(&contact.title)
        .bind(&contact.email)
        .bind(&contact.phone)
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

async fn contacts_of(conn: &mut PgConnection, id: Uuid) -> Result<Vec<pb::Contact>, sqlx::Error> {
    let mut by_company = contacts_of_many(conn, &[id]).await?;
    Ok(by_company.remove(&id).unwrap_or_default())
}

/// Contacts of several companies in one round trip.
async fn contacts_of_many(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<pb::Contact>>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT company_id, name, title, email, phone FROM company_contact
          WHERE company_id = ANY($1) ORDER BY company_id, position",
    )
    .bind(ids)
    .fetch_all(conn)
    .await?;
    let mut by_company: HashMap<Uuid, Vec<pb::Contact>> = HashMap::new();
    for row in rows {
        by_company
            .entry(row.get("company_id"))
            .or_default()
            .push(pb::Contact {
                name: row.get("name"),
                title: row.get("title"),
                email: row.get("email"),
                phone: row.get("phone"),
            });
    }
    Ok(by_company)
}

/// The company; `lock` takes a row lock for a read-modify-write.
pub async fn load_company(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<pb::Company>, sqlx::Error> {
    let sql = format!(
        "SELECT {COMPANY_COLUMNS} FROM company WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let Some(row) = sqlx::query_as::<_, CompanyRow>(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let contacts = contacts_of(conn, id).await?;
    Ok(Some(row.into_proto(contacts)))
}

pub struct CompanyFilter {
    pub region: Option<String>,
    pub stage: Option<GrowthStage>,
    pub small_merchants_only: bool,
}

pub async fn list_companies(
    pool: &PgPool,
    filter: &CompanyFilter,
    page: &Page,
    after: Option<Uuid>,
) -> Result<Vec<pb::Company>, sqlx::Error> {
    let sql = format!(
        "SELECT {COMPANY_COLUMNS} FROM company
          WHERE ($1::uuid IS NULL OR id > $1)
            AND ($2::text IS NULL OR region = $2)
            AND ($3::text IS NULL OR stage = $3)
            AND (NOT $4 OR small_merchant)
          ORDER BY id
          LIMIT $5"
    );
    let rows = sqlx::query_as::<_, CompanyRow>(&sql)
        .bind(after)
        .bind(&filter.region)
        .bind(filter.stage.map(|s| s.as_str()))
        .bind(filter.small_merchants_only)
        .bind(page.fetch_limit())
        .fetch_all(pool)
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut contacts = contacts_of_many(&mut *pool.acquire().await?, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let own = contacts.remove(&row.id).unwrap_or_default();
            row.into_proto(own)
        })
        .collect())
}

pub async fn insert_assessment(
    conn: &mut PgConnection,
    id: Uuid,
    company_id: Uuid,
    version: i32,
    previous_stage: GrowthStage,
    answers: &pb::ReadinessAnswers,
    diagnosis: &Diagnosis,
) -> Result<(), sqlx::Error> {
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
    .bind(prost::Message::encode_to_vec(answers))
    .bind(serde_json::to_value(&diagnosis.breakdown).unwrap_or_default())
    .bind(&diagnosis.rationale)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE company SET stage = $2, readiness_score = $3, assessment_version = $4,
             export_revenue_currency = 'USD', export_revenue_minor = $5, updated_at = now()
         WHERE id = $1",
    )
    .bind(company_id)
    .bind(diagnosis.stage.as_str())
    .bind(diagnosis.score as i32)
    .bind(version)
    .bind(answers_export_cents(answers))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

fn answers_export_cents(answers: &pb::ReadinessAnswers) -> i64 {
    answers
        .export_revenue
        .as_ref()
        .map(|m| m.amount_minor)
        .unwrap_or(0)
}

/// Keeps the parsed answers' canonical form (trimmed certifications).
pub fn answers_to_proto(answers: &Answers) -> pb::ReadinessAnswers {
    pb::ReadinessAnswers {
        foreign_language_catalog: answers.foreign_language_catalog,
        foreign_language_website: answers.foreign_language_website,
        certifications: answers.certifications.clone(),
        dedicated_trade_staff: answers.dedicated_trade_staff,
        trade_show_experience: answers.trade_show_experience,
        export_plan: answers.export_plan,
        export_revenue: Some(answers.export_revenue.to_proto()),
    }
}

pub async fn list_assessments(
    conn: &mut PgConnection,
    company_id: Uuid,
    only_id: Option<Uuid>,
) -> Result<Vec<pb::Assessment>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, company_id, version, score, stage, previous_stage, answers, breakdown, rationale, assessed_at
           FROM assessment
          WHERE company_id = $1 AND ($2::uuid IS NULL OR id = $2)
          ORDER BY version DESC",
    )
    .bind(company_id)
    .bind(only_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let breakdown: Vec<ScoreItem> =
                serde_json::from_value(row.get("breakdown")).unwrap_or_default();
            let answers: Vec<u8> = row.get("answers");
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
                answers: prost::Message::decode(answers.as_slice()).ok(),
                assessed_at: Some(to_timestamp(row.get("assessed_at"))),
            }
        })
        .collect())
}

pub async fn has_open_mentoring_need(
    conn: &mut PgConnection,
    company_id: Uuid,
) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (
             SELECT 1 FROM need n JOIN support_case c ON c.id = n.case_id
              WHERE c.company_id = $1 AND n.category = 'MENTORING'
                AND n.status NOT IN ('DONE', 'CANCELLED'))",
    )
    .bind(company_id)
    .fetch_one(conn)
    .await
}

pub async fn insert_case(
    conn: &mut PgConnection,
    case_id: Uuid,
    company_id: Uuid,
) -> Result<(), sqlx::Error> {
    sqlx::query("INSERT INTO support_case (id, company_id, status) VALUES ($1, $2, 'OPEN')")
        .bind(case_id)
        .bind(company_id)
        .execute(conn)
        .await?;
    Ok(())
}

pub async fn insert_need(
    conn: &mut PgConnection,
    need_id: Uuid,
    case_id: Uuid,
    position: usize,
    need: &PlannedNeed,
) -> Result<DateTime<Utc>, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO need (id, case_id, position, category, owner, detail, target_markets, hs_codes,
                           status, added_by_rule, delivery)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, 'OPEN', $9, 'PENDING')
         RETURNING opened_at",
    )
    .bind(need_id)
    .bind(case_id)
    .bind(position as i32)
    .bind(need.spec.category.as_str())
    .bind(need.owner.as_str())
    .bind(&need.spec.detail)
    .bind(need.spec.target_markets.iter().map(|c| c.as_str()).collect::<Vec<_>>())
    .bind(need.spec.hs_codes.iter().map(|c| c.as_str()).collect::<Vec<_>>())
    .bind(need.added_by_rule)
    .fetch_one(conn)
    .await
}

pub async fn add_timeline_entry(
    conn: &mut PgConnection,
    case_id: Uuid,
    need_id: Option<Uuid>,
    service: &str,
    kind: &str,
    summary: &str,
    at: Option<DateTime<Utc>>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO case_timeline (case_id, need_id, service, kind, summary, at)
         VALUES ($1, $2, $3, $4, $5, COALESCE($6, now()))",
    )
    .bind(case_id)
    .bind(need_id)
    .bind(service)
    .bind(kind)
    .bind(summary)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(())
}

fn need_status(stored: &str) -> i32 {
    (match stored {
        "OPEN" => pb::NeedStatus::Open,
        "ROUTED" => pb::NeedStatus::Routed,
        "IN_PROGRESS" => pb::NeedStatus::InProgress,
        "DONE" => pb::NeedStatus::Done,
        "CANCELLED" => pb::NeedStatus::Cancelled,
        _ => pb::NeedStatus::Unspecified,
    }) as i32
}

fn delivery_state(stored: &str) -> i32 {
    (match stored {
        "PENDING" => pb::DeliveryState::Pending,
        "DELIVERED" => pb::DeliveryState::Delivered,
        _ => pb::DeliveryState::Unspecified,
    }) as i32
}

async fn needs_of(conn: &mut PgConnection, case_id: Uuid) -> Result<Vec<pb::Need>, sqlx::Error> {
    let mut by_case = needs_of_many(conn, &[case_id]).await?;
    Ok(by_case.remove(&case_id).unwrap_or_default())
}

/// Needs of several cases in one round trip, each case's in its order.
async fn needs_of_many(
    conn: &mut PgConnection,
    case_ids: &[Uuid],
) -> Result<HashMap<Uuid, Vec<pb::Need>>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT case_id, id, category, owner, detail, target_markets, hs_codes, status, added_by_rule,
                delivery, delivery_attempts, opened_at, last_delivery_error, next_delivery_at,
                delivered_at, owner_record_id
           FROM need WHERE case_id = ANY($1) ORDER BY case_id, position",
    )
    .bind(case_ids)
    .fetch_all(conn)
    .await?;
    let mut by_case: HashMap<Uuid, Vec<pb::Need>> = HashMap::new();
    for row in rows {
        let delivery: &str = row.get("delivery");
        let need = pb::Need {
            need_id: row.get::<Uuid, _>("id").to_string(),
            category: NeedCategory::from_stored(row.get("category"))
                .map(|c| c.to_proto() as i32)
                .unwrap_or_default(),
            owner: NeedOwner::from_stored(row.get("owner"))
                .map(|o| o.to_proto() as i32)
                .unwrap_or_default(),
            detail: row.get("detail"),
            target_markets: row.get("target_markets"),
            hs_codes: row.get("hs_codes"),
            status: need_status(row.get("status")),
            added_by_rule: row.get("added_by_rule"),
            delivery: delivery_state(delivery),
            delivery_attempts: row.get::<i32, _>("delivery_attempts").max(0) as u32,
            opened_at: Some(to_timestamp(row.get("opened_at"))),
            last_delivery_error: row.get("last_delivery_error"),
            next_delivery_at: (delivery == "PENDING")
                .then(|| to_timestamp(row.get("next_delivery_at"))),
            delivered_at: row
                .get::<Option<DateTime<Utc>>, _>("delivered_at")
                .map(to_timestamp),
            owner_record_id: row.get("owner_record_id"),
        };
        by_case.entry(row.get("case_id")).or_default().push(need);
    }
    Ok(by_case)
}

fn case_status(stored: &str) -> i32 {
    (match stored {
        "OPEN" => pb::CaseStatus::Open,
        "CLOSED" => pb::CaseStatus::Closed,
        _ => pb::CaseStatus::Unspecified,
    }) as i32
}

pub async fn load_case(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<Option<pb::Case>, sqlx::Error> {
    let Some(row) =
        sqlx::query("SELECT id, company_id, status, opened_at FROM support_case WHERE id = $1")
            .bind(case_id)
            .fetch_optional(&mut *conn)
            .await?
    else {
        return Ok(None);
    };
    let needs = needs_of(conn, case_id).await?;
    Ok(Some(pb::Case {
        case_id: case_id.to_string(),
        company_id: row.get::<Uuid, _>("company_id").to_string(),
        status: case_status(row.get("status")),
        needs,
        opened_at: Some(to_timestamp(row.get("opened_at"))),
    }))
}

pub async fn list_cases(
    pool: &PgPool,
    company_id: Option<Uuid>,
    status: Option<&str>,
    page: &Page,
    after: Option<Uuid>,
) -> Result<Vec<pb::Case>, sqlx::Error> {
    let mut conn = pool.acquire().await?;
    let rows = sqlx::query(
        "SELECT id, company_id, status, opened_at FROM support_case
          WHERE ($1::uuid IS NULL OR id > $1)
            AND ($2::uuid IS NULL OR company_id = $2)
            AND ($3::text IS NULL OR status = $3)
          ORDER BY id LIMIT $4",
    )
    .bind(after)
    .bind(company_id)
    .bind(status)
    .bind(page.fetch_limit())
    .fetch_all(&mut *conn)
    .await?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.get("id")).collect();
    let mut needs = needs_of_many(&mut conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let id: Uuid = row.get("id");
            pb::Case {
                case_id: id.to_string(),
                company_id: row.get::<Uuid, _>("company_id").to_string(),
                status: case_status(row.get("status")),
                needs: needs.remove(&id).unwrap_or_default(),
                opened_at: Some(to_timestamp(row.get("opened_at"))),
            }
        })
        .collect())
}

/// The hand-off for a need whose `need.opened` event retention has
/// already pruned: the need as stored and the company as it is now.
pub async fn rebuild_hand_off(
    conn: &mut PgConnection,
    case_id: Uuid,
    need_id: Uuid,
) -> Result<Option<common::NeedHandOff>, sqlx::Error> {
    let Some(case) = load_case(conn, case_id).await? else {
        return Ok(None);
    };
    let wanted = need_id.to_string();
    let Some(need) = case.needs.into_iter().find(|n| n.need_id == wanted) else {
        return Ok(None);
    };
    let Ok(company_id) = Uuid::parse_str(&case.company_id) else {
        return Ok(None);
    };
    let company = load_company(conn, company_id, false).await?;
    Ok(Some(common::NeedHandOff {
        need_id: need.need_id,
        case_id: case.case_id,
        category: need.category,
        owner: need.owner,
        detail: need.detail,
        target_markets: need.target_markets,
        hs_codes: need.hs_codes,
        company: company.as_ref().map(snapshot),
        opened_at: need.opened_at,
    }))
}

pub async fn timeline(
    conn: &mut PgConnection,
    case_id: Uuid,
) -> Result<Vec<pb::TimelineEntry>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT at, service, kind, need_id, summary FROM case_timeline WHERE case_id = $1 ORDER BY at, id",
    )
    .bind(case_id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| pb::TimelineEntry {
            at: Some(to_timestamp(row.get("at"))),
            service: row.get("service"),
            kind: row.get("kind"),
            need_id: row
                .get::<Option<Uuid>, _>("need_id")
                .map(|id| id.to_string())
                .unwrap_or_default(),
            summary: row.get("summary"),
        })
        .collect())
}

/// Removes the company's contacts and marks the erasure; returns how many
/// contacts were removed.
pub async fn erase_contacts(conn: &mut PgConnection, company_id: Uuid) -> Result<u64, sqlx::Error> {
    let erased = sqlx::query("DELETE FROM company_contact WHERE company_id = $1")
        .bind(company_id)
        .execute(&mut *conn)
        .await?
        .rows_affected();
    sqlx::query(
        "UPDATE company SET personal_data_erased_at = now(), updated_at = now() WHERE id = $1",
    )
    .bind(company_id)
    .execute(&mut *conn)
    .await?;
    Ok(erased)
}

/// The snapshot downstream services get: no personal data.
pub fn snapshot(company: &pb::Company) -> common::CompanySnapshot {
    let profile = company.profile.clone().unwrap_or_default();
    common::CompanySnapshot {
        company_id: company.company_id.clone(),
        business_registration_number: profile.business_registration_number,
        name_ko: profile.name_ko,
        name_en: profile.name_en,
        region: profile.region,
        industry_ksic: profile.industry_ksic,
        hs_codes: profile.hs_codes,
        employees: profile.employees,
        annual_revenue: profile.annual_revenue,
        export_revenue: profile.export_revenue,
        export_countries: profile.export_countries,
        languages: profile.languages,
        small_merchant: profile.small_merchant,
        stage: company.stage,
        readiness_score: company.readiness_score,
    }
}
