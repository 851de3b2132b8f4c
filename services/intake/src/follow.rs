//! Follows the owners' event feeds and writes what they report onto the
//! case: timeline lines, need progress, and needs the owners' findings open.
//!
//! Each event is applied in one transaction with the cursor that records
//! it, under a lock on that cursor row: after a crash intake resumes exactly
//! after the last applied event, and replicas following the same feed
//! apply each event once.
//!
//! The cursor is stored with the epoch of the feed it was read in. An owner
//! whose database was recreated or restored numbers its events anew, so the
//! cursor means nothing there: the feed says so (another epoch, or a cursor
//! past its head) and intake reads it again from the start. Reading again
//! is safe: needs only move forward, a found need opens once per case and
//! topic, and each owner event writes its timeline line once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::events::v1::event_feed_service_client::EventFeedServiceClient;
use onestop_contracts::events::v1::{Event, WatchRequest, watch_response};
use onestop_contracts::intake::v1 as pb;
use onestop_domain::{CountryCode, HsInterest, NeedOwner};
use onestop_platform::client::ServiceCredentials;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::server::CancellationToken;
use onestop_platform::telemetry;
use onestop_platform::time::from_timestamp;
use sqlx::{PgConnection, PgPool};
use tonic::transport::Channel;
use tonic_types::StatusExt;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::case::{NeedSpec, NeedStatus, PlannedNeed};
use crate::domain::company::snapshot;
use crate::domain::owner_events::{self, NewNeed, OwnerUpdate, Subject, feed_name};
use crate::needs;
use crate::store::{self, FeedCursor, Lock, NewEntry};
use crate::upstreams::Upstreams;

const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(10);

pub struct Follower {
    pool: PgPool,
    owner: NeedOwner,
    channel: Channel,
    credentials: ServiceCredentials,
}

/// How one Watch on the feed ended.
enum Followed {
    /// The stream ended after applying this many events.
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

impl Follower {
    pub fn new(
        pool: PgPool,
        owner: NeedOwner,
        channel: Channel,
        credentials: ServiceCredentials,
    ) -> Self {
        Self {
            pool,
            owner,
            channel,
            credentials,
        }
    }

    /// One follower per configured owner.
    pub fn for_upstreams(pool: &PgPool, upstreams: &Upstreams) -> Vec<Self> {
        upstreams
            .configured_owners()
            .into_iter()
            .filter_map(|owner| {
                let channel = upstreams.channel(owner)?.clone();
                Some(Self::new(
                    pool.clone(),
                    owner,
                    channel,
                    upstreams.credentials.clone(),
                ))
            })
            .collect()
    }

    fn source(&self) -> &'static str {
        feed_name(self.owner)
    }

    /// Follows the feed until shutdown, reconnecting with backoff whenever
    /// the owner or the database goes away.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut wait = RECONNECT_FIRST;
        loop {
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                outcome = self.follow_once() => outcome,
            };
            match outcome {
                Ok(Followed::Applied(applied)) if applied > 0 => wait = RECONNECT_FIRST,
                Ok(Followed::Restarted) => wait = RECONNECT_FIRST,
                Ok(Followed::Applied(_)) => {}
                Err(error) => {
                    tracing::debug!(source = self.source(), error = %error, "owner feed interrupted")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(RECONNECT_MAX);
        }
    }

    /// Watches from the stored cursor, in its epoch, until the stream ends
    /// or fails.
    async fn follow_once(&self) -> anyhow::Result<Followed> {
        let stored = store::feed_cursor(&mut *self.pool.acquire().await?, self.source()).await?;
        let request = WatchRequest {
            after: stored.last_event_id,
            types: owner_events::followed_types(self.owner),
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
                            source = self.source(),
                            stored_epoch = %stored.epoch,
                            feed_epoch = %status.epoch,
                            "owner feed reports another epoch than the stored cursor's: \
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
    /// past the feed's head, means the owner's database was recreated or
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
                source = self.source(),
                after = stored.last_event_id,
                stored_epoch = %stored.epoch,
                reason,
                "owner feed no longer knows the stored cursor: its database was recreated or \
                 restored; reading it again from the start"
            ),
            (tonic::Code::OutOfRange, _) => tracing::error!(
                source = self.source(),
                after = stored.last_event_id,
                reason,
                "owner feed cursor expired; events were missed"
            ),
            _ => return Err(status.clone().into()),
        }
        self.restart(stored).await
    }

    async fn restart(&self, stored: &FeedCursor) -> anyhow::Result<Followed> {
        let mut conn = self.pool.acquire().await?;
        store::restart_feed_cursor(&mut conn, self.source(), stored).await?;
        Ok(Followed::Restarted)
    }

    /// Applies one event of the feed's `epoch` unless another replica
    /// already has.
    async fn apply(&self, event: &Event, epoch: &str) -> anyhow::Result<Applied> {
        let source = self.source();
        let span = tracing::info_span!("owner_event.apply", source, event_type = %event.r#type, event_id = event.id);
        telemetry::continue_trace(&span, &event.traceparent, &event.tracestate);
        async {
            let mut tx = self.pool.begin().await?;
            let cursor = store::lock_feed_cursor(&mut tx, source).await?;
            if !cursor.epoch.is_empty() && cursor.epoch != epoch {
                return Ok(Applied::OtherEpoch);
            }
            if event.id <= cursor.last_event_id {
                return Ok(Applied::Already);
            }
            if let Some(update) = owner_events::interpret(self.owner, event) {
                apply_update(&mut tx, source, event, &update).await?;
            }
            let applied = FeedCursor {
                last_event_id: event.id,
                epoch: epoch.to_owned(),
            };
            store::save_feed_cursor(&mut tx, source, &applied).await?;
            tx.commit().await?;
            Ok(Applied::Now)
        }
        .instrument(span)
        .await
    }
}

/// The case and need an update concerns, if intake knows them.
async fn resolve(
    conn: &mut PgConnection,
    subject: &Subject,
) -> Result<Option<(Uuid, Option<Uuid>)>, sqlx::Error> {
    match subject {
        Subject::Need(need_id) => Ok(store::case_of_need(conn, *need_id)
            .await?
            .map(|case_id| (case_id, Some(*need_id)))),
        Subject::Company(company_id, category) => {
            store::open_case_for(conn, *company_id, *category).await
        }
    }
}

async fn apply_update(
    conn: &mut PgConnection,
    source: &str,
    event: &Event,
    update: &OwnerUpdate,
) -> anyhow::Result<()> {
    let Some((case_id, need_id)) = resolve(conn, &update.subject).await? else {
        return Ok(());
    };
    let at: Option<DateTime<Utc>> = event.occurred_at.as_ref().and_then(from_timestamp);
    store::add_timeline_entry(
        conn,
        &NewEntry {
            case_id,
            need_id,
            service: source,
            kind: &event.r#type,
            summary: &update.summary,
            at,
            source_event: Some(&owner_events::fingerprint(event)),
        },
    )
    .await?;
    if let (Some(need_id), Some(progress)) = (need_id, update.progress) {
        advance(conn, case_id, need_id, progress, &event.r#type).await?;
    }
    if let Some(new_need) = &update.opens {
        open_found_need(conn, case_id, new_need).await?;
    }
    Ok(())
}

/// Moves the need forward only (see [`NeedStatus::advances_to`]).
async fn advance(
    conn: &mut PgConnection,
    case_id: Uuid,
    need_id: Uuid,
    to: NeedStatus,
    cause: &str,
) -> anyhow::Result<()> {
    let from = store::lock_need_status(conn, need_id)
        .await?
        .unwrap_or(NeedStatus::Open);
    if !from.advances_to(to) {
        return Ok(());
    }
    store::set_need_status(conn, need_id, to).await?;
    events::append(
        conn,
        NewEvent::new(
            IntakeEvent::NeedStatusChanged,
            case_id,
            &pb::NeedStatusChanged {
                need_id: need_id.to_string(),
                case_id: case_id.to_string(),
                from: from.to_proto() as i32,
                to: to.to_proto() as i32,
                cause: cause.to_owned(),
            },
        ),
    )
    .await?;
    Ok(())
}

/// Opens the need an owner's finding calls for, once per case and topic.
async fn open_found_need(
    conn: &mut PgConnection,
    case_id: Uuid,
    found: &NewNeed,
) -> anyhow::Result<()> {
    let company_id = store::lock_case(conn, case_id).await?;
    if store::has_open_need_on(conn, case_id, found.category, &found.topic).await? {
        return Ok(());
    }
    let Some(company) = store::load_company(conn, company_id, Lock::None).await? else {
        return Ok(());
    };
    let position = store::next_need_position(conn, case_id).await?;
    let planned = PlannedNeed {
        spec: NeedSpec {
            category: found.category,
            detail: found.detail.clone(),
            target_markets: found
                .target_markets
                .iter()
                .filter_map(|c| CountryCode::parse(c).ok())
                .collect(),
            hs_codes: found
                .hs_codes
                .iter()
                .filter_map(|c| HsInterest::parse(c).ok())
                .collect(),
        },
        owner: found.category.owner(),
        added_by_rule: true,
    };
    let (_, opened) =
        needs::open_need(conn, case_id, position, &planned, &snapshot(&company)).await?;
    events::append(conn, opened).await?;
    Ok(())
}
