//! What intake's database says about the run: the transactions committed
//! or rolled back per second while nothing happens, from
//! `pg_stat_database` (every query outside a transaction block counts),
//! and how long the hand-off takes to deliver what the load opened.

use std::time::{Duration, Instant};

use anyhow::Context;

async fn connect(url: &str) -> anyhow::Result<sqlx::PgPool> {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .context("connecting to intake's database")
}

async fn transactions(pool: &sqlx::PgPool) -> anyhow::Result<i64> {
    // A fresh snapshot each time, not the one cached for this transaction.
    sqlx::query("SELECT pg_stat_clear_snapshot()")
        .execute(pool)
        .await?;
    let count: i64 = sqlx::query_scalar(
        "SELECT (xact_commit + xact_rollback)::bigint FROM pg_stat_database
          WHERE datname = current_database()",
    )
    .fetch_one(pool)
    .await?;
    Ok(count)
}

/// Transactions per second on the database at `url` over `window`, less
/// the two this measurement makes itself at each end.
pub async fn idle_rate(url: &str, window: Duration) -> anyhow::Result<f64> {
    let pool = connect(url).await?;
    let first = transactions(&pool).await?;
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let last = transactions(&pool).await?;
    let elapsed = started.elapsed();
    pool.close().await;
    Ok(((last - first - 2).max(0)) as f64 / elapsed.as_secs_f64())
}

/// What the load left to hand off, and how long its delivery took.
pub struct Drain {
    /// Needs not yet delivered to their owners when the load stopped.
    pub pending: i64,
    /// How long until none was; None if some still were after the wait.
    pub took: Option<Duration>,
}

/// Waits, at most `max`, until intake's relay has delivered every need the
/// load opened: pgbench measured while the services still work off the
/// load's hand-offs would share the cores with them, and a build that left
/// less of that work behind would raise its own baseline.
pub async fn wait_for_hand_off(url: &str, max: Duration) -> anyhow::Result<Drain> {
    let pool = connect(url).await?;
    let started = Instant::now();
    let pending = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM need WHERE delivery = 'PENDING'")
            .fetch_one(&pool)
            .await
    };
    let at_start = pending().await?;
    let mut left = at_start;
    while left > 0 && started.elapsed() < max {
        tokio::time::sleep(Duration::from_millis(100)).await;
        left = pending().await?;
    }
    pool.close().await;
    Ok(Drain {
        pending: at_start,
        took: (left == 0).then(|| started.elapsed()),
    })
}
