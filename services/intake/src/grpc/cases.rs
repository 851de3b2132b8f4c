//! Cases: opening one with its needs, adding and cancelling needs,
//! closing it, reads and listings.

use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_platform::error::{parse_id, retry_aborted};
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller, Role};
use sqlx::{Postgres, Transaction};
use uuid::Uuid;

use super::companies::vanished;
use super::{IntakeApi, READERS, WRITERS};
use crate::domain::case::{
    self, CaseClosing, CaseQuery, CaseStatus, CloseCause, DeliveryRetry, NeedCancellation,
    NeedStatus, NeedsQuery, NewCase, NewNeeds, Standing,
};
use crate::domain::company::{snapshot, stage_of};
use crate::domain::partner::Partner;
use crate::handoff::owner_name;
use crate::startup::SERVICE_NAME;
use crate::store::{self, Lock, NeedToOpen, NewEntry};
use crate::{access, lifecycle, needs, relationships};

/// A change to an existing case, begun.
enum Started {
    /// The first answer to a retried request.
    Replay(pb::Case),
    /// The transaction with the case locked, its company and status.
    Change(Transaction<'static, Postgres>, Uuid, CaseStatus),
}

/// Commits the change and answers with the case as it left it, kept for
/// retries under the caller's idempotency key (forgotten with the
/// company's personal data).
async fn finish_change(
    mut tx: Transaction<'static, Postgres>,
    key: &IdempotencyKey,
    case_id: Uuid,
    company_id: Uuid,
) -> ApiResult<pb::Case> {
    let case = store::load_case(&mut tx, case_id)
        .await?
        .ok_or_else(|| vanished("case"))?;
    key.record(&mut tx, &case, &company_id.to_string()).await?;
    tx.commit().await?;
    Ok(case)
}

fn need_finished(need_id: Uuid, status: NeedStatus) -> ApiError {
    ApiError::failed_precondition(
        "NEED_FINISHED",
        format!("need {need_id} is already {}", status.as_str()),
    )
}

fn case_closed(case_id: Uuid) -> ApiError {
    ApiError::failed_precondition("CASE_CLOSED", format!("case {case_id} is closed"))
}

impl IntakeApi {
    pub(super) async fn open_case(
        &self,
        caller: Caller,
        request: pb::OpenCaseRequest,
    ) -> ApiResult<pb::Case> {
        caller.require(WRITERS)?;
        let key = IdempotencyKey::new(&caller, "OpenCase", &request.idempotency_key, &request)?;
        let NewCase { company_id, needs } = NewCase::try_from(&request)?;

        let mut tx = self.pool.begin().await?;
        let partner = Partner::of(&caller);
        let opening = store::lock_for_case(&mut tx, company_id, partner.as_ref())
            .await?
            .ok_or_else(|| ApiError::not_found("company", company_id))?;
        let consented_case = access::case_opening_decided(
            &caller,
            company_id,
            opening.consented,
            opening.works_with,
        )?;
        if let Some(first) = key.replay::<pb::Case>(&mut tx).await? {
            return Ok(first);
        }
        // An agency opening a case under the company's consent works with
        // it from now on.
        let mut partners = opening.partners;
        if let Some(relationship) = consented_case
            && relationships::record(&mut tx, &relationship).await?
        {
            partners.push(relationship.partner);
        }
        let company = opening.company;
        // Planned as if the company had no open mentoring need: the one the
        // rule adds is stored only if that still holds when it is written.
        let standing = Standing {
            stage: stage_of(&company),
            small_merchant: company.profile.as_ref().is_some_and(|p| p.small_merchant),
            has_open_mentoring_need: false,
        };
        let owners = store::owners_from(&opening.owners)?;
        let planned = case::plan(needs, standing, &owners);

        let case_id = Uuid::now_v7();
        let opened = IntakeEvent::CaseOpened;
        let to_open: Vec<NeedToOpen> = planned
            .iter()
            .map(|need| NeedToOpen {
                need_id: Uuid::now_v7(),
                need,
                summary: needs::summary(need),
            })
            .collect();
        let stored = store::insert_opened_case(
            &mut tx,
            case_id,
            company_id,
            &to_open,
            opened.name(),
            IntakeEvent::NeedOpened.name(),
            SERVICE_NAME,
        )
        .await?;
        let snapshot = snapshot(&company);
        let mut new_events = vec![NewEvent::new(
            opened,
            case_id,
            &pb::CaseOpened {
                case_id: case_id.to_string(),
                company_id: company_id.to_string(),
                need_ids: stored.needs.iter().map(|(id, _)| id.to_string()).collect(),
            },
        )];
        // The stored needs are the planned ones in order, less perhaps the
        // last (the rule's mentoring need).
        new_events.extend(to_open.iter().zip(&stored.needs).map(
            |(to_open, (need_id, opened_at))| {
                needs::opened_event(case_id, *need_id, to_open.need, &snapshot, *opened_at)
            },
        ));
        events::append_all(&mut tx, relationships::name_partners(new_events, &partners)).await?;
        let case = stored.case;
        key.record(&mut tx, &case, &company_id.to_string()).await?;
        tx.commit().await?;
        tracing::info!(case_id = %case_id, needs = stored.needs.len(), "case opened");
        Ok(case)
    }

    pub(super) async fn add_needs(
        &self,
        caller: Caller,
        request: pb::AddNeedsRequest,
    ) -> ApiResult<pb::Case> {
        retry_aborted(|| self.add_needs_once(&caller, &request)).await
    }

    async fn add_needs_once(
        &self,
        caller: &Caller,
        request: &pb::AddNeedsRequest,
    ) -> ApiResult<pb::Case> {
        caller.require(WRITERS)?;
        let key = IdempotencyKey::new(caller, "AddNeeds", &request.idempotency_key, request)?;
        let NewNeeds { case_id, needs } = NewNeeds::try_from(request)?;

        let (mut tx, company_id) = match self.start_change(caller, &key, case_id).await? {
            Started::Replay(first) => return Ok(first),
            Started::Change(_, _, CaseStatus::Closed) => return Err(case_closed(case_id)),
            Started::Change(tx, company_id, CaseStatus::Open) => (tx, company_id),
        };
        let company = store::load_company(&mut tx, company_id, Lock::None)
            .await?
            .ok_or_else(|| vanished("company"))?;
        let snapshot = snapshot(&company);
        let first_position = store::next_need_position(&mut tx, case_id).await?;
        let owners = store::category_owners(&mut tx).await?;
        let planned = case::route(needs, &owners);
        let mut need_events = Vec::with_capacity(planned.len());
        for (offset, need) in planned.iter().enumerate() {
            let (_, event) =
                needs::open_need(&mut tx, case_id, first_position + offset, need, &snapshot)
                    .await?;
            need_events.push(event);
        }
        relationships::append_for_case(&mut tx, case_id, need_events).await?;
        let case = finish_change(tx, &key, case_id, company_id).await?;
        tracing::info!(case_id = %case_id, needs = planned.len(), "needs added");
        Ok(case)
    }

    pub(super) async fn cancel_need(
        &self,
        caller: Caller,
        request: pb::CancelNeedRequest,
    ) -> ApiResult<pb::Case> {
        retry_aborted(|| self.cancel_need_once(&caller, &request)).await
    }

    async fn cancel_need_once(
        &self,
        caller: &Caller,
        request: &pb::CancelNeedRequest,
    ) -> ApiResult<pb::Case> {
        caller.require(WRITERS)?;
        let key = IdempotencyKey::new(caller, "CancelNeed", &request.idempotency_key, request)?;
        let NeedCancellation {
            case_id,
            need_id,
            reason,
        } = NeedCancellation::try_from(request)?;

        let (mut tx, company_id) = match self.start_change(caller, &key, case_id).await? {
            Started::Replay(first) => return Ok(first),
            Started::Change(tx, company_id, _) => (tx, company_id),
        };
        let need = store::lock_need(&mut tx, case_id, need_id)
            .await?
            .ok_or_else(|| ApiError::not_found("need", need_id))?;
        if need.status.is_finished() {
            return Err(need_finished(need_id, need.status));
        }
        lifecycle::cancel_need(
            &mut tx,
            case_id,
            &need,
            &reason,
            lifecycle::CANCELLED_BY_PARTNER,
        )
        .await?;
        lifecycle::close_if_finished(&mut tx, case_id, company_id).await?;
        let case = finish_change(tx, &key, case_id, company_id).await?;
        tracing::info!(case_id = %case_id, need_id = %need_id, "need cancelled");
        Ok(case)
    }

    pub(super) async fn close_case(
        &self,
        caller: Caller,
        request: pb::CloseCaseRequest,
    ) -> ApiResult<pb::Case> {
        retry_aborted(|| self.close_case_once(&caller, &request)).await
    }

    async fn close_case_once(
        &self,
        caller: &Caller,
        request: &pb::CloseCaseRequest,
    ) -> ApiResult<pb::Case> {
        caller.require(WRITERS)?;
        let key = IdempotencyKey::new(caller, "CloseCase", &request.idempotency_key, request)?;
        let CaseClosing {
            case_id,
            outcome_summary,
        } = CaseClosing::try_from(request)?;

        let (mut tx, company_id) = match self.start_change(caller, &key, case_id).await? {
            Started::Replay(first) => return Ok(first),
            Started::Change(_, _, CaseStatus::Closed) => return Err(case_closed(case_id)),
            Started::Change(tx, company_id, CaseStatus::Open) => (tx, company_id),
        };
        for need in store::lock_unfinished_needs(&mut tx, case_id).await? {
            lifecycle::cancel_need(
                &mut tx,
                case_id,
                &need,
                lifecycle::CLOSED_WITH_CASE,
                IntakeEvent::CaseClosed.name(),
            )
            .await?;
        }
        lifecycle::close_case(
            &mut tx,
            case_id,
            company_id,
            CloseCause::ClosedByPartner,
            &outcome_summary,
        )
        .await?;
        let case = finish_change(tx, &key, case_id, company_id).await?;
        Ok(case)
    }

    /// Begins a change to an existing case: the caller may change it, and
    /// a retry under the same key gets the first answer; otherwise the
    /// case is locked (see `store::lock_case_status`).
    async fn start_change(
        &self,
        caller: &Caller,
        key: &IdempotencyKey,
        case_id: Uuid,
    ) -> ApiResult<Started> {
        let mut tx = self.pool.begin().await?;
        access::case_view(&mut tx, caller, case_id).await?;
        if let Some(first) = key.replay::<pb::Case>(&mut tx).await? {
            return Ok(Started::Replay(first));
        }
        let (company_id, status) = store::lock_case_status(&mut tx, case_id)
            .await?
            .ok_or_else(|| ApiError::not_found("case", case_id))?;
        Ok(Started::Change(tx, company_id, status))
    }

    pub(super) async fn get_case(
        &self,
        caller: Caller,
        request: pb::GetCaseRequest,
    ) -> ApiResult<pb::Case> {
        caller.require(READERS)?;
        let case_id = parse_id("case_id", &request.case_id)?;
        let mut conn = self.pool.acquire().await?;
        access::case_view(&mut conn, &caller, case_id).await?;
        let case = store::load_case(&mut conn, case_id)
            .await?
            .ok_or_else(|| ApiError::not_found("case", case_id))?;
        Ok(access::present_case(&caller, case))
    }

    pub(super) async fn list_cases(
        &self,
        caller: Caller,
        request: pb::ListCasesRequest,
    ) -> ApiResult<pb::ListCasesResponse> {
        caller.require(READERS)?;
        let CaseQuery { filter, page } = CaseQuery::try_from(&request)?;
        let partner = access::listing_partner(&caller);
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_cases(&mut conn, &filter, partner.as_ref(), &page).await?;
        let next_page_token = page.finish(&mut rows, |(id, _)| *id);
        Ok(pb::ListCasesResponse {
            cases: rows
                .into_iter()
                .map(|(_, case)| access::present_case(&caller, case))
                .collect(),
            next_page_token,
        })
    }

    pub(super) async fn list_case_needs(
        &self,
        caller: Caller,
        request: pb::ListCaseNeedsRequest,
    ) -> ApiResult<pb::ListCaseNeedsResponse> {
        caller.require(READERS)?;
        let NeedsQuery { case_id, page } = NeedsQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        access::case_view(&mut conn, &caller, case_id).await?;
        let mut rows = store::list_needs(&mut conn, case_id, &page).await?;
        let next_page_token = page.finish(&mut rows, |(position, _)| *position);
        Ok(pb::ListCaseNeedsResponse {
            needs: rows
                .into_iter()
                .map(|(_, need)| access::present_need(&caller, need))
                .collect(),
            next_page_token,
        })
    }

    pub(super) async fn retry_need_delivery(
        &self,
        caller: Caller,
        request: pb::RetryNeedDeliveryRequest,
    ) -> ApiResult<pb::Need> {
        // Only an operator knows whether what made the owner refuse the
        // need has been put right.
        caller.require(&[Role::Admin])?;
        let key = IdempotencyKey::new(
            &caller,
            "RetryNeedDelivery",
            &request.idempotency_key,
            &request,
        )?;
        let DeliveryRetry { case_id, need_id } = DeliveryRetry::try_from(&request)?;

        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Need>(&mut tx).await? {
            return Ok(first);
        }
        let company_id = store::company_of_case(&mut tx, case_id)
            .await?
            .ok_or_else(|| ApiError::not_found("case", case_id))?;
        let need = store::lock_delivery(&mut tx, case_id, need_id)
            .await?
            .ok_or_else(|| ApiError::not_found("need", need_id))?;
        if need.status.is_finished() {
            return Err(need_finished(need_id, need.status));
        }
        if !need.parked {
            return Err(ApiError::failed_precondition(
                "NEED_NOT_PARKED",
                format!("need {need_id} is not parked"),
            ));
        }
        store::unpark(&mut tx, need_id).await?;
        let retried = IntakeEvent::NeedDeliveryRetried;
        store::add_timeline_entry(
            &mut tx,
            &NewEntry {
                case_id,
                need_id: Some(need_id),
                service: SERVICE_NAME,
                kind: retried.name(),
                summary: &format!(
                    "Delivery to {} retried after it was parked",
                    owner_name(need.owner)
                ),
                at: None,
                source_event: None,
                agency_only: None,
            },
        )
        .await?;
        relationships::append_for_case(
            &mut tx,
            case_id,
            [NewEvent::new(
                retried,
                case_id,
                &pb::NeedDeliveryRetried {
                    need_id: need_id.to_string(),
                    case_id: case_id.to_string(),
                    owner: need.owner.to_proto() as i32,
                    parked_after_attempts: need.attempts.max(0) as u32,
                },
            )],
        )
        .await?;
        let retried_need = store::load_need(&mut tx, case_id, need_id)
            .await?
            .ok_or_else(|| vanished("need"))?;
        key.record(&mut tx, &retried_need, &company_id.to_string())
            .await?;
        tx.commit().await?;
        tracing::info!(case_id = %case_id, need_id = %need_id, owner = need.owner.as_str(), "parked need sent again");
        Ok(retried_need)
    }
}
