//! The event feed under concurrent appends, against a real Postgres: many
//! writers (some rolling back, some holding their transaction open after
//! appending) and several watchers, each of which must receive every
//! committed event once, in id order, each writer's in its commit order.
//! Also: idle watchers cost Postgres nothing, a watcher behind the
//! in-memory window catches up by itself, an append riding in a caller's
//! statement writes only when told to, and (ignored, run by hand) how
//! many appending transactions per second the feed takes with and without
//! the database-wide append lock it used to take.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use onestop_contracts::events::v1::{Event, WatchRequest, WatchResponse, watch_response};
use onestop_platform::auth::{Caller, Role};
use onestop_platform::events::{self, EventFeedService, NewEvent, Partner, Wakeups};
use onestop_platform::rpc::RpcStream;
use onestop_platform::supervise::Supervisor;
use sqlx::postgres::{PgPool, PgPoolOptions};
use tokio_stream::StreamExt;
use tokio_util::sync::CancellationToken;

/// The advisory lock every append took before migration 0006 ("onestop").
const OLD_APPEND_LOCK: i64 = 0x006f_6e65_7374_6f70;

const SERVER: &str = "postgres://postgres@127.0.0.1:5432/postgres";

/// A fresh database with the platform's migrations, dropped at the end.
struct Db {
    pool: PgPool,
    name: String,
}

fn server() -> String {
    std::env::var("DATABASE_URL")
        .ok()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| SERVER.to_owned())
}

impl Db {
    async fn new() -> Self {
        let db = Self::empty().await;
        db.migrate().await;
        db
    }

    async fn migrate(&self) {
        onestop_platform::db::migrate(&self.pool, sqlx::migrate!("./migrations"))
            .await
            .unwrap();
    }

    /// A database with no tables yet.
    async fn empty() -> Self {
        let server = server();
        let admin = PgPool::connect(&server).await.expect("Postgres answers");
        let name = format!("onestop_feed_{}", uuid::Uuid::new_v4().simple());
        sqlx::query(&format!("CREATE DATABASE {name}"))
            .execute(&admin)
            .await
            .unwrap();
        admin.close().await;
        let url = match server.rsplit_once('/') {
            Some((base, _)) => format!("{base}/{name}"),
            None => unreachable!("a Postgres URL names a database"),
        };
        let pool = PgPoolOptions::new()
            .max_connections(20)
            .connect(&url)
            .await
            .unwrap();
        Self { pool, name }
    }

    async fn drop(self) {
        self.pool.close().await;
        if let Ok(admin) = PgPool::connect(&server()).await {
            let _ = sqlx::query(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ))
            .execute(&admin)
            .await;
        }
    }
}

/// A feed as a service serves it: the notification listener and the
/// tailer running under a supervisor.
struct Feed {
    service: EventFeedService,
    shutdown: CancellationToken,
}

impl Feed {
    fn start(pool: &PgPool) -> Self {
        let shutdown = CancellationToken::new();
        let (health, _) = tonic_health::server::health_reporter();
        let supervisor = Supervisor::new("test", health, shutdown.clone());
        let wakeups = Wakeups::default();
        wakeups.spawn_listener(pool.clone(), &supervisor);
        let service = EventFeedService::new(pool.clone(), "test", wakeups, shutdown.clone());
        service.spawn_tailer(&supervisor);
        Self { service, shutdown }
    }

    async fn watch(&self, request: WatchRequest) -> RpcStream<WatchResponse> {
        let caller = Caller {
            subject: "dashboard-1".into(),
            role: Role::Dashboard,
            tenant: None,
        };
        self.service.watch(caller, request).await.expect("watch")
    }

    /// A watch by a partner token (`tenant` of `role`), started.
    async fn partner_watching(
        &self,
        role: Role,
        tenant: &str,
        request: WatchRequest,
    ) -> RpcStream<WatchResponse> {
        let caller = Caller {
            subject: format!("{tenant}-staff"),
            role,
            tenant: Some(tenant.into()),
        };
        let mut stream = self.service.watch(caller, request).await.expect("watch");
        started(&mut stream).await;
        stream
    }
}

impl Feed {
    /// Waits until the tailer runs: an event committed now reaches a
    /// watcher. Returns the event's id.
    async fn running(&self, pool: &PgPool) -> i64 {
        let id = commit(pool, vec![event("first".into())]).await;
        let mut stream = self.watch(WatchRequest::default()).await;
        let received = next_event(&mut stream, Duration::from_secs(10)).await;
        assert_eq!(received.map(|e| e.id), Some(id));
        id
    }

    /// Waits until the tailer has released `id` into its window, as the
    /// head of a watch from the latest says.
    async fn released_through(&self, id: i64) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let mut stream = self
                .watch(WatchRequest {
                    from_latest: true,
                    ..Default::default()
                })
                .await;
            let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("a status comes")
                .expect("the stream is open")
                .expect("no error");
            if let Some(watch_response::Item::Status(status)) = message.item
                && status.head >= id
            {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "the tailer never released {id}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A watch that has started (its first status came).
    async fn watching(&self, request: WatchRequest) -> RpcStream<WatchResponse> {
        let mut stream = self.watch(request).await;
        started(&mut stream).await;
        stream
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

/// The next event of the stream (skipping status messages), if one comes
/// within `wait`.
async fn next_event(stream: &mut RpcStream<WatchResponse>, wait: Duration) -> Option<Event> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let message = tokio::time::timeout_at(deadline, stream.next())
            .await
            .ok()??;
        if let Some(watch_response::Item::Event(event)) = message.expect("no error").item {
            return Some(event);
        }
    }
}

/// The first status message (sent as soon as a watch starts).
async fn started(stream: &mut RpcStream<WatchResponse>) {
    let message = tokio::time::timeout(Duration::from_secs(5), stream.next())
        .await
        .expect("a status comes")
        .expect("the stream is open")
        .expect("no error");
    assert!(matches!(
        message.item,
        Some(watch_response::Item::Status(_))
    ));
}

/// A fresh database and a feed over it.
async fn start() -> (Db, Feed) {
    let db = Db::new().await;
    let feed = Feed::start(&db.pool);
    (db, feed)
}

async fn finish(db: Db, feed: Feed) {
    drop(feed);
    db.drop().await;
}

/// Appends `events` in one committed transaction; returns the last id.
async fn commit(pool: &PgPool, events: Vec<NewEvent>) -> i64 {
    let mut tx = pool.begin().await.unwrap();
    events::append_all(&mut tx, events).await.unwrap();
    tx.commit().await.unwrap();
    sqlx::query_scalar("SELECT max(id) FROM event_log")
        .fetch_one(pool)
        .await
        .unwrap()
}

fn event(aggregate_id: String) -> NewEvent {
    NewEvent {
        event_type: "company.updated",
        aggregate_type: "company",
        aggregate_id,
        payload: prost_types::Any {
            type_url: "type.googleapis.com/onestop.intake.v1.CompanyUpdated".into(),
            value: Vec::new(),
        },
        partners: Vec::new(),
    }
}

async fn committed_ids(pool: &PgPool) -> Vec<i64> {
    sqlx::query_scalar("SELECT id FROM event_log ORDER BY id")
        .fetch_all(pool)
        .await
        .unwrap()
}

async fn collect(mut stream: RpcStream<WatchResponse>, count: usize) -> Vec<Event> {
    let mut received = Vec::with_capacity(count);
    while received.len() < count {
        match next_event(&mut stream, Duration::from_secs(15)).await {
            Some(event) => received.push(event),
            None => panic!("only {} of {count} events arrived", received.len()),
        }
    }
    // Nothing more, in particular nothing twice.
    assert!(
        next_event(&mut stream, Duration::from_millis(200))
            .await
            .is_none()
    );
    received
}

const WRITERS: usize = 8;
const TRANSACTIONS: usize = 40;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn many_writers_with_rollbacks_never_make_a_watcher_skip_or_repeat() {
    let (db, feed) = start().await;
    // Some events before any watcher, so the watchers from the start read
    // them from Postgres first.
    commit(
        &db.pool,
        (0..5).map(|i| event(format!("early-{i}"))).collect(),
    )
    .await;

    let mut from_start = Vec::new();
    for _ in 0..3 {
        from_start.push(feed.watching(WatchRequest::default()).await);
    }
    let latest = feed
        .watching(WatchRequest {
            from_latest: true,
            ..Default::default()
        })
        .await;

    let began = Instant::now();
    let mut writers = Vec::new();
    for writer in 0..WRITERS {
        let pool = db.pool.clone();
        writers.push(tokio::spawn(async move {
            let mut committed = 0;
            for n in 0..TRANSACTIONS {
                let mut tx = pool.begin().await.unwrap();
                let events = (0..1 + (writer + n) % 3).map(|k| event(format!("w{writer}-{n}-{k}")));
                events::append_all(&mut tx, events).await.unwrap();
                // Held open after drawing the ids, so later ids of other
                // writers commit first.
                let hold = (writer * 7 + n * 3) % 6;
                if hold > 0 {
                    tokio::time::sleep(Duration::from_millis(hold as u64)).await;
                }
                if n % 4 == 3 {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                    committed += 1 + (writer + n) % 3;
                }
            }
            committed
        }));
    }
    let mut appended = 5;
    for writer in writers {
        appended += writer.await.unwrap();
    }
    let written_in = began.elapsed();

    let committed = committed_ids(&db.pool).await;
    assert_eq!(committed.len(), appended);
    // A watcher resuming from a cursor in the middle.
    let middle = committed[committed.len() / 2];
    let resumed = feed
        .watching(WatchRequest {
            after: middle,
            ..Default::default()
        })
        .await;

    for stream in from_start {
        let received = collect(stream, committed.len()).await;
        let ids: Vec<i64> = received.iter().map(|e| e.id).collect();
        assert_eq!(ids, committed, "every committed event once, in id order");
        // Each writer's transactions arrive in the order they committed.
        let mut last_of: BTreeMap<&str, usize> = BTreeMap::new();
        for event in &received {
            let mut parts = event.aggregate_id.split('-');
            let (writer, n) = (parts.next().unwrap(), parts.next().unwrap());
            let n: usize = n.parse().unwrap();
            if let Some(previous) = last_of.insert(writer, n) {
                assert!(previous <= n, "{writer}: {n} after {previous}");
            }
        }
    }
    let after_subscribe: Vec<i64> = committed.iter().copied().filter(|id| *id > 5).collect();
    let received = collect(latest, after_subscribe.len()).await;
    assert_eq!(
        received.iter().map(|e| e.id).collect::<Vec<_>>(),
        after_subscribe
    );
    let rest: Vec<i64> = committed
        .iter()
        .copied()
        .filter(|id| *id > middle)
        .collect();
    let received = collect(resumed, rest.len()).await;
    assert_eq!(received.iter().map(|e| e.id).collect::<Vec<_>>(), rest);
    eprintln!(
        "{appended} events in {} transactions of {WRITERS} writers, written in {written_in:?}",
        WRITERS * TRANSACTIONS
    );
    finish(db, feed).await;
}

/// Appending transactions notify nobody (Postgres would commit them one
/// at a time, server-wide); the process that appended announces it, from
/// its feed's announcer, outside the transaction.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn appends_are_announced_by_the_process_not_by_their_transaction() {
    let db = Db::new().await;
    let mut listener = sqlx::postgres::PgListener::connect_with(&db.pool)
        .await
        .unwrap();
    listener.listen("onestop_events").await.unwrap();
    for i in 0..5 {
        commit(&db.pool, vec![event(format!("quiet-{i}"))]).await;
    }
    let heard = tokio::time::timeout(Duration::from_millis(500), listener.recv()).await;
    assert!(heard.is_err(), "a committed append notified: {heard:?}");

    let feed = Feed::start(&db.pool);
    commit(&db.pool, vec![event("announced".into())]).await;
    let heard = tokio::time::timeout(Duration::from_secs(2), listener.recv())
        .await
        .expect("the announcer tells other replicas")
        .unwrap();
    assert!(!heard.payload().is_empty(), "names the announcing process");
    finish(db, feed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_watchers_cost_postgres_nothing() {
    let (db, feed) = start().await;
    let first = feed.running(&db.pool).await;

    let mut streams = Vec::new();
    let before = feed.service.queries();
    for i in 0..60 {
        let request = if i % 6 == 0 {
            WatchRequest {
                after: first,
                ..Default::default()
            }
        } else {
            WatchRequest {
                from_latest: true,
                ..Default::default()
            }
        };
        let stream = feed.watching(request).await;
        streams.push(stream);
    }
    let subscribed = feed.service.queries();
    // One query for each watch with a cursor, none for the latest.
    assert_eq!(subscribed.watchers - before.watchers, 10);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let idle = feed.service.queries();
    assert_eq!(
        idle.watchers, subscribed.watchers,
        "idle watchers sent no query"
    );
    // At most the replica's own periodic look (every 10 s), not one per
    // watcher.
    assert!(idle.tailer - subscribed.tailer <= 1, "{idle:?}");

    let id = commit(&db.pool, vec![event("live".into())]).await;
    for stream in &mut streams {
        let received = next_event(stream, Duration::from_secs(5))
            .await
            .expect("the event arrives");
        assert_eq!(received.id, id);
    }
    let delivered = feed.service.queries();
    assert_eq!(
        delivered.watchers, idle.watchers,
        "watchers took the event from memory"
    );
    // The tailer read it once for all sixty: a fence, and the read.
    assert!(
        delivered.tailer - idle.tailer <= 4,
        "{delivered:?} after {idle:?}"
    );
    finish(db, feed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_watcher_behind_the_window_catches_up_from_postgres_and_rejoins() {
    let (db, feed) = start().await;
    // Running before the events, so the tailer reads them all into its
    // window, which keeps only the newest.
    feed.running(&db.pool).await;
    commit(
        &db.pool,
        (0..6000).map(|i| event(format!("bulk-{i}"))).collect(),
    )
    .await;
    let committed = committed_ids(&db.pool).await;
    // The tailer reads 6,000 events in several batches; on a busy machine
    // that outlasts a watch from the latest's wait for it, so wait for the
    // release itself before counting the behind watcher's queries.
    feed.released_through(*committed.last().unwrap()).await;

    let before = feed.service.queries();
    let mut behind = feed
        .watching(WatchRequest {
            after: committed[10],
            ..Default::default()
        })
        .await;
    let mut received = Vec::new();
    while received.len() < committed.len() - 11 {
        received.push(
            next_event(&mut behind, Duration::from_secs(10))
                .await
                .unwrap()
                .id,
        );
    }
    assert_eq!(received, committed[11..]);
    let caught_up = feed.service.queries();
    // The subscription, and reads of up to 500 until the window: not one
    // per event.
    let reads = caught_up.watchers - before.watchers;
    assert!((2..=6).contains(&reads), "{reads} queries");

    // Rejoined: a new event comes from the window, with no query of its own.
    let id = commit(&db.pool, vec![event("live".into())]).await;
    assert_eq!(
        next_event(&mut behind, Duration::from_secs(5))
            .await
            .unwrap()
            .id,
        id
    );
    assert_eq!(feed.service.queries().watchers, caught_up.watchers);
    finish(db, feed).await;
}

/// Events appended by a statement of the caller's own are written only
/// when its condition holds, and each names the partners the statement
/// adds once, after its own.
#[tokio::test]
async fn an_append_riding_in_a_callers_statement_writes_when_told_and_names_each_partner_once() {
    let db = Db::new().await;
    let also = format!(
        "ARRAY[{}, {}]",
        events::partner_key_sql("'advisor'", "'kim'"),
        events::partner_key_sql("'agency'", "'sbc'"),
    );
    let sql = format!(
        "WITH {} SELECT count(*) FROM appended",
        events::Appending::insert_sql(2, "$1", &also)
    );
    let appending = || {
        events::Appending::new([
            event("named".into()).for_partners([Partner::agency("sbc")]),
            event("unnamed".into()),
        ])
    };
    for write in [false, true] {
        let written: i64 = appending()
            .bind_to(sqlx::query_as::<_, (i64,)>(&sql).bind(write))
            .fetch_one(&db.pool)
            .await
            .unwrap()
            .0;
        assert_eq!(written, if write { 2 } else { 0 });
    }
    let stored: Vec<(String, Vec<String>)> =
        sqlx::query_as("SELECT aggregate_id, partners FROM event_log ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let keys = |keys: [&str; 2]| keys.map(str::to_owned).to_vec();
    assert_eq!(
        stored,
        vec![
            ("named".to_owned(), keys(["agency:sbc", "advisor:kim"])),
            ("unnamed".to_owned(), keys(["advisor:kim", "agency:sbc"])),
        ]
    );
    db.drop().await;
}

/// A partner's stream takes only the events naming it, whether it reads
/// Postgres from behind the window or takes from the window; its copies
/// lose the trace context and other organisations' actors, and pass the
/// service's trim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_watches_only_its_own_events_behind_and_in_the_window() {
    let db = Db::new().await;
    let mut feed = Feed::start(&db.pool);
    feed.service = feed.service.clone().with_partner_trim(|event, partner| {
        event.aggregate_id = format!("{} as seen by {}", event.aggregate_id, partner.tenant);
    });
    feed.running(&db.pool).await;
    let owned = |i: usize| match i % 100 {
        0 => vec![Partner::agency("sbc")],
        1 => vec![Partner::agency("kotra"), Partner::advisor("sbc")],
        2 => vec![Partner::agency("kotra"), Partner::agency("sbc")],
        _ => Vec::new(),
    };
    commit(
        &db.pool,
        (0..6000)
            .map(|i| event(format!("bulk-{i}")).for_partners(owned(i)))
            .collect(),
    )
    .await;
    let first = committed_ids(&db.pool).await[0];
    // Behind the window (6000 events, 4096 kept): read from Postgres.
    let mut sbc = feed
        .partner_watching(
            Role::Agency,
            "sbc",
            WatchRequest {
                after: first,
                ..Default::default()
            },
        )
        .await;
    let expected: Vec<String> = (0..6000)
        .filter(|i| i % 100 == 0 || i % 100 == 2)
        .map(|i| format!("bulk-{i} as seen by sbc"))
        .collect();
    let mut received = Vec::new();
    while received.len() < expected.len() {
        let event = next_event(&mut sbc, Duration::from_secs(10)).await.unwrap();
        assert!(event.traceparent.is_empty());
        received.push(event.aggregate_id);
    }
    assert_eq!(received, expected);

    // In the window: another agency's, an advisor's and nobody's events
    // never come; its own does.
    commit(
        &db.pool,
        vec![
            event("kotra-live".into()).for_partners([Partner::agency("kotra")]),
            event("advisor-live".into()).for_partners([Partner::advisor("sbc")]),
            event("internal-live".into()),
            event("sbc-live".into()).for_partners([Partner::agency("sbc")]),
        ],
    )
    .await;
    let live = next_event(&mut sbc, Duration::from_secs(5)).await.unwrap();
    assert_eq!(live.aggregate_id, "sbc-live as seen by sbc");
    assert!(
        next_event(&mut sbc, Duration::from_millis(300))
            .await
            .is_none()
    );

    // A partner token without its tenant is refused, as before.
    let anonymous = Caller {
        subject: "someone".into(),
        role: Role::Advisor,
        tenant: None,
    };
    let refused = feed
        .service
        .watch(anonymous, WatchRequest::default())
        .await
        .err()
        .expect("refused");
    assert_eq!(
        tonic::Status::from(refused).code(),
        tonic::Code::PermissionDenied
    );
    finish(db, feed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tailer_comes_back_after_its_connections_are_cut() {
    let (db, feed) = start().await;
    let first = feed.running(&db.pool).await;
    let mut stream = feed
        .watching(WatchRequest {
            after: first,
            ..Default::default()
        })
        .await;
    // Every other session of the database goes: the notification listener
    // and the pool's idle connections, the tailer's among them.
    sqlx::query(
        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
          WHERE datname = current_database() AND pid <> pg_backend_pid()",
    )
    .execute(&db.pool)
    .await
    .unwrap();
    let ids = [
        commit(&db.pool, vec![event("after-cut-1".into())]).await,
        commit(&db.pool, vec![event("after-cut-2".into())]).await,
    ];
    // Well before the tailer's periodic look: the listener reconnected and
    // woke it.
    for id in ids {
        let received = next_event(&mut stream, Duration::from_secs(5)).await;
        assert_eq!(received.map(|e| e.id), Some(id));
    }
    finish(db, feed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cursors_and_the_epoch_of_a_feed_written_before_appends_lost_their_lock_still_hold() {
    // The database as it was before: the migrations up to 0005, and events
    // appended under the advisory lock with ids drawn in the INSERT.
    let db = Db::empty().await;
    let before = std::env::temp_dir().join(format!("onestop-migrations-{}", db.name));
    std::fs::create_dir_all(&before).unwrap();
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("migrations");
    for file in std::fs::read_dir(&dir).unwrap() {
        let path = file.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0006" {
            std::fs::copy(&path, before.join(&name)).unwrap();
        }
    }
    sqlx::migrate::Migrator::new(before.as_path())
        .await
        .unwrap()
        .run(&db.pool)
        .await
        .unwrap();
    std::fs::remove_dir_all(&before).unwrap();
    let mut old_ids = Vec::new();
    for i in 0..5 {
        let mut tx = db.pool.begin().await.unwrap();
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(OLD_APPEND_LOCK)
            .execute(&mut *tx)
            .await
            .unwrap();
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO event_log (id, event_type, aggregate_type, aggregate_id, payload_type, payload)
             VALUES (nextval('event_log_id_seq'), 'company.updated', 'company', $1, 'x', '')
             RETURNING id",
        )
        .bind(format!("old-{i}"))
        .fetch_one(&mut *tx)
        .await
        .unwrap();
        tx.commit().await.unwrap();
        old_ids.push(id);
    }
    let epoch: uuid::Uuid = sqlx::query_scalar("SELECT epoch FROM event_log_horizon")
        .fetch_one(&db.pool)
        .await
        .unwrap();

    db.migrate().await;
    let feed = Feed::start(&db.pool);
    let mut stream = feed
        .watching(WatchRequest {
            after: old_ids[2],
            epoch: epoch.to_string(),
            ..Default::default()
        })
        .await;
    let new = commit(&db.pool, vec![event("new".into())]).await;
    let mut received = Vec::new();
    for _ in 0..3 {
        received.push(
            next_event(&mut stream, Duration::from_secs(10))
                .await
                .unwrap()
                .id,
        );
    }
    assert_eq!(received, [old_ids[3], old_ids[4], new]);
    assert!(new > old_ids[4]);
    finish(db, feed).await;
}

/// Appending transactions per second, 8 writers each committing a row and
/// two events per transaction, first as appends were before (a
/// database-wide advisory lock, then one statement and one notification
/// per event), then as they are now. Run by hand:
///
/// `cargo test -p onestop-platform --release --test feed appends_per_second -- --ignored --nocapture`
///
/// (`ONESTOP_BENCH_SECS` sets each run's length, 5 s by default.)
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn appends_per_second_with_and_without_the_append_lock() {
    let (db, feed) = start().await;
    sqlx::query("CREATE TABLE bench_case (id uuid PRIMARY KEY, body text NOT NULL)")
        .execute(&db.pool)
        .await
        .unwrap();
    let seconds: u64 = std::env::var("ONESTOP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(5);
    let mut rates = Vec::new();
    for locked in [true, false] {
        let deadline = Instant::now() + Duration::from_secs(seconds);
        let mut writers = Vec::new();
        for _ in 0..8 {
            let pool = db.pool.clone();
            writers.push(tokio::spawn(async move {
                let mut done = 0u64;
                while Instant::now() < deadline {
                    let mut tx = pool.begin().await.unwrap();
                    sqlx::query("INSERT INTO bench_case (id, body) VALUES ($1, 'a case')")
                        .bind(uuid::Uuid::new_v4())
                        .execute(&mut *tx)
                        .await
                        .unwrap();
                    let pair = [event("a".into()), event("b".into())];
                    if locked {
                        sqlx::query("SELECT pg_advisory_xact_lock($1)")
                            .bind(OLD_APPEND_LOCK)
                            .execute(&mut *tx)
                            .await
                            .unwrap();
                        for one in pair {
                            events::append(&mut tx, one).await.unwrap();
                            sqlx::query("SELECT pg_notify('onestop_events', '')")
                                .execute(&mut *tx)
                                .await
                                .unwrap();
                        }
                    } else {
                        events::append_all(&mut tx, pair).await.unwrap();
                    }
                    tx.commit().await.unwrap();
                    done += 1;
                }
                done
            }));
        }
        let mut total = 0;
        for writer in writers {
            total += writer.await.unwrap();
        }
        let rate = total as f64 / seconds as f64;
        eprintln!(
            "{}: {rate:.0} transactions/s ({} events/s)",
            if locked {
                "with the append lock"
            } else {
                "without"
            },
            rate * 2.0
        );
        rates.push(rate);
    }
    eprintln!("ratio without/with: {:.2}", rates[1] / rates[0]);
    finish(db, feed).await;
}

/// Commit-to-delivery latency with many watchers on one replica, and what
/// they cost Postgres. Run by hand:
///
/// `cargo test -p onestop-platform --release --test feed commit_to_delivery -- --ignored --nocapture`
///
/// (`ONESTOP_BENCH_WATCHERS` sets how many, 1,000 by default.)
#[tokio::test(flavor = "multi_thread")]
#[ignore]
async fn commit_to_delivery_with_many_watchers() {
    let (db, feed) = start().await;
    feed.running(&db.pool).await;
    let watchers: usize = std::env::var("ONESTOP_BENCH_WATCHERS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1000);
    const EVENTS: usize = 20;
    let (sender, mut arrivals) = tokio::sync::mpsc::unbounded_channel();
    for _ in 0..watchers {
        let mut stream = feed
            .watching(WatchRequest {
                from_latest: true,
                ..Default::default()
            })
            .await;
        let sender = sender.clone();
        tokio::spawn(async move {
            for _ in 0..EVENTS {
                match next_event(&mut stream, Duration::from_secs(30)).await {
                    Some(event) => {
                        let _ = sender.send((event.id, Instant::now()));
                    }
                    None => return,
                }
            }
        });
    }
    drop(sender);
    let subscribed = feed.service.queries();
    let mut committed_at = BTreeMap::new();
    for i in 0..EVENTS {
        let id = commit(&db.pool, vec![event(format!("bench-{i}"))]).await;
        committed_at.insert(id, Instant::now());
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut latencies = Vec::with_capacity(watchers * EVENTS);
    while let Some((id, at)) = arrivals.recv().await {
        latencies.push(at.saturating_duration_since(committed_at[&id]));
    }
    assert_eq!(
        latencies.len(),
        watchers * EVENTS,
        "every watcher got every event"
    );
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q) as usize];
    let spent = feed.service.queries();
    eprintln!(
        "{watchers} watchers, {EVENTS} events: commit-to-delivery p50 {:?}, p99 {:?}, max {:?}; \
         queries while delivering: tailer {}, watchers {}",
        at(0.5),
        at(0.99),
        at(1.0),
        spent.tailer - subscribed.tailer,
        spent.watchers - subscribed.watchers
    );
    finish(db, feed).await;
}
