//! Trade shows, the leads a company met there (with their contacts), and
//! each lead's follow-up checkpoints, which the sweeper raises as they
//! fall due.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use sqlx::PgConnection;
use uuid::Uuid;

use super::{Contacts, insert_contacts, load_contacts};
use crate::domain::followup::{LeadFilter, NeedLeads, NewLead, TradeShow};

/// The show's id, creating it on first import.
pub async fn upsert_trade_show(
    conn: &mut PgConnection,
    show: &TradeShow,
) -> Result<Uuid, sqlx::Error> {
    sqlx::query(
        "INSERT INTO trade_show (id, company_id, name, country, city, show_date, need_id, case_id)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
         ON CONFLICT (company_id, name, show_date) DO NOTHING",
    )
    .bind(Uuid::now_v7())
    .bind(&show.company_id)
    .bind(&show.name)
    .bind(&show.country)
    .bind(&show.city)
    .bind(show.date)
    .bind(&show.need_id)
    .bind(&show.case_id)
    .execute(&mut *conn)
    .await?;
    sqlx::query_scalar(
        "SELECT id FROM trade_show WHERE company_id = $1 AND name = $2 AND show_date = $3",
    )
    .bind(&show.company_id)
    .bind(&show.name)
    .bind(show.date)
    .fetch_one(conn)
    .await
}

/// Inserts a lead with its checkpoints; None when the show already has it.
pub async fn insert_lead(
    conn: &mut PgConnection,
    show_id: Uuid,
    company_id: &str,
    new: &NewLead,
    checkpoints: &[(pb::CheckpointKind, DateTime<Utc>)],
    now: DateTime<Utc>,
) -> Result<Option<Uuid>, sqlx::Error> {
    let (lead, buyer_id) = (&new.profile, new.buyer_id);
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

fn lead_status(stored: &str) -> pb::LeadStatus {
    pb::LeadStatus::from_str_name(&format!("LEAD_STATUS_{stored}")).unwrap_or_default()
}

fn lead_status_name(status: pb::LeadStatus) -> &'static str {
    status.as_str_name().trim_start_matches("LEAD_STATUS_")
}

fn checkpoint_status(stored: &str) -> i32 {
    pb::CheckpointStatus::from_str_name(&format!("CHECKPOINT_STATUS_{stored}")).unwrap_or_default()
        as i32
}

/// Leads by id, in the order given.
pub async fn load_leads(
    conn: &mut PgConnection,
    ids: &[Uuid],
    contacts: Contacts,
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
        let people = if contacts == Contacts::Include {
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
                status: lead_status(&row.status) as i32,
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

/// The lead's status and best outcome so far, locked for a follow-up.
pub async fn lock_lead(
    conn: &mut PgConnection,
    id: Uuid,
) -> Result<Option<(pb::LeadStatus, i32)>, sqlx::Error> {
    let row: Option<(String, i32)> =
        sqlx::query_as("SELECT status, best_outcome FROM lead WHERE id = $1 FOR UPDATE")
            .bind(id)
            .fetch_optional(conn)
            .await?;
    Ok(row.map(|(status, best)| (lead_status(&status), best)))
}

/// Records a follow-up: completes the earliest DUE checkpoint, else the
/// next UPCOMING one, and updates the lead's outcomes and status.
pub async fn record_follow_up(
    conn: &mut PgConnection,
    id: Uuid,
    outcome: pb::FollowUpOutcome,
    occurred_at: DateTime<Utc>,
    status: pb::LeadStatus,
) -> Result<(), sqlx::Error> {
    let outcome = outcome as i32;
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
    if status == pb::LeadStatus::Converted {
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
    .bind(lead_status_name(status))
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

/// DUE checkpoints, earliest first: (lead, kind) pairs after the cursor.
pub async fn due_checkpoints(
    conn: &mut PgConnection,
    filter: &LeadFilter,
    page: &Page<(DateTime<Utc>, Uuid, i32)>,
) -> Result<Vec<(Uuid, i32, DateTime<Utc>)>, sqlx::Error> {
    let after = page.after;
    sqlx::query_as(
        "SELECT c.lead_id, c.kind, c.due_at FROM lead_checkpoint c JOIN lead l ON l.id = c.lead_id
          WHERE c.status = 'DUE'
            AND ($1::text IS NULL OR l.company_id = $1)
            AND ($2::uuid IS NULL OR l.trade_show_id = $2)
            AND ($3::timestamptz IS NULL OR (c.due_at, c.lead_id, c.kind) > ($3, $4, $5))
            AND ($7::text[] IS NULL OR l.company_id = ANY($7))
          ORDER BY c.due_at, c.lead_id, c.kind LIMIT $6",
    )
    .bind(&filter.company_id)
    .bind(filter.trade_show_id)
    .bind(after.map(|a| a.0))
    .bind(after.map(|a| a.1))
    .bind(after.map(|a| a.2))
    .bind(page.fetch_limit())
    .bind(&filter.companies)
    .fetch_all(conn)
    .await
}

/// Leads in reactivation, in id order.
pub async fn reactivation_leads(
    conn: &mut PgConnection,
    filter: &LeadFilter,
    page: &Page<Uuid>,
) -> Result<Vec<Uuid>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT id FROM lead
          WHERE status = 'REACTIVATION'
            AND ($1::text IS NULL OR company_id = $1)
            AND ($2::uuid IS NULL OR trade_show_id = $2)
            AND ($3::uuid IS NULL OR id > $3)
            AND ($5::text[] IS NULL OR company_id = ANY($5))
          ORDER BY id LIMIT $4",
    )
    .bind(&filter.company_id)
    .bind(filter.trade_show_id)
    .bind(page.after)
    .bind(page.fetch_limit())
    .bind(&filter.companies)
    .fetch_all(conn)
    .await
}

/// A checkpoint that fell due, with what its events report about the lead.
#[derive(Debug, sqlx::FromRow)]
pub struct DueCheckpoint {
    pub lead_id: Uuid,
    pub kind: i32,
    pub due_at: DateTime<Utc>,
    pub company_id: String,
    pub trade_show_id: Uuid,
    pub best_outcome: i32,
    pub country: String,
}

/// UPCOMING checkpoints of open leads due by `now`, earliest first, locked
/// for this sweeper; rows another sweeper holds are skipped, not waited for.
pub async fn claim_due_checkpoints(
    conn: &mut PgConnection,
    now: DateTime<Utc>,
    limit: i64,
) -> Result<Vec<DueCheckpoint>, sqlx::Error> {
    sqlx::query_as(
        "SELECT c.lead_id, c.kind, c.due_at, l.company_id, l.trade_show_id, l.best_outcome, l.country
           FROM lead_checkpoint c JOIN lead l ON l.id = c.lead_id
          WHERE c.status = 'UPCOMING' AND c.due_at <= $1 AND l.status = 'OPEN'
          ORDER BY c.due_at
          LIMIT $2
          FOR UPDATE OF c SKIP LOCKED",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(conn)
    .await
}

fn checkpoint_status_name(status: pb::CheckpointStatus) -> &'static str {
    status
        .as_str_name()
        .trim_start_matches("CHECKPOINT_STATUS_")
}

/// Moves an UPCOMING checkpoint to `status` (DUE, or MISSED when the lead
/// goes to reactivation instead); false when it is no longer UPCOMING. A
/// newer checkpoint supersedes one still waiting for its follow-up.
pub async fn raise_checkpoint(
    conn: &mut PgConnection,
    checkpoint: &DueCheckpoint,
    status: pb::CheckpointStatus,
) -> Result<bool, sqlx::Error> {
    let updated = sqlx::query(
        "UPDATE lead_checkpoint SET status = $3
          WHERE lead_id = $1 AND kind = $2 AND status = 'UPCOMING'",
    )
    .bind(checkpoint.lead_id)
    .bind(checkpoint.kind)
    .bind(checkpoint_status_name(status))
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if updated == 0 {
        return Ok(false);
    }
    sqlx::query(
        "UPDATE lead_checkpoint SET status = 'MISSED'
          WHERE lead_id = $1 AND status = 'DUE' AND kind < $2",
    )
    .bind(checkpoint.lead_id)
    .bind(checkpoint.kind)
    .execute(conn)
    .await?;
    Ok(true)
}

/// Puts an open lead on the reactivation list; false when it was no
/// longer open.
pub async fn reactivate_lead(conn: &mut PgConnection, id: Uuid) -> Result<bool, sqlx::Error> {
    let moved =
        sqlx::query("UPDATE lead SET status = 'REACTIVATION' WHERE id = $1 AND status = 'OPEN'")
            .bind(id)
            .execute(conn)
            .await?
            .rows_affected();
    Ok(moved > 0)
}

/// The needs the shows of these leads were imported for, each once, in
/// order, so transactions that lock them all take them in the same order.
pub async fn needs_of_leads(
    conn: &mut PgConnection,
    lead_ids: &[Uuid],
) -> Result<Vec<String>, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT DISTINCT s.need_id FROM lead l JOIN trade_show s ON s.id = l.trade_show_id
          WHERE l.id = ANY($1) AND s.need_id <> ''
          ORDER BY s.need_id",
    )
    .bind(lead_ids)
    .fetch_all(conn)
    .await
}

/// Where the company's leads imported for `need_id` stand, over all the
/// shows imported for it.
pub async fn need_leads(
    conn: &mut PgConnection,
    need_id: &str,
    company_id: &str,
) -> Result<NeedLeads, sqlx::Error> {
    sqlx::query_as(
        "SELECT count(DISTINCT s.id) AS trade_shows,
                count(l.id) AS leads,
                count(l.id) FILTER (WHERE l.status = 'OPEN') AS open,
                count(l.id) FILTER (WHERE l.status = 'CONVERTED') AS converted,
                count(l.id) FILTER (WHERE l.status = 'CADENCE_COMPLETED') AS cadence_completed,
                count(l.id) FILTER (WHERE l.status = 'REACTIVATION') AS reactivation
           FROM trade_show s JOIN lead l ON l.trade_show_id = s.id
          WHERE s.need_id = $1 AND s.company_id = $2",
    )
    .bind(need_id)
    .bind(company_id)
    .fetch_one(conn)
    .await
}
