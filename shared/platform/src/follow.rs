//! Following another service's event feed into this service's database:
//! events are applied in one transaction with the cursor that records
//! them, under a lock on that cursor row, so a restart resumes exactly after
//! the last applied event and replicas following the same feed apply each
//! event once.
//!
//! The events that have already arrived when the follower reads the stream
//! (up to [`APPLY_BATCH`]) are applied together in that one transaction.
//! A transaction's begin, cursor lock, cursor save and commit cost as much
//! as a small event's own statements, so under load, when a feed delivers
//! faster than one event per round trip, a batch costs a fraction of
//! applying its events one by one; an event that comes alone is applied
//! alone, at once. A batch that fails, or waits more than a moment for a
//! row lock, is applied again one event at a time, so the events before a
//! failing one still commit, the feed stops at the failing one as it would
//! without batches, and two followers' batches never deadlock on rows
//! they both touch.
//!
//! The cursor is stored with the epoch of the feed it was read in. A feed
//! whose database was recreated or restored numbers its events anew, so the
//! cursor means nothing there: the feed says so (another epoch, or a cursor
//! past its head) and the follower reads it again from the start, which
//! [`FeedHandler`]s must therefore tolerate. A cursor older than the feed's
//! retention is reported loudly and following goes on from the oldest event
//! still kept.
//!
//! A lost connection, a failed transaction or a panic while applying an
//! event ends that attempt (nothing of the event is committed) and
//! following starts again after a backoff; the supervisor hears of each
//! failure, so a feed that keeps failing shows in health.

use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::future::BoxFuture;
use futures_util::{FutureExt, StreamExt};
use onestop_contracts::events::v1::event_feed_service_client::EventFeedServiceClient;
use onestop_contracts::events::v1::{Event, WatchRequest, watch_response};
use sqlx::{PgConnection, PgPool};
use tonic::transport::Channel;
use tonic_types::StatusExt;
use tracing::Instrument;

use crate::audit;
use crate::client::ServiceCredentials;
use crate::supervise::{Beat, Supervisor};
use crate::telemetry;

const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(10);
/// Most events applied in one transaction: the batch holds its rows'
/// locks until it commits, so it stays short.
pub const APPLY_BATCH: usize = 32;
/// Longest a batch waits for a row lock before it gives way (see
/// `apply_together`).
const BATCH_LOCK_TIMEOUT: &str = "SET LOCAL lock_timeout = '50ms'";

/// What a follower does with each event of the feed.
pub trait FeedHandler: Send + Sync + 'static {
    /// Applies `event` inside the transaction that also moves the cursor
    /// past it. An error rolls both back and the event is tried again.
    fn apply<'a>(
        &'a self,
        conn: &'a mut PgConnection,
        event: &'a Event,
    ) -> BoxFuture<'a, anyhow::Result<()>>;
}

/// A stored position on a followed feed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeedCursor {
    pub last_event_id: i64,
    /// The feed's epoch the id was read in; empty before one was heard.
    pub epoch: String,
}

/// Follows one feed with one handler.
pub struct FeedFollower<H> {
    pool: PgPool,
    /// The feed's name: its `FeedStatus.source` and the cursor's key.
    source: &'static str,
    /// The following service, named on the events its handler appends.
    service: &'static str,
    channel: Channel,
    credentials: ServiceCredentials,
    types: Vec<String>,
    handler: H,
}

/// How one Watch on the feed ended.
enum Followed {
    Applied(usize),
    /// The stored cursor did not fit the feed and was set back to its start.
    Restarted,
}

/// What applying a batch of events did.
enum Applied {
    /// This many were applied (those another replica applied first are
    /// not counted).
    Now(usize),
    /// The stored cursor belongs to another epoch than this stream's
    /// (another replica moved on): this stream must stop.
    OtherEpoch,
}

impl<H: FeedHandler> FeedFollower<H> {
    /// `service` follows the feed `source` at `channel`, for events of
    /// `types` (empty: all).
    pub fn new(
        pool: PgPool,
        service: &'static str,
        source: &'static str,
        channel: Channel,
        credentials: ServiceCredentials,
        types: Vec<String>,
        handler: H,
    ) -> Self {
        Self {
            pool,
            source,
            service,
            channel,
            credentials,
            types,
            handler,
        }
    }

    /// Follows the feed as the supervised loop `name` until shutdown.
    pub fn spawn(self, name: &'static str, supervisor: &Supervisor) {
        supervisor.keep_running(name, self, |follower, beat| async move {
            follower.run(beat).await
        });
    }

    /// Follows the feed until shutdown, starting again with backoff
    /// whenever the feed, the database or the handler fails; each failure
    /// and each good stretch is told to the supervisor through `beat`.
    pub async fn run(&self, beat: Beat) {
        let mut wait = RECONNECT_FIRST;
        loop {
            let attempt = audit::as_service(self.service, self.follow_once());
            let outcome = tokio::select! {
                _ = beat.stopping() => return,
                outcome = AssertUnwindSafe(attempt).catch_unwind() => outcome,
            };
            match outcome {
                Ok(Ok(Followed::Applied(applied))) if applied > 0 => {
                    wait = RECONNECT_FIRST;
                    beat.ok().await;
                }
                Ok(Ok(Followed::Restarted)) => {
                    wait = RECONNECT_FIRST;
                    beat.ok().await;
                }
                Ok(Ok(Followed::Applied(_))) => beat.ok().await,
                Ok(Err(error)) => {
                    beat.failed().await;
                    tracing::debug!(source = self.source, error = %error, "feed following interrupted")
                }
                Err(_) => {
                    beat.failed().await;
                    tracing::error!(
                        source = self.source,
                        "applying an event panicked; following again from the stored cursor"
                    )
                }
            }
            tokio::select! {
                _ = beat.stopping() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(RECONNECT_MAX);
        }
    }

    /// Watches from the stored cursor, in its epoch, until the stream ends
    /// or fails.
    async fn follow_once(&self) -> anyhow::Result<Followed> {
        let stored = cursor(&mut *self.pool.acquire().await?, self.source).await?;
        let request = WatchRequest {
            after: stored.last_event_id,
            types: self.types.clone(),
            epoch: stored.epoch.clone(),
            ..Default::default()
        };
        let mut client = EventFeedServiceClient::with_interceptor(
            self.channel.clone(),
            self.credentials.clone(),
        );
        let stream = match client.watch(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return self.refused(&stored, &status).await,
        };
        let mut epoch = String::new();
        let mut applied = 0;
        let mut chunks = stream.ready_chunks(APPLY_BATCH);
        while let Some(chunk) = chunks.next().await {
            let mut events = Vec::new();
            for message in chunk {
                let item = match message {
                    Ok(message) => message.item,
                    Err(status) => {
                        // What arrived before the failure is applied first.
                        self.apply(&events, &epoch).await?;
                        return Err(status.into());
                    }
                };
                match item {
                    Some(watch_response::Item::Event(event)) => events.push(event),
                    Some(watch_response::Item::Status(status)) => {
                        match self.apply(&std::mem::take(&mut events), &epoch).await? {
                            Applied::Now(count) => applied += count,
                            Applied::OtherEpoch => return Ok(Followed::Applied(applied)),
                        }
                        if !stored.epoch.is_empty() && status.epoch != stored.epoch {
                            tracing::error!(
                                source = self.source,
                                stored_epoch = %stored.epoch,
                                feed_epoch = %status.epoch,
                                "followed feed reports another epoch than the stored cursor's: \
                                 its database was recreated or restored; reading it again from the start"
                            );
                            return self.restart(&stored).await;
                        }
                        epoch = status.epoch;
                    }
                    None => {}
                }
            }
            match self.apply(&events, &epoch).await? {
                Applied::Now(count) => applied += count,
                Applied::OtherEpoch => break,
            }
        }
        Ok(Followed::Applied(applied))
    }

    /// The feed refused the stored cursor. A cursor of another epoch, or
    /// past the feed's head, means the feed's database was recreated or
    /// restored: read it again from the start. A cursor older than the
    /// feed's retention means events were missed for good: say so loudly
    /// and go on from the oldest event still kept rather than stop.
    async fn refused(
        &self,
        stored: &FeedCursor,
        status: &tonic::Status,
    ) -> anyhow::Result<Followed> {
        let reason = status
            .get_details_error_info()
            .map(|info| info.reason)
            .unwrap_or_default();
        match (status.code(), reason.as_str()) {
            (tonic::Code::FailedPrecondition, "FEED_EPOCH_CHANGED")
            | (tonic::Code::OutOfRange, "CURSOR_AHEAD") => tracing::error!(
                source = self.source,
                after = stored.last_event_id,
                stored_epoch = %stored.epoch,
                reason,
                "followed feed no longer knows the stored cursor: its database was recreated or \
                 restored; reading it again from the start"
            ),
            (tonic::Code::OutOfRange, _) => tracing::error!(
                source = self.source,
                after = stored.last_event_id,
                reason,
                "followed feed cursor expired; events were missed"
            ),
            _ => return Err(status.clone().into()),
        }
        self.restart(stored).await
    }

    async fn restart(&self, stored: &FeedCursor) -> anyhow::Result<Followed> {
        let mut conn = self.pool.acquire().await?;
        restart_cursor(&mut conn, self.source, stored).await?;
        Ok(Followed::Restarted)
    }

    /// Applies the events of the feed's `epoch` (in id order) that no
    /// other replica applied yet, in one transaction; if that fails, one
    /// by one, so that every event before one that fails is applied and
    /// the feed stops only at that one.
    async fn apply(&self, events: &[Event], epoch: &str) -> anyhow::Result<Applied> {
        match self.apply_together(events, epoch).await {
            Err(error) if events.len() > 1 => {
                tracing::debug!(source = self.source, error = %error, events = events.len(), "a batch of events failed; applying them one by one");
                let mut applied = 0;
                for event in events {
                    match self
                        .apply_together(std::slice::from_ref(event), epoch)
                        .await?
                    {
                        Applied::Now(count) => applied += count,
                        Applied::OtherEpoch => return Ok(Applied::OtherEpoch),
                    }
                }
                Ok(Applied::Now(applied))
            }
            outcome => outcome,
        }
    }

    async fn apply_together(&self, events: &[Event], epoch: &str) -> anyhow::Result<Applied> {
        if events.is_empty() {
            return Ok(Applied::Now(0));
        }
        let source = self.source;
        let mut tx = self.pool.begin().await?;
        if events.len() > 1 {
            // Two followers' batches may lock the same rows (a case both
            // owners report on) in opposite orders; rather than wait for
            // Postgres to find the deadlock (a second), a batch that waits
            // on a lock gives way, and its events go one at a time.
            sqlx::query(BATCH_LOCK_TIMEOUT).execute(&mut *tx).await?;
        }
        let cursor = lock_cursor(&mut tx, source).await?;
        if !cursor.epoch.is_empty() && cursor.epoch != epoch {
            return Ok(Applied::OtherEpoch);
        }
        let fresh: Vec<&Event> = events
            .iter()
            .filter(|event| event.id > cursor.last_event_id)
            .collect();
        let Some(last) = fresh.last() else {
            return Ok(Applied::Now(0));
        };
        let applied = FeedCursor {
            last_event_id: last.id,
            epoch: epoch.to_owned(),
        };
        for event in &fresh {
            let span = tracing::info_span!("feed_event.apply", source, event_type = %event.r#type, event_id = event.id);
            telemetry::continue_trace(&span, &event.traceparent, &event.tracestate);
            self.handler.apply(&mut tx, event).instrument(span).await?;
        }
        save_cursor(&mut tx, source, &applied).await?;
        tx.commit().await?;
        Ok(Applied::Now(fresh.len()))
    }
}

/// The stored cursor on `source`'s feed (the start when there is none).
pub async fn cursor(conn: &mut PgConnection, source: &str) -> Result<FeedCursor, sqlx::Error> {
    Ok(stored_cursor(conn, source, Lock::None)
        .await?
        .unwrap_or_default())
}

enum Lock {
    None,
    ForUpdate,
}

/// The stored cursor on `source`'s feed; None when there is none yet.
async fn stored_cursor(
    conn: &mut PgConnection,
    source: &str,
    lock: Lock,
) -> Result<Option<FeedCursor>, sqlx::Error> {
    let sql = match lock {
        Lock::None => "SELECT last_event_id, epoch FROM followed_feed WHERE source = $1",
        Lock::ForUpdate => {
            "SELECT last_event_id, epoch FROM followed_feed WHERE source = $1 FOR UPDATE"
        }
    };
    let row: Option<(i64, String)> = sqlx::query_as(sql)
        .bind(source)
        .fetch_optional(conn)
        .await?;
    Ok(row.map(|(last_event_id, epoch)| FeedCursor {
        last_event_id,
        epoch,
    }))
}

/// The cursor, created at the start if absent, locked until the
/// transaction ends. One statement per event applied: the row is created
/// only by the first event a service ever applies from `source`.
async fn lock_cursor(conn: &mut PgConnection, source: &str) -> Result<FeedCursor, sqlx::Error> {
    if let Some(cursor) = stored_cursor(&mut *conn, source, Lock::ForUpdate).await? {
        return Ok(cursor);
    }
    sqlx::query(
        "INSERT INTO followed_feed (source, last_event_id) VALUES ($1, 0) ON CONFLICT DO NOTHING",
    )
    .bind(source)
    .execute(&mut *conn)
    .await?;
    stored_cursor(conn, source, Lock::ForUpdate)
        .await?
        .ok_or_else(|| {
            sqlx::Error::Protocol(format!("the cursor on {source} vanished as it was made"))
        })
}

async fn save_cursor(
    conn: &mut PgConnection,
    source: &str,
    cursor: &FeedCursor,
) -> Result<(), sqlx::Error> {
    sqlx::query("UPDATE followed_feed SET last_event_id = $2, epoch = $3 WHERE source = $1")
        .bind(source)
        .bind(cursor.last_event_id)
        .bind(&cursor.epoch)
        .execute(conn)
        .await?;
    Ok(())
}

/// Sets the cursor back to the start of the feed, of no epoch yet, unless
/// it moved on from `seen` meanwhile (another replica got there first).
async fn restart_cursor(
    conn: &mut PgConnection,
    source: &str,
    seen: &FeedCursor,
) -> Result<bool, sqlx::Error> {
    let reset = sqlx::query(
        "UPDATE followed_feed SET last_event_id = 0, epoch = ''
          WHERE source = $1 AND last_event_id = $2 AND epoch = $3",
    )
    .bind(source)
    .bind(seen.last_event_id)
    .bind(&seen.epoch)
    .execute(conn)
    .await?
    .rows_affected();
    Ok(reset > 0)
}
