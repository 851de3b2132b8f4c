//! Following another service's event feed into this service's database:
//! each event is applied in one transaction with the cursor that records
//! it, under a lock on that cursor row, so a restart resumes exactly after
//! the last applied event and replicas following the same feed apply each
//! event once.
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

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
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

/// What applying one event did.
enum Applied {
    Now,
    /// Another replica applied it first.
    Already,
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
        let mut stream = match client.watch(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => return self.refused(&stored, &status).await,
        };
        let mut epoch = String::new();
        let mut applied = 0;
        while let Some(message) = stream.message().await? {
            match message.item {
                Some(watch_response::Item::Status(status)) => {
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
                Some(watch_response::Item::Event(event)) => match self.apply(&event, &epoch).await?
                {
                    Applied::Now => applied += 1,
                    Applied::Already => {}
                    Applied::OtherEpoch => break,
                },
                None => {}
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

    /// Applies one event of the feed's `epoch` unless another replica
    /// already has.
    async fn apply(&self, event: &Event, epoch: &str) -> anyhow::Result<Applied> {
        let source = self.source;
        let span = tracing::info_span!("feed_event.apply", source, event_type = %event.r#type, event_id = event.id);
        telemetry::continue_trace(&span, &event.traceparent, &event.tracestate);
        async {
            let mut tx = self.pool.begin().await?;
            let cursor = lock_cursor(&mut tx, source).await?;
            if !cursor.epoch.is_empty() && cursor.epoch != epoch {
                return Ok(Applied::OtherEpoch);
            }
            if event.id <= cursor.last_event_id {
                return Ok(Applied::Already);
            }
            self.handler.apply(&mut tx, event).await?;
            let applied = FeedCursor {
                last_event_id: event.id,
                epoch: epoch.to_owned(),
            };
            save_cursor(&mut tx, source, &applied).await?;
            tx.commit().await?;
            Ok(Applied::Now)
        }
        .instrument(span)
        .await
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
