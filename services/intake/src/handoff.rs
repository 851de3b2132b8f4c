//! The outbox relay: delivers each opened need to the service that owns it
//! and records the acknowledgement.
//!
//! A need is claimed with `FOR UPDATE SKIP LOCKED` and its row stays locked
//! while the owner is called, so replicas never deliver one need at the same
//! time; if intake dies between the owner's acknowledgement and the commit,
//! the need is still PENDING and is sent again, and the owner, idempotent on
//! the need id, answers with the record it already made. A failed attempt
//! only pushes the need's next attempt back: nothing is dropped.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1::OpenBuyerSearchRequest;
use onestop_contracts::buyers::v1::buyer_service_client::BuyerServiceClient;
use onestop_contracts::common::v1::NeedHandOff;
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::mentoring::v1::mentoring_service_client::MentoringServiceClient;
use onestop_contracts::mentoring::v1::{RequestAdvisorRequest, request_advisor_response};
use onestop_contracts::referral::v1::CreateReferralRequest;
use onestop_contracts::referral::v1::referral_service_client::ReferralServiceClient;
use onestop_domain::NeedOwner;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::server::CancellationToken;
use onestop_platform::telemetry;
use onestop_platform::time::Clock;
use prost::Message;
use sqlx::{PgConnection, PgPool, Row};
use tracing::Instrument;
use uuid::Uuid;

use crate::store;
use crate::upstreams::Upstreams;

/// How often an idle relay looks for due needs.
const IDLE_POLL: Duration = Duration::from_millis(250);
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Enough of an owner's error to act on, without storing whole payloads.
const ERROR_TEXT_LIMIT: usize = 300;

pub struct Relay {
    pool: PgPool,
    upstreams: Upstreams,
    clock: Arc<dyn Clock>,
}

/// What one pass over due needs did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pass {
    pub delivered: usize,
    pub failed: usize,
}

impl Relay {
    pub fn new(pool: PgPool, upstreams: Upstreams, clock: Arc<dyn Clock>) -> Self {
        Self {
            pool,
            upstreams,
            clock,
        }
    }

    /// Delivers until shutdown, waking on every pass that found nothing due.
    pub async fn run(self, shutdown: CancellationToken) {
        if self.upstreams.configured_owners().is_empty() {
            tracing::warn!("no upstream URLs configured: needs stay undelivered");
            return;
        }
        loop {
            let pause = match self.deliver_due().await {
                Ok(pass) if pass.delivered + pass.failed > 0 => Duration::ZERO,
                Ok(_) => IDLE_POLL,
                Err(error) => {
                    tracing::warn!(error = %error, "need relay pass failed");
                    Duration::from_secs(1)
                }
            };
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Attempts every need due now once.
    pub async fn deliver_due(&self) -> anyhow::Result<Pass> {
        let now = self.clock.now();
        let owners = self.upstreams.configured_owners();
        let mut pass = Pass::default();
        while let Some(delivered) = self.deliver_next(now, &owners).await? {
            if delivered {
                pass.delivered += 1;
            } else {
                pass.failed += 1;
            }
        }
        Ok(pass)
    }

    /// `None` when nothing is due; otherwise whether the owner acknowledged.
    async fn deliver_next(
        &self,
        now: DateTime<Utc>,
        owners: &[&'static str],
    ) -> anyhow::Result<Option<bool>> {
        let mut tx = self.pool.begin().await?;
        let Some(row) = sqlx::query(
            "SELECT id, case_id, owner, delivery_attempts FROM need
              WHERE delivery = 'PENDING' AND next_delivery_at <= $1 AND owner = ANY($2)
              ORDER BY next_delivery_at
              LIMIT 1
              FOR UPDATE SKIP LOCKED",
        )
        .bind(now)
        .bind(owners)
        .fetch_optional(&mut *tx)
        .await?
        else {
            return Ok(None);
        };
        let need_id: Uuid = row.get("id");
        let case_id: Uuid = row.get("case_id");
        let attempts = row.get::<i32, _>("delivery_attempts").saturating_add(1);
        let owner = NeedOwner::from_stored(row.get("owner"))
            .ok_or_else(|| anyhow::anyhow!("need {need_id} has an unknown owner"))?;

        let opened = opened_event(&mut tx, case_id, need_id).await?;
        let span = tracing::info_span!(
            "need.hand_off",
            need_id = %need_id,
            owner = owner.as_str(),
            attempt = attempts,
        );
        telemetry::continue_trace(&span, &opened.traceparent, &opened.tracestate);

        let delivered = async {
            match self.send(owner, &opened.hand_off).await {
                Ok(record_id) => {
                    mark_delivered(&mut tx, need_id, case_id, owner, &record_id, attempts, now)
                        .await?;
                    tracing::info!(attempts, "need delivered");
                    Ok::<_, anyhow::Error>(true)
                }
                Err(status) => {
                    // A refusal will not fix itself between two quick
                    // retries (it takes a deploy or a config change), so it
                    // waits the longest; the need stays pending either way,
                    // with the reason on it, and goes out once it is fixed.
                    let wait = if is_refusal(status.code()) {
                        self.upstreams.max_backoff.max(FIRST_RETRY)
                    } else {
                        backoff(attempts, self.upstreams.max_backoff)
                    };
                    let error: String = format!("{:?}: {}", status.code(), status.message())
                        .chars()
                        .take(ERROR_TEXT_LIMIT)
                        .collect();
                    sqlx::query(
                        "UPDATE need SET delivery_attempts = $2, last_delivery_error = $3,
                                next_delivery_at = $4
                          WHERE id = $1",
                    )
                    .bind(need_id)
                    .bind(attempts)
                    .bind(&error)
                    .bind(now + chrono::Duration::from_std(wait)?)
                    .execute(&mut *tx)
                    .await?;
                    tracing::warn!(attempts, code = ?status.code(), retry_in = ?wait, "need delivery failed");
                    Ok(false)
                }
            }
        }
        .instrument(span)
        .await?;
        tx.commit().await?;
        Ok(Some(delivered))
    }

    /// Calls the owner; `Ok` carries the id of the record it made (or had
    /// already made) for the need.
    async fn send(
        &self,
        owner: NeedOwner,
        hand_off: &NeedHandOff,
    ) -> Result<String, tonic::Status> {
        let channel = self
            .upstreams
            .channel(owner)
            .cloned()
            .ok_or_else(|| tonic::Status::unavailable("owner not configured"))?;
        let credentials = self.upstreams.credentials.clone();
        let hand_off = hand_off.clone();
        match owner {
            NeedOwner::Mentoring => {
                let response = MentoringServiceClient::with_interceptor(channel, credentials)
                    .request_advisor(RequestAdvisorRequest {
                        need_id: hand_off.need_id,
                        case_id: hand_off.case_id,
                        category: hand_off.category,
                        company: hand_off.company,
                        target_markets: hand_off.target_markets,
                        hs_codes: hand_off.hs_codes,
                        detail: hand_off.detail,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Ok(match response.outcome {
                    Some(request_advisor_response::Outcome::Assigned(assignment))
                    | Some(request_advisor_response::Outcome::AlreadyAssigned(assignment)) => {
                        assignment.assignment_id
                    }
                    Some(request_advisor_response::Outcome::Waitlisted(entry)) => {
                        entry.waitlist_entry_id
                    }
                    None => String::new(),
                })
            }
            NeedOwner::Buyers => {
                let search = BuyerServiceClient::with_interceptor(channel, credentials)
                    .open_buyer_search(OpenBuyerSearchRequest {
                        need_id: hand_off.need_id,
                        case_id: hand_off.case_id,
                        category: hand_off.category,
                        company: hand_off.company,
                        count: self.upstreams.buyers_per_need,
                        target_markets: hand_off.target_markets,
                        hs_codes: hand_off.hs_codes,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Ok(search.search_id)
            }
            NeedOwner::Referral => {
                let referral = ReferralServiceClient::with_interceptor(channel, credentials)
                    .create_referral(CreateReferralRequest {
                        need_id: hand_off.need_id,
                        case_id: hand_off.case_id,
                        category: hand_off.category,
                        company: hand_off.company,
                        target_markets: hand_off.target_markets,
                        hs_codes: hand_off.hs_codes,
                        detail: hand_off.detail,
                        ..Default::default()
                    })
                    .await?
                    .into_inner();
                Ok(referral.referral_id)
            }
        }
    }
}

/// The owner understood the call and said no, as opposed to being
/// unreachable, overloaded or failing.
fn is_refusal(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        InvalidArgument
            | FailedPrecondition
            | PermissionDenied
            | Unauthenticated
            | NotFound
            | Unimplemented
            | AlreadyExists
            | OutOfRange
    )
}

/// Doubles from [`FIRST_RETRY`] per failed attempt, capped at `max`.
fn backoff(attempts: i32, max: Duration) -> Duration {
    let doublings = attempts.saturating_sub(1).clamp(0, 20) as u32;
    FIRST_RETRY
        .saturating_mul(1 << doublings)
        .min(max.max(FIRST_RETRY))
}

struct OpenedNeed {
    hand_off: NeedHandOff,
    traceparent: String,
    tracestate: String,
}

/// The need's `need.opened` event: the hand-off exactly as announced, with
/// the trace of the request that opened it. Rebuilt from the need's row if
/// retention has already pruned the event.
async fn opened_event(
    conn: &mut PgConnection,
    case_id: Uuid,
    need_id: Uuid,
) -> anyhow::Result<OpenedNeed> {
    let rows = sqlx::query(
        "SELECT payload, traceparent, tracestate FROM event_log
          WHERE aggregate_type = 'case' AND aggregate_id = $1 AND event_type = 'need.opened'
          ORDER BY id",
    )
    .bind(case_id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    let wanted = need_id.to_string();
    for row in rows {
        let opened = pb::NeedOpened::decode(row.get::<&[u8], _>("payload"))?;
        if let Some(hand_off) = opened.hand_off.filter(|h| h.need_id == wanted) {
            return Ok(OpenedNeed {
                hand_off,
                traceparent: row.get("traceparent"),
                tracestate: row.get("tracestate"),
            });
        }
    }
    let hand_off = store::rebuild_hand_off(conn, case_id, need_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("need {need_id} vanished"))?;
    Ok(OpenedNeed {
        hand_off,
        traceparent: String::new(),
        tracestate: String::new(),
    })
}

async fn mark_delivered(
    conn: &mut PgConnection,
    need_id: Uuid,
    case_id: Uuid,
    owner: NeedOwner,
    record_id: &str,
    attempts: i32,
    now: DateTime<Utc>,
) -> anyhow::Result<()> {
    sqlx::query(
        "UPDATE need SET delivery = 'DELIVERED', delivery_attempts = $2, last_delivery_error = '',
                delivered_at = $3, owner_record_id = $4,
                status = CASE WHEN status = 'OPEN' THEN 'ROUTED' ELSE status END
          WHERE id = $1",
    )
    .bind(need_id)
    .bind(attempts)
    .bind(now)
    .bind(record_id)
    .execute(&mut *conn)
    .await?;
    store::add_timeline_entry(
        conn,
        case_id,
        Some(need_id),
        "intake",
        "need.delivered",
        &format!("Handed to {}", owner_name(owner)),
        None,
    )
    .await?;
    events::append(
        conn,
        NewEvent::new(
            "need.delivered",
            "case",
            case_id,
            &pb::NeedDelivered {
                need_id: need_id.to_string(),
                case_id: case_id.to_string(),
                owner: owner.to_proto() as i32,
                owner_record_id: record_id.to_owned(),
                attempts: attempts.max(0) as u32,
            },
        ),
    )
    .await?;
    Ok(())
}

pub fn owner_name(owner: NeedOwner) -> &'static str {
    match owner {
        NeedOwner::Mentoring => "mentoring (export advisor)",
        NeedOwner::Buyers => "buyer discovery",
        NeedOwner::Referral => "agency referral",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_caps() {
        let max = Duration::from_secs(30);
        assert_eq!(backoff(1, max), Duration::from_millis(500));
        assert_eq!(backoff(2, max), Duration::from_secs(1));
        assert_eq!(backoff(4, max), Duration::from_secs(4));
        assert_eq!(backoff(40, max), max);
        assert_eq!(backoff(3, Duration::ZERO), FIRST_RETRY);
    }

    #[test]
    fn refusals_are_told_apart_from_outages() {
        assert!(is_refusal(tonic::Code::InvalidArgument));
        assert!(is_refusal(tonic::Code::PermissionDenied));
        assert!(!is_refusal(tonic::Code::Unavailable));
        assert!(!is_refusal(tonic::Code::DeadlineExceeded));
        assert!(!is_refusal(tonic::Code::ResourceExhausted));
    }
}
