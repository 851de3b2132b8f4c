//! The database pool every service builds and what callers are told when
//! the database fails, against the real Postgres.

use std::time::Duration;

use onestop_platform::{ApiError, db};
use onestop_test_support::TestDb;
use tonic::{Code, Status};

async fn statement_timeout(pool: &sqlx::PgPool) -> String {
    sqlx::query_scalar("SHOW statement_timeout")
        .fetch_one(pool)
        .await
        .expect("show statement_timeout")
}

#[tokio::test]
async fn every_pool_connection_carries_the_statement_timeout() {
    let test_db = TestDb::new().await;
    let settings = onestop_test_support::settings(&test_db.url);
    let pool = db::connect(&test_db.url, 1, settings.statement_timeout)
        .await
        .expect("connects");
    assert_eq!(statement_timeout(&pool).await, "10s");

    // Migrations lift the limit on their connection and restore it.
    db::migrate(&pool, sqlx::migrate::Migrator::DEFAULT)
        .await
        .expect("migrates");
    assert_eq!(statement_timeout(&pool).await, "10s");
    pool.close().await;
}

#[tokio::test]
async fn a_statement_past_the_timeout_is_cancelled() {
    let test_db = TestDb::new().await;
    let pool = db::connect(&test_db.url, 1, Duration::from_millis(300))
        .await
        .expect("connects");
    assert_eq!(statement_timeout(&pool).await, "300ms");
    let error = sqlx::query("SELECT pg_sleep(5)")
        .execute(&pool)
        .await
        .expect_err("cancelled");
    let code = error
        .as_database_error()
        .and_then(|db| db.code().map(|code| code.into_owned()));
    assert_eq!(code.as_deref(), Some("57014"));
    pool.close().await;
}

/// The error Postgres gives for a statement that fails with `sqlstate`.
async fn failure(pool: &sqlx::PgPool, sqlstate: &str) -> sqlx::Error {
    sqlx::query(&format!(
        "DO $$ BEGIN RAISE EXCEPTION 'refused' USING ERRCODE = '{sqlstate}'; END $$"
    ))
    .execute(pool)
    .await
    .expect_err("raises")
}

#[tokio::test]
async fn retryable_database_failures_reach_the_caller_as_retryable_codes() {
    let test_db = TestDb::new().await;
    let pool = db::connect(&test_db.url, 2, Duration::from_secs(10))
        .await
        .expect("connects");
    for (sqlstate, expected) in [
        ("40001", Code::Aborted),
        ("40P01", Code::Aborted),
        ("57P01", Code::Unavailable),
        ("57P02", Code::Unavailable),
        ("57P03", Code::Unavailable),
        ("53300", Code::Unavailable),
        ("08006", Code::Unavailable),
        ("57014", Code::Unavailable),
        ("22021", Code::InvalidArgument),
        ("42P01", Code::Internal),
    ] {
        let direct = Status::from(ApiError::from(failure(&pool, sqlstate).await));
        assert_eq!(direct.code(), expected, "{sqlstate}");
        // The same failure carried inside another error.
        let wrapped = anyhow::Error::from(failure(&pool, sqlstate).await).context("recording");
        let wrapped = Status::from(ApiError::Internal(wrapped));
        assert_eq!(wrapped.code(), expected, "{sqlstate} wrapped");
        if expected != Code::InvalidArgument {
            assert!(!wrapped.message().contains("refused"), "{sqlstate}");
        }
    }
    pool.close().await;
}

#[tokio::test]
async fn a_connection_an_administrator_terminates_is_unavailable_not_internal() {
    let test_db = TestDb::new().await;
    let pool = db::connect(&test_db.url, 1, Duration::from_secs(10))
        .await
        .expect("connects");
    let mut victim = pool.acquire().await.expect("a connection");
    let pid: i32 = sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(&mut *victim)
        .await
        .expect("pid");
    let admin = test_db.pool().await;
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(pid)
        .execute(&admin)
        .await
        .expect("terminates");
    let error = sqlx::query("SELECT 1")
        .execute(&mut *victim)
        .await
        .expect_err("terminated");
    assert_eq!(
        Status::from(ApiError::from(error)).code(),
        Code::Unavailable
    );
    drop(victim);
    admin.close().await;
    pool.close().await;
}

#[tokio::test]
async fn a_pool_that_times_out_is_unavailable() {
    let test_db = TestDb::new().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .acquire_timeout(Duration::from_millis(200))
        .connect(&test_db.url)
        .await
        .expect("connects");
    let held = pool.acquire().await.expect("the only connection");
    let error = pool.acquire().await.expect_err("times out");
    assert_eq!(
        Status::from(ApiError::from(error)).code(),
        Code::Unavailable
    );
    drop(held);
    pool.close().await;
}
