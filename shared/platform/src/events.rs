//! The event log (transactional outbox) and `onestop.events.v1.EventFeedService`.
//!
//! # Appending without a lock
//!
//! An event's id is its feed position: consumers store the last id they
//! read and resume with `id > cursor`. Ids come from a sequence, drawn in
//! one order by transactions that commit in another, so a reader that sees
//! id 8 committed while 7 is still in flight must not move past 7: that
//! would skip it for good. Appends take no lock for this; the reader
//! decides instead how far the feed is final, asking Postgres.
//!
//! - Every event row's id is assigned by a trigger that first makes sure
//!   the transaction holds a transaction id (`pg_current_xact_id()`) and
//!   only then draws `nextval` (migration 0006). So a transaction holding an
//!   id already has a transaction id, which Postgres lists in
//!   `pg_stat_activity.backend_xid` until it commits or rolls back.
//! - The replica's tailer ([`crate::tail`]) calls `event_log_fence`, which
//!   reads `issued` (the sequence's last value; it caches no ids ahead, so
//!   no session can hand out one below it later) and *then* `running` (the
//!   transaction ids now live in this database). Every id up to `issued`
//!   was drawn by a transaction that is either over or in `running`.
//! - Once a later call reports that none of `running` is live any more,
//!   every id up to `issued` is decided: committed, or rolled back and never
//!   to appear. A statement started after that call sees all of them, so
//!   the tailer reads `(released, issued]` in one statement and releases
//!   it to watchers. Nothing can commit below a released point afterwards,
//!   so a cursor never skips; each id is released once and watchers only
//!   move forward, so nothing is delivered twice.
//! - Gaps (rolled-back ids) are never skipped by age or by guess: the feed
//!   waits exactly until Postgres no longer lists a transaction that could
//!   fill them. The cost is that a long transaction in this database that
//!   holds a transaction id delays delivery (not appends) until it ends.
//!   Transactions of other databases on the server are never waited for.
//!   Prepared (two-phase) transactions are not listed there, so appends
//!   must never be prepared; nothing here uses two-phase commit.
//!
//! Ids increase in the order they are drawn, and a transaction that reads
//! another's committed change (waiting on its row lock, say) draws its ids
//! after that commit, so an event never precedes one it follows from.
//! Cursors, epochs and the pruning horizon are what they were before the
//! lock was removed: old cursors resume unchanged.
//!
//! Appending is one statement per call ([`append_all`] writes a whole
//! transaction's events at once) and sends no notification: Postgres
//! commits transactions that notified one at a time, on one lock for the
//! whole server, so notifying from the appending transaction would
//! serialise every write of every database on it. Instead each append
//! counts in this process's tally for its database, and the database's
//! announcer (one task, see [`Wakeups::spawn_listener`]) wakes this
//! replica's tailer and sends one NOTIFY, outside any request's
//! transaction, for each burst of appends; other replicas of the service
//! hear it. The announcement may
//! come before the appending transaction commits: the tailer then finds it
//! live and asks again until it ends, as for any transaction in flight, so
//! an early announcement delays nothing it announces and a lost one (the
//! notification failed) delays delivery to other replicas until their next
//! idle check, never loses an event.
//!
//! Serving Watch: one tailer per replica reads each released batch once
//! into an in-memory window and every Watch stream filters it there; see
//! [`crate::tail`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use onestop_contracts::event_types::EventType;
use onestop_contracts::events::v1::{
    Actor, Event, FeedStatus, PartnerRef, WatchRequest, WatchResponse, watch_response,
};
use prost_types::Any;
use sqlx::postgres::{PgListener, PgPool};
use sqlx::{PgConnection, Row};
use tokio::sync::{Notify, mpsc, watch};
use tokio_stream::StreamExt;
use tokio_stream::wrappers::ReceiverStream;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::auth::{Caller, Role};
use crate::error::{ApiError, ApiResult, Violations};
use crate::rpc::RpcStream;
use crate::tail::{Tail, Take};
use crate::telemetry;
use crate::{audit, limits};
use onestop_domain::EventTypeFilter;

const NOTIFY_CHANNEL: &str = "onestop_events";
/// How long the announcer lets a burst of appends gather (and their
/// transactions commit) before it announces them.
const ANNOUNCE_GATHER: Duration = Duration::from_millis(2);
/// Longest the announcer waits for Postgres to take a notification.
const ANNOUNCE_PATIENCE: Duration = Duration::from_secs(5);

/// Appends made by this process so far, by database: each database's
/// announcer announces its own (a process, a test for one, may serve
/// several).
static APPENDED: LazyLock<Mutex<HashMap<String, watch::Sender<u64>>>> =
    LazyLock::new(Mutex::default);

/// The tally of appends to `database` made by this process.
fn appended(database: &str) -> watch::Sender<u64> {
    let mut tallies = APPENDED.lock().unwrap_or_else(|e| e.into_inner());
    tallies
        .entry(database.to_owned())
        .or_insert_with(|| watch::Sender::new(0))
        .clone()
}
/// Set on this process's notifications, so that its listener, whose
/// replica the announcer woke already, can tell them from other replicas'.
static ANNOUNCER: LazyLock<String> = LazyLock::new(|| uuid::Uuid::new_v4().to_string());
/// Wait before trying the notification listener again after it failed.
const LISTEN_RETRY: Duration = Duration::from_secs(1);
/// Most events one read from Postgres returns.
pub(crate) const BATCH: i64 = 500;
/// Most events a watcher takes from the window before sending them.
const CHUNK: usize = 256;
/// Longest a `from_latest` Watch waits for the tailer to release what was
/// committed before it subscribed.
const SETTLE_MAX: Duration = Duration::from_secs(1);
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
    /// The partners whose Watch streams carry this event (see [`Partner`]).
    pub partners: Vec<Partner>,
}

/// A partner an event belongs to: the agency whose referral leg it is
/// about, the advisor of an assignment, the trade office of a buyer. A
/// partner token's Watch stream carries exactly the events that name its
/// role and tenant, with payloads its service trims to what that partner
/// may read ([`PartnerTrim`]). Services name partners when they append, so
/// the feed filters by a stored column, in memory and in SQL alike.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Partner {
    pub role: Role,
    pub tenant: String,
}

impl Partner {
    pub fn agency(agency_id: impl ToString) -> Self {
        Self {
            role: Role::Agency,
            tenant: agency_id.to_string(),
        }
    }

    pub fn advisor(advisor_id: impl ToString) -> Self {
        Self {
            role: Role::Advisor,
            tenant: advisor_id.to_string(),
        }
    }

    pub fn trade_office(office_id: impl ToString) -> Self {
        Self {
            role: Role::TradeOffice,
            tenant: office_id.to_string(),
        }
    }

    /// The partner a caller acts for; None for internal roles.
    pub fn of(caller: &Caller) -> Option<Self> {
        let tenant = caller.tenant.as_deref().filter(|t| !t.is_empty())?;
        caller.role.needs_tenant().then(|| Self {
            role: caller.role,
            tenant: tenant.to_owned(),
        })
    }

    /// How the partner is stored in `event_log.partners`.
    fn key(&self) -> String {
        format!("{}:{}", self.role.as_str(), self.tenant)
    }
}

/// Trims an event for the partner about to receive it, in place: the
/// service's rule for what of a payload that partner may read (for
/// example, a referral's legs at other agencies). Runs only on events
/// already known to belong to the partner.
pub type PartnerTrim = fn(&mut Event, &Partner);

/// For services whose events carry nothing a partner they name may not
/// read.
pub fn keep_payload(_: &mut Event, _: &Partner) {}

/// What every partner's copy of an event loses whatever the service: the
/// trace context (internal), and the subject of an actor that is not the
/// partner itself (a handle of another organisation's staff); the actor's
/// role stays, so the partner knows whether a person or a system acted.
fn trim_for_partner(event: &mut Event, partner: &Partner, trim: PartnerTrim) {
    event.traceparent.clear();
    event.tracestate.clear();
    if let Some(actor) = event.actor.as_mut() {
        let own = actor.role == partner.role.as_str() && actor.tenant == partner.tenant;
        if !own {
            actor.subject.clear();
            actor.tenant.clear();
        }
    }
    trim(event, partner);
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
            partners: Vec::new(),
        }
    }

    /// Names the partners whose Watch streams carry this event.
    pub fn for_partners(mut self, partners: impl IntoIterator<Item = Partner>) -> Self {
        for partner in partners {
            if !partner.tenant.is_empty() && !self.partners.contains(&partner) {
                self.partners.push(partner);
            }
        }
        self
    }
}

/// Separates partner keys in the one text per event `insert` binds (an
/// array of arrays cannot be unnested row by row); no tenant id holds it.
const PARTNER_SEPARATOR: char = '\u{1f}';

/// Appends `event` inside the caller's transaction, with the trace context
/// of the current request; returns its id. One statement, no lock: events
/// of concurrent transactions are appended side by side.
pub async fn append(conn: &mut PgConnection, event: NewEvent) -> Result<i64, sqlx::Error> {
    let ids = insert(conn, vec![event]).await?;
    Ok(ids[0])
}

/// Appends several events in order, in one statement.
pub async fn append_all(
    conn: &mut PgConnection,
    events: impl IntoIterator<Item = NewEvent>,
) -> Result<(), sqlx::Error> {
    let events: Vec<NewEvent> = events.into_iter().collect();
    if !events.is_empty() {
        insert(conn, events).await?;
    }
    Ok(())
}

/// Writes `events` in one INSERT; the ids (drawn by the table's trigger in
/// the order given) come back in the same order.
async fn insert(conn: &mut PgConnection, events: Vec<NewEvent>) -> Result<Vec<i64>, sqlx::Error> {
    let appending = Appending::new(events);
    let sql = format!(
        "WITH {} SELECT id, current_database() FROM appended ORDER BY id",
        Appending::insert_sql(1, "true", "'{}'::text[]")
    );
    let rows: Vec<(i64, String)> = appending
        .bind_to(sqlx::query_as(&sql))
        .fetch_all(&mut *conn)
        .await?;
    if let Some((_, database)) = rows.first() {
        announce_appended(database);
    }
    Ok(rows.into_iter().map(|(id, _)| id).collect())
}

/// Events written by a statement of the caller's own that also writes the
/// rows they are about, so that a change and its events take one round
/// trip (and, alone, need no transaction of their own): the statement
/// puts [`Appending::insert_sql`] among its `WITH` items and binds the
/// events with [`Appending::bind_to`], then calls [`announce_appended`]
/// once it has run. The trace context and actor are those current when
/// the events are made ready, as for [`append`].
pub struct Appending {
    event_types: Vec<&'static str>,
    aggregate_types: Vec<&'static str>,
    aggregate_ids: Vec<String>,
    payload_types: Vec<String>,
    payloads: Vec<Vec<u8>>,
    partners: Vec<String>,
    traceparent: String,
    tracestate: String,
    actor: audit::Actor,
}

impl Appending {
    /// `events`, in the order their ids will be drawn.
    pub fn new(events: impl IntoIterator<Item = NewEvent>) -> Self {
        let (traceparent, tracestate) = telemetry::current_trace_context();
        let mut appending = Self {
            event_types: Vec::new(),
            aggregate_types: Vec::new(),
            aggregate_ids: Vec::new(),
            payload_types: Vec::new(),
            payloads: Vec::new(),
            partners: Vec::new(),
            traceparent,
            tracestate,
            actor: audit::current_actor(),
        };
        for event in events {
            let keys: Vec<String> = event.partners.iter().map(Partner::key).collect();
            appending
                .partners
                .push(keys.join(&PARTNER_SEPARATOR.to_string()));
            appending.event_types.push(event.event_type);
            appending.aggregate_types.push(event.aggregate_type);
            appending.aggregate_ids.push(event.aggregate_id);
            appending.payload_types.push(event.payload.type_url);
            appending.payloads.push(event.payload.value);
        }
        appending
    }

    /// Two `WITH` items: `appended`, the INSERT (returning each event's
    /// `id`), and the partners it also names. Its eleven parameters are
    /// numbered from `$first` (bind them with [`Appending::bind_to`] after
    /// the statement's own). It writes the events only when `when` (a
    /// boolean SQL expression) holds, and each names, after the partners it
    /// names itself, those of `also_naming` (a `text[]` of keys made by
    /// [`partner_key_sql`]) it does not name yet. `also_naming` is
    /// evaluated once, in an item of its own: inside the INSERT's rows it
    /// would be costed once per event, and Postgres, finding that dearer
    /// for the unknown number of events a cached plan must allow, would
    /// plan the statement again on every call.
    pub fn insert_sql(first: usize, when: &str, also_naming: &str) -> String {
        let p = |n: usize| format!("${}", first + n);
        format!(
            "appending_also_named AS MATERIALIZED (SELECT {also_naming} AS keys),
             appended AS (
                 INSERT INTO event_log
                     (event_type, aggregate_type, aggregate_id, payload_type, payload,
                      traceparent, tracestate, actor_subject, actor_role, actor_tenant, partners)
                 SELECT e.event_type, e.aggregate_type, e.aggregate_id, e.payload_type, e.payload,
                        {tp}, {ts}, {subject}, {role}, {tenant},
                        own.keys || ARRAY(SELECT k FROM unnest(also.keys) AS k
                                           WHERE k <> ALL(own.keys))
                   FROM unnest({types}::text[], {aggregates}::text[], {ids}::text[],
                               {payload_types}::text[], {payloads}::bytea[], {partners}::text[])
                        WITH ORDINALITY
                        AS e(event_type, aggregate_type, aggregate_id, payload_type, payload,
                             partners, n)
                        CROSS JOIN LATERAL
                        (SELECT string_to_array(e.partners, chr(31)) AS keys) AS own
                        CROSS JOIN appending_also_named AS also
                  WHERE {when}
                  ORDER BY e.n
                  RETURNING id)",
            types = p(0),
            aggregates = p(1),
            ids = p(2),
            payload_types = p(3),
            payloads = p(4),
            tp = p(5),
            ts = p(6),
            subject = p(7),
            role = p(8),
            tenant = p(9),
            partners = p(10),
        )
    }

    /// Binds the events as [`Appending::insert_sql`] numbers them.
    pub fn bind_to<'q, O>(
        self,
        query: sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::QueryAs<'q, sqlx::Postgres, O, sqlx::postgres::PgArguments> {
        query
            .bind(self.event_types)
            .bind(self.aggregate_types)
            .bind(self.aggregate_ids)
            .bind(self.payload_types)
            .bind(self.payloads)
            .bind(self.traceparent)
            .bind(self.tracestate)
            .bind(self.actor.subject)
            .bind(self.actor.role)
            .bind(self.actor.tenant)
            .bind(self.partners)
    }
}

/// A partner's key, as events name partners, from the SQL expressions of
/// its role (as [`Role::as_str`] spells it) and tenant.
pub fn partner_key_sql(role: &str, tenant: &str) -> String {
    format!("({role} || ':' || {tenant})")
}

/// Tells this process's announcer for `database` (the database's name)
/// that events were appended there, so its tailer reads them and other
/// replicas hear of them.
pub fn announce_appended(database: &str) {
    appended(database).send_modify(|count| *count = count.wrapping_add(1));
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

/// Tells the replica's tailer that some transaction appended events. A
/// hint only: the tailer reads what Postgres says is final, so a lost
/// notification delays, never loses; every reconnection of the listener
/// wakes it too.
#[derive(Clone, Default)]
pub struct Wakeups(Arc<Heard>);

#[derive(Default)]
pub(crate) struct Heard {
    /// Notifications (and reconnections) heard so far.
    pub(crate) count: AtomicU64,
    /// Holds one wake-up for the tailer if it is busy when one comes.
    pub(crate) tailer: Notify,
}

impl Wakeups {
    pub(crate) fn heard(&self) -> &Heard {
        &self.0
    }

    fn wake(&self) {
        self.0.count.fetch_add(1, Ordering::SeqCst);
        self.0.tailer.notify_one();
    }

    /// Listens on the notification channel until `shutdown`, reconnecting
    /// as needed, and announces this process's appends (see the module
    /// comment).
    pub fn spawn_listener(&self, pool: PgPool, supervisor: &crate::supervise::Supervisor) {
        self.spawn_announcer(pool.clone(), supervisor);
        let wakeups = self.clone();
        supervisor.spawn("event-wakeups", move |beat| {
            let (pool, wakeups, shutdown) = (pool.clone(), wakeups.clone(), beat.shutdown_token());
            async move {
                loop {
                    let mut listener = match PgListener::connect_with(&pool).await {
                        Ok(listener) => listener,
                        Err(error) => {
                            tracing::debug!(error = %error, "event listener cannot connect");
                            tokio::select! {
                                _ = shutdown.cancelled() => return Ok(()),
                                _ = tokio::time::sleep(LISTEN_RETRY) => continue,
                            }
                        }
                    };
                    if listener.listen(NOTIFY_CHANNEL).await.is_err() {
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            _ = tokio::time::sleep(LISTEN_RETRY) => continue,
                        }
                    }
                    // Anything appended while nobody listened is read now.
                    wakeups.wake();
                    loop {
                        tokio::select! {
                            _ = shutdown.cancelled() => return Ok(()),
                            message = listener.try_recv() => match message {
                                Ok(Some(heard)) if heard.payload() == ANNOUNCER.as_str() => {}
                                Ok(Some(_)) => wakeups.wake(),
                                // The connection dropped; notifications may be
                                // lost, so read again.
                                Ok(None) => wakeups.wake(),
                                Err(_) => {
                                    wakeups.wake();
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

impl Wakeups {
    /// Wakes the tailer for each burst of this process's appends and
    /// tells the other replicas with one notification.
    fn spawn_announcer(&self, pool: PgPool, supervisor: &crate::supervise::Supervisor) {
        let wakeups = self.clone();
        supervisor.spawn("event-announcer", move |beat| {
            let (pool, wakeups, shutdown) = (pool.clone(), wakeups.clone(), beat.shutdown_token());
            async move {
                let database: String = tokio::time::timeout(
                    ANNOUNCE_PATIENCE,
                    sqlx::query_scalar("SELECT current_database()").fetch_one(&pool),
                )
                .await??;
                let mut appended = appended(&database).subscribe();
                // Appends made while the announcer was down are announced
                // now (the listener's reconnection wakes this replica too).
                appended.mark_changed();
                loop {
                    tokio::select! {
                        _ = shutdown.cancelled() => return Ok(()),
                        changed = appended.changed() => changed?,
                    }
                    tokio::time::sleep(ANNOUNCE_GATHER).await;
                    appended.borrow_and_update();
                    wakeups.wake();
                    let announced = tokio::time::timeout(
                        ANNOUNCE_PATIENCE,
                        sqlx::query("SELECT pg_notify($1, $2)")
                            .bind(NOTIFY_CHANNEL)
                            .bind(ANNOUNCER.as_str())
                            .execute(&pool),
                    )
                    .await;
                    if !matches!(announced, Ok(Ok(_))) {
                        // Other replicas see these appends at their next
                        // idle check instead.
                        tracing::debug!("appends not announced to other replicas");
                    }
                }
            }
        });
    }
}

/// Queries the feed has sent to Postgres, by who sent them: the replica's
/// tailer, or Watch streams (subscribing with a cursor, or catching up from
/// behind the in-memory window). Idle watchers add to neither.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FeedQueries {
    pub tailer: u64,
    pub watchers: u64,
}

/// The `EventFeedService` every service serves over its own event log.
#[derive(Clone)]
pub struct EventFeedService {
    pool: PgPool,
    source: &'static str,
    tail: Arc<Tail>,
    shutdown: CancellationToken,
    partner_trim: PartnerTrim,
}

impl EventFeedService {
    pub fn new(
        pool: PgPool,
        source: &'static str,
        wakeups: Wakeups,
        shutdown: CancellationToken,
    ) -> Self {
        Self {
            tail: Arc::new(Tail::new(source, wakeups)),
            pool,
            source,
            shutdown,
            partner_trim: keep_payload,
        }
    }

    /// The service's rule for what of its events' payloads a partner may
    /// read; without one, partners get payloads whole.
    pub fn with_partner_trim(mut self, trim: PartnerTrim) -> Self {
        self.partner_trim = trim;
        self
    }

    /// Starts the replica's tailer, the one reader of new events that every
    /// Watch stream of this service is fed from.
    pub fn spawn_tailer(&self, supervisor: &crate::supervise::Supervisor) {
        let (tail, pool) = (self.tail.clone(), self.pool.clone());
        supervisor.spawn("event-tailer", move |beat| {
            crate::tail::run(tail.clone(), pool.clone(), beat)
        });
    }

    /// What the feed has asked of Postgres since the service started.
    pub fn queries(&self) -> FeedQueries {
        self.tail.queries()
    }
}

/// A validated watch request.
#[derive(Debug, Clone)]
pub(crate) struct Filter {
    exact_types: Vec<String>,
    /// Families as given less the `*` ("referral."), matched as prefixes.
    families: Vec<String>,
    aggregate_type: Option<String>,
    aggregate_id: Option<String>,
    /// A partner's stream: only events naming this key.
    partner: Option<String>,
}

/// An event as the log holds it: the feed's message and the keys of the
/// partners it belongs to.
#[derive(Debug, Clone, Default)]
pub(crate) struct Logged {
    pub(crate) event: Event,
    pub(crate) partners: Vec<String>,
}

impl Filter {
    /// Whether `logged` passes, as the SQL of [`read_batch`] would say.
    pub(crate) fn matches(&self, logged: &Logged) -> bool {
        let event = &logged.event;
        let owned = self
            .partner
            .as_ref()
            .is_none_or(|key| logged.partners.contains(key));
        let typed = (self.exact_types.is_empty() && self.families.is_empty())
            || self.exact_types.contains(&event.r#type)
            || self.families.iter().any(|f| event.r#type.starts_with(f));
        owned
            && typed
            && self
                .aggregate_type
                .as_ref()
                .is_none_or(|t| *t == event.aggregate_type)
            && self
                .aggregate_id
                .as_ref()
                .is_none_or(|id| *id == event.aggregate_id)
    }

    /// The families as LIKE patterns ('_' is literal in event types).
    fn like_patterns(&self) -> Vec<String> {
        self.families
            .iter()
            .map(|family| format!("{}%", family.replace('_', "\\_")))
            .collect()
    }
}

/// Most event types one Watch may filter on.
const MAX_TYPES: usize = limits::MAX_EVENT_TYPES;

fn parse_filter(request: &WatchRequest) -> Result<Filter, ApiError> {
    let mut violations = Violations::default();
    if request.after < 0 {
        violations.add("after", "must be 0 or the id of an event received earlier");
    }
    let mut exact_types = Vec::new();
    let mut families = Vec::new();
    let types = limits::bounded("types", &request.types, MAX_TYPES, &mut violations);
    for (i, event_type) in types.iter().enumerate() {
        match EventTypeFilter::parse(event_type) {
            Ok(EventTypeFilter::Family(prefix)) => families.push(format!("{prefix}.")),
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
        families,
        aggregate_type: non_empty(&request.aggregate_type),
        aggregate_id: non_empty(&request.aggregate_id),
        partner: None,
    })
}

/// The partner a service watches for: a partner role and its tenant.
fn parse_partner(partner: &PartnerRef) -> Result<Partner, ApiError> {
    let mut violations = Violations::default();
    let role = match partner.role.parse::<Role>() {
        Ok(role) if role.needs_tenant() => Some(role),
        _ => {
            violations.add(
                "on_behalf_of.role",
                "\"agency\", \"advisor\" or \"trade_office\"",
            );
            None
        }
    };
    if limits::check_text(
        "on_behalf_of.tenant",
        &partner.tenant,
        limits::MAX_LABEL,
        &mut violations,
    ) && partner.tenant.trim().is_empty()
    {
        violations.add("on_behalf_of.tenant", "required");
    }
    violations.finish()?;
    Ok(Partner {
        role: role.unwrap_or(Role::Agency),
        tenant: partner.tenant.clone(),
    })
}

/// The feed's epoch, pruning horizon and head, read in one snapshot.
pub(crate) struct FeedPosition {
    pub(crate) epoch: String,
    pub(crate) pruned_through: i64,
    pub(crate) head: i64,
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

/// The columns of an event row, as [`event_from_row`] reads them.
pub(crate) const EVENT_COLUMNS: &str = "id, event_type, aggregate_type, aggregate_id, occurred_at,
    payload_type, payload, traceparent, tracestate, actor_subject, actor_role, actor_tenant,
    partners";

pub(crate) fn logged_from_row(source: &str, row: &sqlx::postgres::PgRow) -> Logged {
    Logged {
        event: event_from_row(source, row),
        partners: row.get("partners"),
    }
}

fn event_from_row(source: &str, row: &sqlx::postgres::PgRow) -> Event {
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
}

/// A watcher behind the in-memory window reads for itself: the events of
/// `filter` in `(after, upto]` (`upto` released, so final), and the pruning
/// horizon in the same snapshot, so events pruned meanwhile are reported,
/// never skipped.
async fn read_batch(
    pool: &PgPool,
    source: &str,
    after: i64,
    upto: i64,
    filter: &Filter,
) -> Result<(i64, Vec<Logged>), sqlx::Error> {
    let rows = sqlx::query(&format!(
        "SELECT h.pruned_through, e.*
           FROM event_log_horizon h
           LEFT JOIN LATERAL (
                SELECT {EVENT_COLUMNS}
                  FROM event_log
                 WHERE id > $1 AND id <= $7
                   AND ((cardinality($2::text[]) = 0 AND cardinality($3::text[]) = 0)
                        OR event_type = ANY($2) OR event_type LIKE ANY($3))
                   AND ($4::text IS NULL OR aggregate_type = $4)
                   AND ($5::text IS NULL OR aggregate_id = $5)
                   AND ($8::text IS NULL OR partners @> ARRAY[$8])
                 ORDER BY id
                 LIMIT $6) e ON true
          ORDER BY e.id"
    ))
    .bind(after)
    .bind(&filter.exact_types)
    .bind(filter.like_patterns())
    .bind(&filter.aggregate_type)
    .bind(&filter.aggregate_id)
    .bind(BATCH)
    .bind(upto)
    .bind(&filter.partner)
    .fetch_all(pool)
    .await?;
    let pruned_through = rows.first().map_or(0, |row| row.get("pruned_through"));
    let events = rows
        .iter()
        .filter(|row| row.get::<Option<i64>, _>("id").is_some())
        .map(|row| logged_from_row(source, row))
        .collect();
    Ok((pruned_through, events))
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
    /// Where a new watch starts. A cursor, or the start of the feed, is
    /// checked against Postgres (one query: retention may have moved a
    /// moment ago); a watch from the latest event is answered from the
    /// tailer's memory once it is running.
    async fn starting_point(&self, request: &WatchRequest) -> ApiResult<(FeedPosition, i64)> {
        let remembered = if request.from_latest {
            self.tail.position()
        } else {
            None
        };
        let at_start = match remembered {
            Some(position) => position,
            None => {
                self.tail.count_watcher_query();
                position(&self.pool).await?
            }
        };
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
        if request.from_latest {
            // What committed before this call must not come as new: give
            // the tailer a moment to release what it has heard of.
            let cursor = self.tail.latest(SETTLE_MAX).await.unwrap_or(at_start.head);
            return Ok((at_start, cursor));
        }
        if request.after == 0 {
            // The start of what is retained.
            let cursor = at_start.pruned_through;
            return Ok((at_start, cursor));
        }
        let cursor = request.after;
        if cursor < at_start.pruned_through {
            return Err(cursor_expired(cursor, at_start.pruned_through));
        }
        if cursor > at_start.head {
            return Err(cursor_ahead(cursor, at_start.head));
        }
        Ok((at_start, cursor))
    }

    pub async fn watch(
        &self,
        caller: Caller,
        request: WatchRequest,
    ) -> ApiResult<RpcStream<WatchResponse>> {
        // Internal roles watch the whole feed; a partner watches the events
        // its service named it on, trimmed for it. A service or an admin
        // may watch as a partner would (intake's webhook deliveries), so
        // the one rule for what a partner gets lives here.
        let mut partner = Partner::of(&caller);
        if partner.is_none() {
            caller.require(&[Role::Dashboard, Role::Service, Role::Admin])?;
        }
        let mut filter = parse_filter(&request)?;
        if let Some(on_behalf_of) = &request.on_behalf_of {
            caller.require(&[Role::Service, Role::Admin])?;
            partner = Some(parse_partner(on_behalf_of)?);
        }
        filter.partner = partner.as_ref().map(Partner::key);
        let (at_start, cursor) = self.starting_point(&request).await?;
        let (sender, receiver) = mpsc::channel(OUTGOING);
        let watcher = Watcher {
            pool: self.pool.clone(),
            source: self.source,
            tail: self.tail.clone(),
            filter,
            cursor,
            epoch: at_start.epoch,
            head: at_start.head,
            sender,
        };
        tokio::spawn(watcher.run(self.shutdown.clone()));
        let partner = partner.map(|partner| (partner, self.partner_trim));
        Ok(Box::pin(ReceiverStream::new(receiver).map(
            move |outgoing| match outgoing {
                Outgoing::Event(logged) => {
                    let mut event = logged.event.clone();
                    if let Some((partner, trim)) = &partner {
                        trim_for_partner(&mut event, partner, *trim);
                    }
                    Ok(event_message(event))
                }
                Outgoing::Status(status) => Ok(*status),
                Outgoing::Failed(status) => Err(status),
            },
        )))
    }
}

/// A service's own feed read in-process, as the service would read it over
/// its listener with its own token: a Watch on behalf of a partner gets that
/// partner's filter and trim, and takes a place among the replica's Watch
/// streams, counted for that partner.
#[derive(Clone)]
pub struct OwnFeed {
    feed: EventFeedService,
    watchers: crate::watchers::WatchLimitLayer,
    caller: Caller,
}

impl OwnFeed {
    pub(crate) fn new(
        feed: EventFeedService,
        watchers: crate::watchers::WatchLimitLayer,
        service: &str,
    ) -> Self {
        Self {
            feed,
            watchers,
            caller: Caller {
                subject: service.to_owned(),
                role: Role::Service,
                tenant: None,
            },
        }
    }

    /// Watches as the Watch RPC would; the stream holds its place until
    /// dropped.
    pub async fn watch(&self, request: WatchRequest) -> Result<RpcStream<WatchResponse>, Status> {
        let watch_for = request
            .on_behalf_of
            .as_ref()
            .map(|partner| format!("{}/{}", partner.role, partner.tenant));
        let place = self.watchers.admit(&self.caller, watch_for.as_deref())?;
        let stream = self.feed.watch(self.caller.clone(), request).await?;
        Ok(Box::pin(stream.map(move |item| {
            let _held = &place;
            item
        })))
    }
}

/// Most messages a Watch stream holds between its task and its gRPC
/// stream.
const OUTGOING: usize = 64;

/// What a Watch stream's task hands its gRPC stream. Small on purpose:
/// each stream's channel holds a block of these from the start, and ten
/// thousand streams hold ten thousand blocks. The event itself is shared
/// with the window and every other stream until it is sent, when it is
/// copied (and trimmed for a partner).
enum Outgoing {
    Event(Arc<Logged>),
    Status(Box<WatchResponse>),
    Failed(Status),
}

/// How long a stream stays silent before its heartbeat: a random point in
/// the second half of [`HEARTBEAT_INTERVAL`], so never longer than it.
fn heartbeat_after_silence() -> Duration {
    let half = HEARTBEAT_INTERVAL / 2;
    let spread = (uuid::Uuid::new_v4().as_u128() % half.as_millis()) as u64;
    HEARTBEAT_INTERVAL - Duration::from_millis(spread)
}

/// One Watch stream: takes from the tailer's window, or reads Postgres for
/// itself while behind it, and otherwise waits without a query.
struct Watcher {
    pool: PgPool,
    source: &'static str,
    tail: Arc<Tail>,
    filter: Filter,
    /// Every event up to here was sent or filtered out.
    cursor: i64,
    epoch: String,
    head: i64,
    sender: mpsc::Sender<Outgoing>,
}

/// Why a watcher stopped sending.
enum Stop {
    /// The consumer went away.
    Gone,
    /// The stream ends with this error.
    Failed(Status),
}

impl Watcher {
    async fn run(mut self, shutdown: CancellationToken) {
        let mut released = self.tail.subscribe();
        if self.status().await.is_err() {
            return;
        }
        // Each stream keeps its own phase within the interval: streams that
        // subscribed (or received an event) together would otherwise all
        // send their heartbeat in the same instant, thousands at once.
        let silence = heartbeat_after_silence();
        let mut last_sent = tokio::time::Instant::now();
        loop {
            // Marked seen before taking, so a release during the take
            // wakes the wait below.
            released.borrow_and_update();
            match self.send_available().await {
                Ok(true) => last_sent = tokio::time::Instant::now(),
                Ok(false) => {}
                Err(Stop::Gone) => return,
                Err(Stop::Failed(status)) => {
                    let _ = self.sender.send(Outgoing::Failed(status)).await;
                    return;
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = self
                        .sender
                        .send(Outgoing::Failed(Status::unavailable(
                            "server shutting down; resume from the last event id received",
                        )))
                        .await;
                    return;
                }
                _ = self.sender.closed() => return,
                changed = released.changed() => if changed.is_err() { return },
                _ = tokio::time::sleep_until(last_sent + silence) => {
                    self.head = self.head.max(self.tail.head());
                    if self.status().await.is_err() {
                        return;
                    }
                    last_sent = tokio::time::Instant::now();
                }
            }
        }
    }

    async fn status(&self) -> Result<(), Stop> {
        let status = status_message(self.source, &self.epoch, self.head);
        self.sender
            .send(Outgoing::Status(Box::new(status)))
            .await
            .map_err(|_| Stop::Gone)
    }

    /// Sends everything released past the cursor; says whether it sent any.
    async fn send_available(&mut self) -> Result<bool, Stop> {
        let mut sent = false;
        loop {
            match self.tail.take(self.cursor, &self.filter, CHUNK) {
                Take::Wait => return Ok(sent),
                Take::Events { events, through } => {
                    for logged in events {
                        self.head = self.head.max(logged.event.id);
                        self.send(logged).await?;
                        sent = true;
                    }
                    self.cursor = through;
                }
                Take::Behind { released } => {
                    self.tail.count_watcher_query();
                    // Boxed: most streams never read for themselves, and
                    // every stream's task would otherwise hold room for it.
                    let (pruned_through, batch) = Box::pin(read_batch(
                        &self.pool,
                        self.source,
                        self.cursor,
                        released,
                        &self.filter,
                    ))
                    .await
                    .map_err(|error| Stop::Failed(ApiError::from(error).into()))?;
                    if self.cursor > 0 && self.cursor < pruned_through {
                        return Err(Stop::Failed(
                            cursor_expired(self.cursor, pruned_through).into(),
                        ));
                    }
                    let full = batch.len() as i64 == BATCH;
                    let last = batch.last().map(|logged| logged.event.id);
                    for logged in batch {
                        self.head = self.head.max(logged.event.id);
                        self.send(Arc::new(logged)).await?;
                        sent = true;
                    }
                    self.cursor = match (full, last) {
                        (true, Some(last)) => last,
                        _ => released,
                    };
                }
            }
        }
    }

    async fn send(&self, logged: Arc<Logged>) -> Result<(), Stop> {
        self.sender
            .send(Outgoing::Event(logged))
            .await
            .map_err(|_| Stop::Gone)
    }
}

onestop_contracts::impl_event_feed_service!(EventFeedService);

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, aggregate_type: &str, aggregate_id: &str) -> Logged {
        Logged {
            event: Event {
                r#type: event_type.into(),
                aggregate_type: aggregate_type.into(),
                aggregate_id: aggregate_id.into(),
                ..Default::default()
            },
            partners: Vec::new(),
        }
    }

    /// What every Watch stream holds for as long as it is open stays
    /// small: ten thousand streams hold ten thousand of each. A stream's
    /// channel allocates a block of 32 messages when it is made, and its
    /// task holds the largest state any of its waits needs.
    #[tokio::test]
    async fn a_watch_stream_holds_little_while_it_waits() {
        assert!(std::mem::size_of::<Outgoing>() <= 16);
        let pool = PgPool::connect_lazy("postgres://127.0.0.1:1/none").unwrap();
        let (sender, _receiver) = mpsc::channel(OUTGOING);
        let watcher = Watcher {
            pool,
            source: "test",
            tail: Arc::new(Tail::new("test", Wakeups::default())),
            filter: parse_filter(&WatchRequest::default()).unwrap(),
            cursor: 0,
            epoch: String::new(),
            head: 0,
            sender,
        };
        let task = watcher.run(CancellationToken::new());
        assert!(
            std::mem::size_of_val(&task) <= 1536,
            "{} bytes",
            std::mem::size_of_val(&task)
        );
    }

    /// Streams' heartbeats fall anywhere in the second half of the
    /// interval, never after it.
    #[test]
    fn heartbeats_are_spread_over_half_the_interval() {
        let silences: Vec<Duration> = (0..200).map(|_| heartbeat_after_silence()).collect();
        assert!(
            silences
                .iter()
                .all(|silence| *silence > HEARTBEAT_INTERVAL / 2 && *silence <= HEARTBEAT_INTERVAL)
        );
        let earliest = silences.iter().min().unwrap();
        let latest = silences.iter().max().unwrap();
        assert!(
            *latest - *earliest > HEARTBEAT_INTERVAL / 4,
            "{earliest:?} to {latest:?}"
        );
    }

    /// The window is filtered in memory as Postgres filters a catch-up read.
    #[test]
    fn filters_in_memory_select_types_families_and_aggregates() {
        let filter = |types: &[&str], aggregate_type: &str, aggregate_id: &str| {
            parse_filter(&WatchRequest {
                types: types.iter().map(|t| t.to_string()).collect(),
                aggregate_type: aggregate_type.into(),
                aggregate_id: aggregate_id.into(),
                ..Default::default()
            })
            .unwrap()
        };
        let opened = event("need.opened", "case", "c-1");
        let created = event("referral.created", "referral", "r-1");
        let breached = event("referral.sla_breached", "referral", "r-2");

        let everything = filter(&[], "", "");
        assert!(
            [&opened, &created, &breached]
                .iter()
                .all(|e| everything.matches(e))
        );

        let family = filter(&["referral.*"], "", "");
        assert!(!family.matches(&opened));
        assert!(family.matches(&created) && family.matches(&breached));
        // A family is a whole first word, not any prefix.
        assert!(!filter(&["need_x.*"], "", "").matches(&opened));
        assert!(!filter(&["refer.*"], "", "").matches(&created));

        let exact = filter(&["need.opened", "referral.sla_breached"], "", "");
        assert!(exact.matches(&opened) && exact.matches(&breached));
        assert!(!exact.matches(&created));

        let one = filter(&["referral.*"], "referral", "r-2");
        assert!(one.matches(&breached) && !one.matches(&created));
        assert!(!filter(&[], "case", "").matches(&created));
        assert_eq!(family.like_patterns(), ["referral.%"]);
        assert_eq!(
            filter(&["sla_breach.*"], "", "").like_patterns(),
            ["sla\\_breach.%"]
        );
    }
}
