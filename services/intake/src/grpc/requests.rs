//! Requests and complaints on a case: raised by the partners that may
//! change the case, answered by the agency asked (or an admin), escalated
//! by that agency or the company's partners, listed by whoever has some
//! to answer or follow. An agency sees the requests it must answer
//! without becoming a partner of the company: it reads the request, not
//! the company's records.

use onestop_contracts::intake::v1 as pb;
use onestop_platform::error::retry_aborted;
use onestop_platform::events::Partner;
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller, Role};
use sqlx::PgConnection;
use uuid::Uuid;

use super::{IntakeApi, WRITERS};
use crate::access;
use crate::domain::case::CaseStatus;
use crate::domain::request::{
    self, Answer, Escalation, NewRequest, Refusal, RequestQuery, RequestScope,
};
use crate::requests;
use crate::store::{self, LockedRequest, RequestRow};

/// Who answers: the agency asked, or an admin on its behalf.
const ANSWERERS: &[Role] = &[Role::Agency, Role::Admin];
/// Who passes a request on or lists requests.
const FOLLOWERS: &[Role] = &[Role::Agency, Role::Advisor, Role::Service, Role::Admin];

fn refused(request_id: Uuid, refusal: Refusal) -> ApiError {
    match refusal {
        Refusal::Answered => ApiError::failed_precondition(
            "REQUEST_ANSWERED",
            format!("request {request_id} is answered"),
        ),
        Refusal::EscalationLimit => ApiError::failed_precondition(
            "ESCALATION_LIMIT",
            format!(
                "request {request_id} was escalated {} times already; it must be answered",
                request::MAX_ESCALATIONS
            ),
        ),
    }
}

fn unknown_agency(field: &str, agency_id: &str) -> ApiError {
    ApiError::invalid(
        field,
        format!("\"{agency_id}\" is not an agency of the directory"),
    )
}

/// Who recorded a request, as its readers see it: the partner ("agency:
/// kotra") or the internal role, never the token's subject (a person).
fn recorder(caller: &Caller) -> String {
    match &caller.tenant {
        Some(tenant) => format!("{}:{tenant}", caller.role.as_str()),
        None => caller.role.as_str().to_owned(),
    }
}

/// Whether the caller may read the company's records.
async fn may_read(conn: &mut PgConnection, caller: &Caller, company_id: Uuid) -> ApiResult<bool> {
    match access::company_view(conn, caller, company_id).await {
        Ok(_) => Ok(true),
        Err(ApiError::NotFound(_)) => Ok(false),
        Err(error) => Err(error),
    }
}

/// The request, locked, when the caller may act on it as `answering_only`
/// says: only as the agency asked, or also as a partner of the company.
/// NOT_FOUND otherwise, so agencies never learn of each other's requests.
async fn lock_for(
    conn: &mut PgConnection,
    caller: &Caller,
    request_id: Uuid,
    answering_only: bool,
) -> ApiResult<LockedRequest> {
    let not_found = || ApiError::not_found("request", request_id);
    let locked = store::lock_request(conn, request_id)
        .await?
        .ok_or_else(not_found)?;
    let asked = caller.role == Role::Agency
        && caller.tenant.as_deref() == Some(locked.answering_agency_id.as_str());
    let allowed = match caller.role {
        Role::Admin | Role::Service => true,
        _ if asked => true,
        Role::Agency | Role::Advisor if !answering_only => {
            may_read(conn, caller, locked.company_id).await?
        }
        _ => false,
    };
    if allowed {
        Ok(locked)
    } else {
        Err(not_found())
    }
}

impl IntakeApi {
    pub(super) async fn raise_request(
        &self,
        caller: Caller,
        request: pb::RaiseRequestRequest,
    ) -> ApiResult<pb::CaseRequest> {
        retry_aborted(|| self.raise_request_once(&caller, &request)).await
    }

    async fn raise_request_once(
        &self,
        caller: &Caller,
        request: &pb::RaiseRequestRequest,
    ) -> ApiResult<pb::CaseRequest> {
        caller.require(WRITERS)?;
        let key = IdempotencyKey::new(caller, "RaiseRequest", &request.idempotency_key, request)?;
        let new = NewRequest::try_from(request)?;

        let mut tx = self.pool.begin().await?;
        access::case_view(&mut tx, caller, new.case_id).await?;
        if let Some(first) = key.replay::<pb::CaseRequest>(&mut tx).await? {
            return Ok(first);
        }
        let (company_id, status) = store::lock_case_status(&mut tx, new.case_id)
            .await?
            .ok_or_else(|| ApiError::not_found("case", new.case_id))?;
        if status == CaseStatus::Closed {
            return Err(ApiError::failed_precondition(
                "CASE_CLOSED",
                format!("case {} is closed", new.case_id),
            ));
        }
        if !store::agency_known(&mut tx, &new.answering_agency_id).await? {
            return Err(unknown_agency(
                "answering_agency_id",
                &new.answering_agency_id,
            ));
        }
        let recorded = store::insert_request(
            &mut tx,
            &RequestRow {
                request_id: Uuid::now_v7(),
                case_id: new.case_id,
                company_id,
                kind: new.kind,
                raised_by: new.raised_by,
                channel: new.channel,
                answering_agency_id: &new.answering_agency_id,
                summary: &new.summary,
                due_in_days: new.due_in_days,
                recorded_by: &recorder(caller),
            },
        )
        .await?;
        requests::raised(
            &mut tx,
            &recorded,
            new.kind,
            new.channel,
            Partner::of(caller),
        )
        .await?;
        key.record(&mut tx, &recorded, &company_id.to_string())
            .await?;
        tx.commit().await?;
        tracing::info!(request_id = %recorded.request_id, case_id = %new.case_id, kind = new.kind.as_str(), "request raised");
        Ok(recorded)
    }

    pub(super) async fn answer_request(
        &self,
        caller: Caller,
        request: pb::AnswerRequestRequest,
    ) -> ApiResult<pb::CaseRequest> {
        retry_aborted(|| self.answer_request_once(&caller, &request)).await
    }

    async fn answer_request_once(
        &self,
        caller: &Caller,
        request: &pb::AnswerRequestRequest,
    ) -> ApiResult<pb::CaseRequest> {
        caller.require(ANSWERERS)?;
        let key = IdempotencyKey::new(caller, "AnswerRequest", &request.idempotency_key, request)?;
        let Answer { request_id, answer } = Answer::try_from(request)?;

        let mut tx = self.pool.begin().await?;
        let locked = lock_for(&mut tx, caller, request_id, true).await?;
        if let Some(first) = key.replay::<pb::CaseRequest>(&mut tx).await? {
            return Ok(first);
        }
        request::may_answer(locked.state).map_err(|refusal| refused(request_id, refusal))?;
        let answered = store::answer_request(&mut tx, request_id, &answer).await?;
        let late = answered
            .answered_at
            .as_ref()
            .and_then(onestop_platform::time::from_timestamp)
            .is_some_and(|at| at > locked.due_at);
        requests::answered(&mut tx, &answered, late).await?;
        key.record(&mut tx, &answered, &locked.company_id.to_string())
            .await?;
        tx.commit().await?;
        tracing::info!(request_id = %request_id, late, "request answered");
        Ok(answered)
    }

    pub(super) async fn escalate_request(
        &self,
        caller: Caller,
        request: pb::EscalateRequestRequest,
    ) -> ApiResult<pb::CaseRequest> {
        retry_aborted(|| self.escalate_request_once(&caller, &request)).await
    }

    async fn escalate_request_once(
        &self,
        caller: &Caller,
        request: &pb::EscalateRequestRequest,
    ) -> ApiResult<pb::CaseRequest> {
        caller.require(FOLLOWERS)?;
        let key =
            IdempotencyKey::new(caller, "EscalateRequest", &request.idempotency_key, request)?;
        let Escalation {
            request_id,
            to_agency_id,
            reason,
            due_in_days,
        } = Escalation::try_from(request)?;

        let mut tx = self.pool.begin().await?;
        let locked = lock_for(&mut tx, caller, request_id, false).await?;
        if let Some(first) = key.replay::<pb::CaseRequest>(&mut tx).await? {
            return Ok(first);
        }
        request::may_escalate(locked.state, locked.escalation_level)
            .map_err(|refusal| refused(request_id, refusal))?;
        let to = to_agency_id.unwrap_or_else(|| locked.answering_agency_id.clone());
        if !store::agency_known(&mut tx, &to).await? {
            return Err(unknown_agency("to_agency_id", &to));
        }
        let escalated =
            store::escalate_request(&mut tx, request_id, &to, &reason, due_in_days).await?;
        requests::escalated(&mut tx, &escalated, &locked.answering_agency_id).await?;
        key.record(&mut tx, &escalated, &locked.company_id.to_string())
            .await?;
        tx.commit().await?;
        tracing::info!(request_id = %request_id, level = escalated.escalation_level, "request escalated");
        Ok(escalated)
    }

    pub(super) async fn list_requests(
        &self,
        caller: Caller,
        request: pb::ListRequestsRequest,
    ) -> ApiResult<pb::ListRequestsResponse> {
        caller.require(FOLLOWERS)?;
        let query = RequestQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        let reads_company = match query.company_id {
            Some(company_id) => may_read(&mut conn, &caller, company_id).await?,
            None => false,
        };
        let own = || caller.tenant.clone().unwrap_or_default();
        let scope = match caller.role {
            Role::Admin | Role::Service => RequestScope::All,
            _ if reads_company => RequestScope::All,
            Role::Agency => RequestScope::AnsweredBy(own()),
            _ => RequestScope::AdvisorOf(own()),
        };
        let mut rows = store::list_requests(&mut conn, &scope, &query).await?;
        let next_page_token = query.page.finish(&mut rows, |(key, _)| *key);
        Ok(pb::ListRequestsResponse {
            requests: rows.into_iter().map(|(_, request)| request).collect(),
            next_page_token,
        })
    }
}
