//! Postgres crashes (`pg_ctl stop -m immediate`) under concurrent writes
//! and comes back after crash recovery: no acknowledged write is lost, the
//! services say NOT_SERVING meanwhile and SERVING again, and none exits.

use std::time::{Duration, Instant};

use onestop_test_support::PrivateCluster;
use tonic_health::pb::health_check_response::ServingStatus;

use crate::support::{self, HealthWatch, Writers, figure, full, ms, spawn};

const DRILL: &str = "database crash";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_crashing_under_writes_loses_no_acknowledged_write() {
    let _alone = support::one_at_a_time().await;
    let cluster = PrivateCluster::start().await;
    let intake_db = cluster.create_database("onestop_intake").await;
    let referral_db = cluster.create_database("onestop_referral").await;
    // The product probes its database every 2s; 200ms shortens the drill
    // and still runs the same probe.
    let interval = if full() { "2s" } else { "200ms" };
    let common = [("ONESTOP_HEALTH_INTERVAL", interval)];
    let with = |extra: &[(&'static str, String)]| {
        let mut env: Vec<(&str, String)> =
            common.iter().map(|(k, v)| (*k, v.to_string())).collect();
        env.extend(extra.iter().cloned());
        env
    };
    let referral_env = with(&[("DATABASE_URL", referral_db)]);
    let mut referral = spawn("referral", &referral_env).await;
    let intake_env = with(&[
        ("DATABASE_URL", intake_db.clone()),
        ("ONESTOP_REFERRAL_URL", format!("http://{}", referral.addr)),
    ]);
    let mut intake = spawn("intake", &intake_env).await;

    let intake_ready = HealthWatch::start(intake.addr, "readiness");
    let referral_ready = HealthWatch::start(referral.addr, "readiness");
    let started = Instant::now();
    for (name, watch) in [("intake", &intake_ready), ("referral", &referral_ready)] {
        assert!(
            watch
                .wait_for(ServingStatus::Serving, started, Duration::from_secs(20))
                .await
                .is_some(),
            "{name} never became ready: {:?}",
            watch.history()
        );
    }

    let writers = Writers::start(intake.addr, 4, 1_000_000);
    assert!(
        writers.wait_for_more(20, Duration::from_secs(20)).await,
        "writes flow before the crash"
    );

    let crashed = Instant::now();
    cluster.stop_immediately().await;
    let noticed = intake_ready
        .wait_for(ServingStatus::NotServing, crashed, Duration::from_secs(15))
        .await;
    let referral_noticed = referral_ready
        .wait_for(ServingStatus::NotServing, crashed, Duration::from_secs(15))
        .await;
    // Alive all along: the kubelet must not restart a replica for it.
    let alive = support::health(intake.addr, "liveness").await;
    tokio::time::sleep_until((crashed + Duration::from_secs(2)).into()).await;

    // pg_ctl returns a moment after Postgres accepts connections, and a
    // service's pool may reconnect within that moment: its SERVING counts
    // from the start command on (figures below clamp at zero).
    let restarting = Instant::now();
    cluster.start_again().await;
    let back = Instant::now();
    let serving = intake_ready
        .wait_for(ServingStatus::Serving, restarting, Duration::from_secs(30))
        .await;
    let referral_serving = referral_ready
        .wait_for(ServingStatus::Serving, restarting, Duration::from_secs(30))
        .await;
    let wrote_again = writers.wait_for_more(20, Duration::from_secs(30)).await;
    let written = writers.finish().await;

    let outage = figure(
        DRILL,
        format!(
            "Postgres down {} ms (crash recovery included); intake NOT_SERVING {:?} ms after \
             the crash (referral {:?} ms); SERVING {:?} ms after Postgres accepted again \
             (referral {:?} ms), {:?} ms after the crash; first acknowledged write {:?} ms after \
             Postgres accepted; {} writes acknowledged, failed attempts {:?} (the slowest failed after \
             {} ms); health interval {interval}",
            ms(crashed, back),
            noticed.map(|at| ms(crashed, at)),
            referral_noticed.map(|at| ms(crashed, at)),
            serving.map(|at| ms(back, at)),
            referral_serving.map(|at| ms(back, at)),
            serving.map(|at| ms(crashed, at)),
            written.first_after(back).map(|at| ms(back, at)),
            written.acked.len(),
            written.failures,
            written.slowest_failure.as_millis(),
        ),
    );
    assert!(noticed.is_some(), "intake never said NOT_SERVING: {outage}");
    assert!(
        referral_noticed.is_some(),
        "referral never said NOT_SERVING: {outage}"
    );
    assert_eq!(alive, Some(ServingStatus::Serving), "liveness: {outage}");
    assert!(
        serving.is_some(),
        "intake never SERVING again: {outage}; its log ends:\n{}",
        support::log_tail(&intake.output())
    );
    assert!(
        referral_serving.is_some(),
        "referral never SERVING again: {outage}; its log ends:\n{}",
        support::log_tail(&referral.output())
    );
    assert!(wrote_again, "writes did not resume: {outage}");
    assert!(
        intake.is_running() && referral.is_running(),
        "a process exited: {outage}"
    );
    // Failures are retryable codes a client backs off on, never INTERNAL.
    for code in written.failures.keys() {
        assert!(
            ["Unavailable", "Aborted", "DeadlineExceeded", "Cancelled"].contains(&code.as_str()),
            "a write failed with {code}: {outage}"
        );
    }

    let pool = sqlx::PgPool::connect(&intake_db).await.expect("intake db");
    let missing = support::missing_companies(&pool, &written.ids()).await;
    assert!(
        missing.is_empty(),
        "{} acknowledged writes lost: {missing:?}; {outage}",
        missing.len()
    );
    pool.close().await;
}
