//! What a service asks of its database while nothing happens: transactions
//! committed or rolled back per second on its database, from
//! `pg_stat_database` (every query outside a transaction block counts).

use std::time::{Duration, Instant};

use anyhow::Context;

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
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect(url)
        .await
        .context("connecting to intake's database")?;
    let first = transactions(&pool).await?;
    let started = Instant::now();
    tokio::time::sleep(window).await;
    let last = transactions(&pool).await?;
    let elapsed = started.elapsed();
    pool.close().await;
    Ok(((last - first - 2).max(0)) as f64 / elapsed.as_secs_f64())
}
