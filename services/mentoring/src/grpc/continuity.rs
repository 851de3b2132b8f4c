//! Continuity: replacing a company's advisor, ending an assignment, and
//! the history of every assignment and change a company has had.

use chrono::Duration;
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::events;
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller};

use super::{ADMINS, MentoringApi, READERS, own_advisor, visible_to};
use crate::access;
use crate::continuity::{self, Placement, Retirement, stored_id};
use crate::domain::change::{Change, HistoryQuery, Reassignment};
use crate::store::{self, Lock, OnClaimed};

impl MentoringApi {
    pub(super) async fn reassign_advisor(
        &self,
        caller: Caller,
        request: pb::ReassignAdvisorRequest,
    ) -> ApiResult<pb::ReassignAdvisorResponse> {
        caller.require(ADMINS)?;
        let Reassignment {
            change,
            successor: named,
            handover_days,
        } = Reassignment::try_from(&request)?;
        let key = IdempotencyKey::new(
            &caller,
            "ReassignAdvisor",
            &request.idempotency_key,
            &request,
        )?;
        let assignment_id = change.assignment_id;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::ReassignAdvisorResponse>(&mut tx).await? {
            return Ok(first);
        }
        store::lock_waitlist(&mut tx).await?;
        let (company, current) = continuity::lock_active_assignment(&mut tx, assignment_id).await?;
        let current_advisor = stored_id(&current.advisor_id)?;
        if named == Some(current_advisor) {
            return Err(ApiError::failed_precondition(
                "SAME_ADVISOR",
                "the named advisor already serves this company",
            ));
        }
        let retirement = Retirement {
            assignment: &current,
            reason: change.reason,
            note: change.note,
            handover_until: handover_days.map(|days| now + Duration::days(i64::from(days))),
        };
        continuity::retire(&mut tx, &retirement, now).await?;
        let mut pending = Vec::new();
        let placement = Placement {
            company: &company,
            exclude: Some(current_advisor),
            only: named,
            predecessor: Some(assignment_id),
            from_waitlist: false,
            claiming: OnClaimed::Wait,
        };
        let Some(successor) =
            continuity::assign_best(&mut tx, &self.rules, placement, now, &mut pending).await?
        else {
            // Dropping the transaction rolls back: the current advisor stays.
            return Err(ApiError::failed_precondition(
                "NO_ADVISOR_AVAILABLE",
                match named {
                    Some(advisor) => {
                        format!("advisor {advisor} is not active or has no free capacity")
                    }
                    None => "no other advisor has free capacity".to_owned(),
                },
            ));
        };
        continuity::record_successor(&mut tx, &retirement, &successor, &mut pending).await?;
        pending.push(continuity::departure_event(&retirement, Some(&successor)));
        // The outgoing advisor's slot is free now.
        continuity::fill_waitlist(&mut tx, &self.rules, now, &mut pending).await?;
        events::append_all(&mut tx, pending).await?;
        let previous = store::load_assignment(&mut tx, assignment_id, Lock::None)
            .await?
            .ok_or_else(|| ApiError::not_found("assignment", assignment_id))?;
        let response = pb::ReassignAdvisorResponse {
            previous: Some(previous),
            current: Some(successor),
        };
        key.record(&mut tx, &response, &company.id.to_string())
            .await?;
        tx.commit().await?;
        Ok(response)
    }

    pub(super) async fn end_assignment(
        &self,
        caller: Caller,
        request: pb::EndAssignmentRequest,
    ) -> ApiResult<pb::Assignment> {
        caller.require(ADMINS)?;
        let change = Change::try_from(&request)?;
        let key =
            IdempotencyKey::new(&caller, "EndAssignment", &request.idempotency_key, &request)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Assignment>(&mut tx).await? {
            return Ok(first);
        }
        store::lock_waitlist(&mut tx).await?;
        let (_, current) =
            continuity::lock_active_assignment(&mut tx, change.assignment_id).await?;
        let retirement = Retirement {
            assignment: &current,
            reason: change.reason,
            note: change.note,
            handover_until: None,
        };
        continuity::retire(&mut tx, &retirement, now).await?;
        let mut pending = vec![continuity::departure_event(&retirement, None)];
        continuity::fill_waitlist(&mut tx, &self.rules, now, &mut pending).await?;
        events::append_all(&mut tx, pending).await?;
        let ended = store::load_assignment(&mut tx, change.assignment_id, Lock::None)
            .await?
            .ok_or_else(|| ApiError::not_found("assignment", change.assignment_id))?;
        key.record(&mut tx, &ended, &ended.company_id).await?;
        tx.commit().await?;
        Ok(ended)
    }

    /// A page of the company's assignments, oldest first, with the changes
    /// that led to them. Advisors read the history of companies they serve
    /// or served.
    pub(super) async fn get_advisor_history(
        &self,
        caller: Caller,
        request: pb::GetAdvisorHistoryRequest,
    ) -> ApiResult<pb::AdvisorHistory> {
        caller.require(READERS)?;
        let HistoryQuery { company_id, page } = HistoryQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        let advisors = store::advisors_of_company(&mut conn, company_id).await?;
        let advisors: Vec<String> = advisors.iter().map(ToString::to_string).collect();
        if advisors.is_empty() || !visible_to(&caller, advisors.iter().map(String::as_str)) {
            return Err(ApiError::not_found(
                "advisor history of company",
                company_id,
            ));
        }
        // An advisor reads its own assignments of the company and the
        // changes it was part of, never notes about other advisors.
        let own = own_advisor(&caller);
        let mut rows = store::assignments_of_company(&mut conn, company_id, own, &page).await?;
        let next_page_token = page.finish(&mut rows, |(key, _)| *key);
        let ids: Vec<_> = rows.iter().map(|(key, _)| key.2).collect();
        let mut changes = store::changes_of_assignments(&mut conn, company_id, &ids).await?;
        if let Some(own) = own.map(|own| own.to_string()) {
            changes.retain(|change| change.from_advisor_id == own || change.to_advisor_id == own);
        }
        Ok(access::present_history(
            &caller,
            pb::AdvisorHistory {
                company_id: company_id.to_string(),
                assignments: rows.into_iter().map(|(_, assignment)| assignment).collect(),
                changes,
                next_page_token,
            },
        ))
    }
}
