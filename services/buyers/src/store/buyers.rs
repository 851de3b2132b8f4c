//! The buyer registry: buyers as the trade offices register them, their
//! contacts, the vetting history, and the matching index rebuilt from them.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Lock, insert_contacts, load_contacts, texts, usd};
use crate::domain::buyer::{
    self, BuyerFilter, BuyerProfile, Decision, VettingStatus, criterion_as_str,
    criterion_from_stored,
};

/// How much of a buyer a read returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Detail {
    /// The record alone.
    Record,
    /// With contacts (personal data) and the vetting history.
    Full,
}

#[derive(sqlx::FromRow)]
struct BuyerRow {
    id: Uuid,
    trade_office_id: String,
    company_name: String,
    country: String,
    city: String,
    time_zone: String,
    hs_codes: Vec<String>,
    industries_ksic: Vec<String>,
    import_volume_usd_minor: i64,
    languages: Vec<String>,
    external_ref: Option<String>,
    website: String,
    status: String,
    quality_score: i32,
    criteria_met: Vec<String>,
    vetted_at: Option<DateTime<Utc>>,
    vetted_by: String,
    vetting_note: String,
    registered_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

const BUYER_COLUMNS: &str = "id, trade_office_id, company_name, country, city, time_zone, hs_codes, \
     industries_ksic, import_volume_usd_minor, languages, external_ref, website, status, \
     quality_score, criteria_met, vetted_at, vetted_by, vetting_note, registered_at, updated_at";

fn vetting(
    status: &str,
    quality_score: i32,
    criteria: &[String],
    vetted_at: Option<DateTime<Utc>>,
    vetted_by: &str,
    note: &str,
) -> pb::Vetting {
    pb::Vetting {
        status: VettingStatus::from_stored(status).to_proto() as i32,
        quality_score: quality_score.clamp(0, 100) as u32,
        criteria_met: criteria.iter().map(|c| criterion_from_stored(c)).collect(),
        vetted_at: vetted_at.map(to_timestamp),
        vetted_by: vetted_by.to_owned(),
        note: note.to_owned(),
    }
}

impl BuyerRow {
    fn matchable_at(&self, now: DateTime<Utc>) -> bool {
        self.status == VettingStatus::Verified.as_str()
            && self
                .vetted_at
                .is_some_and(|at| buyer::vetting_expires_at(at) > now)
    }

    fn summary(&self) -> pb::BuyerSummary {
        pb::BuyerSummary {
            buyer_id: self.id.to_string(),
            trade_office_id: self.trade_office_id.clone(),
            company_name: self.company_name.clone(),
            country: self.country.clone(),
            city: self.city.clone(),
            time_zone: self.time_zone.clone(),
            hs_codes: self.hs_codes.clone(),
            languages: self.languages.clone(),
            annual_import_volume: Some(usd(self.import_volume_usd_minor)),
            quality_score: self.quality_score.clamp(0, 100) as u32,
        }
    }

    fn into_proto(
        self,
        contacts: Vec<pb::Contact>,
        history: Vec<pb::Vetting>,
        now: DateTime<Utc>,
    ) -> pb::Buyer {
        let matchable = self.matchable_at(now);
        let expires = (self.status == VettingStatus::Verified.as_str())
            .then_some(self.vetted_at)
            .flatten()
            .map(|at| to_timestamp(buyer::vetting_expires_at(at)));
        pb::Buyer {
            buyer_id: self.id.to_string(),
            trade_office_id: self.trade_office_id,
            vetting: Some(vetting(
                &self.status,
                self.quality_score,
                &self.criteria_met,
                self.vetted_at,
                &self.vetted_by,
                &self.vetting_note,
            )),
            profile: Some(pb::BuyerProfile {
                company_name: self.company_name,
                country: self.country,
                city: self.city,
                time_zone: self.time_zone,
                hs_codes: self.hs_codes,
                industries_ksic: self.industries_ksic,
                annual_import_volume: Some(usd(self.import_volume_usd_minor)),
                languages: self.languages,
                contacts,
                external_ref: self.external_ref.unwrap_or_default(),
                website: self.website,
            }),
            vetting_history: history,
            matchable,
            vetting_expires_at: expires,
            registered_at: Some(to_timestamp(self.registered_at)),
            updated_at: Some(to_timestamp(self.updated_at)),
        }
    }
}

pub async fn buyer_id_by_external_ref(
    conn: &mut PgConnection,
    office: &str,
    external_ref: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar("SELECT id FROM buyer WHERE trade_office_id = $1 AND external_ref = $2")
        .bind(office)
        .bind(external_ref)
        .fetch_optional(conn)
        .await
}

pub async fn insert_buyer(
    conn: &mut PgConnection,
    id: Uuid,
    office: &str,
    profile: &BuyerProfile,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO buyer (id, trade_office_id, company_name, country, city, time_zone, hs_codes,
             industries_ksic, import_volume_usd_minor, languages, external_ref, website, status,
             registered_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, 'UNVERIFIED', $13, $13)",
    )
    .bind(id)
    .bind(office)
    .bind(&profile.company_name)
    .bind(profile.country.as_str())
    .bind(&profile.city)
    .bind(profile.time_zone.name())
    .bind(texts(&profile.hs_codes, |c| c.as_str()))
    .bind(texts(&profile.industries, |c| c.as_str()))
    .bind(profile.import_volume.amount_minor)
    .bind(texts(&profile.languages, |c| c.as_str()))
    .bind(&profile.external_ref)
    .bind(&profile.website)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    insert_contacts(conn, "buyer_contact", "buyer_id", id, &profile.contacts).await
}

pub async fn load_buyer(
    conn: &mut PgConnection,
    id: Uuid,
    lock: Lock,
    detail: Detail,
    now: DateTime<Utc>,
) -> Result<Option<pb::Buyer>, sqlx::Error> {
    let sql = format!(
        "SELECT {BUYER_COLUMNS} FROM buyer WHERE id = $1{}",
        lock.clause()
    );
    let Some(row) = sqlx::query_as::<_, BuyerRow>(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let (contacts, history) = if detail == Detail::Full {
        (
            load_contacts(conn, "buyer_contact", "buyer_id", id).await?,
            vetting_history(conn, id).await?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Some(row.into_proto(contacts, history, now)))
}

/// Decisions a buyer shows, newest first. A buyer is vetted about once a
/// year, so these span decades; older ones stay on file but off the
/// message, which would otherwise grow with every VetBuyer.
pub const VETTINGS_SHOWN: i64 = 50;

async fn vetting_history(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Vec<pb::Vetting>, sqlx::Error> {
    type VettingRow = (String, i32, Vec<String>, DateTime<Utc>, String, String);
    let rows: Vec<VettingRow> = sqlx::query_as(
        "SELECT status, quality_score, criteria_met, vetted_at, vetted_by, note
           FROM buyer_vetting WHERE buyer_id = $1 ORDER BY id DESC LIMIT $2",
    )
    .bind(id)
    .bind(VETTINGS_SHOWN)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(status, score, criteria, at, by, note)| {
            vetting(&status, score, &criteria, Some(at), &by, &note)
        })
        .collect())
}

/// Records a vetting decision and rebuilds the buyer's rows in the
/// matching index.
pub async fn record_vetting(
    conn: &mut PgConnection,
    id: Uuid,
    decision: &Decision,
    vetted_by: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let criteria: Vec<&str> = decision
        .criteria
        .iter()
        .map(|c| criterion_as_str(*c))
        .collect();
    // The history entry and the buyer's current vetting, in one statement.
    sqlx::query(
        "WITH entry AS (
             INSERT INTO buyer_vetting (buyer_id, status, quality_score, criteria_met, vetted_at,
                                        vetted_by, note)
             VALUES ($1, $2, $3, $4, $5, $6, $7))
         UPDATE buyer SET status = $2, quality_score = $3, criteria_met = $4, vetted_at = $5,
                vetted_by = $6, vetting_note = $7, updated_at = $5
          WHERE id = $1",
    )
    .bind(id)
    .bind(decision.status.as_str())
    .bind(decision.quality_score as i32)
    .bind(&criteria)
    .bind(now)
    .bind(vetted_by)
    .bind(&decision.note)
    .execute(&mut *conn)
    .await?;
    reindex_buyers(conn, &[id]).await
}

/// Rewrites the matching-index rows of `ids` from their buyer records.
pub async fn reindex_buyers(conn: &mut PgConnection, ids: &[Uuid]) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM buyer_hs WHERE buyer_id = ANY($1)")
        .bind(ids)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO buyer_hs (buyer_id, code, heading, chapter, country, languages, quality_score, vetted_at)
         SELECT DISTINCT b.id, code, left(code, 4), left(code, 2), b.country, b.languages, b.quality_score, b.vetted_at
           FROM buyer b, unnest(b.hs_codes) AS code
          WHERE b.id = ANY($1) AND b.status = 'VERIFIED' AND b.vetted_at IS NOT NULL",
    )
    .bind(ids)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// In id order; `now` decides which are matchable.
pub async fn list_buyers(
    conn: &mut PgConnection,
    filter: &BuyerFilter,
    page: &Page<Uuid>,
    now: DateTime<Utc>,
) -> Result<Vec<(Uuid, pb::Buyer)>, sqlx::Error> {
    let sql = format!(
        "SELECT {BUYER_COLUMNS} FROM buyer
          WHERE ($1::text IS NULL OR trade_office_id = $1)
            AND ($2::text IS NULL OR country = $2)
            AND ($3::text IS NULL OR status = $3)
            AND ($4::text IS NULL OR EXISTS (SELECT 1 FROM unnest(hs_codes) c WHERE c LIKE $4 || '%'))
            AND ($5::timestamptz IS NULL OR (status = 'VERIFIED' AND vetted_at > $5))
            AND ($6::uuid IS NULL OR id > $6)
          ORDER BY id LIMIT $7"
    );
    let rows: Vec<BuyerRow> = sqlx::query_as(&sql)
        .bind(&filter.office)
        .bind(&filter.country)
        .bind(filter.status.map(VettingStatus::as_str))
        .bind(&filter.hs_prefix)
        .bind(filter.matchable_only.then(|| buyer::freshness_cutoff(now)))
        .bind(page.after)
        .bind(page.fetch_limit())
        .fetch_all(conn)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| (row.id, row.into_proto(Vec::new(), Vec::new(), now)))
        .collect())
}

pub async fn buyer_summaries(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<HashMap<Uuid, (pb::BuyerSummary, DateTime<Utc>)>, sqlx::Error> {
    let sql = format!("SELECT {BUYER_COLUMNS} FROM buyer WHERE id = ANY($1)");
    let rows: Vec<BuyerRow> = sqlx::query_as(&sql).bind(ids).fetch_all(conn).await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let vetted = row.vetted_at.unwrap_or(row.registered_at);
            let matchable_until = if row.status == VettingStatus::Verified.as_str() {
                buyer::vetting_expires_at(vetted)
            } else {
                DateTime::<Utc>::MIN_UTC
            };
            (row.id, (row.summary(), matchable_until))
        })
        .collect())
}
