//! Raises trade-show follow-ups as their checkpoints fall due and moves
//! leads without progress to reactivation. Runs inside the server.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::server::CancellationToken;
use onestop_platform::time::Clock;
use onestop_platform::time::to_timestamp;
use sqlx::PgPool;
use uuid::Uuid;

use crate::domain::followup;

const EVERY: Duration = Duration::from_secs(60);

pub fn spawn(pool: PgPool, clock: Arc<dyn Clock>, shutdown: CancellationToken) {
    tokio::spawn(async move {
        loop {
            match sweep_once(&pool, clock.now()).await {
                Ok(0) => {}
                Ok(changed) => tracing::info!(changed, "follow-up checkpoints swept"),
                Err(error) => tracing::warn!(error = %error, "follow-up sweep failed"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(EVERY) => {}
            }
        }
    });
}

/// Checkpoints handled per transaction, so one pass never holds locks long.
const BATCH: i64 = 200;

/// One pass at `now`; returns how many checkpoints changed. Replicas may
/// sweep at once: each claims its checkpoints with SKIP LOCKED and the
/// update is conditional on the checkpoint still being UPCOMING, so every
/// checkpoint is raised, and its event written, exactly once.
pub async fn sweep_once(pool: &PgPool, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let changed = sweep_batch(pool, now).await?;
        total += changed;
        if changed < BATCH as u64 {
            return Ok(total);
        }
    }
}

async fn sweep_batch(pool: &PgPool, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    type Claimed = (Uuid, i32, DateTime<Utc>, String, Uuid, i32, String);
    let claimed: Vec<Claimed> = sqlx::query_as(
        "SELECT c.lead_id, c.kind, c.due_at, l.company_id, l.trade_show_id, l.best_outcome, l.country
           FROM lead_checkpoint c JOIN lead l ON l.id = c.lead_id
          WHERE c.status = 'UPCOMING' AND c.due_at <= $1 AND l.status = 'OPEN'
          ORDER BY c.due_at
          LIMIT $2
          FOR UPDATE OF c SKIP LOCKED",
    )
    .bind(now)
    .bind(BATCH)
    .fetch_all(&mut *tx)
    .await?;
    let mut changed = 0;
    let mut new_events = Vec::new();
    for (lead_id, kind, due_at, company_id, show_id, best, country) in claimed {
        let last = kind == pb::CheckpointKind::SixMonths as i32;
        let reactivate =
            last && followup::status_after_cadence(best) == pb::LeadStatus::Reactivation;
        let status = if reactivate { "MISSED" } else { "DUE" };
        let updated = sqlx::query(
            "UPDATE lead_checkpoint SET status = $3
              WHERE lead_id = $1 AND kind = $2 AND status = 'UPCOMING'",
        )
        .bind(lead_id)
        .bind(kind)
        .bind(status)
        .execute(&mut *tx)
        .await?
        .rows_affected();
        if updated == 0 {
            continue;
        }
        changed += 1;
        // A newer checkpoint supersedes one still waiting for its follow-up.
        sqlx::query(
            "UPDATE lead_checkpoint SET status = 'MISSED'
              WHERE lead_id = $1 AND status = 'DUE' AND kind < $2",
        )
        .bind(lead_id)
        .bind(kind)
        .execute(&mut *tx)
        .await?;
        if reactivate {
            sqlx::query(
                "UPDATE lead SET status = 'REACTIVATION' WHERE id = $1 AND status = 'OPEN'",
            )
            .bind(lead_id)
            .execute(&mut *tx)
            .await?;
            new_events.push(NewEvent::new(
                "lead.reactivation",
                "lead",
                lead_id,
                &pb::LeadReactivation {
                    lead_id: lead_id.to_string(),
                    company_id,
                    trade_show_id: show_id.to_string(),
                    best_outcome: best,
                    country,
                },
            ));
        } else {
            new_events.push(NewEvent::new(
                "followup.due",
                "lead",
                lead_id,
                &pb::FollowUpDue {
                    lead_id: lead_id.to_string(),
                    company_id,
                    trade_show_id: show_id.to_string(),
                    checkpoint: kind,
                    due_at: Some(to_timestamp(due_at)),
                },
            ));
        }
    }
    events::append_all(&mut tx, new_events).await?;
    tx.commit().await?;
    Ok(changed)
}
