//! The service's own Postgres database: pool, embedded migrations, and the
//! probe behind the health status.

use std::time::Duration;

use sqlx::Connection;
use sqlx::migrate::Migrator;
use sqlx::postgres::{PgConnectOptions, PgConnection, PgPool, PgPoolOptions};
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

/// How long a command waits for the database before giving up.
const COMMAND_PATIENCE: Duration = Duration::from_secs(60);

/// How long one connection attempt may take.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(5);

/// Connects for a command: transient failures are retried for a minute,
/// permanent ones (see [`connect_patiently`]) end it at once.
///
/// Every connection of the pool cancels a statement running longer than
/// `statement_timeout` (zero: never), so a runaway query gives up its
/// connection and its locks instead of holding them past the caller's
/// deadline.
pub async fn connect(
    database_url: &str,
    max_connections: u32,
    statement_timeout: Duration,
) -> anyhow::Result<PgPool> {
    connect_with_patience(
        database_url,
        max_connections,
        statement_timeout,
        Some(COMMAND_PATIENCE),
    )
    .await
}

/// Connects for a server: a database that is down or starting is waited
/// for as long as it takes, with the reason logged; a mistake no wait
/// fixes (not a Postgres URL, no such database, unknown role, wrong
/// password) is returned at once, so the process ends saying what to fix.
pub async fn connect_patiently(
    database_url: &str,
    max_connections: u32,
    statement_timeout: Duration,
) -> anyhow::Result<PgPool> {
    connect_with_patience(database_url, max_connections, statement_timeout, None).await
}

async fn connect_with_patience(
    database_url: &str,
    max_connections: u32,
    statement_timeout: Duration,
    patience: Option<Duration>,
) -> anyhow::Result<PgPool> {
    let options = connect_options(database_url)?.options([(
        "statement_timeout",
        statement_timeout.as_millis().to_string(),
    )]);
    let target = format!(
        "database {:?} on {}:{}",
        options.get_database().unwrap_or_default(),
        options.get_host(),
        options.get_port()
    );
    let started = std::time::Instant::now();
    let mut delay = Duration::from_millis(200);
    loop {
        // One bare connection first: the pool would hide the reason behind
        // "pool timed out".
        let reason =
            match tokio::time::timeout(ATTEMPT_TIMEOUT, PgConnection::connect_with(&options)).await
            {
                Ok(Ok(connection)) => {
                    let _ = connection.close().await;
                    break;
                }
                Ok(Err(error)) if is_permanent(&error) => {
                    anyhow::bail!("DATABASE_URL: {target}: {error}")
                }
                Ok(Err(error)) => error.to_string(),
                Err(_) => format!("no answer within {ATTEMPT_TIMEOUT:?}"),
            };
        if patience.is_some_and(|patience| started.elapsed() >= patience) {
            anyhow::bail!("DATABASE_URL: {target} unreachable: {reason}");
        }
        tracing::warn!(
            %target,
            %reason,
            retry_in_ms = delay.as_millis() as u64,
            "database not reachable yet; health is NOT_SERVING"
        );
        tokio::time::sleep(delay).await;
        delay = (delay * 2).min(Duration::from_secs(5));
    }
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(ATTEMPT_TIMEOUT)
        .connect_with(options)
        .await
        .map_err(|error| anyhow::anyhow!("DATABASE_URL: {target}: {error}"))
}

fn connect_options(database_url: &str) -> anyhow::Result<PgConnectOptions> {
    let scheme = database_url.split_once("://").map(|(scheme, _)| scheme);
    match scheme {
        Some("postgres" | "postgresql") => {}
        Some(other) => anyhow::bail!("DATABASE_URL must be a postgres:// URL, not {other}://"),
        None => anyhow::bail!("DATABASE_URL must be a postgres:// URL"),
    }
    database_url
        .parse()
        .map_err(|error| anyhow::anyhow!("DATABASE_URL is not a Postgres URL: {error}"))
}

/// Errors that waiting does not fix: the URL, the database name, the
/// role or its password is wrong.
fn is_permanent(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Configuration(_) => true,
        sqlx::Error::Database(error) => error.code().is_some_and(|code| {
            // 3D000 invalid_catalog_name; class 28 invalid authorization.
            code == "3D000" || code.starts_with("28")
        }),
        _ => false,
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
