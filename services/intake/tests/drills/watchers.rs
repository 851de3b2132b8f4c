//! Watchers of intake's feed that drop their stream or lose their
//! connection at random, a thousand times, while companies are being
//! registered, each resuming from the last event it processed: every
//! watcher ends up with exactly the feed, no gap and no duplicate.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use onestop_contracts::events::v1::{WatchRequest, watch_response};
use onestop_test_support::{Bearer, Connect, FeedClient, TcpProxy, TestDb, channel};

use crate::support::{self, Random, Writers, figure, full, spawn};

const DRILL: &str = "watcher disconnects";
const WATCHERS: u64 = 4;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn watchers_disconnecting_at_random_see_every_event_exactly_once() {
    let _alone = support::one_at_a_time().await;
    let disconnects: u64 = std::env::var("ONESTOP_DRILL_DISCONNECTS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(if full() { 10_000 } else { 1_000 });
    let db = TestDb::new().await;
    let intake = spawn("intake", &[("DATABASE_URL", db.url.clone())]).await;
    let writers = Writers::start(intake.addr, 2, 4_000_000);
    assert!(
        writers.wait_for_more(10, Duration::from_secs(20)).await,
        "writes flow before the watchers start"
    );

    let (mut random, seed) = Random::seeded();
    let started = Instant::now();
    let watchers: Vec<_> = (0..WATCHERS)
        .map(|n| {
            let share = disconnects / WATCHERS + u64::from(n < disconnects % WATCHERS);
            tokio::spawn(watch_and_drop(
                intake.addr,
                Random::new(random.next()),
                share,
            ))
        })
        .collect();
    let mut runs = Vec::new();
    for watcher in watchers {
        runs.push(watcher.await.expect("watcher task"));
    }
    let churned = started.elapsed();
    let written = writers.finish().await;

    // Every event the feed holds, in order; then each watcher catches up
    // from where it stopped and must hold exactly that.
    let pool = db.pool().await;
    let feed: Vec<i64> = sqlx::query_scalar("SELECT id FROM event_log ORDER BY id")
        .fetch_all(&pool)
        .await
        .expect("feed");
    let head = *feed.last().expect("events");
    let mut failures = BTreeMap::new();
    let mut resumes = 0;
    let mut by_kind = BTreeMap::new();
    for run in &mut runs {
        catch_up(intake.addr, run, head).await;
        resumes += run.sessions;
        for (code, count) in &run.failures {
            *failures.entry(code.clone()).or_insert(0) += count;
        }
        for (kind, count) in &run.disconnects {
            *by_kind.entry(*kind).or_insert(0) += count;
        }
    }
    let figures = figure(
        DRILL,
        format!(
            "{} disconnects ({by_kind:?}) by {WATCHERS} watchers in {} ms while {} companies \
             were registered; {resumes} resumes; {} events on the feed; refused or failed \
             watches {failures:?}; seed {seed}",
            by_kind.values().sum::<u64>(),
            churned.as_millis(),
            written.acked.len(),
            feed.len(),
        ),
    );
    for (n, run) in runs.iter().enumerate() {
        assert!(
            run.out_of_order.is_empty(),
            "watcher {n} got events at or below its cursor (duplicates): {:?}; {figures}",
            &run.out_of_order[..run.out_of_order.len().min(10)]
        );
        if run.seen != feed {
            let gap = feed.iter().find(|id| !run.seen.contains(id));
            panic!(
                "watcher {n} saw {} events, the feed holds {}; first missing {gap:?}; {figures}",
                run.seen.len(),
                feed.len()
            );
        }
    }
    assert!(
        by_kind.values().sum::<u64>() >= disconnects,
        "fewer disconnects than asked: {figures}"
    );
    pool.close().await;
}

/// What one watcher went through.
#[derive(Default)]
struct Run {
    seen: Vec<i64>,
    /// Events that came at or below the cursor they were asked after.
    out_of_order: Vec<i64>,
    epoch: String,
    sessions: u64,
    disconnects: BTreeMap<&'static str, u64>,
    failures: BTreeMap<String, u64>,
}

impl Run {
    fn after(&self) -> i64 {
        self.seen.last().copied().unwrap_or(0)
    }

    fn take(&mut self, item: Option<watch_response::Item>) {
        match item {
            Some(watch_response::Item::Status(status)) => {
                assert!(
                    self.epoch.is_empty() || self.epoch == status.epoch,
                    "the feed's epoch changed under a watcher"
                );
                self.epoch = status.epoch;
            }
            Some(watch_response::Item::Event(event)) => {
                if event.id <= self.after() {
                    self.out_of_order.push(event.id);
                } else {
                    self.seen.push(event.id);
                }
            }
            None => {}
        }
    }
}

/// One watcher: through a proxy of its own (so a cut connection is its
/// own), it watches from its cursor, processes a random number of events
/// and disconnects in a random way, `disconnects` times.
async fn watch_and_drop(intake: SocketAddr, mut random: Random, disconnects: u64) -> Run {
    let proxy = TcpProxy::start(intake).await;
    let mut client = <FeedClient as Connect>::connect(channel(proxy.addr()), Bearer::dashboard());
    let mut run = Run::default();
    // Bounded: a few times what a resume takes on a loaded machine.
    let deadline = Instant::now() + Duration::from_millis(150_000.max(disconnects * 300));
    while run.disconnects.values().sum::<u64>() < disconnects && Instant::now() < deadline {
        let request = WatchRequest {
            after: run.after(),
            epoch: run.epoch.clone(),
            ..Default::default()
        };
        let answer = tokio::time::timeout(Duration::from_secs(10), client.watch(request)).await;
        let mut stream = match answer {
            Ok(Ok(response)) => response.into_inner(),
            Err(_) => {
                *run.failures.entry("no answer in 10s".into()).or_default() += 1;
                continue;
            }
            Ok(Err(status)) => {
                *run.failures
                    .entry(format!("{:?}", status.code()))
                    .or_default() += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
        };
        run.sessions += 1;
        let wanted = 1 + random.below(30) as usize;
        let mut got = 0;
        while got < wanted {
            // A quiet feed does not hold the drill up: drop after a pause.
            match tokio::time::timeout(Duration::from_millis(30), stream.message()).await {
                Ok(Ok(Some(message))) => {
                    let event = matches!(message.item, Some(watch_response::Item::Event(_)));
                    run.take(message.item);
                    got += usize::from(event);
                }
                Ok(Ok(None)) | Ok(Err(_)) | Err(_) => break,
            }
        }
        let kind = match random.below(3) {
            0 => "stream dropped",
            1 => {
                proxy.reset();
                "connection reset"
            }
            _ => {
                // Gone while events may still be on their way to it.
                tokio::time::sleep(Duration::from_millis(random.below(10))).await;
                "dropped mid-flight"
            }
        };
        drop(stream);
        *run.disconnects.entry(kind).or_default() += 1;
    }
    run
}

/// Reads on from the watcher's cursor until it has `head`.
async fn catch_up(intake: SocketAddr, run: &mut Run, head: i64) {
    let mut client = <FeedClient as Connect>::connect(channel(intake), Bearer::dashboard());
    let request = WatchRequest {
        after: run.after(),
        epoch: run.epoch.clone(),
        ..Default::default()
    };
    let mut stream = client
        .watch(request)
        .await
        .expect("a last watch")
        .into_inner();
    while run.after() < head {
        match tokio::time::timeout(Duration::from_secs(10), stream.message()).await {
            Ok(Ok(Some(message))) => run.take(message.item),
            _ => break,
        }
    }
}
