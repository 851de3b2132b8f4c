//! The service's own Postgres database: pool, embedded migrations, and the
//! probe behind the health status.

use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// Whether a read locks the rows it returns for the rest of the transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lock {
    None,
    ForUpdate,
}

impl Lock {
    /// The clause to append to a SELECT.
    pub fn clause(self) -> &'static str {
        match self {
            Lock::None => "",
            Lock::ForUpdate => " FOR UPDATE",
        }
    }
}

/// How long startup waits for the database before giving up.
const CONNECT_PATIENCE: Duration = Duration::from_secs(60);

/// A pool whose every connection cancels a statement running longer than
/// `statement_timeout` (zero: never), so a runaway query gives up its
/// connection and its locks instead of holding them past the caller's
/// deadline.
pub async fn connect(
    database_url: &str,
    max_connections: u32,
    statement_timeout: Duration,
) -> anyhow::Result<PgPool> {
    let options: PgConnectOptions = database_url
        .parse::<PgConnectOptions>()
        .map_err(|error| anyhow::anyhow!("DATABASE_URL is not a Postgres URL: {error}"))?
        .options([(
            "statement_timeout",
            statement_timeout.as_millis().to_string(),
        )]);
    let pool_options = PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(5));
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        match pool_options.clone().connect_with(options.clone()).await {
            Ok(pool) => return Ok(pool),
            Err(error) if started.elapsed() < CONNECT_PATIENCE => {
                tracing::warn!(error = %error, retry_in_ms = delay.as_millis() as u64, "database not reachable yet");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
            Err(error) => return Err(anyhow::anyhow!("database unreachable: {error}")),
        }
    }
}

/// Applies the tables every service has (event log, idempotency keys), then
/// the service's own migrations. Platform migrations are numbered below
/// 1000 and a service's from 1000 up, so both sets share one
/// `_sqlx_migrations` history; each set ignores the other's entries.
///
/// Migrations may rewrite large tables, so they run on one connection with
/// no statement timeout, which is restored before it goes back to the pool.
pub async fn migrate(pool: &PgPool, mut service_migrations: Migrator) -> anyhow::Result<()> {
    let mut conn = pool.acquire().await?;
    sqlx::query("SET statement_timeout = 0")
        .execute(&mut *conn)
        .await?;
    let mut platform = sqlx::migrate!("./migrations");
    platform.set_ignore_missing(true);
    platform.run(&mut *conn).await?;
    service_migrations.set_ignore_missing(true);
    service_migrations.run(&mut *conn).await?;
    sqlx::query("RESET statement_timeout")
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Keeps `services` (and the server as a whole, "") SERVING while the
/// database answers and NOT_SERVING while it does not, so load balancers and
/// Kubernetes stop routing to a replica that can only fail.
pub fn spawn_health_monitor(
    pool: PgPool,
    reporter: HealthReporter,
    services: Vec<&'static str>,
    interval: Duration,
    shutdown: CancellationToken,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut last: Option<ServingStatus> = None;
        loop {
            let probe = sqlx::query("SELECT 1").execute(&pool);
            let status = match tokio::time::timeout(interval.max(Duration::from_millis(500)), probe)
                .await
            {
                Ok(Ok(_)) => ServingStatus::Serving,
                Ok(Err(error)) => {
                    if last != Some(ServingStatus::NotServing) {
                        tracing::error!(error = %error, "database unreachable; health is NOT_SERVING");
                    }
                    ServingStatus::NotServing
                }
                Err(_) => {
                    if last != Some(ServingStatus::NotServing) {
                        tracing::error!("database probe timed out; health is NOT_SERVING");
                    }
                    ServingStatus::NotServing
                }
            };
            if last != Some(status) {
                if status == ServingStatus::Serving && last.is_some() {
                    tracing::info!("database reachable again; health is SERVING");
                }
                set_status(&reporter, &services, status).await;
                last = Some(status);
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(interval) => {}
            }
        }
    })
}

pub async fn set_status(
    reporter: &HealthReporter,
    services: &[&'static str],
    status: ServingStatus,
) {
    reporter.set_service_status("", status).await;
    for service in services {
        reporter.set_service_status(*service, status).await;
    }
}
