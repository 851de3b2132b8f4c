//! Follows the owners' event feeds and writes what they report onto the
//! case: timeline lines, need progress, and needs the owners' findings open.
//!
//! Each event is applied in one transaction with the cursor that records
//! it, under a lock on that cursor row: after a crash intake resumes exactly
//! after the last applied event, and replicas following the same feed
//! apply every event once.

use std::time::Duration;

use chrono::{DateTime, Utc};
use onestop_contracts::events::v1::event_feed_client::EventFeedClient;
use onestop_contracts::events::v1::{Event, WatchRequest};
use onestop_contracts::intake::v1 as pb;
use onestop_domain::{CountryCode, HsInterest};
use onestop_platform::client::ServiceCredentials;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::server::CancellationToken;
use onestop_platform::telemetry;
use onestop_platform::time::from_timestamp;
use sqlx::{PgConnection, PgPool, Row};
use tonic::transport::Channel;
use tracing::Instrument;
use uuid::Uuid;

use crate::domain::case::{NeedSpec, PlannedNeed};
use crate::domain::owner_events::{self, NewNeed, OwnerUpdate, Progress, Subject};
use crate::needs;
use crate::store;
use crate::upstreams::Upstreams;

const RECONNECT_FIRST: Duration = Duration::from_millis(250);
const RECONNECT_MAX: Duration = Duration::from_secs(10);

pub struct Follower {
    pool: PgPool,
    source: &'static str,
    channel: Channel,
    credentials: ServiceCredentials,
}

impl Follower {
    pub fn new(
        pool: PgPool,
        source: &'static str,
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

    /// One follower per configured owner.
    pub fn for_upstreams(pool: &PgPool, upstreams: &Upstreams) -> Vec<Self> {
        [
            ("mentoring", &upstreams.mentoring),
            ("buyers", &upstreams.buyers),
            ("referral", &upstreams.referral),
        ]
        .into_iter()
        .filter_map(|(source, channel)| {
            channel.clone().map(|channel| {
                Self::new(pool.clone(), source, channel, upstreams.credentials.clone())
            })
        })
        .collect()
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
                Ok(applied) if applied > 0 => wait = RECONNECT_FIRST,
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(source = self.source, error = %error, "owner feed interrupted")
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            wait = (wait * 2).min(RECONNECT_MAX);
        }
    }

    /// Watches from the stored cursor until the stream ends or fails;
    /// returns how many events were applied.
    async fn follow_once(&self) -> anyhow::Result<usize> {
        let after = self.cursor().await?;
        let request = WatchRequest {
            after,
            types: owner_events::followed_types(self.source)
                .iter()
                .map(|t| (*t).to_owned())
                .collect(),
            ..Default::default()
        };
        let mut client =
            EventFeedClient::with_interceptor(self.channel.clone(), self.credentials.clone());
        let mut stream = match client.watch(request).await {
            Ok(response) => response.into_inner(),
            Err(status) if status.code() == tonic::Code::OutOfRange => {
                // Retention dropped events intake never saw; the gap is
                // logged loudly and following resumes at the oldest event
                // still kept rather than stopping for good.
                tracing::error!(
                    source = self.source,
                    after,
                    "owner feed cursor expired; events were missed"
                );
                self.reset_cursor().await?;
                return Ok(0);
            }
            Err(status) => return Err(status.into()),
        };
        let mut applied = 0;
        while let Some(event) = stream.message().await? {
            if self.apply(&event).await? {
                applied += 1;
            }
        }
        Ok(applied)
    }

    async fn cursor(&self) -> Result<i64, sqlx::Error> {
        Ok(
            sqlx::query_scalar("SELECT last_event_id FROM feed_cursor WHERE source = $1")
                .bind(self.source)
                .fetch_optional(&self.pool)
                .await?
                .unwrap_or(0),
        )
    }

    async fn reset_cursor(&self) -> Result<(), sqlx::Error> {
        sqlx::query("UPDATE feed_cursor SET last_event_id = 0 WHERE source = $1")
            .bind(self.source)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Applies one event unless another replica already has; `true` when
    /// this call applied it.
    pub async fn apply(&self, event: &Event) -> anyhow::Result<bool> {
        let span = tracing::info_span!("owner_event.apply", source = self.source, event_type = %event.r#type, event_id = event.id);
        telemetry::continue_trace(&span, &event.traceparent, &event.tracestate);
        async {
            let mut tx = self.pool.begin().await?;
            sqlx::query(
                "INSERT INTO feed_cursor (source, last_event_id) VALUES ($1, 0) ON CONFLICT DO NOTHING",
            )
            .bind(self.source)
            .execute(&mut *tx)
            .await?;
            let last: i64 = sqlx::query_scalar(
                "SELECT last_event_id FROM feed_cursor WHERE source = $1 FOR UPDATE",
            )
            .bind(self.source)
            .fetch_one(&mut *tx)
            .await?;
            if event.id <= last {
                return Ok(false);
            }
            if let Some(update) = owner_events::interpret(self.source, event) {
                let at = event.occurred_at.as_ref().and_then(from_timestamp);
                apply_update(&mut tx, self.source, &event.r#type, at, &update).await?;
            }
            sqlx::query("UPDATE feed_cursor SET last_event_id = $2 WHERE source = $1")
                .bind(self.source)
                .bind(event.id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            Ok(true)
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
        Subject::Need(need_id) => {
            let case_id: Option<Uuid> =
                sqlx::query_scalar("SELECT case_id FROM need WHERE id = $1")
                    .bind(need_id)
                    .fetch_optional(&mut *conn)
                    .await?;
            Ok(case_id.map(|case_id| (case_id, Some(*need_id))))
        }
        Subject::Company(company_id, category) => {
            let row = sqlx::query(
                "SELECT c.id AS case_id, n.id AS need_id
                   FROM support_case c
                   LEFT JOIN need n ON n.case_id = c.id AND n.category = $2
                                   AND n.status NOT IN ('DONE', 'CANCELLED')
                  WHERE c.company_id = $1 AND c.status = 'OPEN'
                  ORDER BY (n.id IS NULL), c.opened_at DESC, n.position
                  LIMIT 1",
            )
            .bind(company_id)
            .bind(category.as_str())
            .fetch_optional(&mut *conn)
            .await?;
            Ok(row.map(|row| (row.get("case_id"), row.get("need_id"))))
        }
    }
}

async fn apply_update(
    conn: &mut PgConnection,
    source: &str,
    event_type: &str,
    at: Option<DateTime<Utc>>,
    update: &OwnerUpdate,
) -> anyhow::Result<()> {
    let Some((case_id, need_id)) = resolve(conn, &update.subject).await? else {
        return Ok(());
    };
    store::add_timeline_entry(
        conn,
        case_id,
        need_id,
        source,
        event_type,
        &update.summary,
        at,
    )
    .await?;
    if let (Some(need_id), Some(progress)) = (need_id, update.progress) {
        advance(conn, case_id, need_id, progress, event_type).await?;
    }
    if let Some(new_need) = &update.opens {
        open_found_need(conn, case_id, new_need).await?;
    }
    Ok(())
}

fn stored_progress(stored: &str) -> Option<Progress> {
    match stored {
        "ROUTED" => Some(Progress::Routed),
        "IN_PROGRESS" => Some(Progress::InProgress),
        "DONE" => Some(Progress::Done),
        "CANCELLED" => Some(Progress::Cancelled),
        _ => None,
    }
}

fn status_proto(stored: Option<Progress>) -> pb::NeedStatus {
    match stored {
        None => pb::NeedStatus::Open,
        Some(Progress::Routed) => pb::NeedStatus::Routed,
        Some(Progress::InProgress) => pb::NeedStatus::InProgress,
        Some(Progress::Done) => pb::NeedStatus::Done,
        Some(Progress::Cancelled) => pb::NeedStatus::Cancelled,
    }
}

/// Moves the need forward only: a late or replayed "accepted" never undoes
/// "done", and nothing moves a need out of DONE or CANCELLED.
async fn advance(
    conn: &mut PgConnection,
    case_id: Uuid,
    need_id: Uuid,
    to: Progress,
    cause: &str,
) -> anyhow::Result<()> {
    let stored: String = sqlx::query_scalar("SELECT status FROM need WHERE id = $1 FOR UPDATE")
        .bind(need_id)
        .fetch_one(&mut *conn)
        .await?;
    let from = stored_progress(&stored);
    let finished = matches!(from, Some(Progress::Done | Progress::Cancelled));
    if finished || from.is_some_and(|from| from >= to) {
        return Ok(());
    }
    sqlx::query("UPDATE need SET status = $2 WHERE id = $1")
        .bind(need_id)
        .bind(to.as_str())
        .execute(&mut *conn)
        .await?;
    events::append(
        conn,
        NewEvent::new(
            "need.status_changed",
            "case",
            case_id,
            &pb::NeedStatusChanged {
                need_id: need_id.to_string(),
                case_id: case_id.to_string(),
                from: status_proto(from) as i32,
                to: status_proto(Some(to)) as i32,
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
    // Locked so two findings applied at once agree on positions.
    let company_id: Uuid =
        sqlx::query_scalar("SELECT company_id FROM support_case WHERE id = $1 FOR UPDATE")
            .bind(case_id)
            .fetch_one(&mut *conn)
            .await?;
    let already: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM need
                         WHERE case_id = $1 AND category = $2
                           AND status NOT IN ('DONE', 'CANCELLED')
                           AND upper(detail) LIKE '%' || $3 || '%')",
    )
    .bind(case_id)
    .bind(found.category.as_str())
    .bind(&found.topic)
    .fetch_one(&mut *conn)
    .await?;
    if already {
        return Ok(());
    }
    let Some(company) = store::load_company(conn, company_id, false).await? else {
        return Ok(());
    };
    let position: i32 =
        sqlx::query_scalar("SELECT COALESCE(max(position) + 1, 0) FROM need WHERE case_id = $1")
            .bind(case_id)
            .fetch_one(&mut *conn)
            .await?;
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
    let (_, opened) = needs::open_need(
        conn,
        case_id,
        position.max(0) as usize,
        &planned,
        &store::snapshot(&company),
    )
    .await?;
    events::append(conn, opened).await?;
    Ok(())
}
