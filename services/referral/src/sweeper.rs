//! The response-SLA sweeper: a leg not accepted by its due time is marked
//! SLA_BREACHED and the referral re-routed. Runs in every replica; the row
//! lock taken with SKIP LOCKED, and the re-check of the leg under it, make
//! each overdue leg re-routed exactly once however many sweepers race.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use onestop_contracts::event_types::ReferralEvent;
use onestop_contracts::referral::v1::{LegStatus, ReferralStatus};
use onestop_platform::ApiResult;
use onestop_platform::events;
use onestop_platform::supervise::Supervisor;
use onestop_platform::time::{Clock, from_timestamp};
use sqlx::{Acquire, PgConnection, PgPool};
use uuid::Uuid;

use crate::domain::lifecycle;
use crate::routing;
use crate::store::{self, Lock};

/// Referrals handled per transaction.
const BATCH: i64 = 50;

/// Re-routes every referral whose current leg was due by `now`; returns how
/// many legs this call breached. Each referral is re-routed under its own
/// savepoint: one that cannot be (a record that no longer reads, say) is
/// logged and left for the next sweep, and the others go on.
pub async fn sweep_once(pool: &PgPool, now: DateTime<Utc>) -> ApiResult<usize> {
    let mut total = 0;
    let mut skipped: Vec<Uuid> = Vec::new();
    loop {
        let mut tx = pool.begin().await?;
        let claimed = store::claim_overdue(&mut tx, now, BATCH, &skipped).await?;
        let mut breached = 0;
        let mut failed = 0;
        for (id, leg_number) in &claimed {
            let mut savepoint = tx.begin().await?;
            match breach_if_due(&mut savepoint, *id, *leg_number, now).await {
                Ok(true) => {
                    savepoint.commit().await?;
                    breached += 1;
                }
                Ok(false) => savepoint.commit().await?,
                Err(error) => {
                    savepoint.rollback().await?;
                    tracing::error!(referral_id = %id, error = %error, "overdue leg cannot be re-routed; left for the next sweep");
                    skipped.push(*id);
                    failed += 1;
                }
            }
        }
        tx.commit().await?;
        total += breached;
        if (claimed.len() as i64) < BATCH || breached + failed == 0 {
            return Ok(total);
        }
    }
}

/// Breaches the referral's leg `leg_number` and re-routes it, if that leg
/// is still current, unanswered and overdue under the row lock.
async fn breach_if_due(
    conn: &mut PgConnection,
    id: Uuid,
    leg_number: i32,
    now: DateTime<Utc>,
) -> ApiResult<bool> {
    let Some(mut referral) = store::load_referral(conn, id, Lock::ForUpdate).await? else {
        return Ok(false);
    };
    // The claim's snapshot may predate another sweeper's commit: only the
    // leg that is still current, unanswered and overdue under the lock is
    // breached.
    let still_due = referral.status == ReferralStatus::Sent as i32
        && referral.legs.last().is_some_and(|leg| {
            leg.leg_number as i32 == leg_number
                && leg.status == LegStatus::Sent as i32
                && leg
                    .sla_due_at
                    .as_ref()
                    .and_then(from_timestamp)
                    .is_some_and(|due| due <= now)
        });
    if !still_due {
        return Ok(false);
    }
    lifecycle::breach_sla(&mut referral, now);
    let mut pending = vec![routing::referral_event(
        ReferralEvent::SlaBreached,
        &referral,
    )];
    pending.extend(routing::reroute(conn, &mut referral, now).await?);
    store::save_referral(conn, id, &referral).await?;
    events::append_all(conn, pending).await?;
    Ok(true)
}

/// Sweeps every `interval` by `clock` until shutdown, as the supervised
/// loop `sla-sweeper`.
pub fn spawn(pool: PgPool, clock: Arc<dyn Clock>, interval: Duration, supervisor: &Supervisor) {
    supervisor.every("sla-sweeper", interval, move || {
        let (pool, clock) = (pool.clone(), clock.clone());
        onestop_platform::audit::as_service(crate::startup::SERVICE_NAME, async move {
            let rerouted = sweep_once(&pool, clock.now()).await?;
            if rerouted > 0 {
                tracing::info!(rerouted, "legs past their response SLA re-routed");
            }
            Ok(())
        })
    });
}
