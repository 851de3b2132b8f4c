//! Dashboards watching: N `EventFeedService/Watch` streams on intake, all
//! subscribing at once, then probe events committed one at a time and the
//! time from each commit to its delivery on every stream.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onestop_contracts::events::v1::{WatchRequest, watch_response::Item};
use onestop_test_support::{Connect, FeedClient};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::ops::{Worker, World};
use crate::stats::{Stats, histogram, millis, record};
use crate::target::Target;

/// Streams per HTTP/2 connection, below the server's default limit of
/// concurrent streams on one connection.
const STREAMS_PER_CONNECTION: usize = 100;
/// Longest the probe waits for every stream to receive a probe event.
const DELIVERY_TIMEOUT: Duration = Duration::from_secs(15);

/// Probe events each stream received, with when.
#[derive(Default)]
struct Deliveries {
    probing: AtomicBool,
    /// aggregate id -> (watcher, received at)
    seen: Mutex<HashMap<String, Vec<(usize, Instant)>>>,
}

pub struct Watchers {
    pub subscribed: usize,
    /// Refusals by status code.
    pub refused: BTreeMap<String, usize>,
    /// From the first Watch call to the last stream's first message.
    pub subscribe_time: Duration,
    deliveries: Arc<Deliveries>,
    tasks: Vec<JoinHandle<()>>,
}

enum Subscribed {
    Open,
    Refused(String),
}

impl Watchers {
    /// Opens `count` streams from the feed's end, all at once, and waits
    /// until each has its first message or was refused.
    pub async fn open(target: &Target, count: usize) -> anyhow::Result<Self> {
        let deliveries = Arc::new(Deliveries::default());
        let (report, mut reports) = mpsc::channel(count.max(1));
        let started = Instant::now();
        let mut tasks = Vec::with_capacity(count);
        let mut channel = None;
        for index in 0..count {
            if index % STREAMS_PER_CONNECTION == 0 {
                channel = Some(target.channel("intake")?);
            }
            let channel = channel.clone().expect("a connection");
            let mut feed = FeedClient::connect(channel, target.watcher_bearer(index));
            let report = report.clone();
            let deliveries = deliveries.clone();
            tasks.push(tokio::spawn(async move {
                let request = WatchRequest {
                    from_latest: true,
                    ..Default::default()
                };
                let mut stream = match feed.watch(request).await {
                    Ok(response) => response.into_inner(),
                    Err(status) => {
                        let _ = report
                            .send(Subscribed::Refused(format!("{:?}", status.code())))
                            .await;
                        return;
                    }
                };
                let mut first = true;
                loop {
                    let message = match stream.message().await {
                        Ok(Some(message)) => message,
                        Ok(None) => break,
                        Err(status) => {
                            if first {
                                let _ = report
                                    .send(Subscribed::Refused(format!("{:?}", status.code())))
                                    .await;
                            }
                            return;
                        }
                    };
                    if first {
                        first = false;
                        let _ = report.send(Subscribed::Open).await;
                    }
                    if let Some(Item::Event(event)) = message.item
                        && deliveries.probing.load(Ordering::Relaxed)
                    {
                        let at = Instant::now();
                        deliveries
                            .seen
                            .lock()
                            .expect("deliveries")
                            .entry(event.aggregate_id)
                            .or_default()
                            .push((index, at));
                    }
                }
            }));
        }
        drop(report);
        let mut subscribed = 0;
        let mut refused = BTreeMap::new();
        let answered = tokio::time::timeout(Duration::from_secs(120), async {
            while let Some(outcome) = reports.recv().await {
                match outcome {
                    Subscribed::Open => subscribed += 1,
                    Subscribed::Refused(code) => *refused.entry(code).or_insert(0) += 1,
                }
                if subscribed + refused.values().sum::<usize>() == count {
                    break;
                }
            }
        })
        .await;
        if answered.is_err() {
            let silent = count - subscribed - refused.values().sum::<usize>();
            refused.insert("no first message within 120 s".into(), silent);
        }
        Ok(Self {
            subscribed,
            refused,
            subscribe_time: started.elapsed(),
            deliveries,
            tasks,
        })
    }

    /// Commits `probes` events (a company registered each) one at a time
    /// and measures, on every open stream, from the commit's response to
    /// the event's arrival.
    pub async fn probe(&self, target: Arc<Target>, probes: usize) -> anyhow::Result<Delivery> {
        let stats = Arc::new(Stats::default());
        let mut worker = Worker::new(target, stats.clone(), Arc::new(World::default()))?;
        self.deliveries.probing.store(true, Ordering::Relaxed);
        let mut committed = Vec::with_capacity(probes);
        for _ in 0..probes {
            let Some(company_id) = worker.register().await else {
                continue;
            };
            committed.push((company_id, Instant::now()));
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        while Instant::now() < deadline {
            if self.all_delivered(&committed) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        self.deliveries.probing.store(false, Ordering::Relaxed);
        let seen = self.deliveries.seen.lock().expect("deliveries");
        let mut latencies = histogram();
        let mut per_watcher: HashMap<usize, usize> = HashMap::new();
        for (id, committed_at) in &committed {
            for (watcher, at) in seen.get(id).into_iter().flatten() {
                record(&mut latencies, at.saturating_duration_since(*committed_at));
                *per_watcher.entry(*watcher).or_insert(0) += 1;
            }
        }
        Ok(Delivery {
            probes: committed.len(),
            probe_errors: stats.errors(),
            received_all: per_watcher
                .values()
                .filter(|n| **n >= committed.len())
                .count(),
            p50_ms: millis(latencies.value_at_quantile(0.5)),
            p99_ms: millis(latencies.value_at_quantile(0.99)),
            max_ms: millis(latencies.max()),
        })
    }

    fn all_delivered(&self, committed: &[(String, Instant)]) -> bool {
        let seen = self.deliveries.seen.lock().expect("deliveries");
        committed
            .iter()
            .all(|(id, _)| seen.get(id).map_or(0, Vec::len) >= self.subscribed)
    }

    /// Streams still open.
    pub fn open_now(&self) -> usize {
        self.tasks.iter().filter(|t| !t.is_finished()).count()
    }

    pub fn close(self) {
        for task in self.tasks {
            task.abort();
        }
    }
}

pub struct Delivery {
    pub probes: usize,
    pub probe_errors: u64,
    /// Streams that received every probe event.
    pub received_all: usize,
    pub p50_ms: f64,
    pub p99_ms: f64,
    pub max_ms: f64,
}
