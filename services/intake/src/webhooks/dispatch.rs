//! The dispatcher: one worker per enabled endpoint and source feed, started
//! and stopped as endpoints are enabled and disabled, started again if it
//! ends or panics (see the module above for the delivery rules).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::StreamExt as _;
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::events::v1::event_feed_service_client::EventFeedServiceClient;
use onestop_contracts::events::v1::{
    Event, PartnerRef, WatchRequest, WatchResponse, watch_response,
};
use onestop_platform::client::ServiceCredentials;
use onestop_platform::events::{self, NewEvent, OwnFeed};
use onestop_platform::fetch;
use onestop_platform::rpc::RpcStream;
use onestop_platform::supervise::Beat;
use onestop_platform::time::from_timestamp;
use onestop_platform::tls::ClientTls;
use sqlx::PgPool;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tonic::transport::Channel;
use tonic_types::StatusExt;
use uuid::Uuid;

use super::{DisableCause, Endpoint, State, WebhookSettings, signature};
use crate::startup::SERVICE_NAME;
use crate::store::{self, Attempt, HookCursor};

/// Waits before reading a feed again after it or the database failed.
const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(10);

/// A feed deliveries are read from.
#[derive(Clone)]
pub struct Source {
    pub name: &'static str,
    pub feed: Feed,
}

/// Where a source's feed is read.
#[derive(Clone)]
pub enum Feed {
    /// Intake's own, in-process.
    Own(OwnFeed),
    /// An owner's, over its channel.
    Remote(Channel),
}

/// Starts, watches and stops the delivery workers.
pub struct Dispatcher {
    pool: PgPool,
    sources: Vec<Source>,
    credentials: ServiceCredentials,
    settings: WebhookSettings,
    /// This replica, as it holds cursor leases.
    replica: Uuid,
    /// Rung when an endpoint changes here, so workers start or stop at once
    /// rather than at the next rescan.
    changed: Arc<Notify>,
    /// Partner endpoints are reached with the system's public roots.
    tls: ClientTls,
}

/// The running workers, stopped when dropped (the dispatcher's loop ended).
#[derive(Default)]
struct Workers(HashMap<(Uuid, &'static str), (CancellationToken, JoinHandle<()>)>);

impl Drop for Workers {
    fn drop(&mut self) {
        for (token, _) in self.0.values() {
            token.cancel();
        }
    }
}

impl Dispatcher {
    pub fn new(
        pool: PgPool,
        sources: Vec<Source>,
        credentials: ServiceCredentials,
        settings: WebhookSettings,
        changed: Arc<Notify>,
    ) -> Self {
        Self {
            pool,
            sources,
            credentials,
            settings,
            replica: Uuid::new_v4(),
            changed,
            tls: ClientTls::default(),
        }
    }

    /// Keeps one worker per enabled endpoint and source until shutdown.
    pub async fn run(self: Arc<Self>, beat: Beat) -> anyhow::Result<()> {
        let mut workers = Workers::default();
        loop {
            let enabled = store::enabled_webhooks(&self.pool).await?;
            workers.0.retain(|(id, _), (token, handle)| {
                let keep = enabled.contains(id) && !handle.is_finished();
                if !keep {
                    token.cancel();
                }
                keep
            });
            for id in enabled {
                for source in &self.sources {
                    workers.0.entry((id, source.name)).or_insert_with(|| {
                        let token = beat.shutdown_token().child_token();
                        let worker = Worker {
                            dispatcher: self.clone(),
                            webhook_id: id,
                            source: source.clone(),
                        };
                        let handle = tokio::spawn(onestop_platform::audit::as_service(
                            SERVICE_NAME,
                            worker.run(token.clone()),
                        ));
                        (token, handle)
                    });
                }
            }
            beat.ok().await;
            tokio::select! {
                _ = beat.stopping() => return Ok(()),
                _ = self.changed.notified() => {}
                _ = tokio::time::sleep(self.settings.webhook_rescan) => {}
            }
        }
    }

    /// How long a cursor lease lasts: past an attempt's deadline and a
    /// feed's heartbeat, renewed by both.
    fn lease(&self) -> Duration {
        self.settings.webhook_timeout * 2 + events::HEARTBEAT_INTERVAL * 2
    }
}

/// Delivers one endpoint's events of one feed.
struct Worker {
    dispatcher: Arc<Dispatcher>,
    webhook_id: Uuid,
    source: Source,
}

/// How one pass over the feed ended.
enum Pass {
    /// The endpoint is disabled or gone: the worker ends.
    Stopped,
    /// The endpoint failed an attempt: wait this long, then read again.
    Failed(Duration),
    /// Another replica holds the cursor.
    Leased,
    /// The feed ended the stream, or the cursor was set back: read again.
    Again,
}

impl Worker {
    async fn run(self, stop: CancellationToken) {
        let mut reconnect = RECONNECT_FIRST;
        loop {
            let pass = tokio::select! {
                _ = stop.cancelled() => break,
                pass = self.pass() => pass,
            };
            let wait = match pass {
                Ok(Pass::Stopped) => break,
                Ok(Pass::Failed(wait)) => wait,
                Ok(Pass::Leased) => self.dispatcher.lease() / 2,
                Ok(Pass::Again) => {
                    reconnect = RECONNECT_FIRST;
                    Duration::ZERO
                }
                Err(error) => {
                    tracing::debug!(
                        webhook_id = %self.webhook_id,
                        source = self.source.name,
                        error = %error,
                        "webhook delivery interrupted"
                    );
                    let wait = reconnect;
                    reconnect = (reconnect * 2).min(RECONNECT_MAX);
                    wait
                }
            };
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tokio::time::sleep(wait) => {}
            }
        }
        let dispatcher = &self.dispatcher;
        if let Err(error) = store::release_cursor(
            &dispatcher.pool,
            self.webhook_id,
            self.source.name,
            dispatcher.replica,
        )
        .await
        {
            tracing::debug!(error = %error, "webhook cursor lease left to expire");
        }
    }

    /// Watches the feed from the endpoint's cursor and delivers what comes,
    /// until an attempt fails, the stream ends or the endpoint stops.
    async fn pass(&self) -> anyhow::Result<Pass> {
        let dispatcher = &self.dispatcher;
        let (id, source) = (self.webhook_id, self.source.name);
        let Some(mut cursor) = store::lease_cursor(
            &dispatcher.pool,
            id,
            source,
            dispatcher.replica,
            dispatcher.lease(),
        )
        .await?
        else {
            return Ok(Pass::Leased);
        };
        let mut conn = dispatcher.pool.acquire().await?;
        let Some(endpoint) = store::load_webhook(&mut conn, id, false).await? else {
            return Ok(Pass::Stopped);
        };
        drop(conn);
        if endpoint.state != State::Enabled {
            return Ok(Pass::Stopped);
        }
        let request = WatchRequest {
            after: cursor.last_event_id,
            epoch: cursor.epoch.clone(),
            types: endpoint.event_types.clone(),
            on_behalf_of: Some(PartnerRef {
                role: endpoint.partner.role.as_str().to_owned(),
                tenant: endpoint.partner.tenant.clone(),
            }),
            ..Default::default()
        };
        let stream = match &self.source.feed {
            Feed::Own(feed) => feed.watch(request).await,
            Feed::Remote(channel) => self.watch_remote(channel, &endpoint, request).await,
        };
        let mut stream = match stream {
            Ok(stream) => stream,
            Err(status) => return self.refused(&status).await,
        };
        let mut epoch = cursor.epoch.clone();
        while let Some(message) = stream.next().await.transpose()? {
            match message.item {
                Some(watch_response::Item::Status(status)) => {
                    if !cursor.epoch.is_empty() && status.epoch != cursor.epoch {
                        tracing::error!(
                            webhook_id = %id,
                            source,
                            "the feed reports another epoch than the webhook cursor's: its \
                             database was recreated or restored; delivering it again from the start"
                        );
                        return self.restart().await;
                    }
                    epoch = status.epoch;
                    cursor.epoch = epoch.clone();
                    // The heartbeat renews the lease while nothing comes.
                    if !self.save(&cursor).await? {
                        return Ok(Pass::Leased);
                    }
                }
                Some(watch_response::Item::Event(event)) => {
                    let next = HookCursor {
                        last_event_id: event.id,
                        epoch: epoch.clone(),
                    };
                    let before_registration = event
                        .occurred_at
                        .as_ref()
                        .and_then(from_timestamp)
                        .is_some_and(|at| at < endpoint.created_at);
                    if before_registration {
                        if !self.save(&next).await? {
                            return Ok(Pass::Leased);
                        }
                    } else if let Delivered::No(pass) = self.deliver(&event, &next).await? {
                        return Ok(pass);
                    }
                    cursor = next;
                }
                None => {}
            }
        }
        Ok(Pass::Again)
    }

    /// Watches an owner's feed for the endpoint's partner, counted there
    /// against that partner's share of the Watch streams.
    async fn watch_remote(
        &self,
        channel: &Channel,
        endpoint: &Endpoint,
        request: WatchRequest,
    ) -> Result<RpcStream<WatchResponse>, tonic::Status> {
        let mut client = EventFeedServiceClient::with_interceptor(
            channel.clone(),
            self.dispatcher.credentials.clone(),
        );
        let mut request = tonic::Request::new(request);
        let watch_for = format!(
            "{}/{}",
            endpoint.partner.role.as_str(),
            endpoint.partner.tenant
        );
        if let Ok(value) = watch_for.parse() {
            request
                .metadata_mut()
                .insert(onestop_platform::watchers::WATCH_FOR_HEADER, value);
        }
        let stream = client.watch(request).await?.into_inner();
        Ok(Box::pin(stream))
    }

    async fn save(&self, cursor: &HookCursor) -> anyhow::Result<bool> {
        let dispatcher = &self.dispatcher;
        let mut conn = dispatcher.pool.acquire().await?;
        Ok(store::save_cursor(
            &mut conn,
            self.webhook_id,
            self.source.name,
            dispatcher.replica,
            cursor,
            dispatcher.lease(),
        )
        .await?)
    }

    /// The feed refused the cursor: one of another epoch or past the head
    /// means the feed's database was recreated or restored, one older than
    /// its retention that events were missed; either way deliveries go on
    /// from the feed's start (events before registration passed over).
    async fn refused(&self, status: &tonic::Status) -> anyhow::Result<Pass> {
        let reason = status
            .get_details_error_info()
            .map(|info| info.reason)
            .unwrap_or_default();
        match (status.code(), reason.as_str()) {
            (tonic::Code::FailedPrecondition, "FEED_EPOCH_CHANGED")
            | (tonic::Code::OutOfRange, "CURSOR_AHEAD") => tracing::error!(
                webhook_id = %self.webhook_id,
                source = self.source.name,
                reason,
                "the feed no longer knows the webhook cursor; delivering it again from the start"
            ),
            (tonic::Code::OutOfRange, _) => tracing::error!(
                webhook_id = %self.webhook_id,
                source = self.source.name,
                reason,
                "webhook cursor expired; events were missed"
            ),
            _ => return Err(status.clone().into()),
        }
        self.restart().await
    }

    /// Sets the cursor back to the feed's start, of no epoch yet.
    async fn restart(&self) -> anyhow::Result<Pass> {
        if self.save(&HookCursor::default()).await? {
            Ok(Pass::Again)
        } else {
            Ok(Pass::Leased)
        }
    }

    /// One attempt at `event`, logged; on a 2xx the cursor moves to `next`
    /// in the same transaction, so only an event that never got one is sent
    /// again; on failure the failure run grows and, past the give-up
    /// period, the endpoint is disabled.
    async fn deliver(&self, event: &Event, next: &HookCursor) -> anyhow::Result<Delivered> {
        let epoch = next.epoch.as_str();
        let dispatcher = &self.dispatcher;
        let settings = &dispatcher.settings;
        let id = self.webhook_id;
        // Read again for each event: a rotation or a disable applies from
        // the next attempt.
        let mut conn = dispatcher.pool.acquire().await?;
        let Some(endpoint) = store::load_webhook(&mut conn, id, false).await? else {
            return Ok(Delivered::No(Pass::Stopped));
        };
        drop(conn);
        if endpoint.state != State::Enabled {
            return Ok(Delivered::No(Pass::Stopped));
        }
        let message_id = format!("{}:{epoch}:{}", self.source.name, event.id);
        let body = body(event, epoch);
        let now = Utc::now();
        let timestamp = now.timestamp();
        let headers = [
            ("webhook-id", message_id.clone()),
            ("webhook-timestamp", timestamp.to_string()),
            (
                "webhook-signature",
                signature(
                    &endpoint.signing_secrets(now),
                    &message_id,
                    timestamp,
                    &body,
                ),
            ),
        ];
        let started = Instant::now();
        let answer = fetch::post(
            &endpoint.url,
            &headers,
            body,
            &dispatcher.tls,
            settings.webhook_timeout,
        )
        .await;
        let duration_ms = started.elapsed().as_millis().min(i32::MAX as u128) as i32;
        let (status_code, error) = match answer {
            Ok(code) if (200..300).contains(&code) => (i32::from(code), ""),
            Ok(code) => (i32::from(code), "status"),
            Err(failure) => (0, failure.as_str()),
        };
        let mut tx = dispatcher.pool.begin().await?;
        store::log_attempt(
            &mut tx,
            &Attempt {
                webhook_id: id,
                source: self.source.name,
                event_id: event.id,
                event_type: &event.r#type,
                message_id: &message_id,
                status_code,
                error,
                duration_ms,
            },
        )
        .await?;
        if error.is_empty() {
            store::note_success(&mut tx, id).await?;
            let moved = store::save_cursor(
                &mut tx,
                id,
                self.source.name,
                dispatcher.replica,
                next,
                dispatcher.lease(),
            )
            .await?;
            tx.commit().await?;
            // Lost the lease mid-attempt (it outlasts any attempt's
            // deadline, so only after a stall): the holder sends it again.
            return Ok(if moved {
                Delivered::Yes
            } else {
                Delivered::No(Pass::Leased)
            });
        }
        let Some((failures, since)) = store::note_failure(&mut tx, id).await? else {
            return Ok(Delivered::No(Pass::Stopped));
        };
        if given_up(since, settings.webhook_give_up_after) {
            disable_failing(&mut tx, id).await?;
            tx.commit().await?;
            tracing::warn!(
                webhook_id = %id,
                failures_in_a_row = failures,
                "webhook endpoint disabled after failing every attempt for the give-up period"
            );
            dispatcher.changed.notify_one();
            return Ok(Delivered::No(Pass::Stopped));
        }
        let wait = settings.retry_after(failures.max(1) as u32, jitter());
        let held =
            store::hold_cursor(&mut tx, id, self.source.name, dispatcher.replica, wait).await?;
        tx.commit().await?;
        if !held {
            return Ok(Delivered::No(Pass::Leased));
        }
        tracing::debug!(
            webhook_id = %id,
            source = self.source.name,
            status_code,
            error = if error.is_empty() { "none" } else { error },
            retry_in_ms = wait.as_millis() as u64,
            "webhook delivery failed"
        );
        Ok(Delivered::No(Pass::Failed(wait)))
    }
}

enum Delivered {
    Yes,
    No(Pass),
}

fn given_up(failing_since: DateTime<Utc>, give_up_after: Duration) -> bool {
    chrono::Duration::from_std(give_up_after)
        .map(|period| Utc::now() - failing_since >= period)
        .unwrap_or(false)
}

/// Disables the endpoint with its event, unless something disabled it
/// meanwhile.
async fn disable_failing(conn: &mut sqlx::PgConnection, id: Uuid) -> anyhow::Result<()> {
    let Some(endpoint) = store::load_webhook(conn, id, true).await? else {
        return Ok(());
    };
    if endpoint.state != State::Enabled {
        return Ok(());
    }
    store::disable_webhook(conn, id, DisableCause::Failing).await?;
    let disabled = Endpoint {
        state: State::Disabled,
        disabled_cause: DisableCause::Failing.as_str().to_owned(),
        ..endpoint
    };
    events::append(
        conn,
        NewEvent::new(IntakeEvent::WebhookDisabled, id, &disabled.changed())
            .for_partners([disabled.partner.on_feed()]),
    )
    .await?;
    Ok(())
}

/// A number in 0..1 for jitter, from the system's randomness.
fn jitter() -> f64 {
    (Uuid::new_v4().as_u128() as u64 >> 11) as f64 / (1u64 << 53) as f64
}

/// The delivery's body: `{"type", "timestamp", "data"}`, `data` the event
/// as the feed carries it (already trimmed for the partner).
fn body(event: &Event, epoch: &str) -> Vec<u8> {
    let occurred_at = event
        .occurred_at
        .as_ref()
        .and_then(from_timestamp)
        .map(|at| at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true));
    let payload = event
        .payload
        .as_ref()
        .and_then(onestop_platform::feeds::payload_json);
    let actor = event.actor.as_ref().map(|actor| {
        serde_json::json!({
            "subject": actor.subject,
            "role": actor.role,
            "tenant": actor.tenant,
        })
    });
    let message = serde_json::json!({
        "type": event.r#type,
        "timestamp": occurred_at,
        "data": {
            "source": event.source,
            "epoch": epoch,
            "id": event.id,
            "aggregateType": event.aggregate_type,
            "aggregateId": event.aggregate_id,
            "payloadType": event.payload.as_ref().map_or("", |p| p.type_url.as_str()),
            "payload": payload,
            "actor": actor,
        }
    });
    serde_json::to_vec(&message).unwrap_or_default()
}
