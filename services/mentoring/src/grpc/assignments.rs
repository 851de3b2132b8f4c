//! Assignments: intake's hand-off of a mentoring need, and reading a
//! company's advisor.

use onestop_contracts::common::v1::CompanySnapshot;
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::error::is_unique_violation;
use onestop_platform::events;
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller, Role};

use super::{MentoringApi, READERS, visible_to};
use crate::domain::request::{AdvisorRequest, AssignmentLookup};
use crate::store::{self, Lock};
use crate::{access, continuity};

/// What makes two hand-offs the same need: the need and its company. A
/// redelivery carrying a fresher snapshot of the same company still gets
/// the first answer; the same need for another company is refused.
fn hand_off_identity(
    request: &pb::RequestAdvisorRequest,
    need: &AdvisorRequest,
) -> pb::RequestAdvisorRequest {
    pb::RequestAdvisorRequest {
        need_id: request.need_id.clone(),
        company: Some(CompanySnapshot {
            company_id: need.company_id.to_string(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl MentoringApi {
    pub(super) async fn request_advisor(
        &self,
        caller: Caller,
        request: pb::RequestAdvisorRequest,
    ) -> ApiResult<pb::RequestAdvisorResponse> {
        caller.require(&[Role::Service, Role::Admin])?;
        let need = AdvisorRequest::try_from(&request)?;
        let key = IdempotencyKey::natural(
            "RequestAdvisor",
            &need.need_id.to_string(),
            &hand_off_identity(&request, &need),
        );
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::RequestAdvisorResponse>(&mut tx).await? {
            return Ok(first);
        }
        store::upsert_company(&mut tx, &need, now).await?;
        if let Err(error) = store::insert_need(&mut tx, &need, now).await {
            if is_unique_violation(&error) {
                return Err(ApiError::failed_precondition(
                    "IDEMPOTENCY_KEY_REUSED",
                    "this need was handed over before with a different request",
                ));
            }
            return Err(error.into());
        }
        let mut pending = Vec::new();
        let outcome = continuity::place(&mut tx, &self.rules, &need, now, &mut pending).await?;
        events::append_all(&mut tx, pending).await?;
        let response = pb::RequestAdvisorResponse {
            outcome: Some(outcome),
        };
        key.record(&mut tx, &response, &need.company_id.to_string())
            .await?;
        tx.commit().await?;
        Ok(response)
    }

    pub(super) async fn get_assignment(
        &self,
        caller: Caller,
        request: pb::GetAssignmentRequest,
    ) -> ApiResult<pb::Assignment> {
        caller.require(READERS)?;
        let lookup = AssignmentLookup::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        let assignment = match lookup {
            AssignmentLookup::Assignment(id) => store::load_assignment(&mut conn, id, Lock::None)
                .await?
                .ok_or_else(|| ApiError::not_found("assignment", id))?,
            AssignmentLookup::ActiveOfCompany(id) => store::active_assignment_of(&mut conn, id)
                .await?
                .ok_or_else(|| ApiError::not_found("active assignment of company", id))?,
        };
        if !visible_to(&caller, std::iter::once(assignment.advisor_id.as_str())) {
            return Err(ApiError::NotFound("assignment not found".into()));
        }
        Ok(access::present_assignment(&caller, assignment))
    }
}
