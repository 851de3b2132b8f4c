//! Assignments: intake's hand-off of a mentoring need, and reading a
//! company's advisor.

use onestop_contracts::common::v1::CompanySnapshot;
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::error::is_unique_violation;
use onestop_platform::events;
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller, Role};
use pb::request_advisor_response::Outcome;

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

fn reused_for_another_company() -> ApiError {
    ApiError::failed_precondition(
        "IDEMPOTENCY_KEY_REUSED",
        "this need was handed over before with a different request",
    )
}

/// Where a need handed over before stands now: waiting, served by an
/// assignment, or (its entry left the waitlist unfilled) that entry.
async fn redelivered(
    conn: &mut sqlx::PgConnection,
    need: &AdvisorRequest,
) -> Result<Option<Outcome>, sqlx::Error> {
    let entry = store::waitlist_entry_of_need(conn, need.need_id).await?;
    if let Some(entry) = &entry
        && entry.status == pb::WaitlistStatus::Waiting as i32
    {
        return Ok(Some(Outcome::Waitlisted(entry.clone())));
    }
    if let Some(assignment) = store::assignment_serving_need(conn, need.need_id).await? {
        return Ok(Some(Outcome::Assigned(assignment)));
    }
    Ok(entry.map(Outcome::Waitlisted))
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
        // The key is pruned after a while; the need itself is not, so a
        // hand-off delivered again later still gets the need's present
        // placement rather than a refusal that would strand it.
        match store::company_of_need(&mut tx, need.need_id).await? {
            Some(company_id) if company_id == need.company_id => {
                return match redelivered(&mut tx, &need).await? {
                    Some(outcome) => Ok(pb::RequestAdvisorResponse {
                        outcome: Some(outcome),
                    }),
                    None => Err(ApiError::failed_precondition(
                        "NEED_CLOSED",
                        "this need was handed over before and no longer waits or is served",
                    )),
                };
            }
            Some(_) => return Err(reused_for_another_company()),
            None => {}
        }
        store::upsert_company(&mut tx, &need, now).await?;
        if let Err(error) = store::insert_need(&mut tx, &need, now).await {
            if is_unique_violation(&error) {
                return Err(reused_for_another_company());
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
