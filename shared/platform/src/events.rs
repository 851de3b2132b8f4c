//! The event log (transactional outbox) and `onestop.events.v1.EventFeedService`.
//!
//! Ordering: a bigint sequence alone is not enough for a resumable feed,
//! because ids are drawn in one order and transactions commit in another; a
//! reader that saw id 8 before id 7 committed would move its cursor past 7
//! for good. [`append`] therefore draws the id while holding a
//! transaction-scoped advisory lock, which is released only at commit or
//! rollback: ids become visible strictly in order, and `id > cursor` never
//! skips. The cost is that event-writing transactions serialise from their
//! first append to their commit, which is why appends come last.

use std::sync::Arc;
use std::time::Duration;

use onestop_contracts::event_types::EventType;
use onestop_contracts::events::v1::{
    Actor, Event, FeedStatus, WatchRequest, WatchResponse, watch_response,
};
use prost_types::Any;
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{PgConnection, Row};
use tokio::sync::{Notify, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult, Violations};
use crate::rpc::RpcStream;
use crate::telemetry;
use crate::{audit, limits};
use onestop_domain::EventTypeFilter;

/// Advisory lock key ("onestop" in ASCII) serialising appends per database.
const APPEND_LOCK: i64 = 0x006f_6e65_7374_6f70;
const NOTIFY_CHANNEL: &str = "onestop_events";
/// Upper bound on how late a watcher learns of an event if a notification
/// is lost (the listener reconnecting, say).
const POLL_FALLBACK: Duration = Duration::from_secs(1);
const BATCH: i64 = 500;
/// Longest an idle Watch stream stays silent: a consumer that hears nothing
/// for several of these knows its connection is dead.
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_secs(10);

/// An event about to be appended.
#[derive(Debug, Clone)]
pub struct NewEvent {
    pub event_type: &'static str,
    pub aggregate_type: &'static str,
    pub aggregate_id: String,
    pub payload: Any,
}

impl NewEvent {
    /// An event of `event_type` about `aggregate_id` (of the aggregate type
    /// the event type is about), carrying `payload`.
    pub fn new<E: EventType, M: prost::Name>(
        event_type: E,
        aggregate_id: impl ToString,
        payload: &M,
    ) -> Self {
        debug_assert_eq!(
            M::full_name(),
            event_type.payload_name(),
            "{event_type:?} carries another payload"
        );
        Self {
            event_type: event_type.name(),
            aggregate_type: event_type.aggregate_type(),
            aggregate_id: aggregate_id.to_string(),
            payload: Any::from_msg(payload).expect("encoding into a Vec cannot fail"),
        }
    }
}

/// Appends `event` inside the caller's transaction, with the trace context
/// of the current request. Call it after the state change it describes and
/// commit soon after: the append lock is held until commit.
pub async fn append(conn: &mut PgConnection, event: NewEvent) -> Result<i64, sqlx::Error> {
    let (traceparent, tracestate) = telemetry::current_trace_context();
    let actor = audit::current_actor();
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(APPEND_LOCK)
        .execute(&mut *conn)
        .await?;
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO event_log
             (id, event_type, aggregate_type, aggregate_id, payload_type, payload, traceparent, tracestate,
              actor_subject, actor_role, actor_tenant)
         VALUES (nextval('event_log_id_seq'), $1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
         RETURNING id",
    )
    .bind(event.event_type)
    .bind(event.aggregate_type)
    .bind(&event.aggregate_id)
    .bind(&event.payload.type_url)
    .bind(&event.payload.value)
    .bind(traceparent)
    .bind(tracestate)
    .bind(actor.subject)
    .bind(actor.role)
    .bind(actor.tenant)
    .fetch_one(&mut *conn)
    .await?;
    // Delivered at commit, and folded into one per transaction by Postgres.
    sqlx::query("SELECT pg_notify($1, '')")
        .bind(NOTIFY_CHANNEL)
        .execute(&mut *conn)
        .await?;
    Ok(id)
}

/// Appends several events in order.
pub async fn append_all(
    conn: &mut PgConnection,
    events: impl IntoIterator<Item = NewEvent>,
) -> Result<(), sqlx::Error> {
    for event in events {
        append(conn, event).await?;
    }
    Ok(())
}

/// Drops events older than `retention` and idempotency keys older than
/// `idempotency_retention`, recording the feed's new horizon so a watcher
/// behind it is told instead of silently skipping.
pub async fn prune(
    pool: &PgPool,
    retention: Duration,
    idempotency_retention: Duration,
) -> Result<u64, sqlx::Error> {
    let mut tx = pool.begin().await?;
    // Deletes a prefix by id (not by time), so the horizon is exact even if
    // occurred_at is not perfectly monotonic.
    let through: Option<i64> = sqlx::query_scalar(
        "SELECT max(id) FROM event_log WHERE occurred_at < now() - make_interval(secs => $1)",
    )
    .bind(retention.as_secs_f64())
    .fetch_one(&mut *tx)
    .await?;
    let mut removed = 0;
    if let Some(through) = through {
        removed = sqlx::query("DELETE FROM event_log WHERE id <= $1")
            .bind(through)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        sqlx::query("UPDATE event_log_horizon SET pruned_through = GREATEST(pruned_through, $1)")
            .bind(through)
            .execute(&mut *tx)
            .await?;
    }
    sqlx::query("DELETE FROM idempotency_key WHERE created_at < now() - make_interval(secs => $1)")
        .bind(idempotency_retention.as_secs_f64())
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(removed)
}

/// Wakes watchers when any transaction appends events. A hint only: the
/// watchers also poll, so a missed notification delays, never loses.
#[derive(Clone, Default)]
pub struct Wakeups(Arc<Notify>);

impl Wakeups {
    /// Listens on the notification channel until `shutdown`, reconnecting
    /// as needed.
    pub fn spawn_listener(&self, pool: PgPool, supervisor: &crate::supervise::Supervisor) {
        let notify = self.0.clone();
        supervisor.spawn("event-wakeups", move |beat| {
            let (pool, notify, shutdown) = (pool.clone(), notify.clone(), beat.shutdown_token());
            async move {
                loop {
                    let mut listener = match PgListener::connect_with(&pool).await {
                        Ok(listener) => listener,
                        Err(error) => {
                            tracing::debug!(error = %error, "event listener cannot connect");
                            tokio::select! {
                                _ = shutdown.cancelled() => return Ok(()),
                                _ = tokio::time::sleep(POLL_FALLBACK) => continue,
                            }
                        }
                    };
                    if listener.listen(NOTIFY_CHANNEL).await.is_err() {
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(POLL_FALLBACK) => continue,
                        }
                    }
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            message = listener.try_recv() => match message {
                                Ok(Some(_)) => notify.notify_waiters(),
                                // The connection dropped; notifications may be
                                // lost, so wake everyone to re-read.
                                Ok(None) => notify.notify_waiters(),
                                Err(_) => {
                                    notify.notify_waiters();
                                    break;
                                }
                            },
                        }
                    }
                }
            }
        });
    }
}

/// The `EventFeedService` every service serves over its own event log.
#[derive(Clone)]
pub struct EventFeedService {
    pool: PgPool,
    source: &'static str,
    wakeups: Wakeups,
    shutdown: CancellationToken,
}

impl EventFeedService {
    pub fn new(
        pool: PgPool,
        source: &'static str,
        wakeups: Wakeups,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            pool,
            source,
            wakeups,
            shutdown,
        }
    }
}

/// A validated watch request.
#[derive(Debug, Clone)]
struct Filter {
    exact_types: Vec<String>,
    type_prefixes: Vec<String>,
    aggregate_type: Option<String>,
    aggregate_id: Option<String>,
}

/// Most event types one Watch may filter on.
const MAX_TYPES: usize = limits::MAX_EVENT_TYPES;

fn parse_filter(request: &WatchRequest) -> Result<Filter, ApiError> {
    let mut violations = Violations::default();
    if request.after < 0 {
        violations.add("after", "must be 0 or the id of an event received earlier");
    }
    let mut exact_types = Vec::new();
    let mut type_prefixes = Vec::new();
    let types = limits::bounded("types", &request.types, MAX_TYPES, &mut violations);
    for (i, event_type) in types.iter().enumerate() {
        match EventTypeFilter::parse(event_type) {
            Ok(EventTypeFilter::Family(prefix)) => {
                // LIKE treats '_' as a wildcard; event types use it literally.
                type_prefixes.push(format!("{}.%", prefix.replace('_', "\\_")));
            }
            Ok(EventTypeFilter::Exact(exact)) => exact_types.push(exact),
            Err(invalid) => violations.add(format!("types[{i}]"), invalid.to_string()),
        }
    }
    limits::check_text(
        "aggregate_type",
        &request.aggregate_type,
        limits::MAX_LABEL,
        &mut violations,
    );
    limits::check_text(
        "aggregate_id",
        &request.aggregate_id,
        limits::MAX_LABEL,
        &mut violations,
    );
    if !request.aggregate_id.is_empty() && request.aggregate_type.is_empty() {
        violations.add("aggregate_type", "required when aggregate_id is set");
    }
    if !request.epoch.is_empty() && uuid::Uuid::parse_str(&request.epoch).is_err() {
        violations.add("epoch", "an epoch received in a FeedStatus");
    }
    violations.finish()?;
    let non_empty = |s: &str| (!s.is_empty()).then(|| s.to_owned());
    Ok(Filter {
        exact_types,
        type_prefixes,
        aggregate_type: non_empty(&request.aggregate_type),
        aggregate_id: non_empty(&request.aggregate_id),
    })
}

/// The feed's epoch, pruning horizon and head, read in one snapshot.
struct FeedPosition {
    epoch: String,
    pruned_through: i64,
    head: i64,
}

async fn position(pool: &PgPool) -> Result<FeedPosition, sqlx::Error> {
    let (epoch, pruned_through, head): (uuid::Uuid, i64, Option<i64>) = sqlx::query_as(
        "SELECT epoch, pruned_through, (SELECT max(id) FROM event_log) FROM event_log_horizon",
    )
    .fetch_one(pool)
    .await?;
    Ok(FeedPosition {
        epoch: epoch.to_string(),
        pruned_through,
        head: head.unwrap_or(pruned_through),
    })
}

fn cursor_expired(after: i64, horizon: i64) -> ApiError {
    ApiError::OutOfRange {
        reason: "CURSOR_EXPIRED",
        message: format!(
            "cursor {after} is older than the feed's retention (events through {horizon} were pruned); \
             rebuild from current state and resume from a newer cursor"
        ),
    }
}

fn cursor_ahead(after: i64, head: i64) -> ApiError {
    ApiError::OutOfRange {
        reason: "CURSOR_AHEAD",
        message: format!(
            "cursor {after} is past the newest event on this feed ({head}); it belongs to another \
             feed or epoch: pass the epoch it was read in, or start again from 0"
        ),
    }
}

async fn read_batch(
    pool: &PgPool,
    source: &str,
    after: i64,
    filter: &Filter,
) -> Result<Vec<Event>, sqlx::Error> {
    let rows = sqlx::query(
        "SELECT id, event_type, aggregate_type, aggregate_id, occurred_at,
                payload_type, payload, traceparent, tracestate,
                actor_subject, actor_role, actor_tenant
           FROM event_log
          WHERE id > $1
            AND ((cardinality($2::text[]) = 0 AND cardinality($3::text[]) = 0)
                 OR event_type = ANY($2) OR event_type LIKE ANY($3))
            AND ($4::text IS NULL OR aggregate_type = $4)
            AND ($5::text IS NULL OR aggregate_id = $5)
          ORDER BY id
          LIMIT $6",
    )
    .bind(after)
    .bind(&filter.exact_types)
    .bind(&filter.type_prefixes)
    .bind(&filter.aggregate_type)
    .bind(&filter.aggregate_id)
    .bind(BATCH)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|row| {
            let occurred_at: chrono::DateTime<chrono::Utc> = row.get("occurred_at");
            Event {
                id: row.get("id"),
                r#type: row.get("event_type"),
                aggregate_type: row.get("aggregate_type"),
                aggregate_id: row.get("aggregate_id"),
                occurred_at: Some(crate::time::to_timestamp(occurred_at)),
                payload: Some(Any {
                    type_url: row.get("payload_type"),
                    value: row.get("payload"),
                }),
                traceparent: row.get("traceparent"),
                tracestate: row.get("tracestate"),
                source: source.to_owned(),
                actor: Some(Actor {
                    subject: row.get("actor_subject"),
                    role: row.get("actor_role"),
                    tenant: row.get("actor_tenant"),
                }),
            }
        })
        .collect())
}

fn status_message(source: &str, epoch: &str, head: i64) -> WatchResponse {
    WatchResponse {
        item: Some(watch_response::Item::Status(FeedStatus {
            epoch: epoch.to_owned(),
            head,
            source: source.to_owned(),
            heartbeat_interval: prost_types::Duration::try_from(HEARTBEAT_INTERVAL).ok(),
            at: Some(crate::time::to_timestamp(chrono::Utc::now())),
        })),
    }
}

fn event_message(event: Event) -> WatchResponse {
    WatchResponse {
        item: Some(watch_response::Item::Event(event)),
    }
}

impl EventFeedService {
    pub async fn watch(
        &self,
        caller: Caller,
        request: WatchRequest,
    ) -> ApiResult<RpcStream<WatchResponse>> {
        caller.require(&[Role::Dashboard, Role::Service, Role::Admin])?;
        let filter = parse_filter(&request)?;
        let pool = self.pool.clone();
        let at_start = position(&pool).await?;
        if !request.epoch.is_empty() && request.epoch != at_start.epoch {
            return Err(ApiError::failed_precondition(
                "FEED_EPOCH_CHANGED",
                format!(
                    "this feed is now epoch {}; cursors of epoch {} mean nothing here: \
                     rebuild from the start of the feed (after = 0)",
                    at_start.epoch, request.epoch
                ),
            ));
        }
        let mut cursor = if request.from_latest {
            at_start.head
        } else {
            request.after
        };
        if cursor > 0 && cursor < at_start.pruned_through {
            return Err(cursor_expired(cursor, at_start.pruned_through));
        }
        if cursor > at_start.head {
            return Err(cursor_ahead(cursor, at_start.head));
        }

        let (sender, receiver) = mpsc::channel(64);
        let wakeups = self.wakeups.0.clone();
        let shutdown = self.shutdown.clone();
        let source = self.source;
        let epoch = at_start.epoch;
        let mut head = at_start.head;
        tokio::spawn(async move {
            if sender
                .send(Ok(status_message(source, &epoch, head)))
                .await
                .is_err()
            {
                return;
            }
            let mut last_sent = tokio::time::Instant::now();
            loop {
                // Armed before reading, so a commit between the read and the
                // wait still wakes this watcher.
                let notified = wakeups.notified();
                tokio::pin!(notified);
                notified.as_mut().enable();

                let batch = match read_batch(&pool, source, cursor, &filter).await {
                    Ok(batch) => batch,
                    Err(error) => {
                        let _ = sender.send(Err(ApiError::from(error).into())).await;
                        return;
                    }
                };
                let full = batch.len() as i64 == BATCH;
                if let Some(last) = batch.last() {
                    match position(&pool).await {
                        Ok(now) if cursor > 0 && cursor < now.pruned_through => {
                            let _ = sender
                                .send(Err(cursor_expired(cursor, now.pruned_through).into()))
                                .await;
                            return;
                        }
                        Ok(_) => {}
                        Err(error) => {
                            let _ = sender.send(Err(ApiError::from(error).into())).await;
                            return;
                        }
                    }
                    let last_id = last.id;
                    for event in batch {
                        if sender.send(Ok(event_message(event))).await.is_err() {
                            return;
                        }
                    }
                    cursor = last_id;
                    head = head.max(last_id);
                    last_sent = tokio::time::Instant::now();
                }
                if full {
                    continue;
                }
                if last_sent.elapsed() >= HEARTBEAT_INTERVAL {
                    if let Ok(now) = position(&pool).await {
                        head = now.head;
                    }
                    if sender
                        .send(Ok(status_message(source, &epoch, head)))
                        .await
                        .is_err()
                    {
                        return;
                    }
                    last_sent = tokio::time::Instant::now();
                }
                tokio::select! {
                    _ = shutdown.cancelled() => {
                        let _ = sender
                            .send(Err(Status::unavailable(
                                "server shutting down; resume from the last event id received",
                            )))
                            .await;
                        return;
                    }
                    _ = sender.closed() => return,
                    _ = &mut notified => {}
                    _ = tokio::time::sleep(POLL_FALLBACK) => {}
                }
            }
        });
        Ok(Box::pin(ReceiverStream::new(receiver)))
    }
}

onestop_contracts::impl_event_feed_service!(EventFeedService);
