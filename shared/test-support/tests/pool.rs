//! The database pool every service builds, against the real Postgres.

use std::time::Duration;

use onestop_platform::db;
use onestop_test_support::TestDb;

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
