//! Follows one service's event feed into the projections.
//!
//! Events are applied in batches, each in one transaction with the cursor
//! and the feed's epoch, under a lock on that cursor row: after a crash or
//! restart insights resumes exactly after the last applied event, and
//! replicas following the same feed apply every event once. A feed whose
//! epoch changed (its database was recreated), or whose retention passed
//! the cursor, is rebuilt: that source's rows are dropped and its feed is
//! read again from the start.

use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use onestop_contracts::events::v1::event_feed_service_client::EventFeedServiceClient;
use onestop_contracts::events::v1::{Event, WatchRequest, watch_response};
use onestop_platform::client::ServiceCredentials;
use onestop_platform::supervise::{Beat, Supervisor};
use onestop_platform::time::from_timestamp;
use sqlx::PgPool;
use tonic::transport::Channel;
use tonic_types::StatusExt;

use crate::domain::facts;
use crate::domain::source::Source;
use crate::store;

const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(10);
/// Most events applied in one transaction.
const BATCH: usize = 256;
/// A stream silent for this long (several heartbeats) is taken for dead.
const SILENCE: Duration = Duration::from_secs(45);

pub struct Follower {
    pool: PgPool,
    source: Source,
    channel: Channel,
    credentials: ServiceCredentials,
}

/// Why following stopped short of an error worth a backoff.
enum Rewind {
    /// The feed is another incarnation, or retention passed the cursor.
    Rebuild(&'static str),
}

impl Follower {
    pub fn new(
        pool: PgPool,
        source: Source,
        channel: Channel,
        credentials: ServiceCredentials,
    ) -> Self {
        Self {
            pool,
            source,
            channel,
            credentials,
        }
    }

    /// Follows the feed as a supervised loop until shutdown.
    pub fn spawn(self, name: &'static str, supervisor: &Supervisor) {
        supervisor.keep_running(name, self, |follower, beat| async move {
            follower.run(beat).await
        });
    }

    /// Follows the feed until shutdown, reconnecting with backoff whenever
    /// the service or the database goes away; each failure and each good
    /// stretch is told to the supervisor through `beat`.
    pub async fn run(&self, beat: Beat) {
        let mut wait = RECONNECT_FIRST;
        loop {
            let outcome = tokio::select! {
                _ = beat.stopping() => return,
                outcome = self.follow_once() => outcome,
            };
            if outcome.is_err() {
                beat.failed().await;
            } else {
                beat.ok().await;
            }
            match outcome {
                Ok(Ok(applied)) if applied > 0 => wait = RECONNECT_FIRST,
                Ok(Ok(_)) => {}
                Ok(Err(Rewind::Rebuild(why))) => {
                    tracing::error!(source = %self.source, why, "rebuilding the projections of this feed from its start");
                    match store::reset_source(&self.pool, self.source).await {
                        Ok(()) => {
                            wait = RECONNECT_FIRST;
                            continue;
                        }
                        Err(error) => {
                            tracing::warn!(source = %self.source, error = %error, "rebuild failed; retrying")
                        }
                    }
                }
                Err(error) => {
                    tracing::debug!(source = %self.source, error = %error, "feed interrupted")
                }
            }
            tokio::select! {
                _ = beat.stopping() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(RECONNECT_MAX);
        }
    }

    /// Watches from the stored cursor until the stream ends or fails;
    /// returns how many events were applied.
    async fn follow_once(&self) -> anyhow::Result<Result<usize, Rewind>> {
        let from = store::position(&self.pool, self.source).await?;
        let request = WatchRequest {
            after: from.applied,
            epoch: from.epoch.clone(),
            ..Default::default()
        };
        let mut client = EventFeedServiceClient::with_interceptor(
            self.channel.clone(),
            self.credentials.clone(),
        );
        let stream = match client.watch(request).await {
            Ok(response) => response.into_inner(),
            Err(status) => {
                let reason = status
                    .get_details_error_info()
                    .map(|info| info.reason)
                    .unwrap_or_default();
                return match (status.code(), reason.as_str()) {
                    (tonic::Code::FailedPrecondition, "FEED_EPOCH_CHANGED") => {
                        Ok(Err(Rewind::Rebuild("the feed's epoch changed")))
                    }
                    (tonic::Code::OutOfRange, "CURSOR_EXPIRED") => Ok(Err(Rewind::Rebuild(
                        "the feed's retention passed the cursor; events were missed",
                    ))),
                    (tonic::Code::OutOfRange, "CURSOR_AHEAD") => Ok(Err(Rewind::Rebuild(
                        "the cursor is past the feed's head: another feed answered",
                    ))),
                    _ => Err(status.into()),
                };
            }
        };
        let mut batches = stream.ready_chunks(BATCH);
        let mut epoch: Option<String> = None;
        let mut applied = 0;
        loop {
            let batch = match tokio::time::timeout(SILENCE, batches.next()).await {
                Err(_) => anyhow::bail!("no heartbeat for {SILENCE:?}"),
                Ok(None) => return Ok(Ok(applied)),
                Ok(Some(batch)) => batch,
            };
            let mut events = Vec::new();
            let mut head = 0;
            for message in batch {
                match message?.item {
                    Some(watch_response::Item::Event(event)) => events.push(event),
                    Some(watch_response::Item::Status(status)) => {
                        head = head.max(status.head);
                        epoch.get_or_insert(status.epoch);
                    }
                    None => {}
                }
            }
            let Some(epoch) = epoch.as_deref() else {
                anyhow::bail!("the feed sent events before its status");
            };
            if events.is_empty() {
                store::record_head(&self.pool, self.source, epoch, head).await?;
                continue;
            }
            match self.apply(epoch, &events, head).await? {
                Some(count) => applied += count,
                None => {
                    return Ok(Err(Rewind::Rebuild(
                        "the stored epoch differs from the feed's",
                    )));
                }
            }
        }
    }

    /// Applies the events another replica has not; None when the cursor
    /// belongs to another epoch of the feed.
    pub async fn apply(
        &self,
        epoch: &str,
        events: &[Event],
        head: i64,
    ) -> anyhow::Result<Option<usize>> {
        let mut tx = self.pool.begin().await?;
        let cursor = store::lock_cursor(&mut tx, self.source).await?;
        if !cursor.epoch.is_empty() && cursor.epoch != epoch {
            return Ok(None);
        }
        let mut last = cursor.applied;
        let mut applied = 0;
        for event in events.iter().filter(|event| event.id > cursor.applied) {
            let meaning = match facts::interpret(self.source, event) {
                Ok(meaning) => meaning,
                Err(error) => {
                    tracing::warn!(source = %self.source, error = %error, "event skipped");
                    Default::default()
                }
            };
            for fact in &meaning.facts {
                store::apply(&mut tx, fact).await?;
            }
            if let Some(line) = &meaning.ticker {
                let at = event
                    .occurred_at
                    .as_ref()
                    .and_then(from_timestamp)
                    .unwrap_or_else(Utc::now);
                store::add_to_ticker(&mut tx, self.source, event.id, &event.r#type, at, line)
                    .await?;
            }
            last = event.id;
            applied += 1;
        }
        if applied == 0 {
            return Ok(Some(0));
        }
        store::trim_ticker(&mut tx).await?;
        store::advance_cursor(&mut tx, self.source, epoch, last, head).await?;
        store::notify_changed(&mut tx).await?;
        tx.commit().await?;
        Ok(Some(applied))
    }
}
