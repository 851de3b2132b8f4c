//! The outbox relay: delivers each opened need to the service that owns it
//! and records the acknowledgement.
//!
//! Each owner has its own loop, so a hung or failing owner never delays
//! another's needs, and each loop sends up to [`LANES_PER_OWNER`] needs at
//! once: a hand-off waits on the owner's transaction, so one at a time an
//! owner's needs would be handed over at one round trip's pace however
//! many cases are opened. A need is claimed with a lease (its due time pushed
//! past any call's deadline, committed at once) and no row lock is held
//! while the owner is called: replicas never deliver one need at the same
//! time, and the need's row stays free for the feed followers. If intake
//! dies between the owner's acknowledgement and the commit, the lease runs
//! out, the need is sent again, and the owner, idempotent on the need id,
//! answers with the record it already made. A failed attempt only pushes
//! the need's next attempt back; a need the owner refuses again and again
//! is parked with the owner's reason (visible on the case, counted in
//! `onestop.intake.needs.parked`) instead of being retried forever.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1::OpenBuyerSearchRequest;
use onestop_contracts::buyers::v1::buyer_service_client::BuyerServiceClient;
use onestop_contracts::common::v1::NeedHandOff;
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::mentoring::v1::mentoring_service_client::MentoringServiceClient;
use onestop_contracts::mentoring::v1::{RequestAdvisorRequest, request_advisor_response};
use onestop_contracts::referral::v1::CreateReferralRequest;
use onestop_contracts::referral::v1::referral_service_client::ReferralServiceClient;
use onestop_domain::NeedOwner;
use onestop_platform::events::{Appending, NewEvent};
use onestop_platform::supervise::Beat;
use onestop_platform::telemetry;
use onestop_platform::time::Clock;
use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use sqlx::{PgConnection, PgPool};
use tracing::Instrument;

use crate::domain::partner::Partner;
use crate::startup::SERVICE_NAME;
use crate::store::{self, AnnouncedNeed, DueNeed};
use crate::upstreams::Upstreams;

/// How often an idle relay looks for due needs.
const IDLE_POLL: Duration = Duration::from_millis(250);
const FIRST_RETRY: Duration = Duration::from_millis(500);
/// Enough of an owner's error to act on, without storing whole payloads.
const ERROR_TEXT_LIMIT: usize = 300;
/// Tries at recording an owner's answer beyond the first.
const RECORD_TRIES: u32 = 3;
/// Refusals in a row after which a need is parked.
const PARK_AFTER_REFUSALS: i32 = 5;
/// Hand-offs in flight to one owner at a time, per replica.
pub const LANES_PER_OWNER: usize = 4;

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

impl Pass {
    fn count(&mut self, delivered: bool) {
        if delivered {
            self.delivered += 1;
        } else {
            self.failed += 1;
        }
    }
}

impl Relay {
    pub fn new(pool: PgPool, upstreams: Upstreams, clock: Arc<dyn Clock>) -> Self {
        Self {
            pool,
            upstreams,
            clock,
        }
    }

    /// The owners configured to deliver to.
    pub fn owners(&self) -> Vec<NeedOwner> {
        let owners = self.upstreams.configured_owners();
        if owners.is_empty() {
            tracing::warn!("no upstream URLs configured: needs stay undelivered");
        }
        owners
    }

    /// Delivers `owner`'s needs until shutdown, waking on every pass that
    /// found nothing due. A failure of intake's own (its database) ends the
    /// run: the supervisor starts it again after its backoff and counts it.
    pub async fn run(self: Arc<Self>, owner: NeedOwner, beat: Beat) -> anyhow::Result<()> {
        loop {
            let pass = self.deliver_due(owner).await?;
            beat.ok().await;
            let pause = if pass.delivered + pass.failed > 0 {
                Duration::ZERO
            } else {
                IDLE_POLL
            };
            tokio::select! {
                _ = beat.stopping() => return Ok(()),
                _ = tokio::time::sleep(pause) => {}
            }
        }
    }

    /// Attempts every need of `owner` due now once, in lanes that each
    /// claim the next due need when their last one is answered (claims
    /// skip each other's). An idle pass costs one claim: the other lanes
    /// open only once there is something to send, and the first need is
    /// sent beside them, so a call that hangs holds one lane.
    pub async fn deliver_due(&self, owner: NeedOwner) -> anyhow::Result<Pass> {
        let Some(first) = self.claim(owner).await? else {
            return Ok(Pass::default());
        };
        let lane = |first: Option<DueNeed>| async move {
            let mut pass = Pass::default();
            if let Some(need) = first {
                pass.count(self.deliver(need).await?);
            }
            while let Some(need) = self.claim(owner).await? {
                pass.count(self.deliver(need).await?);
            }
            anyhow::Ok(pass)
        };
        let firsts = std::iter::once(Some(first)).chain((1..LANES_PER_OWNER).map(|_| None));
        let lanes = futures_util::future::try_join_all(firsts.map(lane)).await?;
        Ok(lanes.iter().fold(Pass::default(), |total, lane| Pass {
            delivered: total.delivered + lane.delivered,
            failed: total.failed + lane.failed,
        }))
    }

    /// The next need of `owner` due now, leased to this relay.
    async fn claim(&self, owner: NeedOwner) -> anyhow::Result<Option<DueNeed>> {
        let lease = chrono::Duration::from_std(self.upstreams.lease)?;
        Ok(store::claim_due_need(&self.pool, self.clock.now(), owner, lease).await?)
    }

    /// Sends a claimed need; whether the owner acknowledged.
    async fn deliver(&self, mut need: DueNeed) -> anyhow::Result<bool> {
        let announced = announced(&self.pool, &mut need).await?;
        let span = tracing::info_span!(
            "need.hand_off",
            need_id = %need.need_id,
            owner = need.owner.as_str(),
            attempt = need.attempt,
        );
        telemetry::continue_trace(&span, &announced.traceparent, &announced.tracestate);
        let sent = self
            .send(need.owner, &announced.hand_off)
            .instrument(span.clone())
            .await;

        // The owner's answer is in hand: recording it is retried when the
        // transaction loses a deadlock to a feed follower touching the same
        // need, rather than left to the lease.
        let now = self.clock.now();
        let mut tries = 0;
        loop {
            match self
                .record(&need, &sent, now)
                .instrument(span.clone())
                .await
            {
                Ok(delivered) => return Ok(delivered),
                Err(error) if tries < RECORD_TRIES => {
                    tries += 1;
                    tracing::warn!(error = %error, tries, "recording a delivery attempt failed; again");
                }
                Err(error) => return Err(error),
            }
        }
    }

    /// Records what the owner answered: delivered (true) or a failed
    /// attempt, parked after repeated refusals (false).
    async fn record(
        &self,
        need: &DueNeed,
        sent: &Result<Acknowledged, tonic::Status>,
        now: DateTime<Utc>,
    ) -> anyhow::Result<bool> {
        // Either answer is recorded by one statement, which commits alone.
        let mut conn = self.pool.acquire().await?;
        let delivered = {
            match sent {
                Ok(acknowledged) => {
                    if mark_delivered(&mut conn, need, acknowledged, now).await? {
                        tracing::info!(attempts = need.attempt, "need delivered");
                    }
                    true
                }
                Err(status) => {
                    // A refusal will not fix itself between two quick
                    // retries (it takes a deploy or a config change), so it
                    // waits the longest, and after several in a row the
                    // need is parked with the reason on it.
                    let refused = is_refusal(status.code());
                    let wait = if refused {
                        self.upstreams.max_backoff.max(FIRST_RETRY)
                    } else {
                        backoff(need.attempt, self.upstreams.max_backoff)
                    };
                    let park = refused && need.attempt >= PARK_AFTER_REFUSALS;
                    let error: String = format!("{:?}: {}", status.code(), status.message())
                        .chars()
                        .take(ERROR_TEXT_LIMIT)
                        .collect();
                    let next_attempt_at = now + chrono::Duration::from_std(wait)?;
                    store::record_failed_attempt(&mut conn, need, &error, next_attempt_at, park)
                        .await?;
                    if park {
                        parked_counter().add(1, &[KeyValue::new("owner", need.owner.as_str())]);
                        tracing::error!(attempts = need.attempt, code = ?status.code(), "need refused again and again by its owner; parked");
                    } else {
                        tracing::warn!(attempts = need.attempt, code = ?status.code(), retry_in = ?wait, "need delivery failed");
                    }
                    false
                }
            }
        };
        Ok(delivered)
    }

    /// Calls the owner; `Ok` carries the record it made (or had already
    /// made) for the need.
    async fn send(
        &self,
        owner: NeedOwner,
        hand_off: &NeedHandOff,
    ) -> Result<Acknowledged, tonic::Status> {
        let channel = self
            .upstreams
            .channel(owner)
            .cloned()
            .ok_or_else(|| tonic::Status::unavailable("owner not configured"))?;
        let credentials = self.upstreams.credentials.clone();
        let hand_off = hand_off.clone();
        match owner {
            NeedOwner::Mentoring => {
                let export_countries = hand_off
                    .company
                    .as_ref()
                    .map(|company| company.export_countries.as_slice())
                    .unwrap_or_default();
                let languages_needed = crate::domain::markets::languages_needed(
                    &hand_off.target_markets,
                    export_countries,
                );
                let response = MentoringServiceClient::with_interceptor(channel, credentials)
                    .request_advisor(RequestAdvisorRequest {
                        need_id: hand_off.need_id,
                        case_id: hand_off.case_id,
                        category: hand_off.category,
                        company: hand_off.company,
                        languages_needed,
                        target_markets: hand_off.target_markets,
                        hs_codes: hand_off.hs_codes,
                        detail: hand_off.detail,
                    })
                    .await?
                    .into_inner();
                Ok(match response.outcome {
                    Some(request_advisor_response::Outcome::Assigned(assignment))
                    | Some(request_advisor_response::Outcome::AlreadyAssigned(assignment)) => {
                        Acknowledged {
                            record_id: assignment.assignment_id,
                            partner: Some(Partner::advisor(&assignment.advisor_id)),
                        }
                    }
                    Some(request_advisor_response::Outcome::Waitlisted(entry)) => {
                        Acknowledged::record(entry.waitlist_entry_id)
                    }
                    None => Acknowledged::record(String::new()),
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
                Ok(Acknowledged::record(search.search_id))
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
                        preferred_program_id: hand_off.program_id,
                    })
                    .await?
                    .into_inner();
                // The agency whose program holds the referral now (at first
                // the program the need named, when it was eligible); none
                // while it waits for a program.
                let agency = referral
                    .legs
                    .last()
                    .filter(|leg| crate::domain::owner_events::leg_holds(leg))
                    .map(|leg| Partner::agency(&leg.agency_id));
                Ok(Acknowledged {
                    record_id: referral.referral_id,
                    partner: agency,
                })
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
    onestop_platform::supervise::doubling(FIRST_RETRY, attempts.max(0) as u32, max)
}

/// The hand-off as `need.opened` announced it (the claim read it, with the
/// need's detail, which the feed never carries) and the trace of the
/// request that opened the need; rebuilt from the need's row if retention
/// has already pruned the event.
async fn announced(pool: &PgPool, need: &mut DueNeed) -> anyhow::Result<AnnouncedNeed> {
    if let Some(announced) = need.announced.take() {
        return Ok(announced);
    }
    let hand_off = store::rebuild_hand_off(&mut *pool.acquire().await?, need.case_id, need.need_id)
        .await?
        .ok_or_else(|| anyhow::anyhow!("need {} vanished", need.need_id))?;
    Ok(AnnouncedNeed {
        hand_off,
        traceparent: String::new(),
        tracestate: String::new(),
    })
}

/// What an owner answered a hand-off with: its record for the need and,
/// when it names one, the partner now serving the need (the advisor
/// assigned, the agency the referral went to).
#[derive(Debug)]
struct Acknowledged {
    record_id: String,
    partner: Option<Partner>,
}

impl Acknowledged {
    fn record(record_id: String) -> Self {
        Self {
            record_id,
            partner: None,
        }
    }
}

/// The owner's acknowledgement, with its timeline line and event, once:
/// false when the need was already delivered. The event names the
/// company's partners and the partner serving the need, which intake
/// records as one only when the owner's own event comes back on its feed.
async fn mark_delivered(
    conn: &mut PgConnection,
    need: &DueNeed,
    acknowledged: &Acknowledged,
    now: DateTime<Utc>,
) -> anyhow::Result<bool> {
    let record_id = acknowledged.record_id.as_str();
    let delivered = IntakeEvent::NeedDelivered;
    let line = store::DeliveryLine {
        service: SERVICE_NAME,
        kind: delivered.name(),
        summary: &format!("Handed to {}", owner_name(need.owner)),
    };
    let event = NewEvent::new(
        delivered,
        need.case_id,
        &pb::NeedDelivered {
            need_id: need.need_id.to_string(),
            case_id: need.case_id.to_string(),
            owner: need.owner.to_proto() as i32,
            owner_record_id: record_id.to_owned(),
            attempts: need.attempt.max(0) as u32,
        },
    )
    .for_partners(acknowledged.partner.as_ref().map(Partner::on_feed));
    let event = Appending::new([event]);
    Ok(store::mark_delivered(conn, need, record_id, now, &line, event).await?)
}

/// Needs parked after being refused again and again, by owner.
fn parked_counter() -> &'static Counter<u64> {
    static COUNTER: OnceLock<Counter<u64>> = OnceLock::new();
    COUNTER.get_or_init(|| {
        opentelemetry::global::meter("onestop-intake")
            .u64_counter("onestop.intake.needs.parked")
            .with_description(
                "Needs no longer tried because their owner refused them again and again",
            )
            .build()
    })
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
