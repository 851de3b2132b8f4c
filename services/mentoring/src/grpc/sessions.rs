//! Sessions: an advisor's logged contacts with its company.

use onestop_contracts::event_types::MentoringEvent;
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::events::{self, NewEvent, Partner};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::time::from_timestamp;
use onestop_platform::{ApiError, ApiResult, Caller, Role};
use uuid::Uuid;

use super::{MentoringApi, READERS, pinned_to_own, visible_to};
use crate::access;
use crate::domain::session::{NewSession, SessionQuery};
use crate::store::{self, Lock};

/// `session.logged`: when and how, never what was said.
fn logged_event(session: &pb::Session) -> NewEvent {
    NewEvent::new(
        MentoringEvent::SessionLogged,
        &session.assignment_id,
        &pb::SessionLogged {
            session_id: session.session_id.clone(),
            assignment_id: session.assignment_id.clone(),
            company_id: session.company_id.clone(),
            advisor_id: session.advisor_id.clone(),
            held_at: session.held_at,
            channel: session.channel,
            minutes: session.minutes,
            interpreter_language: session.interpreter_language.clone(),
            follow_up_action_count: session.follow_up_actions.len() as u32,
        },
    )
    .for_partners([Partner::advisor(&session.advisor_id)])
}

impl MentoringApi {
    pub(super) async fn log_session(
        &self,
        caller: Caller,
        request: pb::LogSessionRequest,
    ) -> ApiResult<pb::Session> {
        caller.require(&[Role::Admin, Role::Advisor])?;
        let now = self.clock.now();
        // Read ahead so a held_at before the assignment's start is reported
        // with the other violations, not on a second call.
        let started = match Uuid::parse_str(request.assignment_id.trim()) {
            Ok(id) => {
                let mut conn = self.pool.acquire().await?;
                store::load_assignment(&mut conn, id, Lock::None)
                    .await?
                    .filter(|a| visible_to(&caller, std::iter::once(a.advisor_id.as_str())))
                    .and_then(|a| a.started_at.as_ref().and_then(from_timestamp))
            }
            Err(_) => None,
        };
        let NewSession { assignment_id, log } = NewSession::try_from((&request, now, started))?;
        let key = IdempotencyKey::new(&caller, "LogSession", &request.idempotency_key, &request)?;
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Session>(&mut tx).await? {
            return Ok(first);
        }
        let assignment = store::load_assignment(&mut tx, assignment_id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| ApiError::not_found("assignment", assignment_id))?;
        if !visible_to(&caller, std::iter::once(assignment.advisor_id.as_str())) {
            return Err(ApiError::PermissionDenied(
                "an advisor logs sessions only on its own assignments".into(),
            ));
        }
        if assignment.status == pb::AssignmentStatus::Ended as i32 {
            return Err(ApiError::failed_precondition(
                "ASSIGNMENT_ENDED",
                format!("assignment {assignment_id} has ended"),
            ));
        }
        let started = assignment
            .started_at
            .as_ref()
            .and_then(from_timestamp)
            .unwrap_or(now);
        if log.held_at < started {
            return Err(ApiError::invalid(
                "held_at",
                "must not be before the assignment started",
            ));
        }
        let id = Uuid::now_v7();
        let logged_by = match caller.role {
            Role::Advisor => caller.tenant.clone().unwrap_or_default(),
            _ => caller.subject.clone(),
        };
        store::insert_session(&mut tx, id, assignment_id, &log, now, &logged_by).await?;
        let session = store::load_session(&mut tx, id)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("session vanished")))?;
        events::append_all(&mut tx, [logged_event(&session)]).await?;
        key.record(&mut tx, &session, &assignment_id.to_string())
            .await?;
        tx.commit().await?;
        Ok(session)
    }

    pub(super) async fn list_sessions(
        &self,
        caller: Caller,
        request: pb::ListSessionsRequest,
    ) -> ApiResult<pb::ListSessionsResponse> {
        caller.require(READERS)?;
        let SessionQuery { mut filter, page } = SessionQuery::try_from(&request)?;
        filter.advisor_id = pinned_to_own(&caller, filter.advisor_id);
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_sessions(&mut conn, &filter, &page).await?;
        let next_page_token = page.finish(&mut rows, |(key, _)| *key);
        Ok(pb::ListSessionsResponse {
            sessions: rows
                .into_iter()
                .map(|(_, session)| access::present_session(&caller, session))
                .collect(),
            next_page_token,
        })
    }
}
