use onestop_buyers::admin::bench_find_buyers::BenchArgs;
use onestop_buyers::admin::{Command, run};
use onestop_test_support::TestDb;

#[tokio::test]
async fn the_benchmark_command_loads_serves_and_cleans_up_its_scratch_database() {
    let db = TestDb::new().await;
    let settings = onestop_test_support::settings(&db.url);
    run(
        Command::BenchFindBuyers(BenchArgs {
            buyers: 3_000,
            queries: 40,
            keep_database: false,
        }),
        settings,
    )
    .await
    .expect("benchmark runs");
    let pool = db.pool().await;
    let left: i64 = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM pg_database WHERE datname = 'onestop_buyers_bench_{}'",
        std::process::id()
    ))
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0);
}
