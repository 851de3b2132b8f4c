//! SIGTERM while calls are in flight: the calls already inside finish
//! (one of them held in the database past the signal), no acknowledged
//! write is lost, and the process exits cleanly within its grace period.

use std::time::{Duration, Instant};

use onestop_contracts::events::v1::WatchRequest;
use onestop_test_support::{Bearer, Connect, FeedClient, TestDb, channel};

use crate::support::{self, Writers, company, figure, full, intake_client, ms, spawn};

const DRILL: &str = "SIGTERM under load";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_under_load_lets_calls_in_flight_finish_and_exits_within_the_grace() {
    let _alone = support::one_at_a_time().await;
    // The product's default grace is 10s; a held call needs far less.
    let grace = if full() {
        Duration::from_secs(10)
    } else {
        Duration::from_secs(4)
    };
    let db = TestDb::new().await;
    let mut intake = spawn(
        "intake",
        &[
            ("DATABASE_URL", db.url.clone()),
            ("ONESTOP_SHUTDOWN_GRACE", format!("{}ms", grace.as_millis())),
        ],
    )
    .await;
    let pool = db.pool().await;
    let writers = Writers::start(intake.addr, 4, 3_000_000);
    assert!(
        writers.wait_for_more(20, Duration::from_secs(20)).await,
        "writes flow before the signal"
    );

    // One call held inside the server: the idempotency key it must claim is
    // locked by this transaction until after the signal.
    let mut blocker = pool.begin().await.expect("a transaction");
    sqlx::query(
        "INSERT INTO idempotency_key (scope, method, key, request_hash)
         VALUES ('agency:kotra:test', 'RegisterCompany', 'drill-held', '\\x00')",
    )
    .execute(&mut *blocker)
    .await
    .expect("hold the key");
    let mut held_client = intake_client(intake.addr);
    let held = tokio::spawn(async move {
        let answer = held_client
            .register_company(company("drill-held".into(), 3_900_000))
            .await;
        (answer, Instant::now())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(!held.is_finished(), "the held call waits inside the server");

    // An open Watch stream, which must end at once rather than hold the
    // process for the grace period.
    let mut feed = <FeedClient as Connect>::connect(channel(intake.addr), Bearer::dashboard());
    let mut watch = feed
        .watch(WatchRequest::default())
        .await
        .expect("a watch")
        .into_inner();
    watch.message().await.expect("the feed's status");

    let acked_before = writers.acked();
    let signalled = Instant::now();
    intake.signal("TERM");
    let watch_ended = tokio::time::timeout(Duration::from_secs(1), async {
        loop {
            match watch.message().await {
                Ok(Some(_)) => continue,
                Ok(None) => return ("ended without a status".to_owned(), Instant::now()),
                Err(status) => return (format!("{:?}", status.code()), Instant::now()),
            }
        }
    })
    .await;
    tokio::time::sleep_until((signalled + Duration::from_secs(1)).into()).await;
    blocker.rollback().await.expect("release the key");
    let (answer, answered) = held.await.expect("held call task");
    let exit = tokio::time::timeout(grace + Duration::from_secs(10), intake.child.wait()).await;
    let exited = Instant::now();
    let written = writers.finish().await;
    let acked_after = written.acked.len().saturating_sub(acked_before);

    let figures = figure(
        DRILL,
        format!(
            "the open Watch stream ended {:?} ms after the signal with {:?}; \
             the call held 1 s past SIGTERM finished {} ms after the signal ({}); the process \
             exited {} ms after the signal with {:?} (grace {grace:?}); {} writes acknowledged, \
             {acked_after} of them after the signal; failed attempts {:?}",
            watch_ended.as_ref().ok().map(|(_, at)| ms(signalled, *at)),
            watch_ended.as_ref().ok().map(|(code, _)| code),
            ms(signalled, answered),
            match &answer {
                Ok(_) => "OK".to_owned(),
                Err(status) => format!("{:?}", status.code()),
            },
            ms(signalled, exited),
            exit.as_ref().ok(),
            written.acked.len(),
            written.failures,
        ),
    );
    let held_company = answer
        .unwrap_or_else(|status| panic!("the held call failed: {status:?}; {figures}"))
        .into_inner()
        .company_id;
    assert!(
        watch_ended
            .as_ref()
            .is_ok_and(|(code, _)| code == "Unavailable"),
        "the open Watch stream did not end with UNAVAILABLE at once: {figures}"
    );
    let status = exit
        .unwrap_or_else(|_| panic!("still running: {figures}"))
        .expect("exit status");
    assert!(status.success(), "exit status {status}: {figures}");
    assert!(
        exited - signalled <= grace + Duration::from_secs(2),
        "exited past the grace: {figures}"
    );
    let mut acked = written.ids();
    acked.push(held_company);
    let missing = support::missing_companies(&pool, &acked).await;
    assert!(
        missing.is_empty(),
        "acknowledged writes lost: {missing:?}; {figures}"
    );
    pool.close().await;
}
