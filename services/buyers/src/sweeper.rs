//! Raises trade-show follow-ups as their checkpoints fall due, moves
//! leads without progress to reactivation (which may finish their need),
//! and chases deals the company has neither confirmed nor disputed. Runs
//! inside the server.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::event_types::BuyersEvent;
use onestop_platform::events::{self, NewEvent, Partner};
use onestop_platform::supervise::Supervisor;
use onestop_platform::time::{Clock, to_timestamp};
use sqlx::PgPool;

use crate::domain::followup::{self, WhenDue};
use crate::grpc::leads::finish_need;
use crate::store::{self, DueCheckpoint};

/// How often the sweeper runs unless ONESTOP_SWEEP_INTERVAL says otherwise.
pub const EVERY: Duration = Duration::from_secs(60);

/// Sweeps every `every` until shutdown, as the supervised loop
/// `follow-up-sweeper`.
pub fn spawn(pool: PgPool, clock: Arc<dyn Clock>, every: Duration, supervisor: &Supervisor) {
    tracing::info!(
        every_ms = every.as_millis() as u64,
        "follow-up sweeper started"
    );
    supervisor.every("follow-up-sweeper", every, move || {
        let (pool, clock) = (pool.clone(), clock.clone());
        onestop_platform::audit::as_service(crate::startup::SERVICE_NAME, async move {
            let now = clock.now();
            let changed = sweep_once(&pool, now).await?;
            if changed > 0 {
                tracing::info!(changed, "follow-up checkpoints swept");
            }
            let chased = chase_unconfirmed_deals(&pool, now).await?;
            if chased > 0 {
                tracing::info!(chased, "unconfirmed deals chased");
            }
            Ok(())
        })
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
    let claimed = store::claim_due_checkpoints(&mut tx, now, BATCH).await?;
    let mut changed = 0;
    let mut new_events = Vec::new();
    let mut reactivated = Vec::new();
    for checkpoint in &claimed {
        let outcome = followup::when_due(checkpoint.kind, checkpoint.best_outcome);
        let status = match outcome {
            WhenDue::FollowUp => pb::CheckpointStatus::Due,
            WhenDue::Reactivation => pb::CheckpointStatus::Missed,
        };
        if !store::raise_checkpoint(&mut tx, checkpoint, status).await? {
            continue;
        }
        changed += 1;
        if outcome == WhenDue::Reactivation
            && store::reactivate_lead(&mut tx, checkpoint.lead_id).await?
        {
            reactivated.push(checkpoint.lead_id);
        }
        new_events.push(checkpoint_event(checkpoint, outcome));
    }
    // A lead gone to reactivation went through its checkpoints: it may
    // have been its need's last open one. The needs come sorted, so
    // replicas sweeping at once lock their searches in the same order.
    if !reactivated.is_empty() {
        for need_id in store::needs_of_leads(&mut tx, &reactivated).await? {
            if let Some(done) = finish_need(&mut tx, &need_id, now).await? {
                new_events.push(done);
            }
        }
    }
    events::append_all(&mut tx, new_events).await?;
    tx.commit().await?;
    Ok(changed)
}

/// Days between two chases of a deal the company has not confirmed, from
/// its recording: `deal.confirmation_due` after 7, 14, 21, ... days.
pub const CHASE_EVERY_DAYS: i32 = 7;

/// Raises `deal.confirmation_due` once per chase period for every deal
/// neither confirmed nor disputed; returns how many were chased. Replicas
/// may sweep at once: rows are claimed with SKIP LOCKED and the count is
/// moved on only from the value read, so each chase is raised once.
pub async fn chase_unconfirmed_deals(
    pool: &PgPool,
    now: DateTime<Utc>,
) -> Result<u64, sqlx::Error> {
    let mut total = 0;
    loop {
        let mut tx = pool.begin().await?;
        let claimed = store::claim_deals_to_chase(&mut tx, now, CHASE_EVERY_DAYS, BATCH).await?;
        let mut new_events = Vec::new();
        for deal in &claimed {
            let Ok(id) = uuid::Uuid::parse_str(&deal.deal_id) else {
                continue;
            };
            let from = deal.confirmation_chases as i32;
            if !store::mark_chased(&mut tx, id, from).await? {
                continue;
            }
            new_events.push(
                NewEvent::new(
                    BuyersEvent::DealConfirmationDue,
                    &deal.match_id,
                    &pb::DealConfirmationDue {
                        deal_id: deal.deal_id.clone(),
                        match_id: deal.match_id.clone(),
                        need_id: deal.need_id.clone(),
                        company_id: deal.company_id.clone(),
                        buyer_id: deal.buyer_id.clone(),
                        case_id: deal.case_id.clone(),
                        trade_office_id: deal.trade_office_id.clone(),
                        recorded_at: deal.recorded_at,
                        chase: (from + 1) as u32,
                    },
                )
                .for_partners([Partner::trade_office(&deal.trade_office_id)]),
            );
        }
        let chased = new_events.len() as u64;
        events::append_all(&mut tx, new_events).await?;
        tx.commit().await?;
        total += chased;
        if (claimed.len() as i64) < BATCH {
            return Ok(total);
        }
    }
}

fn checkpoint_event(checkpoint: &DueCheckpoint, outcome: WhenDue) -> NewEvent {
    let lead_id = checkpoint.lead_id;
    match outcome {
        WhenDue::Reactivation => NewEvent::new(
            BuyersEvent::LeadReactivation,
            lead_id,
            &pb::LeadReactivation {
                lead_id: lead_id.to_string(),
                company_id: checkpoint.company_id.clone(),
                trade_show_id: checkpoint.trade_show_id.to_string(),
                best_outcome: checkpoint.best_outcome,
                country: checkpoint.country.clone(),
            },
        ),
        WhenDue::FollowUp => NewEvent::new(
            BuyersEvent::FollowUpDue,
            lead_id,
            &pb::FollowUpDue {
                lead_id: lead_id.to_string(),
                company_id: checkpoint.company_id.clone(),
                trade_show_id: checkpoint.trade_show_id.to_string(),
                checkpoint: checkpoint.kind,
                due_at: Some(to_timestamp(checkpoint.due_at)),
            },
        ),
    }
}
