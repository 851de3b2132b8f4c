//! Trade-show leads: importing a company's leads with their follow-up
//! checkpoints, recording follow-ups, the due and reactivation lists, and
//! the need finished once its last lead leaves OPEN.

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::event_types::BuyersEvent;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{BuyersApi, READERS, SEARCHERS};
use crate::access;
use crate::domain::followup::{self, FollowUp, LeadImport, LeadQuery};
use crate::store::{self, Contacts};

impl BuyersApi {
    pub(super) async fn import_trade_show_leads(
        &self,
        caller: Caller,
        request: pb::ImportTradeShowLeadsRequest,
    ) -> ApiResult<pb::ImportTradeShowLeadsResponse> {
        caller.require(SEARCHERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "ImportTradeShowLeads",
            &request.idempotency_key,
            &request,
        )?;
        let LeadImport { show, leads } = LeadImport::try_from(&request)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        access::check_company(
            &mut tx,
            &caller,
            &show.company_id,
            "company",
            &show.company_id,
        )
        .await?;
        access::check_company_known(&mut tx, &show.company_id, "company", &show.company_id).await?;
        if let Some(first) = key
            .replay::<pb::ImportTradeShowLeadsResponse>(&mut tx)
            .await?
        {
            return Ok(first);
        }
        let show_id = store::upsert_trade_show(&mut tx, &show).await?;
        let checkpoints: Vec<_> = followup::CHECKPOINTS
            .iter()
            .map(|kind| (*kind, followup::due_at(show.date, *kind)))
            .collect();
        let (mut ids, mut created, mut existing) = (Vec::new(), 0u32, Vec::new());
        for lead in &leads {
            let inserted =
                store::insert_lead(&mut tx, show_id, &show.company_id, lead, &checkpoints, now)
                    .await?;
            let id = match inserted {
                Some(id) => {
                    created += 1;
                    id
                }
                None => {
                    existing.push(ids.len());
                    store::lead_id_by_name(
                        &mut tx,
                        show_id,
                        &lead.profile.buyer_company_name,
                        &lead.profile.country,
                    )
                    .await?
                    .ok_or_else(|| store::vanished("lead"))?
                }
            };
            ids.push(id);
        }
        let mut loaded = store::load_leads(&mut tx, &ids, Contacts::Include).await?;
        // A lead already on file answers with what this caller sent, never
        // with contacts or notes someone else stored.
        for position in existing {
            if let (Some(lead), Some(sent)) =
                (loaded.get_mut(position), request.leads.get(position))
            {
                lead.profile = Some(sent.clone());
            }
        }
        let response = pb::ImportTradeShowLeadsResponse {
            trade_show_id: show_id.to_string(),
            already_present: loaded.len() as u32 - created,
            created,
            leads: loaded,
        };
        key.record(&mut tx, &response, &show_id.to_string()).await?;
        tx.commit().await?;
        Ok(response)
    }

    pub(super) async fn record_follow_up(
        &self,
        caller: Caller,
        request: pb::RecordFollowUpRequest,
    ) -> ApiResult<pb::Lead> {
        caller.require(SEARCHERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "RecordFollowUp",
            &request.idempotency_key,
            &request,
        )?;
        let follow_up = FollowUp::try_from(&request)?;
        let id = follow_up.lead_id;
        let occurred_at = follow_up.occurred_by(self.clock.now())?;
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Lead>(&mut tx).await? {
            return Ok(first);
        }
        let company_id = store::lead_company(&mut tx, id)
            .await?
            .ok_or_else(|| ApiError::not_found("lead", id))?;
        access::check_company(&mut tx, &caller, &company_id, "lead", id).await?;
        let (status, best) = store::lock_lead(&mut tx, id)
            .await?
            .ok_or_else(|| ApiError::not_found("lead", id))?;
        let best = best.max(follow_up.outcome as i32);
        let next = followup::status_after_follow_up(status, best, follow_up.outcome)?;
        store::record_follow_up(&mut tx, id, follow_up.outcome, occurred_at, next).await?;
        let lead = store::load_leads(&mut tx, &[id], Contacts::Include)
            .await?
            .pop()
            .ok_or_else(|| store::vanished("lead"))?;
        access::audit_contacts(&mut tx, "lead", [access::lead_contacts(&lead)]).await?;
        if lead.status != pb::LeadStatus::Open as i32 {
            for need_id in store::needs_of_leads(&mut tx, &[id]).await? {
                if let Some(done) = finish_need(&mut tx, &need_id, self.clock.now()).await? {
                    events::append(&mut tx, done).await?;
                }
            }
        }
        key.record(&mut tx, &lead, &id.to_string()).await?;
        tx.commit().await?;
        Ok(lead)
    }

    pub(super) async fn list_due_follow_ups(
        &self,
        caller: Caller,
        request: pb::ListDueFollowUpsRequest,
    ) -> ApiResult<pb::ListDueFollowUpsResponse> {
        caller.require(READERS)?;
        let LeadQuery { mut filter, page } = LeadQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        filter.companies = access::reach(&mut conn, &caller).await?;
        let mut due = store::due_checkpoints(&mut conn, &filter, &page).await?;
        let next_page_token = page.finish(&mut due, |(lead, kind, at)| (*at, *lead, *kind));
        let ids: Vec<Uuid> = due.iter().map(|(lead, _, _)| *lead).collect();
        let leads = store::load_leads(&mut conn, &ids, Contacts::Omit).await?;
        let due = leads
            .into_iter()
            .zip(due)
            .map(|(lead, (_, kind, _))| {
                let checkpoint = lead.checkpoints.iter().find(|c| c.kind == kind).cloned();
                pb::LeadCheckpoint {
                    lead: Some(access::present_lead(&caller, lead)),
                    checkpoint,
                }
            })
            .collect();
        Ok(pb::ListDueFollowUpsResponse {
            due,
            next_page_token,
        })
    }

    pub(super) async fn list_reactivation_leads(
        &self,
        caller: Caller,
        request: pb::ListReactivationLeadsRequest,
    ) -> ApiResult<pb::ListReactivationLeadsResponse> {
        caller.require(READERS)?;
        let LeadQuery { mut filter, page } = LeadQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        filter.companies = access::reach(&mut conn, &caller).await?;
        let mut ids = store::reactivation_leads(&mut conn, &filter, &page).await?;
        let next_page_token = page.finish(&mut ids, |id| *id);
        let leads = store::load_leads(&mut conn, &ids, Contacts::Omit)
            .await?
            .into_iter()
            .map(|lead| access::present_lead(&caller, lead))
            .collect();
        Ok(pb::ListReactivationLeadsResponse {
            leads,
            next_page_token,
        })
    }
}

/// `tradeshow.follow_up_completed` for `need_id` when its leads no longer
/// hold it open (see [`followup::NeedLeads::finished`]) and it was not
/// raised before; marks the need's search so it never is again. Locking
/// the search first makes the moves of a need's last leads take turns: the
/// transaction that gets it second sees the first one's lead moved, so two
/// leads finished at once on two replicas raise the event once, not never.
/// Nothing for a need buyers has no open search of the category for.
pub(crate) async fn finish_need(
    conn: &mut PgConnection,
    need_id: &str,
    now: DateTime<Utc>,
) -> Result<Option<NewEvent>, sqlx::Error> {
    let Some(search) = store::lock_search_by_need(conn, need_id).await? else {
        return Ok(None);
    };
    if search.closed || !followup::finished_by_leads(&search.category) {
        return Ok(None);
    }
    let leads = store::need_leads(conn, need_id, &search.company_id).await?;
    if !leads.finished() || !store::complete_follow_up(conn, search.id, now).await? {
        return Ok(None);
    }
    let count = |n: i64| u32::try_from(n).unwrap_or(u32::MAX);
    Ok(Some(NewEvent::new(
        BuyersEvent::FollowUpCompleted,
        search.id,
        &pb::TradeShowFollowUpCompleted {
            search_id: search.id.to_string(),
            need_id: need_id.to_owned(),
            case_id: search.case_id,
            company_id: search.company_id,
            trade_shows: count(leads.trade_shows),
            leads: count(leads.leads),
            converted: count(leads.converted),
            cadence_completed: count(leads.cadence_completed),
            reactivation: count(leads.reactivation),
        },
    )))
}
