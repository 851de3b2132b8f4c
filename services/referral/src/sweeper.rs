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
use onestop_platform::server::CancellationToken;
use onestop_platform::time::{Clock, from_timestamp};
use sqlx::PgPool;

use crate::domain::lifecycle;
use crate::routing;
use crate::store::{self, Lock};

/// Referrals handled per transaction.
const BATCH: i64 = 50;

/// Re-routes every referral whose current leg was due by `now`; returns how
/// many legs this call breached.
pub async fn sweep_once(pool: &PgPool, now: DateTime<Utc>) -> ApiResult<usize> {
    let mut total = 0;
    loop {
        let mut tx = pool.begin().await?;
        let claimed = store::claim_overdue(&mut tx, now, BATCH).await?;
        let mut breached = 0;
        for (id, leg_number) in &claimed {
            let Some(mut referral) = store::load_referral(&mut tx, *id, Lock::ForUpdate).await?
            else {
                continue;
            };
            // The claim's snapshot may predate another sweeper's commit:
            // only the leg that is still current, unanswered and overdue
            // under the lock is breached.
            let still_due = referral.status == ReferralStatus::Sent as i32
                && referral.legs.last().is_some_and(|leg| {
                    leg.leg_number as i32 == *leg_number
                        && leg.status == LegStatus::Sent as i32
                        && leg
                            .sla_due_at
                            .as_ref()
                            .and_then(from_timestamp)
                            .is_some_and(|due| due <= now)
                });
            if !still_due {
                continue;
            }
            lifecycle::breach_sla(&mut referral, now);
            let mut pending = vec![routing::referral_event(
                ReferralEvent::SlaBreached,
                &referral,
            )];
            pending.extend(routing::reroute(&mut tx, &mut referral, now).await?);
            store::save_referral(&mut tx, *id, &referral).await?;
            events::append_all(&mut tx, pending).await?;
            breached += 1;
        }
        tx.commit().await?;
        total += breached;
        if (claimed.len() as i64) < BATCH || breached == 0 {
            return Ok(total);
        }
    }
}

/// Sweeps every `interval` by `clock` until `shutdown`.
pub fn spawn(pool: PgPool, clock: Arc<dyn Clock>, interval: Duration, shutdown: CancellationToken) {
    tokio::spawn(onestop_platform::audit::as_service(
        crate::startup::SERVICE_NAME,
        async move {
            loop {
                match sweep_once(&pool, clock.now()).await {
                    Ok(0) => {}
                    Ok(rerouted) => {
                        tracing::info!(rerouted, "legs past their response SLA re-routed")
                    }
                    Err(error) => tracing::warn!(error = %error, "SLA sweep failed"),
                }
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    _ = tokio::time::sleep(interval) => {}
                }
            }
        },
    ));
}
