//! Companies and their contacts, the only personal data intake keeps.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use onestop_contracts::common::v1::Money;
use onestop_contracts::intake::v1 as pb;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use sqlx::{PgConnection, Row};
use uuid::Uuid;

use super::{Lock, stage_proto};
use crate::domain::company::{CompanyFilter, CompanyProfile, Contact};
use crate::domain::partner::{NetworkConsent, Partner};

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
    consent_scope: String,
    consent_terms_version: String,
    consent_recorded_by: String,
    consent_recorded_at: Option<DateTime<Utc>>,
}

const COMPANY_COLUMNS: &str = "id, registration_number, name_ko, name_en, region, industry_ksic, hs_codes, \
     employees, annual_revenue_currency, annual_revenue_minor, export_revenue_currency, \
     export_revenue_minor, export_countries, languages, small_merchant, stage, readiness_score, \
     assessment_version, registered_at, updated_at, personal_data_erased_at, consent_scope, \
     consent_terms_version, consent_recorded_by, consent_recorded_at";

/// How the network consent's scope is stored.
const CONSENT_BUSINESS_PROFILE: &str = "BUSINESS_PROFILE";

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
            network_consent: (self.consent_scope == CONSENT_BUSINESS_PROFILE).then(|| {
                pb::NetworkConsent {
                    scope: pb::ConsentScope::BusinessProfile as i32,
                    terms_version: self.consent_terms_version,
                    recorded_by: self.consent_recorded_by,
                    recorded_at: self.consent_recorded_at.map(to_timestamp),
                }
            }),
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

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

/// Binds what a profile sets, as $2 to $15 in this order: name_ko,
/// name_en, region, industry_ksic, hs_codes, employees, annual revenue
/// (currency, amount), export revenue (currency, amount), export_countries,
/// languages, small_merchant, stage.
fn bind_profile<'q>(query: PgQuery<'q>, profile: &'q CompanyProfile) -> PgQuery<'q> {
    query
        .bind(&profile.name_ko)
        .bind(&profile.name_en)
        .bind(profile.region.code())
        .bind(profile.industry.as_str())
        .bind(
            profile
                .hs_codes
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(profile.employees.min(i32::MAX as u32) as i32)
        .bind(profile.annual_revenue.currency.as_str())
        .bind(profile.annual_revenue.amount_minor)
        .bind(profile.export_revenue.currency.as_str())
        .bind(profile.export_revenue.amount_minor)
        .bind(
            profile
                .export_countries
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(
            profile
                .languages
                .iter()
                .map(|c| c.as_str())
                .collect::<Vec<_>>(),
        )
        .bind(profile.small_merchant)
        .bind(profile.stage().as_str())
}

/// Stores a new company with its consent to the network (if any) and who
/// recorded it.
pub async fn insert_company(
    conn: &mut PgConnection,
    id: Uuid,
    profile: &CompanyProfile,
    consent: Option<&NetworkConsent>,
    recorded_by: &str,
) -> Result<(), sqlx::Error> {
    let insert = sqlx::query(
        "INSERT INTO company (id, name_ko, name_en, region, industry_ksic, hs_codes, employees,
             annual_revenue_currency, annual_revenue_minor, export_revenue_currency,
             export_revenue_minor, export_countries, languages, small_merchant, stage,
             registration_number, consent_scope, consent_terms_version, consent_recorded_by,
             consent_recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18,
                 $19, CASE WHEN $17 = '' THEN NULL ELSE now() END)",
    );
    bind_profile(insert.bind(id), profile)
        .bind(profile.registration_number.as_str())
        .bind(consent.map_or("", |_| CONSENT_BUSINESS_PROFILE))
        .bind(consent.map_or("", |c| c.terms_version.as_str()))
        .bind(if consent.is_some() { recorded_by } else { "" })
        .execute(&mut *conn)
        .await?;
    replace_contacts(conn, id, &profile.contacts).await
}

/// Replaces everything a profile sets; the registration number never
/// changes.
pub async fn update_company(
    conn: &mut PgConnection,
    id: Uuid,
    profile: &CompanyProfile,
) -> Result<(), sqlx::Error> {
    let update = sqlx::query(
        "UPDATE company SET name_ko = $2, name_en = $3, region = $4, industry_ksic = $5, hs_codes = $6,
             employees = $7, annual_revenue_currency = $8, annual_revenue_minor = $9,
             export_revenue_currency = $10, export_revenue_minor = $11, export_countries = $12,
             languages = $13, small_merchant = $14, stage = $15, updated_at = now()
         WHERE id = $1",
    );
    bind_profile(update.bind(id), profile)
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

/// Contacts of several companies in one round trip.
async fn contacts_of(
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

/// Rows with their contacts, in the rows' order.
async fn with_contacts(
    conn: &mut PgConnection,
    rows: Vec<CompanyRow>,
) -> Result<Vec<pb::Company>, sqlx::Error> {
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    let mut contacts = contacts_of(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let own = contacts.remove(&row.id).unwrap_or_default();
            row.into_proto(own)
        })
        .collect())
}

/// The company; `Lock::ForUpdate` for a read-modify-write.
pub async fn load_company(
    conn: &mut PgConnection,
    id: Uuid,
    lock: Lock,
) -> Result<Option<pb::Company>, sqlx::Error> {
    let sql = format!(
        "SELECT {COMPANY_COLUMNS} FROM company WHERE id = $1{}",
        lock.clause()
    );
    let row = sqlx::query_as::<_, CompanyRow>(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(with_contacts(conn, row.into_iter().collect()).await?.pop())
}

/// What opening a case reads before it writes, in one statement with the
/// company's row locked (two cases opened at once for one company then
/// agree on whether it already has an open mentoring need). The lock is
/// the one an UPDATE that keeps the key takes: it queues behind another
/// case being opened, a profile update or an erasure, but not behind the
/// rows that merely reference the company (a partner's relationship, a
/// request), which the hand-off and the feed followers write all the time.
/// Read: the company
/// without its contacts (a case carries none of them), whether the caller's
/// partner works with it, and which service owns each need category now.
pub struct CaseOpening {
    pub company: pb::Company,
    pub consented: bool,
    pub works_with: bool,
    pub owners: Vec<(String, String)>,
    /// The partners that work with the company now, named on the case's
    /// events (read here so opening a case takes no statement for them).
    pub partners: Vec<Partner>,
}

/// None when there is no such company.
pub async fn lock_for_case(
    conn: &mut PgConnection,
    id: Uuid,
    partner: Option<&Partner>,
) -> Result<Option<CaseOpening>, sqlx::Error> {
    let row = sqlx::query(&format!(
        "SELECT {COMPANY_COLUMNS},
                $2::text IS NOT NULL AND EXISTS (
                    SELECT 1 FROM company_partner
                     WHERE company_id = $1 AND role = $2 AND tenant = $3 AND state <> 'ENDED')
                    AS works_with,
                ARRAY(SELECT category FROM category_owner ORDER BY category) AS owned_categories,
                ARRAY(SELECT owner FROM category_owner ORDER BY category) AS category_owners,
                ARRAY(SELECT DISTINCT role || ':' || tenant FROM company_partner
                       WHERE company_id = $1 AND state <> 'ENDED'
                       ORDER BY 1 LIMIT $4) AS partners
           FROM company WHERE id = $1 FOR NO KEY UPDATE OF company"
    ))
    .bind(id)
    .bind(partner.map(|p| p.role.as_str()))
    .bind(partner.map(|p| p.tenant.as_str()))
    .bind(super::relationships::MAX_NAMED_PARTNERS)
    .fetch_optional(conn)
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let company = <CompanyRow as sqlx::FromRow<_>>::from_row(&row)?;
    let partners: Vec<String> = row.get("partners");
    let categories: Vec<String> = row.get("owned_categories");
    let owners: Vec<String> = row.get("category_owners");
    Ok(Some(CaseOpening {
        consented: company.consent_scope == CONSENT_BUSINESS_PROFILE,
        works_with: row.get("works_with"),
        owners: categories.into_iter().zip(owners).collect(),
        partners: super::relationships::stored_partners(
            partners
                .into_iter()
                .filter_map(|key| {
                    key.split_once(':')
                        .map(|(r, t)| (r.to_owned(), t.to_owned()))
                })
                .collect(),
        ),
        company: company.into_proto(Vec::new()),
    }))
}

pub async fn company_exists(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM company WHERE id = $1)")
        .bind(id)
        .fetch_one(conn)
        .await
}

/// Whether the company consented to share its business profile across the
/// network; None when there is no such company.
pub async fn consented(conn: &mut PgConnection, id: Uuid) -> Result<Option<bool>, sqlx::Error> {
    let scope: Option<String> =
        sqlx::query_scalar("SELECT consent_scope FROM company WHERE id = $1")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(scope.map(|scope| scope == CONSENT_BUSINESS_PROFILE))
}

/// Oldest first, each with its id; only companies `partner` works with
/// when one is given.
pub async fn list_companies(
    conn: &mut PgConnection,
    filter: &CompanyFilter,
    partner: Option<&Partner>,
    page: &Page<Uuid>,
) -> Result<Vec<(Uuid, pb::Company)>, sqlx::Error> {
    let sql = format!(
        "SELECT {COMPANY_COLUMNS} FROM company
          WHERE ($1::uuid IS NULL OR id > $1)
            AND ($2::text IS NULL OR region = $2)
            AND ($3::text IS NULL OR stage = $3)
            AND (NOT $4 OR small_merchant)
            AND ($6::text IS NULL OR id IN (
                    SELECT company_id FROM company_partner
                     WHERE role = $6 AND tenant = $7 AND state <> 'ENDED'))
          ORDER BY id
          LIMIT $5"
    );
    let rows = sqlx::query_as::<_, CompanyRow>(&sql)
        .bind(page.after)
        .bind(filter.region.map(|r| r.code()))
        .bind(filter.stage.map(|s| s.as_str()))
        .bind(filter.small_merchants_only)
        .bind(page.fetch_limit())
        .bind(partner.map(|p| p.role.as_str()))
        .bind(partner.map(|p| p.tenant.as_str()))
        .fetch_all(&mut *conn)
        .await?;
    let ids: Vec<Uuid> = rows.iter().map(|row| row.id).collect();
    Ok(ids
        .into_iter()
        .zip(with_contacts(conn, rows).await?)
        .collect())
}

/// The company with this registration number (ten digits).
pub async fn company_by_registration_number(
    conn: &mut PgConnection,
    number: &str,
) -> Result<Option<pb::Company>, sqlx::Error> {
    match company_id_by_registration_number(&mut *conn, number).await? {
        Some(id) => load_company(conn, id, super::Lock::None).await,
        None => Ok(None),
    }
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
