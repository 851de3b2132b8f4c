//! The advisor pool: registering, updating, deactivating (which hands
//! every company over), reading and listing advisors.

use onestop_contracts::event_types::MentoringEvent;
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::error::parse_id;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller, Role};
use uuid::Uuid;

use super::{ADMINS, MentoringApi, OVERSEERS, READERS, own_advisor, visible_to};
use crate::access;
use crate::continuity;
use crate::domain::advisor::{
    AdvisorProfile, AdvisorQuery, AdvisorUpdate, Deactivation, NewAdvisor,
};
use crate::store::{self, Lock};

/// Contacts are personal data: only admins and the advisor itself see them.
fn redact_for(caller: &Caller, mut advisor: pb::Advisor) -> pb::Advisor {
    let is_self = own_advisor(caller).is_some_and(|own| own.to_string() == advisor.advisor_id);
    if caller.role != Role::Admin
        && !is_self
        && let Some(profile) = advisor.profile.as_mut()
    {
        profile.contact = None;
    }
    advisor
}

fn texts<'a>(codes: impl Iterator<Item = &'a str>) -> Vec<String> {
    codes.map(str::to_owned).collect()
}

/// `advisor.registered`: what matching sees of the advisor, no contact.
fn registered(id: Uuid, profile: &AdvisorProfile) -> pb::AdvisorRegistered {
    pb::AdvisorRegistered {
        advisor_id: id.to_string(),
        kind: profile.kind.to_proto() as i32,
        region: profile.region.code().to_owned(),
        capacity: profile.capacity,
        remote: profile.remote,
        languages: texts(profile.languages.iter().map(|c| c.as_str())),
        markets: texts(profile.markets.iter().map(|c| c.as_str())),
        industries_ksic: texts(profile.industries_ksic.iter().map(|c| c.as_str())),
        program_id: profile.program.id.clone(),
    }
}

fn registered_event(id: Uuid, profile: &AdvisorProfile) -> NewEvent {
    NewEvent::new(
        MentoringEvent::AdvisorRegistered,
        id,
        &registered(id, profile),
    )
}

/// The profile as it stands after an update, with the paths it changed.
fn updated_event(id: Uuid, profile: &AdvisorProfile, changed_fields: Vec<String>) -> NewEvent {
    let now = registered(id, profile);
    NewEvent::new(
        MentoringEvent::AdvisorUpdated,
        id,
        &pb::AdvisorUpdated {
            advisor_id: now.advisor_id,
            kind: now.kind,
            region: now.region,
            capacity: now.capacity,
            remote: now.remote,
            languages: now.languages,
            markets: now.markets,
            industries_ksic: now.industries_ksic,
            program_id: now.program_id,
            changed_fields,
        },
    )
}

impl MentoringApi {
    pub(super) async fn register_advisor(
        &self,
        caller: Caller,
        request: pb::RegisterAdvisorRequest,
    ) -> ApiResult<pb::Advisor> {
        caller.require(ADMINS)?;
        let NewAdvisor { profile } = NewAdvisor::try_from(&request)?;
        let key = IdempotencyKey::new(
            &caller,
            "RegisterAdvisor",
            &request.idempotency_key,
            &request,
        )?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Advisor>(&mut tx).await? {
            return Ok(first);
        }
        // A new advisor is new capacity: the waitlist may fill.
        store::lock_waitlist(&mut tx).await?;
        let id = Uuid::now_v7();
        store::save_advisor(&mut tx, id, &profile, now).await?;
        let mut pending = vec![registered_event(id, &profile)];
        continuity::fill_waitlist(&mut tx, &self.rules, now, &mut pending).await?;
        events::append_all(&mut tx, pending).await?;
        let advisor = store::load_advisor(&mut tx, id, Lock::None)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("advisor vanished")))?;
        key.record(&mut tx, &advisor, &id.to_string()).await?;
        tx.commit().await?;
        tracing::info!(advisor_id = %id, "advisor registered");
        Ok(advisor)
    }

    pub(super) async fn update_advisor(
        &self,
        caller: Caller,
        request: pb::UpdateAdvisorRequest,
    ) -> ApiResult<pb::Advisor> {
        caller.require(&[Role::Admin, Role::Advisor])?;
        let update = AdvisorUpdate::try_from(&request)?;
        let id = update.advisor_id;
        if caller.role == Role::Advisor && own_advisor(&caller) != Some(id) {
            return Err(ApiError::not_found("advisor", id));
        }
        let key =
            IdempotencyKey::new(&caller, "UpdateAdvisor", &request.idempotency_key, &request)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Advisor>(&mut tx).await? {
            return Ok(first);
        }
        // A raised capacity may fill the waitlist: take its lock first.
        store::lock_waitlist(&mut tx).await?;
        let current = store::load_advisor(&mut tx, id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| ApiError::not_found("advisor", id))?;
        let current_profile = current.profile.clone().unwrap_or_default();
        let merged = update.apply(&current_profile);
        let profile = AdvisorProfile::validate(&merged)?;
        if caller.role == Role::Advisor && merged.program != current_profile.program {
            return Err(ApiError::PermissionDenied(
                "only an admin changes the program and fee an advisor serves under".into(),
            ));
        }
        store::save_advisor(&mut tx, id, &profile, now).await?;
        let changed = request
            .update_mask
            .as_ref()
            .map(|mask| mask.paths.clone())
            .unwrap_or_default();
        let mut pending = vec![updated_event(id, &profile, changed)];
        if current.status == pb::AdvisorStatus::Active as i32
            && profile.capacity > current_profile.capacity
        {
            continuity::fill_waitlist(&mut tx, &self.rules, now, &mut pending).await?;
        }
        events::append_all(&mut tx, pending).await?;
        let advisor = store::load_advisor(&mut tx, id, Lock::None)
            .await?
            .ok_or_else(|| ApiError::not_found("advisor", id))?;
        key.record(&mut tx, &advisor, &id.to_string()).await?;
        tx.commit().await?;
        Ok(advisor)
    }

    pub(super) async fn deactivate_advisor(
        &self,
        caller: Caller,
        request: pb::DeactivateAdvisorRequest,
    ) -> ApiResult<pb::DeactivateAdvisorResponse> {
        caller.require(ADMINS)?;
        let Deactivation { advisor_id, window } = Deactivation::try_from(&request)?;
        let key = IdempotencyKey::new(
            &caller,
            "DeactivateAdvisor",
            &request.idempotency_key,
            &request,
        )?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::DeactivateAdvisorResponse>(&mut tx).await? {
            return Ok(first);
        }
        store::lock_waitlist(&mut tx).await?;
        store::load_advisor(&mut tx, advisor_id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| ApiError::not_found("advisor", advisor_id))?;
        if !store::mark_advisor_inactive(&mut tx, advisor_id, now).await? {
            return Err(ApiError::failed_precondition(
                "ADVISOR_INACTIVE",
                format!("advisor {advisor_id} is already inactive"),
            ));
        }
        let mut pending = Vec::new();
        let handovers = continuity::hand_over_companies(
            &mut tx,
            &self.rules,
            advisor_id,
            self.rules.window_days(window),
            now,
            &mut pending,
        )
        .await?;
        // Deactivation comes first on the feed: it explains what follows.
        let deactivated = NewEvent::new(
            MentoringEvent::AdvisorDeactivated,
            advisor_id,
            &pb::AdvisorDeactivated {
                advisor_id: advisor_id.to_string(),
                handover_assignment_ids: handovers
                    .iter()
                    .map(|h| h.outgoing_assignment_id.clone())
                    .collect(),
            },
        );
        events::append_all(&mut tx, std::iter::once(deactivated).chain(pending)).await?;
        let advisor = store::load_advisor(&mut tx, advisor_id, Lock::None)
            .await?
            .ok_or_else(|| ApiError::not_found("advisor", advisor_id))?;
        let response = pb::DeactivateAdvisorResponse {
            advisor: Some(advisor),
            handovers,
        };
        key.record(&mut tx, &response, &advisor_id.to_string())
            .await?;
        tx.commit().await?;
        tracing::info!(%advisor_id, handovers = response.handovers.len(), "advisor deactivated");
        Ok(response)
    }

    pub(super) async fn get_advisor(
        &self,
        caller: Caller,
        request: pb::GetAdvisorRequest,
    ) -> ApiResult<pb::Advisor> {
        caller.require(READERS)?;
        let id = parse_id("advisor_id", &request.advisor_id)?;
        if !visible_to(&caller, std::iter::once(request.advisor_id.as_str())) {
            return Err(ApiError::not_found("advisor", id));
        }
        let mut conn = self.pool.acquire().await?;
        let advisor = store::load_advisor(&mut conn, id, Lock::None)
            .await?
            .ok_or_else(|| ApiError::not_found("advisor", id))?;
        let advisor = redact_for(&caller, advisor);
        access::audit_contacts(&mut conn, &[&advisor]).await?;
        Ok(advisor)
    }

    pub(super) async fn list_advisors(
        &self,
        caller: Caller,
        request: pb::ListAdvisorsRequest,
    ) -> ApiResult<pb::ListAdvisorsResponse> {
        caller.require(OVERSEERS)?;
        let AdvisorQuery { filter, page } = AdvisorQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_advisors(&mut conn, &filter, &page).await?;
        let next_page_token = page.finish(&mut rows, |(id, _)| *id);
        let advisors: Vec<pb::Advisor> = rows
            .into_iter()
            .map(|(_, advisor)| redact_for(&caller, advisor))
            .collect();
        access::audit_contacts(&mut conn, &advisors.iter().collect::<Vec<_>>()).await?;
        Ok(pb::ListAdvisorsResponse {
            advisors,
            next_page_token,
        })
    }
}
