//! Buyers' SQL. Rows map straight onto the wire messages they serve.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::common::v1::Money;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use prost::Message;
use sqlx::{PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::buyer::{
    self, BuyerProfile, Decision, VettingStatus, criterion_as_str, criterion_from_stored,
};
use crate::domain::lifecycle::MatchStatus;
use crate::domain::markets::MarketDemand;
use crate::domain::matching::{self, Candidate, HsLevel, MatchQuery};

fn usd(amount_minor: i64) -> Money {
    Money {
        currency_code: "USD".into(),
        amount_minor,
    }
}

fn texts<T>(items: &[T], as_str: impl Fn(&T) -> &str) -> Vec<String> {
    items.iter().map(|i| as_str(i).to_owned()).collect()
}

pub fn is_unique_violation(error: &sqlx::Error, constraint: Option<&str>) -> bool {
    matches!(error, sqlx::Error::Database(db)
        if db.code().as_deref() == Some("23505")
            && constraint.is_none_or(|c| db.constraint() == Some(c)))
}

// ---------------------------------------------------------------- buyers

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

/// Stores contacts (personal data) of a buyer or a lead.
async fn insert_contacts(
    conn: &mut PgConnection,
    table: &str,
    key: &str,
    id: Uuid,
    contacts: &[pb::Contact],
) -> Result<(), sqlx::Error> {
    for (position, contact) in contacts.iter().enumerate() {
        sqlx::query(&format!(
            "INSERT INTO {table} ({key}, position, name, title, email, phone)
             VALUES ($1, $2, $3, $4, $5, $6)"
        ))
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

/// Loads a buyer; `detail` adds contacts and the vetting history.
pub async fn load_buyer(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
    detail: bool,
    now: DateTime<Utc>,
) -> Result<Option<pb::Buyer>, sqlx::Error> {
    let sql = format!(
        "SELECT {BUYER_COLUMNS} FROM buyer WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let Some(row) = sqlx::query_as::<_, BuyerRow>(&sql)
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let (contacts, history) = if detail {
        (
            load_contacts(conn, "buyer_contact", "buyer_id", id).await?,
            vetting_history(conn, id).await?,
        )
    } else {
        (Vec::new(), Vec::new())
    };
    Ok(Some(row.into_proto(contacts, history, now)))
}

async fn load_contacts(
    conn: &mut PgConnection,
    table: &str,
    key: &str,
    id: Uuid,
) -> Result<Vec<pb::Contact>, sqlx::Error> {
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(&format!(
        "SELECT name, title, email, phone FROM {table} WHERE {key} = $1 ORDER BY position"
    ))
    .bind(id)
    .fetch_all(conn)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(name, title, email, phone)| pb::Contact {
            name,
            title,
            email,
            phone,
        })
        .collect())
}

async fn vetting_history(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Vec<pb::Vetting>, sqlx::Error> {
    type VettingRow = (String, i32, Vec<String>, DateTime<Utc>, String, String);
    let rows: Vec<VettingRow> = sqlx::query_as(
        "SELECT status, quality_score, criteria_met, vetted_at, vetted_by, note
           FROM buyer_vetting WHERE buyer_id = $1 ORDER BY id DESC",
    )
    .bind(id)
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
    sqlx::query(
        "INSERT INTO buyer_vetting (buyer_id, status, quality_score, criteria_met, vetted_at, vetted_by, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
    sqlx::query(
        "UPDATE buyer SET status = $2, quality_score = $3, criteria_met = $4, vetted_at = $5,
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

pub struct BuyerFilter {
    pub office: Option<String>,
    pub country: Option<String>,
    pub status: Option<VettingStatus>,
    pub hs_prefix: Option<String>,
    pub matchable_since: Option<DateTime<Utc>>,
}

pub async fn list_buyers(
    pool: &PgPool,
    filter: &BuyerFilter,
    page: &Page,
    after: Option<Uuid>,
    now: DateTime<Utc>,
) -> Result<Vec<pb::Buyer>, sqlx::Error> {
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
        .bind(filter.matchable_since)
        .bind(after)
        .bind(page.fetch_limit())
        .fetch_all(pool)
        .await?;
    Ok(rows
        .into_iter()
        .map(|row| row.into_proto(Vec::new(), Vec::new(), now))
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

// -------------------------------------------------------------- matching

#[derive(sqlx::FromRow)]
struct CandidateRow {
    buyer_id: Uuid,
    buyer_code: String,
    country: String,
    languages: Vec<String>,
    quality_score: i32,
}

/// The best `limit` matchable buyers for `query`, best first, scored.
/// Because the HS level outranks everything else, the levels are searched
/// best first and the search stops once the page is full: the common case
/// reads a few dozen index rows, never a whole chapter.
pub async fn find_buyers(
    conn: &mut PgConnection,
    query: &MatchQuery,
    fresh_since: DateTime<Utc>,
    exclude: &[Uuid],
    limit: u32,
) -> Result<Vec<(pb::BuyerSummary, pb::BuyerMatchScore)>, sqlx::Error> {
    let mut taken: Vec<Uuid> = exclude.to_vec();
    let mut rows: Vec<CandidateRow> = Vec::new();
    for level in [HsLevel::Exact, HsLevel::Heading, HsLevel::Chapter] {
        let wanted = limit as usize - rows.len();
        if wanted == 0 {
            break;
        }
        let (join, min_len, width) = match level {
            HsLevel::Exact => ("h.code = q.code", 6, 6),
            HsLevel::Heading => ("h.heading = q.code", 4, 4),
            HsLevel::Chapter => ("h.chapter = q.code", 2, 2),
        };
        let mut codes: Vec<String> = query
            .hs_codes
            .iter()
            .map(|c| c.as_str())
            .filter(|c| c.len() >= min_len)
            .map(|c| c[..width].to_owned())
            .collect();
        codes.sort();
        codes.dedup();
        if codes.is_empty() {
            continue;
        }
        let sql = format!(
            "WITH q AS (SELECT unnest($1::text[]) AS code)
             SELECT buyer_id, buyer_code, country, languages, quality_score FROM (
                 SELECT DISTINCT ON (h.buyer_id)
                        h.buyer_id, h.code AS buyer_code, h.country, h.languages, h.quality_score,
                        CASE WHEN h.country = ANY($2) THEN $4::float8 ELSE 0 END
                        + CASE WHEN h.languages && $3 THEN $5::float8 ELSE 0 END
                        + h.quality_score * $6::float8 AS rest
                   FROM q JOIN buyer_hs h ON {join}
                  WHERE h.vetted_at > $7 AND NOT (h.buyer_id = ANY($8))
                  ORDER BY h.buyer_id, h.code
             ) best
             ORDER BY rest DESC, quality_score DESC, buyer_id
             LIMIT $9"
        );
        let found: Vec<CandidateRow> = sqlx::query_as(&sql)
            .bind(&codes)
            .bind(texts(&query.target_markets, |c| c.as_str()))
            .bind(texts(&query.languages, |c| c.as_str()))
            .bind(matching::MARKET_POINTS)
            .bind(matching::LANGUAGE_POINTS)
            .bind(matching::QUALITY_POINTS_MAX / 100.0)
            .bind(fresh_since)
            .bind(&taken)
            .bind(wanted as i64)
            .fetch_all(&mut *conn)
            .await?;
        taken.extend(found.iter().map(|r| r.buyer_id));
        rows.extend(found);
    }
    let ids: Vec<Uuid> = rows.iter().map(|r| r.buyer_id).collect();
    let summaries = buyer_summaries(conn, &ids).await?;
    Ok(rows
        .into_iter()
        .filter_map(|row| {
            let candidate = Candidate {
                buyer_code: row.buyer_code,
                country: row.country,
                languages: row.languages,
                quality_score: row.quality_score.clamp(0, 100) as u32,
            };
            let score = matching::score(query, &candidate)?;
            let (summary, _) = summaries.get(&row.buyer_id)?.clone();
            Some((summary, score))
        })
        .collect())
}

// --------------------------------------------------------------- matches

pub async fn search_by_need(
    conn: &mut PgConnection,
    need_id: &str,
) -> Result<Option<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, company_id FROM buyer_search WHERE need_id = $1")
        .bind(need_id)
        .fetch_optional(conn)
        .await
}

pub async fn insert_search(
    conn: &mut PgConnection,
    id: Uuid,
    need_id: &str,
    case_id: &str,
    company_id: &str,
    requested: u32,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO buyer_search (id, need_id, case_id, company_id, requested, opened_at)
         VALUES ($1, $2, $3, $4, $5, $6)",
    )
    .bind(id)
    .bind(need_id)
    .bind(case_id)
    .bind(company_id)
    .bind(requested as i32)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn load_search(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<pb::BuyerSearch>, sqlx::Error> {
    let Some((need_id, case_id, company_id, requested, opened_at)) = sqlx::query_as::<
        _,
        (String, String, String, i32, DateTime<Utc>),
    >(
        "SELECT need_id, case_id, company_id, requested, opened_at FROM buyer_search WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?
    else {
        return Ok(None);
    };
    let ids: Vec<Uuid> =
        sqlx::query_scalar("SELECT id FROM buyer_match WHERE search_id = $1 ORDER BY rank")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    let matches = load_matches(conn, &ids).await?;
    Ok(Some(pb::BuyerSearch {
        search_id: id.to_string(),
        need_id,
        case_id,
        company_id,
        count: requested.max(0) as u32,
        matches,
        opened_at: Some(to_timestamp(opened_at)),
    }))
}

/// Buyers the company has an open match with.
pub async fn open_match_buyers(
    conn: &mut PgConnection,
    company_id: &str,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT buyer_id FROM buyer_match
          WHERE company_id = $1 AND status NOT IN ('DEAL', 'CLOSED_NO_DEAL')",
    )
    .bind(company_id)
    .fetch_all(conn)
    .await
}

pub struct NewMatch<'a> {
    pub id: Uuid,
    pub search_id: Uuid,
    pub need_id: &'a str,
    pub case_id: &'a str,
    pub company_id: &'a str,
    pub buyer_id: Uuid,
    pub score: &'a pb::BuyerMatchScore,
    pub rank: u32,
}

pub async fn insert_match(
    conn: &mut PgConnection,
    m: &NewMatch<'_>,
    actor: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO buyer_match (id, search_id, need_id, case_id, company_id, buyer_id, status,
             score, rank, proposed_at, updated_at)
         VALUES ($1, $2, $3, $4, $5, $6, 'PROPOSED', $7, $8, $9, $9)",
    )
    .bind(m.id)
    .bind(m.search_id)
    .bind(m.need_id)
    .bind(m.case_id)
    .bind(m.company_id)
    .bind(m.buyer_id)
    .bind(m.score.encode_to_vec())
    .bind(m.rank as i32)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO match_transition (match_id, from_status, to_status, at, actor, note)
         VALUES ($1, 'PROPOSED', 'PROPOSED', $2, $3, '')",
    )
    .bind(m.id)
    .bind(now)
    .bind(actor)
    .execute(conn)
    .await?;
    Ok(())
}

/// One step of a match, as the history records it.
pub struct Move<'a> {
    pub from: MatchStatus,
    pub to: MatchStatus,
    pub reason: Option<pb::NoDealReason>,
    pub actor: &'a str,
    pub note: &'a str,
}

pub async fn move_match(
    conn: &mut PgConnection,
    id: Uuid,
    step: &Move<'_>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let Move {
        from,
        to,
        reason,
        actor,
        note,
    } = step;
    let reason = reason.map(|r| r.as_str_name());
    sqlx::query(
        "UPDATE buyer_match SET status = $2, no_deal_reason = COALESCE($3, no_deal_reason),
                updated_at = $4
          WHERE id = $1",
    )
    .bind(id)
    .bind(to.as_str())
    .bind(reason)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO match_transition (match_id, from_status, to_status, at, actor, no_deal_reason, note)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(id)
    .bind(from.as_str())
    .bind(to.as_str())
    .bind(now)
    .bind(actor)
    .bind(reason)
    .bind(note)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct MatchRow {
    id: Uuid,
    search_id: Option<Uuid>,
    need_id: String,
    case_id: String,
    company_id: String,
    buyer_id: Uuid,
    status: String,
    score: Vec<u8>,
    rank: i32,
    no_deal_reason: Option<String>,
    proposed_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

fn reason_proto(stored: Option<&str>) -> i32 {
    stored
        .and_then(pb::NoDealReason::from_str_name)
        .unwrap_or_default() as i32
}

fn status_proto(stored: &str) -> i32 {
    MatchStatus::from_stored(stored)
        .map(|s| s.to_proto() as i32)
        .unwrap_or_default()
}

/// Matches by id, in the order given, with buyer, history and deal.
pub async fn load_matches(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<pb::Match>, sqlx::Error> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<MatchRow> = sqlx::query_as(
        "SELECT id, search_id, need_id, case_id, company_id, buyer_id, status, score, rank,
                no_deal_reason, proposed_at, updated_at
           FROM buyer_match WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let buyer_ids: Vec<Uuid> = rows.iter().map(|r| r.buyer_id).collect();
    let buyers = buyer_summaries(conn, &buyer_ids).await?;
    type TransitionRow = (
        Uuid,
        String,
        String,
        DateTime<Utc>,
        String,
        Option<String>,
        String,
    );
    let transitions: Vec<TransitionRow> = sqlx::query_as(
        "SELECT match_id, from_status, to_status, at, actor, no_deal_reason, note
               FROM match_transition WHERE match_id = ANY($1) ORDER BY id",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut history: HashMap<Uuid, Vec<pb::MatchTransition>> = HashMap::new();
    for (match_id, from, to, at, actor, reason, note) in transitions {
        history
            .entry(match_id)
            .or_default()
            .push(pb::MatchTransition {
                from: status_proto(&from),
                to: status_proto(&to),
                at: Some(to_timestamp(at)),
                actor,
                no_deal_reason: reason_proto(reason.as_deref()),
                note,
            });
    }
    let mut deals: HashMap<Uuid, pb::Deal> = deals_of_matches(conn, ids)
        .await?
        .into_iter()
        .filter_map(|deal| Some((Uuid::parse_str(&deal.match_id).ok()?, deal)))
        .collect();
    let mut by_id: HashMap<Uuid, pb::Match> = rows
        .into_iter()
        .map(|row| {
            let m = pb::Match {
                match_id: row.id.to_string(),
                search_id: row.search_id.map(|s| s.to_string()).unwrap_or_default(),
                need_id: row.need_id,
                case_id: row.case_id,
                company_id: row.company_id,
                buyer: buyers.get(&row.buyer_id).map(|(s, _)| s.clone()),
                status: status_proto(&row.status),
                score: pb::BuyerMatchScore::decode(row.score.as_slice()).ok(),
                rank: row.rank.max(0) as u32,
                history: history.remove(&row.id).unwrap_or_default(),
                deal: deals.remove(&row.id),
                no_deal_reason: reason_proto(row.no_deal_reason.as_deref()),
                proposed_at: Some(to_timestamp(row.proposed_at)),
                updated_at: Some(to_timestamp(row.updated_at)),
            };
            (row.id, m)
        })
        .collect();
    Ok(ids.iter().filter_map(|id| by_id.remove(id)).collect())
}

pub async fn load_match(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<pb::Match>, sqlx::Error> {
    if lock {
        let found: Option<Uuid> =
            sqlx::query_scalar("SELECT id FROM buyer_match WHERE id = $1 FOR UPDATE")
                .bind(id)
                .fetch_optional(&mut *conn)
                .await?;
        if found.is_none() {
            return Ok(None);
        }
    }
    Ok(load_matches(conn, &[id]).await?.pop())
}

pub struct MatchFilter {
    pub company_id: Option<String>,
    pub buyer_id: Option<Uuid>,
    pub need_id: Option<String>,
    pub office: Option<String>,
    pub statuses: Vec<String>,
}

pub async fn list_matches(
    pool: &PgPool,
    filter: &MatchFilter,
    page: &Page,
    after: Option<Uuid>,
) -> Result<Vec<pb::Match>, sqlx::Error> {
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT m.id FROM buyer_match m JOIN buyer b ON b.id = m.buyer_id
          WHERE ($1::text IS NULL OR m.company_id = $1)
            AND ($2::uuid IS NULL OR m.buyer_id = $2)
            AND ($3::text IS NULL OR m.need_id = $3)
            AND ($4::text IS NULL OR b.trade_office_id = $4)
            AND (cardinality($5::text[]) = 0 OR m.status = ANY($5))
            AND ($6::uuid IS NULL OR m.id > $6)
          ORDER BY m.id LIMIT $7",
    )
    .bind(&filter.company_id)
    .bind(filter.buyer_id)
    .bind(&filter.need_id)
    .bind(&filter.office)
    .bind(&filter.statuses)
    .bind(after)
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await?;
    let mut conn = pool.acquire().await?;
    load_matches(&mut conn, &ids).await
}

// ----------------------------------------------------------------- deals

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
}

const DEAL_COLUMNS: &str = "id, match_id, need_id, case_id, company_id, buyer_id, trade_office_id, deal_type, \
     currency, amount_minor, note, recorded_at, recorded_by, confirmed_at";

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
        }
    }
}

async fn deals_of_matches(
    conn: &mut PgConnection,
    match_ids: &[Uuid],
) -> Result<Vec<pb::Deal>, sqlx::Error> {
    let sql = format!("SELECT {DEAL_COLUMNS} FROM deal WHERE match_id = ANY($1)");
    let rows: Vec<DealRow> = sqlx::query_as(&sql).bind(match_ids).fetch_all(conn).await?;
    Ok(rows.into_iter().map(DealRow::into_proto).collect())
}

pub struct NewDeal<'a> {
    pub id: Uuid,
    pub matched: &'a pb::Match,
    pub trade_office_id: &'a str,
    pub deal_type: pb::DealType,
    pub value: &'a onestop_domain::Money,
    pub note: &'a str,
    pub recorded_by: &'a str,
}

pub async fn insert_deal(
    conn: &mut PgConnection,
    deal: &NewDeal<'_>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let buyer_id = deal
        .matched
        .buyer
        .as_ref()
        .and_then(|b| Uuid::parse_str(&b.buyer_id).ok())
        .unwrap_or_default();
    sqlx::query(
        "INSERT INTO deal (id, match_id, need_id, company_id, buyer_id, trade_office_id, deal_type,
             currency, amount_minor, note, recorded_at, recorded_by, case_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)",
    )
    .bind(deal.id)
    .bind(Uuid::parse_str(&deal.matched.match_id).unwrap_or_default())
    .bind(&deal.matched.need_id)
    .bind(&deal.matched.company_id)
    .bind(buyer_id)
    .bind(deal.trade_office_id)
    .bind(deal.deal_type.as_str_name())
    .bind(deal.value.currency.as_str())
    .bind(deal.value.amount_minor)
    .bind(deal.note)
    .bind(now)
    .bind(deal.recorded_by)
    .bind(&deal.matched.case_id)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn load_deal(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<pb::Deal>, sqlx::Error> {
    let sql = format!(
        "SELECT {DEAL_COLUMNS} FROM deal WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
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

pub async fn list_unconfirmed_deals(
    pool: &PgPool,
    office: Option<&str>,
    company_id: Option<&str>,
    recorded_before: Option<DateTime<Utc>>,
    page: &Page,
    after: Option<(DateTime<Utc>, Uuid)>,
) -> Result<Vec<pb::Deal>, sqlx::Error> {
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
        .bind(office)
        .bind(company_id)
        .bind(recorded_before)
        .bind(after.map(|(at, _)| at))
        .bind(after.map(|(_, id)| id))
        .bind(page.fetch_limit())
        .fetch_all(pool)
        .await?;
    Ok(rows.into_iter().map(DealRow::into_proto).collect())
}

// --------------------------------------------------------- consultations

pub struct NewConsultation<'a> {
    pub id: Uuid,
    pub matched: &'a pb::Match,
    pub buyer_id: Uuid,
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    pub buyer_time_zone: &'a str,
    pub interpreter_language: &'a str,
    pub overseas_desk: bool,
}

pub async fn insert_consultation(
    conn: &mut PgConnection,
    c: &NewConsultation<'_>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO consultation (id, match_id, company_id, buyer_id, start_at, end_at,
             buyer_time_zone, interpreter_language, overseas_desk, booked_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(c.id)
    .bind(Uuid::parse_str(&c.matched.match_id).unwrap_or_default())
    .bind(&c.matched.company_id)
    .bind(c.buyer_id)
    .bind(c.start)
    .bind(c.end)
    .bind(c.buyer_time_zone)
    .bind(c.interpreter_language)
    .bind(c.overseas_desk)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Starts already booked by the buyer or the company within [from, to).
pub async fn booked_starts(
    conn: &mut PgConnection,
    buyer_id: Uuid,
    company_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
) -> Result<Vec<DateTime<Utc>>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT start_at FROM consultation
          WHERE (buyer_id = $1 OR company_id = $2) AND start_at >= $3 AND start_at < $4",
    )
    .bind(buyer_id)
    .bind(company_id)
    .bind(from)
    .bind(to)
    .fetch_all(conn)
    .await
}

// ----------------------------------------------------------- sample tests

pub struct NewSampleTest<'a> {
    pub id: Uuid,
    pub company_id: &'a str,
    pub product_name: &'a str,
    pub hs_code: &'a str,
    pub buyer_ids: &'a [Uuid],
    pub need_id: &'a str,
    pub case_id: &'a str,
}

pub async fn insert_sample_test(
    conn: &mut PgConnection,
    t: &NewSampleTest<'_>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO sample_test (id, company_id, product_name, hs_code, need_id, case_id, started_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(t.id)
    .bind(t.company_id)
    .bind(t.product_name)
    .bind(t.hs_code)
    .bind(t.need_id)
    .bind(t.case_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "INSERT INTO sample_test_buyer (sample_test_id, position, buyer_id)
         SELECT $1, ordinality::int, buyer_id FROM unnest($2::uuid[]) WITH ORDINALITY AS t(buyer_id, ordinality)",
    )
    .bind(t.id)
    .bind(t.buyer_ids)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn load_sample_test(
    conn: &mut PgConnection,
    id: Uuid,
    lock: bool,
) -> Result<Option<pb::SampleTest>, sqlx::Error> {
    type TestRow = (
        String,
        String,
        String,
        String,
        String,
        DateTime<Utc>,
        Option<DateTime<Utc>>,
    );
    let sql = format!(
        "SELECT company_id, product_name, hs_code, need_id, case_id, started_at, completed_at
           FROM sample_test WHERE id = $1{}",
        if lock { " FOR UPDATE" } else { "" }
    );
    let Some((company_id, product_name, hs_code, need_id, case_id, started_at, completed_at)) =
        sqlx::query_as::<_, TestRow>(&sql)
            .bind(id)
            .fetch_optional(&mut *conn)
            .await?
    else {
        return Ok(None);
    };
    let buyer_ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT buyer_id FROM sample_test_buyer WHERE sample_test_id = $1 ORDER BY position",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let received: i64 =
        sqlx::query_scalar("SELECT count(*) FROM sample_feedback WHERE sample_test_id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
    Ok(Some(pb::SampleTest {
        sample_test_id: id.to_string(),
        company_id,
        product_name,
        hs_code,
        buyer_ids: buyer_ids.iter().map(Uuid::to_string).collect(),
        status: if completed_at.is_some() {
            pb::SampleTestStatus::Completed
        } else {
            pb::SampleTestStatus::Collecting
        } as i32,
        feedback_received: received.max(0) as u32,
        need_id,
        case_id,
        started_at: Some(to_timestamp(started_at)),
        completed_at: completed_at.map(to_timestamp),
    }))
}

pub async fn insert_feedback(
    conn: &mut PgConnection,
    feedback: &pb::SampleFeedback,
    id: Uuid,
    test_id: Uuid,
    buyer_id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let ratings = feedback.ratings.unwrap_or_default();
    sqlx::query(
        "INSERT INTO sample_feedback (id, sample_test_id, buyer_id, country, price, quality, packaging,
             labelling, certification_gaps, would_order, comment, recorded_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)",
    )
    .bind(id)
    .bind(test_id)
    .bind(buyer_id)
    .bind(&feedback.country)
    .bind(ratings.price as i32)
    .bind(ratings.quality as i32)
    .bind(ratings.packaging as i32)
    .bind(ratings.labelling as i32)
    .bind(&feedback.certification_gaps)
    .bind(feedback.would_order)
    .bind(&feedback.comment)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

pub async fn complete_sample_test(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE sample_test SET completed_at = $2
          WHERE id = $1 AND completed_at IS NULL
            AND (SELECT count(*) FROM sample_feedback WHERE sample_test_id = $1)
                >= (SELECT count(*) FROM sample_test_buyer WHERE sample_test_id = $1)",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

#[derive(sqlx::FromRow)]
struct FeedbackRow {
    id: Uuid,
    buyer_id: Uuid,
    country: String,
    price: i32,
    quality: i32,
    packaging: i32,
    labelling: i32,
    certification_gaps: Vec<String>,
    would_order: bool,
    comment: String,
    recorded_at: DateTime<Utc>,
}

pub async fn list_feedback(
    conn: &mut PgConnection,
    test_id: Uuid,
    only: Option<Uuid>,
) -> Result<Vec<pb::SampleFeedback>, sqlx::Error> {
    let rows: Vec<FeedbackRow> = sqlx::query_as(
        "SELECT id, buyer_id, country, price, quality, packaging, labelling, certification_gaps,
                would_order, comment, recorded_at
           FROM sample_feedback
          WHERE sample_test_id = $1 AND ($2::uuid IS NULL OR id = $2)
          ORDER BY recorded_at, id",
    )
    .bind(test_id)
    .bind(only)
    .fetch_all(conn)
    .await?;
    let rating = |value: i32| value.clamp(0, 5) as u32;
    Ok(rows
        .into_iter()
        .map(|row| pb::SampleFeedback {
            feedback_id: row.id.to_string(),
            sample_test_id: test_id.to_string(),
            buyer_id: row.buyer_id.to_string(),
            country: row.country,
            ratings: Some(pb::SampleRatings {
                price: rating(row.price),
                quality: rating(row.quality),
                packaging: rating(row.packaging),
                labelling: rating(row.labelling),
            }),
            certification_gaps: row.certification_gaps,
            would_order: row.would_order,
            comment: row.comment,
            recorded_at: Some(to_timestamp(row.recorded_at)),
        })
        .collect())
}

// ------------------------------------------------------- trade-show leads

/// The show's id, creating it on first import.
pub async fn upsert_trade_show(
    conn: &mut PgConnection,
    request: &pb::ImportTradeShowLeadsRequest,
    show_date: DateTime<Utc>,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query(
        "INSERT INTO trade_show (id, company_id, name, country, city, show_date, need_id, case_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (company_id, name, show_date) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(&request.company_id)
    .bind(request.show_name.trim())
    .bind(&request.show_country)
    .bind(request.show_city.trim())
    .bind(show_date)
    .bind(&request.need_id)
    .bind(&request.case_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar(
        "SELECT id FROM trade_show WHERE company_id = $1 AND name = $2 AND show_date = $3",
    )
    .bind(&request.company_id)
    .bind(request.show_name.trim())
    .bind(show_date)
    .fetch_one(conn)
    .await
}

/// Inserts a lead with its checkpoints; None when the show already has it.
pub async fn insert_lead(
    conn: &mut PgConnection,
    show_id: Uuid,
    company_id: &str,
    lead: &pb::LeadProfile,
    buyer_id: Option<Uuid>,
    checkpoints: &[(pb::CheckpointKind, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, sqlx::Error> {
    let id = Uuid::now_v7();
    let inserted: Option<Uuid> = sqlx::query_scalar(
        "INSERT INTO lead (id, trade_show_id, company_id, buyer_company_name, country, city, hs_codes,
             note, buyer_id, status, imported_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'OPEN', $10)
         ON CONFLICT (trade_show_id, buyer_company_name, country) DO NOTHING
         RETURNING id",
    )
    .bind(id)
    .bind(show_id)
    .bind(company_id)
    .bind(&lead.buyer_company_name)
    .bind(&lead.country)
    .bind(&lead.city)
    .bind(&lead.hs_codes)
    .bind(&lead.note)
    .bind(buyer_id)
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    if inserted.is_none() {
        return Ok(None);
    }
    insert_contacts(conn, "lead_contact", "lead_id", id, &lead.contacts).await?;
    for (kind, due_at) in checkpoints {
        sqlx::query(
            "INSERT INTO lead_checkpoint (lead_id, kind, due_at, status) VALUES ($1, $2, $3, 'UPCOMING')",
        )
        .bind(id)
        .bind(*kind as i32)
        .bind(due_at)
        .execute(&mut *conn)
        .await?;
    }
    Ok(Some(id))
}

pub async fn lead_id_by_name(
    conn: &mut PgConnection,
    show_id: Uuid,
    name: &str,
    country: &str,
) -> Result<Option<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM lead WHERE trade_show_id = $1 AND buyer_company_name = $2 AND country = $3",
    )
    .bind(show_id)
    .bind(name)
    .bind(country)
    .fetch_optional(conn)
    .await
}

#[derive(sqlx::FromRow)]
struct LeadRow {
    id: Uuid,
    trade_show_id: Uuid,
    company_id: String,
    buyer_company_name: String,
    country: String,
    city: String,
    hs_codes: Vec<String>,
    note: String,
    buyer_id: Option<Uuid>,
    status: String,
    best_outcome: i32,
    last_outcome: i32,
    last_follow_up_at: Option<DateTime<Utc>>,
    imported_at: DateTime<Utc>,
}

fn lead_status(stored: &str) -> i32 {
    pb::LeadStatus::from_str_name(&format!("LEAD_STATUS_{stored}")).unwrap_or_default() as i32
}

fn checkpoint_status(stored: &str) -> i32 {
    pb::CheckpointStatus::from_str_name(&format!("CHECKPOINT_STATUS_{stored}")).unwrap_or_default()
        as i32
}

/// Leads by id, in the order given, with contacts when `contacts` is set.
pub async fn load_leads(
    conn: &mut PgConnection,
    ids: &[Uuid],
    contacts: bool,
) -> Result<Vec<pb::Lead>, sqlx::Error> {
    let rows: Vec<LeadRow> = sqlx::query_as(
        "SELECT id, trade_show_id, company_id, buyer_company_name, country, city, hs_codes, note,
                buyer_id, status, best_outcome, last_outcome, last_follow_up_at, imported_at
           FROM lead WHERE id = ANY($1)",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    type CheckpointRow = (Uuid, i32, DateTime<Utc>, String, Option<DateTime<Utc>>, i32);
    let checkpoints: Vec<CheckpointRow> = sqlx::query_as(
        "SELECT lead_id, kind, due_at, status, done_at, outcome FROM lead_checkpoint
          WHERE lead_id = ANY($1) ORDER BY due_at",
    )
    .bind(ids)
    .fetch_all(&mut *conn)
    .await?;
    let mut by_lead: HashMap<Uuid, Vec<pb::FollowUpCheckpoint>> = HashMap::new();
    for (lead_id, kind, due_at, status, done_at, outcome) in checkpoints {
        by_lead
            .entry(lead_id)
            .or_default()
            .push(pb::FollowUpCheckpoint {
                kind,
                due_at: Some(to_timestamp(due_at)),
                status: checkpoint_status(&status),
                done_at: done_at.map(to_timestamp),
                outcome,
            });
    }
    let mut leads: HashMap<Uuid, pb::Lead> = HashMap::new();
    for row in rows {
        let people = if contacts {
            load_contacts(conn, "lead_contact", "lead_id", row.id).await?
        } else {
            Vec::new()
        };
        leads.insert(
            row.id,
            pb::Lead {
                lead_id: row.id.to_string(),
                company_id: row.company_id,
                trade_show_id: row.trade_show_id.to_string(),
                profile: Some(pb::LeadProfile {
                    buyer_company_name: row.buyer_company_name,
                    country: row.country,
                    city: row.city,
                    contacts: people,
                    hs_codes: row.hs_codes,
                    note: row.note,
                    buyer_id: row.buyer_id.map(|id| id.to_string()).unwrap_or_default(),
                }),
                status: lead_status(&row.status),
                best_outcome: row.best_outcome,
                last_outcome: row.last_outcome,
                last_follow_up_at: row.last_follow_up_at.map(to_timestamp),
                checkpoints: by_lead.remove(&row.id).unwrap_or_default(),
                imported_at: Some(to_timestamp(row.imported_at)),
            },
        );
    }
    Ok(ids.iter().filter_map(|id| leads.remove(id)).collect())
}

pub async fn lock_lead(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(String, i32)>, sqlx::Error> {
    sqlx::query_as("SELECT status, best_outcome FROM lead WHERE id = $1 FOR UPDATE")
        .bind(id)
        .fetch_optional(conn)
        .await
}

/// Records a follow-up: completes the earliest DUE checkpoint, else the
/// next UPCOMING one, and updates the lead's outcomes and status.
pub async fn record_follow_up(
    conn: &mut PgConnection,
    id: Uuid,
    outcome: i32,
    occurred_at: DateTime<Utc>,
    status: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE lead_checkpoint SET status = 'DONE', done_at = $2, outcome = $3
          WHERE lead_id = $1 AND kind = (
              SELECT kind FROM lead_checkpoint WHERE lead_id = $1 AND status IN ('DUE', 'UPCOMING')
               ORDER BY (status = 'DUE') DESC, due_at LIMIT 1)",
    )
    .bind(id)
    .bind(occurred_at)
    .bind(outcome)
    .execute(&mut *conn)
    .await?;
    if status == "CONVERTED" {
        sqlx::query(
            "UPDATE lead_checkpoint SET status = 'CANCELLED'
              WHERE lead_id = $1 AND status IN ('DUE', 'UPCOMING')",
        )
        .bind(id)
        .execute(&mut *conn)
        .await?;
    }
    sqlx::query(
        "UPDATE lead SET best_outcome = GREATEST(best_outcome, $2), last_outcome = $2,
                last_follow_up_at = $3, status = $4
          WHERE id = $1",
    )
    .bind(id)
    .bind(outcome)
    .bind(occurred_at)
    .bind(status)
    .execute(&mut *conn)
    .await?;
    // The last checkpoint answered without an agreement ends the cadence.
    sqlx::query(
        "UPDATE lead SET status = 'CADENCE_COMPLETED'
          WHERE id = $1 AND status = 'OPEN'
            AND NOT EXISTS (SELECT 1 FROM lead_checkpoint
                             WHERE lead_id = $1 AND status IN ('UPCOMING', 'DUE'))",
    )
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

pub struct LeadFilter {
    pub company_id: Option<String>,
    pub trade_show_id: Option<Uuid>,
}

/// DUE checkpoints, earliest first: (lead, kind) pairs after the cursor.
pub async fn due_checkpoints(
    pool: &PgPool,
    filter: &LeadFilter,
    page: &Page,
    after: Option<(DateTime<Utc>, Uuid, i32)>,
) -> Result<Vec<(Uuid, i32, DateTime<Utc>)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.lead_id, c.kind, c.due_at FROM lead_checkpoint c JOIN lead l ON l.id = c.lead_id
          WHERE c.status = 'DUE'
            AND ($1::text IS NULL OR l.company_id = $1)
            AND ($2::uuid IS NULL OR l.trade_show_id = $2)
            AND ($3::timestamptz IS NULL OR (c.due_at, c.lead_id, c.kind) > ($3, $4, $5))
          ORDER BY c.due_at, c.lead_id, c.kind LIMIT $6",
    )
    .bind(&filter.company_id)
    .bind(filter.trade_show_id)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(after.map(|a| a.2))
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await
}

pub async fn reactivation_leads(
    pool: &PgPool,
    filter: &LeadFilter,
    page: &Page,
    after: Option<Uuid>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM lead
          WHERE status = 'REACTIVATION'
            AND ($1::text IS NULL OR company_id = $1)
            AND ($2::uuid IS NULL OR trade_show_id = $2)
            AND ($3::uuid IS NULL OR id > $3)
          ORDER BY id LIMIT $4",
    )
    .bind(&filter.company_id)
    .bind(filter.trade_show_id)
    .bind(after)
    .bind(page.fetch_limit())
    .fetch_all(pool)
    .await
}

// ------------------------------------------------------ market demand

/// Matchable buyer demand for `codes` per market, markets in `skip` left
/// out. Each buyer counts once, at its best level.
pub async fn market_demand(
    pool: &PgPool,
    codes: &[String],
    skip: &[String],
    fresh_since: DateTime<Utc>,
) -> Result<Vec<MarketDemand>, sqlx::Error> {
    sqlx::query_as(
        "WITH q AS (SELECT unnest($1::text[]) AS code),
         hits AS (
             SELECT h.buyer_id, h.country,
                    max(CASE WHEN length(q.code) = 6 AND q.code = h.code THEN 3
                             WHEN length(q.code) >= 4 AND left(q.code, 4) = h.heading THEN 2
                             ELSE 1 END) AS level
               FROM q JOIN buyer_hs h ON h.chapter = left(q.code, 2)
              WHERE h.vetted_at > $3 AND NOT (h.country = ANY($2))
              GROUP BY h.buyer_id, h.country
         )
         SELECT hits.country,
                count(*) AS buyers,
                count(*) FILTER (WHERE level = 3) AS exact,
                count(*) FILTER (WHERE level = 2) AS heading,
                count(*) FILTER (WHERE level = 1) AS chapter,
                COALESCE(sum(b.import_volume_usd_minor), 0)::bigint AS import_volume,
                COALESCE(avg(b.quality_score), 0)::float8 AS average_quality
           FROM hits JOIN buyer b ON b.id = hits.buyer_id
          GROUP BY hits.country",
    )
    .bind(codes)
    .bind(skip)
    .bind(fresh_since)
    .fetch_all(pool)
    .await
}
