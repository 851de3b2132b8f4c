//! One tailer per replica: the only reader of new events. It asks Postgres
//! how far the feed is final (see the module comment of
//! [`crate::events`]), reads each released stretch once into an in-memory
//! window, and wakes every Watch stream, which filters the window for
//! itself. W watchers cost one read per batch, not W; an idle watcher costs
//! Postgres nothing. A watcher whose cursor is behind the window (it
//! resumed from long ago, or could not keep up) reads Postgres alone until
//! it reaches the window, then takes from it again.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use sqlx::{PgPool, Row};
use tokio::sync::watch;

use crate::events::{BATCH, EVENT_COLUMNS, FeedPosition, FeedQueries, Filter, Logged, Wakeups};
use crate::supervise::Beat;

/// Events kept in memory for watchers to take; older ones are read from
/// Postgres by the watchers that still need them.
const WINDOW: usize = 4096;
/// While transactions that could still commit an id are live, the tailer
/// asks again after this wait, doubling up to [`FENCE_POLL_MAX`]: nothing
/// announces a transaction's end (appends are announced when made, and
/// may commit or roll back after), so the tailer asks until it is over.
const FENCE_POLL_FIRST: Duration = Duration::from_millis(2);
const FENCE_POLL_MAX: Duration = Duration::from_millis(20);
/// With nothing heard, the tailer still looks once in this long, in case
/// its notification connection hangs without failing: one query per
/// replica, however many watchers.
const IDLE_CHECK: Duration = Duration::from_secs(10);
/// Most events of the window one take looks at.
const SCAN: usize = 2048;

/// The released end of the feed, shared by the tailer and the watchers.
struct Window {
    /// Set once the tailer released its first point.
    ready: bool,
    epoch: String,
    pruned_through: i64,
    /// Every event with an id in `(base, released]` is in `events`.
    base: i64,
    /// Every id up to here is final: committed (and read) or never to be.
    released: i64,
    /// The newest event id released.
    head: i64,
    events: VecDeque<Arc<Logged>>,
}

pub(crate) struct Tail {
    source: &'static str,
    wakeups: Wakeups,
    window: RwLock<Window>,
    /// The released point, for watchers to wait on.
    released: watch::Sender<i64>,
    /// The count of notifications heard before the newest released fence:
    /// everything they announced is released.
    settled: watch::Sender<u64>,
    tailer_queries: AtomicU64,
    watcher_queries: AtomicU64,
}

/// What a watcher at some cursor can take.
pub(crate) enum Take {
    /// Nothing released past the cursor yet.
    Wait,
    /// The events of the filter past the cursor, and how far they cover.
    Events {
        events: Vec<Arc<Logged>>,
        through: i64,
    },
    /// The cursor is behind the window: read Postgres up to `released`.
    Behind { released: i64 },
}

impl Tail {
    pub(crate) fn new(source: &'static str, wakeups: Wakeups) -> Self {
        Self {
            source,
            wakeups,
            window: RwLock::new(Window {
                ready: false,
                epoch: String::new(),
                pruned_through: 0,
                base: 0,
                released: 0,
                head: 0,
                events: VecDeque::new(),
            }),
            released: watch::Sender::new(0),
            settled: watch::Sender::new(0),
            tailer_queries: AtomicU64::new(0),
            watcher_queries: AtomicU64::new(0),
        }
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Window> {
        self.window.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Window> {
        self.window.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn queries(&self) -> FeedQueries {
        FeedQueries {
            tailer: self.tailer_queries.load(Ordering::Relaxed),
            watchers: self.watcher_queries.load(Ordering::Relaxed),
        }
    }

    pub(crate) fn count_watcher_query(&self) {
        self.watcher_queries.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn subscribe(&self) -> watch::Receiver<i64> {
        self.released.subscribe()
    }

    /// The feed's epoch, horizon and head as last read, once running.
    pub(crate) fn position(&self) -> Option<FeedPosition> {
        let window = self.read();
        window.ready.then(|| FeedPosition {
            epoch: window.epoch.clone(),
            pruned_through: window.pruned_through,
            head: window.head,
        })
    }

    pub(crate) fn head(&self) -> i64 {
        self.read().head
    }

    /// The released point once the tailer has released what it had heard
    /// of when this was called (waiting at most `settle`); None while the
    /// tailer has not started.
    pub(crate) async fn latest(&self, settle: Duration) -> Option<i64> {
        let heard = self.wakeups.heard().count.load(Ordering::SeqCst);
        let mut settled = self.settled.subscribe();
        let _ = tokio::time::timeout(settle, settled.wait_for(|s| *s >= heard)).await;
        let window = self.read();
        window.ready.then_some(window.released)
    }

    pub(crate) fn take(&self, cursor: i64, filter: &Filter, limit: usize) -> Take {
        let window = self.read();
        if !window.ready || cursor >= window.released {
            return Take::Wait;
        }
        if cursor < window.base {
            return Take::Behind {
                released: window.released,
            };
        }
        let start = window
            .events
            .partition_point(|logged| logged.event.id <= cursor);
        let mut events = Vec::new();
        let mut through = window.released;
        for (scanned, event) in window.events.range(start..).enumerate() {
            if events.len() == limit || scanned == SCAN {
                through = window.events[start + scanned - 1].event.id;
                break;
            }
            if filter.matches(event) {
                events.push(event.clone());
            }
        }
        Take::Events { events, through }
    }

    /// Adds released events (in id order) and moves the released point.
    fn push(&self, events: Vec<Logged>, released: i64, epoch: String, pruned_through: i64) {
        {
            let mut window = self.write();
            for logged in events {
                window.head = window.head.max(logged.event.id);
                window.events.push_back(Arc::new(logged));
            }
            while window.events.len() > WINDOW {
                if let Some(oldest) = window.events.pop_front() {
                    window.base = oldest.event.id;
                }
            }
            window.released = window.released.max(released);
            window.epoch = epoch;
            window.pruned_through = pruned_through;
        }
        self.released.send_replace(released);
    }
}

/// A reading of `event_log_fence`: every id up to `issued` is held by a
/// transaction that is over or in `running`.
struct Fence {
    issued: i64,
    running: Vec<i64>,
    /// Notifications heard before it was taken.
    heard: u64,
}

/// The tailer loop, supervised as `event-tailer`; a failure starts it again
/// from the released point, which is kept.
pub(crate) async fn run(tail: Arc<Tail>, pool: PgPool, beat: Beat) -> anyhow::Result<()> {
    let mut waiting: Option<Fence> = None;
    let mut poll = FENCE_POLL_FIRST;
    loop {
        let heard = tail.wakeups.heard().count.load(Ordering::SeqCst);
        let waited: &[i64] = waiting.as_ref().map_or(&[], |fence| &fence.running);
        tail.tailer_queries.fetch_add(1, Ordering::Relaxed);
        let (issued, running, waited_ended): (i64, Vec<i64>, bool) =
            sqlx::query_as("SELECT issued, running, waited_ended FROM event_log_fence($1)")
                .bind(waited)
                .fetch_one(&pool)
                .await?;
        let now = Fence {
            issued,
            running,
            heard,
        };
        let covered_before = tail.read().released;
        let mut upto = None;
        let mut settled = None;
        if waited_ended && let Some(fence) = waiting.take() {
            upto = Some(fence.issued);
            settled = Some(fence.heard);
        }
        let covered = covered_before.max(upto.unwrap_or(0));
        if waiting.is_none() && (now.running.is_empty() || now.issued <= covered) {
            // Nothing live could still commit an id up to `issued`, or
            // nothing was drawn past what is final already.
            upto = Some(covered.max(now.issued));
            settled = Some(now.heard);
        } else if waiting.is_none() {
            waiting = Some(now);
        }
        if let Some(upto) = upto {
            read_released(&tail, &pool, upto).await?;
            poll = FENCE_POLL_FIRST;
        }
        if let Some(heard) = settled {
            tail.settled.send_if_modified(|settled| {
                let moved = heard > *settled;
                *settled = (*settled).max(heard);
                moved
            });
        }
        beat.ok().await;

        let woken = tail.wakeups.heard().tailer.notified();
        if waiting.is_some() {
            tokio::select! {
                _ = beat.stopping() => return Ok(()),
                _ = woken => {}
                _ = tokio::time::sleep(poll) => poll = (poll * 2).min(FENCE_POLL_MAX),
            }
        } else {
            poll = FENCE_POLL_FIRST;
            tokio::select! {
                _ = beat.stopping() => return Ok(()),
                _ = woken => {}
                _ = tokio::time::sleep(IDLE_CHECK) => {}
            }
        }
    }
}

/// Reads the events up to `upto` (final) past the released point into the
/// window. The first time, only the feed's position is read: watchers that
/// need older events read them from Postgres.
async fn read_released(tail: &Tail, pool: &PgPool, upto: i64) -> Result<(), sqlx::Error> {
    let (ready, mut after) = {
        let window = tail.read();
        (window.ready, window.released)
    };
    if !ready {
        tail.tailer_queries.fetch_add(1, Ordering::Relaxed);
        let (epoch, pruned_through, head): (uuid::Uuid, i64, Option<i64>) = sqlx::query_as(
            "SELECT epoch, pruned_through, (SELECT max(id) FROM event_log WHERE id <= $1)
               FROM event_log_horizon",
        )
        .bind(upto)
        .fetch_one(pool)
        .await?;
        {
            let mut window = tail.write();
            window.ready = true;
            window.epoch = epoch.to_string();
            window.pruned_through = pruned_through;
            window.base = upto;
            window.released = upto;
            window.head = head.unwrap_or(pruned_through);
        }
        tail.released.send_replace(upto);
        return Ok(());
    }
    while after < upto {
        tail.tailer_queries.fetch_add(1, Ordering::Relaxed);
        let rows = sqlx::query(&format!(
            "SELECT h.epoch, h.pruned_through, e.*
               FROM event_log_horizon h
               LEFT JOIN LATERAL (
                    SELECT {EVENT_COLUMNS} FROM event_log
                     WHERE id > $1 AND id <= $2
                     ORDER BY id
                     LIMIT $3) e ON true
              ORDER BY e.id"
        ))
        .bind(after)
        .bind(upto)
        .bind(BATCH)
        .fetch_all(pool)
        .await?;
        let Some(first) = rows.first() else {
            return Ok(());
        };
        let epoch: uuid::Uuid = first.get("epoch");
        let pruned_through: i64 = first.get("pruned_through");
        let events: Vec<Logged> = rows
            .iter()
            .filter(|row| row.get::<Option<i64>, _>("id").is_some())
            .map(|row| crate::events::logged_from_row(tail.source, row))
            .collect();
        let through = match events.last() {
            Some(last) if events.len() as i64 == BATCH => last.event.id,
            _ => upto,
        };
        tail.push(events, through, epoch.to_string(), pruned_through);
        after = through;
    }
    Ok(())
}
