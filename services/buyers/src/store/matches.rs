//! Buyer searches (one per need), the matches they propose, and each
//! match's history of moves.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use prost::Message;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Lock, buyer_summaries, deals_of_matches};
use crate::domain::lifecycle::MatchStatus;
use crate::domain::matches::MatchFilter;

pub async fn search_by_need(
    conn: &mut PgConnection,
    need_id: &str,
) -> Result<Option<(Uuid, String)>, sqlx::Error> {
    sqlx::query_as("SELECT id, company_id FROM buyer_search WHERE need_id = $1")
        .bind(need_id)
        .fetch_optional(conn)
        .await
}

/// A search about to be stored: intake's need, its case, company and
/// category, and how many buyers to propose.
pub struct NewBuyerSearch<'a> {
    pub id: Uuid,
    pub need_id: &'a str,
    pub case_id: &'a str,
    pub company_id: &'a str,
    pub category: &'a str,
    pub requested: u32,
}

pub async fn insert_search(
    conn: &mut PgConnection,
    search: &NewBuyerSearch<'_>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query(
        "INSERT INTO buyer_search (id, need_id, case_id, company_id, category, requested, opened_at)
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(search.id)
    .bind(search.need_id)
    .bind(search.case_id)
    .bind(search.company_id)
    .bind(search.category)
    .bind(search.requested as i32)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// Where a need's search stands, as accepting a market needs it.
#[derive(Debug, sqlx::FromRow)]
pub struct SearchStanding {
    pub id: Uuid,
    pub case_id: String,
    pub company_id: String,
    pub category: String,
    pub closed: bool,
    pub accepted_market: Option<String>,
}

/// The need's search, locked until the transaction ends.
pub async fn lock_search_by_need(
    conn: &mut PgConnection,
    need_id: &str,
) -> Result<Option<SearchStanding>, sqlx::Error> {
    sqlx::query_as(
        "SELECT id, case_id, company_id, category, closed_at IS NOT NULL AS closed, accepted_market
           FROM buyer_search WHERE need_id = $1
            FOR UPDATE",
    )
    .bind(need_id)
    .fetch_optional(conn)
    .await
}

/// Records the market the company took up.
pub async fn accept_market(
    conn: &mut PgConnection,
    id: Uuid,
    country: &str,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE buyer_search SET accepted_market = $2, accepted_at = $3 WHERE id = $1")
        .bind(id)
        .bind(country)
        .bind(now)
        .execute(conn)
        .await?;
    Ok(())
}

/// Marks the search's trade-show follow-up done; false when it was
/// already, so its event is raised once.
pub async fn complete_follow_up(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE buyer_search SET follow_up_completed_at = $2
          WHERE id = $1 AND follow_up_completed_at IS NULL",
    )
    .bind(id)
    .bind(now)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(updated > 0)
}

pub async fn load_search(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<pb::BuyerSearch>, sqlx::Error> {
    let Some(stored) = sqlx::query_as::<_, StoredSearch>(
        "SELECT need_id, case_id, company_id, requested, opened_at, closed_at,
                accepted_market, accepted_at
               FROM buyer_search WHERE id = $1",
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
        need_id: stored.need_id,
        case_id: stored.case_id,
        company_id: stored.company_id,
        count: stored.requested.max(0) as u32,
        matches,
        opened_at: Some(to_timestamp(stored.opened_at)),
        closed_at: stored.closed_at.map(to_timestamp),
        accepted_market: stored.accepted_market.unwrap_or_default(),
        accepted_at: stored.accepted_at.map(to_timestamp),
    }))
}

#[derive(sqlx::FromRow)]
struct StoredSearch {
    need_id: String,
    case_id: String,
    company_id: String,
    requested: i32,
    opened_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
    accepted_market: Option<String>,
    accepted_at: Option<DateTime<Utc>>,
}

/// Closes the search; false when it was closed already.
pub async fn close_search(
    conn: &mut PgConnection,
    id: Uuid,
    now: DateTime<Utc>,
) -> Result<bool, sqlx::Error> {
    let closed =
        sqlx::query("UPDATE buyer_search SET closed_at = $2 WHERE id = $1 AND closed_at IS NULL")
            .bind(id)
            .bind(now)
            .execute(conn)
            .await?
            .rows_affected();
    Ok(closed == 1)
}

/// The search's matches that are neither a deal nor closed, locked.
pub async fn lock_open_matches_of_search(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM buyer_match
          WHERE search_id = $1 AND status NOT IN ('DEAL', 'CLOSED_NO_DEAL')
          ORDER BY rank FOR UPDATE",
    )
    .bind(id)
    .fetch_all(conn)
    .await
}

/// Serialises the searches that propose buyers to one company until the
/// transaction ends: a company never has two open matches with one buyer,
/// so a search must see what another search for the company, opened at
/// the same moment for another of its needs, proposed.
pub async fn lock_company_matching(
    conn: &mut PgConnection,
    company_id: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))")
        .bind(format!("buyer-search:{company_id}"))
        .execute(conn)
        .await?;
    Ok(())
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
pub struct Transition<'a> {
    pub from: MatchStatus,
    pub to: MatchStatus,
    pub reason: Option<pb::NoDealReason>,
    pub actor: &'a str,
    pub note: &'a str,
}

pub async fn move_match(
    conn: &mut PgConnection,
    id: Uuid,
    step: &Transition<'_>,
    now: DateTime<Utc>,
) -> Result<(), sqlx::Error> {
    let Transition {
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
    let keyed = load_keyed_matches(conn, ids).await?;
    Ok(keyed.into_iter().map(|(_, m)| m).collect())
}

async fn load_keyed_matches(
    conn: &mut PgConnection,
    ids: &[Uuid],
) -> Result<Vec<(Uuid, pb::Match)>, sqlx::Error> {
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
    Ok(ids
        .iter()
        .filter_map(|id| Some((*id, by_id.remove(id)?)))
        .collect())
}

pub async fn load_match(
    conn: &mut PgConnection,
    id: Uuid,
    lock: Lock,
) -> Result<Option<pb::Match>, sqlx::Error> {
    if lock == Lock::ForUpdate {
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

/// In id order.
pub async fn list_matches(
    conn: &mut PgConnection,
    filter: &MatchFilter,
    page: &Page<Uuid>,
) -> Result<Vec<(Uuid, pb::Match)>, sqlx::Error> {
    let statuses: Vec<&str> = filter.statuses.iter().map(|s| s.as_str()).collect();
    let ids: Vec<Uuid> = sqlx::query_scalar(
        "SELECT m.id FROM buyer_match m JOIN buyer b ON b.id = m.buyer_id
          WHERE ($1::text IS NULL OR m.company_id = $1)
            AND ($2::uuid IS NULL OR m.buyer_id = $2)
            AND ($3::text IS NULL OR m.need_id = $3)
            AND ($4::text IS NULL OR b.trade_office_id = $4)
            AND (cardinality($5::text[]) = 0 OR m.status = ANY($5))
            AND ($6::uuid IS NULL OR m.id > $6)
            AND ($8::text[] IS NULL OR m.company_id = ANY($8))
          ORDER BY m.id LIMIT $7",
    )
    .bind(&filter.company_id)
    .bind(filter.buyer_id)
    .bind(&filter.need_id)
    .bind(&filter.office)
    .bind(&statuses)
    .bind(page.after)
    .bind(page.fetch_limit())
    .bind(&filter.companies)
    .fetch_all(&mut *conn)
    .await?;
    load_keyed_matches(conn, &ids).await
}
