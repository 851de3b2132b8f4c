//! Consultations: free slots inside both parties' business hours, and
//! booking one, which moves an INTRODUCED match to MEETING_SCHEDULED.

use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::event_types::BuyersEvent;
use onestop_platform::error::is_unique_violation;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::time::to_timestamp;
use onestop_platform::{ApiError, ApiResult, Caller};
use uuid::Uuid;

use super::matches::{advanced_event, match_status};
use super::{BuyersApi, MATCH_WRITERS, office_match};
use crate::domain::buyer;
use crate::domain::lifecycle::MatchStatus;
use crate::domain::slots::{self, Booking, BusinessHours, SlotQuery};
use crate::store::{self, Lock, Transition};

/// The buyer of a match that is open for consultations, with its zone.
struct Parties {
    buyer_id: Uuid,
    zone: chrono_tz::Tz,
    status: MatchStatus,
}

/// Checks that `m` may have a consultation arranged and names its buyer.
fn parties(m: &pb::Match) -> ApiResult<Parties> {
    let status = match_status(m)?;
    status.check_consultation()?;
    let buyer = m.buyer.as_ref();
    let zone = buyer
        .and_then(|b| buyer::parse_time_zone(&b.time_zone).ok())
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("stored buyer zone does not parse")))?;
    let buyer_id = buyer
        .and_then(|b| Uuid::parse_str(&b.buyer_id).ok())
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("match without its buyer")))?;
    Ok(Parties {
        buyer_id,
        zone,
        status,
    })
}

impl BuyersApi {
    pub(super) async fn list_consultation_slots(
        &self,
        caller: Caller,
        request: pb::ListConsultationSlotsRequest,
    ) -> ApiResult<pb::ListConsultationSlotsResponse> {
        caller.require(MATCH_WRITERS)?;
        let SlotQuery {
            match_id: id,
            from,
            to,
            coverage,
        } = SlotQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        let found = office_match(&mut conn, &caller, id, Lock::None).await?;
        let Parties { buyer_id, zone, .. } = parties(&found)?;
        let booked = store::booked_starts(&mut conn, buyer_id, &found.company_id, from, to).await?;
        let hours = BusinessHours::default();
        let free: Vec<_> = slots::slots_between(from, to, zone, hours, coverage)
            .into_iter()
            .filter(|slot| !booked.contains(&slot.start))
            .map(|slot| slot.to_proto(zone))
            .collect();
        // An empty list alone reads as "nobody is free"; say which it is.
        let (reason, hint) = if free.is_empty() {
            slots::why_none_free(from, to, zone, hours, coverage)
        } else {
            (pb::NoSlotsReason::Unspecified, String::new())
        };
        Ok(pb::ListConsultationSlotsResponse {
            slots: free,
            no_slots_reason: reason as i32,
            hint,
        })
    }

    pub(super) async fn book_consultation(
        &self,
        caller: Caller,
        request: pb::BookConsultationRequest,
    ) -> ApiResult<pb::Consultation> {
        caller.require(MATCH_WRITERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "BookConsultation",
            &request.idempotency_key,
            &request,
        )?;
        let Booking {
            match_id: id,
            start,
            interpreter_language,
            coverage,
        } = Booking::try_from(&request)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Consultation>(&mut tx).await? {
            return Ok(first);
        }
        let found = office_match(&mut tx, &caller, id, Lock::ForUpdate).await?;
        let Parties {
            buyer_id,
            zone,
            status,
        } = parties(&found)?;
        let Some(slot) = slots::slot_at(start, zone, BusinessHours::default(), coverage) else {
            return Err(ApiError::invalid(
                "start_time",
                "not a slot: starts must sit on the half hour inside both parties' business hours \
                 (Korean night hours need overseas_desk)",
            ));
        };
        if slot.start <= now {
            return Err(ApiError::invalid("start_time", "must be in the future"));
        }
        let consultation_id = Uuid::now_v7();
        let inserted = store::insert_consultation(
            &mut tx,
            &store::NewConsultation {
                id: consultation_id,
                matched: &found,
                buyer_id,
                start: slot.start,
                end: slot.end,
                buyer_time_zone: zone.name(),
                interpreter_language: &interpreter_language,
                overseas_desk: slot.overseas_desk,
            },
            now,
        )
        .await;
        if let Err(error) = inserted {
            if is_unique_violation(&error) {
                return Err(ApiError::AlreadyExists {
                    reason: "SLOT_TAKEN",
                    message: "the buyer or the company already has a consultation in this slot"
                        .into(),
                    metadata: vec![],
                });
            }
            return Err(error.into());
        }
        let mut new_events = Vec::new();
        if status == MatchStatus::Introduced {
            let step = Transition {
                from: status,
                to: MatchStatus::MeetingScheduled,
                reason: None,
                actor: &caller.subject,
                note: "consultation booked",
            };
            store::move_match(&mut tx, id, &step, now).await?;
            new_events.push(advanced_event(&found, &step));
        }
        new_events.push(NewEvent::new(
            BuyersEvent::ConsultationBooked,
            id,
            &pb::ConsultationBooked {
                consultation_id: consultation_id.to_string(),
                match_id: id.to_string(),
                need_id: found.need_id.clone(),
                company_id: found.company_id.clone(),
                buyer_id: buyer_id.to_string(),
                start_time: Some(to_timestamp(slot.start)),
                end_time: Some(to_timestamp(slot.end)),
                buyer_time_zone: zone.name().to_owned(),
                interpreter_language: interpreter_language.clone(),
                overseas_desk: slot.overseas_desk,
                case_id: found.case_id.clone(),
            },
        ));
        events::append_all(&mut tx, new_events).await?;
        let consultation = pb::Consultation {
            consultation_id: consultation_id.to_string(),
            match_id: id.to_string(),
            company_id: found.company_id.clone(),
            buyer_id: buyer_id.to_string(),
            slot: Some(slot.to_proto(zone)),
            interpreter_language,
            booked_at: Some(to_timestamp(now)),
        };
        key.record(&mut tx, &consultation, &id.to_string()).await?;
        tx.commit().await?;
        Ok(consultation)
    }
}
