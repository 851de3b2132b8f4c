//! Matches and deals: reading and listing matches, moving them along the
//! lifecycle, recording a deal and the company's confirmation of it.

use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::event_types::BuyersEvent;
use onestop_platform::error::parse_id;
use onestop_platform::events::{self, NewEvent, Partner};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller, Role};
use uuid::Uuid;

use super::{
    BuyersApi, COMPANY_SIDE, MATCH_WRITERS, READERS, listed_office, match_buyer_id, office_match,
};
use crate::access;
use crate::domain::lifecycle::MatchStatus;
use crate::domain::matches::{Advance, DealDispute, MatchListQuery, NewDeal, UnconfirmedDealQuery};
use crate::store::{self, Lock, Transition};

/// The deal, locked; NOT_FOUND when there is none or, with `company_id`
/// named, when it is another company's.
async fn company_deal(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    company_id: &str,
) -> ApiResult<pb::Deal> {
    store::load_deal(conn, id, Lock::ForUpdate)
        .await?
        .filter(|deal| company_id.is_empty() || deal.company_id == company_id)
        .ok_or_else(|| ApiError::not_found("deal", id))
}

/// The company's answer on a deal a trade office recorded.
enum DealAnswer {
    Confirm,
    Dispute(DealDispute),
}

/// Who may list unconfirmed deals.
const DEAL_READERS: &[Role] = &[
    Role::TradeOffice,
    Role::Service,
    Role::Admin,
    Role::Dashboard,
];

pub(crate) fn match_status(m: &pb::Match) -> ApiResult<MatchStatus> {
    MatchStatus::from_proto(m.status)
        .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("match with unknown status")))
}

/// The match.advanced event of `m` taking `step`.
pub(crate) fn advanced_event(m: &pb::Match, step: &Transition) -> NewEvent {
    NewEvent::new(
        BuyersEvent::MatchAdvanced,
        &m.match_id,
        &pb::MatchAdvanced {
            match_id: m.match_id.clone(),
            need_id: m.need_id.clone(),
            case_id: m.case_id.clone(),
            company_id: m.company_id.clone(),
            buyer_id: match_buyer_id(m),
            from: step.from.to_proto() as i32,
            to: step.to.to_proto() as i32,
            no_deal_reason: step.reason.map(|r| r as i32).unwrap_or_default(),
        },
    )
    .for_partners(match_office(m))
}

/// A match belongs to the trade office that found its buyer.
fn match_office(m: &pb::Match) -> Option<Partner> {
    m.buyer
        .as_ref()
        .map(|buyer| Partner::trade_office(&buyer.trade_office_id))
}

impl BuyersApi {
    pub(super) async fn get_match(
        &self,
        caller: Caller,
        request: pb::GetMatchRequest,
    ) -> ApiResult<pb::Match> {
        caller.require(READERS)?;
        let id = parse_id("match_id", &request.match_id)?;
        let mut conn = self.pool.acquire().await?;
        let found = office_match(&mut conn, &caller, id, Lock::None).await?;
        Ok(access::present_match(&caller, found))
    }

    pub(super) async fn list_matches(
        &self,
        caller: Caller,
        request: pb::ListMatchesRequest,
    ) -> ApiResult<pb::ListMatchesResponse> {
        caller.require(READERS)?;
        let MatchListQuery { mut filter, page } = MatchListQuery::try_from(&request)?;
        filter.office = listed_office(&caller, filter.office);
        let mut conn = self.pool.acquire().await?;
        // A trade office's listing is its own buyers' matches already.
        if caller.role != Role::TradeOffice {
            filter.companies = access::reach(&mut conn, &caller).await?;
        }
        let mut matches = store::list_matches(&mut conn, &filter, &page).await?;
        let next_page_token = page.finish(&mut matches, |(id, _)| *id);
        Ok(pb::ListMatchesResponse {
            matches: matches
                .into_iter()
                .map(|(_, m)| access::present_match(&caller, m))
                .collect(),
            next_page_token,
        })
    }

    pub(super) async fn advance_match(
        &self,
        caller: Caller,
        request: pb::AdvanceMatchRequest,
    ) -> ApiResult<pb::Match> {
        caller.require(MATCH_WRITERS)?;
        let key = IdempotencyKey::new(&caller, "AdvanceMatch", &request.idempotency_key, &request)?;
        let Advance {
            match_id: id,
            to,
            expected,
            reason,
            note,
        } = Advance::try_from(&request)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Match>(&mut tx).await? {
            return Ok(first);
        }
        let current = office_match(&mut tx, &caller, id, Lock::ForUpdate).await?;
        let from = match_status(&current)?;
        from.check_advance(to, expected)?;
        let step = Transition {
            from,
            to,
            reason,
            actor: &caller.subject,
            note: &note,
        };
        store::move_match(&mut tx, id, &step, now).await?;
        events::append(&mut tx, advanced_event(&current, &step)).await?;
        let updated = store::load_match(&mut tx, id, Lock::None)
            .await?
            .ok_or_else(|| store::vanished("match"))?;
        key.record(&mut tx, &updated, &id.to_string()).await?;
        tx.commit().await?;
        Ok(updated)
    }

    pub(super) async fn record_deal(
        &self,
        caller: Caller,
        request: pb::RecordDealRequest,
    ) -> ApiResult<pb::Deal> {
        caller.require(MATCH_WRITERS)?;
        let key = IdempotencyKey::new(&caller, "RecordDeal", &request.idempotency_key, &request)?;
        let deal = NewDeal::try_from(&request)?;
        let id = deal.match_id;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Deal>(&mut tx).await? {
            return Ok(first);
        }
        let current = office_match(&mut tx, &caller, id, Lock::ForUpdate).await?;
        let from = match_status(&current)?;
        from.check_deal()?;
        let deal_id = Uuid::now_v7();
        store::insert_deal(&mut tx, deal_id, &current, &deal, &caller.subject, now).await?;
        let step = Transition {
            from,
            to: MatchStatus::Deal,
            reason: None,
            actor: &caller.subject,
            note: &deal.note,
        };
        store::move_match(&mut tx, id, &step, now).await?;
        events::append_all(
            &mut tx,
            [
                advanced_event(&current, &step),
                NewEvent::new(
                    BuyersEvent::DealRecorded,
                    id,
                    &pb::DealRecorded {
                        deal_id: deal_id.to_string(),
                        match_id: id.to_string(),
                        need_id: current.need_id.clone(),
                        company_id: current.company_id.clone(),
                        buyer_id: match_buyer_id(&current),
                        deal_type: deal.deal_type as i32,
                        value: Some(deal.value.to_proto()),
                        case_id: current.case_id.clone(),
                    },
                )
                .for_partners(match_office(&current)),
            ],
        )
        .await?;
        let recorded = store::load_deal(&mut tx, deal_id, Lock::None)
            .await?
            .ok_or_else(|| store::vanished("deal"))?;
        key.record(&mut tx, &recorded, &id.to_string()).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    pub(super) async fn confirm_deal(
        &self,
        caller: Caller,
        request: pb::ConfirmDealRequest,
    ) -> ApiResult<pb::Deal> {
        caller.require(COMPANY_SIDE)?;
        let key = IdempotencyKey::new(&caller, "ConfirmDeal", &request.idempotency_key, &request)?;
        let id = parse_id("deal_id", &request.deal_id)?;
        self.answer_deal(key, id, &request.company_id, DealAnswer::Confirm)
            .await
    }

    pub(super) async fn dispute_deal(
        &self,
        caller: Caller,
        request: pb::DisputeDealRequest,
    ) -> ApiResult<pb::Deal> {
        caller.require(COMPANY_SIDE)?;
        let key = IdempotencyKey::new(&caller, "DisputeDeal", &request.idempotency_key, &request)?;
        let dispute = DealDispute::try_from(&request)?;
        self.answer_deal(
            key,
            dispute.deal_id,
            &request.company_id,
            DealAnswer::Dispute(dispute),
        )
        .await
    }

    /// Records the company's answer on deal `id` with its event, in one
    /// transaction.
    async fn answer_deal(
        &self,
        key: IdempotencyKey,
        id: Uuid,
        company_id: &str,
        answer: DealAnswer,
    ) -> ApiResult<pb::Deal> {
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Deal>(&mut tx).await? {
            return Ok(first);
        }
        let deal = company_deal(&mut tx, id, company_id).await?;
        // The same answer again changes nothing; the other one is refused.
        let (given, other, (reason, other_answer)) = match answer {
            DealAnswer::Confirm => (
                deal.confirmed,
                deal.disputed_at.is_some(),
                ("DEAL_DISPUTED", "disputed"),
            ),
            DealAnswer::Dispute(_) => (
                deal.disputed_at.is_some(),
                deal.confirmed,
                ("DEAL_CONFIRMED", "confirmed"),
            ),
        };
        if given {
            return Ok(deal);
        }
        if other {
            return Err(ApiError::failed_precondition(
                reason,
                format!("deal {id} was {other_answer} by the company"),
            ));
        }
        let now = self.clock.now();
        let event = match &answer {
            DealAnswer::Confirm => {
                store::confirm_deal(&mut tx, id, now).await?;
                NewEvent::new(
                    BuyersEvent::DealConfirmed,
                    &deal.match_id,
                    &pb::DealConfirmed {
                        deal_id: deal.deal_id.clone(),
                        match_id: deal.match_id.clone(),
                        need_id: deal.need_id.clone(),
                        company_id: deal.company_id.clone(),
                        buyer_id: deal.buyer_id.clone(),
                        case_id: deal.case_id.clone(),
                    },
                )
            }
            DealAnswer::Dispute(DealDispute { reason, note, .. }) => {
                store::dispute_deal(&mut tx, id, *reason, note, now).await?;
                NewEvent::new(
                    BuyersEvent::DealDisputed,
                    &deal.match_id,
                    &pb::DealDisputed {
                        deal_id: deal.deal_id.clone(),
                        match_id: deal.match_id.clone(),
                        need_id: deal.need_id.clone(),
                        company_id: deal.company_id.clone(),
                        buyer_id: deal.buyer_id.clone(),
                        case_id: deal.case_id.clone(),
                        reason: *reason as i32,
                    },
                )
            }
        };
        events::append(
            &mut tx,
            event.for_partners([Partner::trade_office(&deal.trade_office_id)]),
        )
        .await?;
        if let DealAnswer::Dispute(DealDispute { reason, .. }) = &answer {
            tracing::info!(deal_id = %id, reason = reason.as_str_name(), "deal disputed by the company");
        }
        // The deal as the answer left it, kept for retries under the key.
        let answered = store::load_deal(&mut tx, id, Lock::None)
            .await?
            .ok_or_else(|| store::vanished("deal"))?;
        key.record(&mut tx, &answered, &answered.match_id).await?;
        tx.commit().await?;
        Ok(answered)
    }

    pub(super) async fn list_unconfirmed_deals(
        &self,
        caller: Caller,
        request: pb::ListUnconfirmedDealsRequest,
    ) -> ApiResult<pb::ListUnconfirmedDealsResponse> {
        caller.require(DEAL_READERS)?;
        let UnconfirmedDealQuery { mut filter, page } = UnconfirmedDealQuery::try_from(&request)?;
        filter.office = listed_office(&caller, filter.office);
        let mut conn = self.pool.acquire().await?;
        let mut deals = store::list_unconfirmed_deals(&mut conn, &filter, &page).await?;
        let next_page_token = page.finish(&mut deals, |(key, _)| *key);
        Ok(pb::ListUnconfirmedDealsResponse {
            deals: deals
                .into_iter()
                .map(|(_, deal)| access::present_deal(&caller, deal))
                .collect(),
            next_page_token,
        })
    }
}
