//! Referrals: intake's hand-off, the agency inbox, and the lifecycle moves.

use onestop_contracts::common::v1::CompanySnapshot;
use onestop_contracts::event_types::ReferralEvent;
use onestop_contracts::referral::v1::{self as pb, ReferralStatus};
use onestop_platform::events;
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::time::to_timestamp;
use onestop_platform::{ApiError, ApiResult, Caller, Role};
use prost::Message;
use uuid::Uuid;

use super::ReferralApi;
use crate::domain::eligibility;
use crate::domain::lifecycle::{self, Action, Move};
use crate::domain::referral::{NewReferral, ReferralQuery, without_free_text};
use crate::routing::{self, capacity_event, referral_event};
use crate::store::{self, Lock};

/// Who may read referrals; agency tokens only their own.
const REFERRAL_READERS: &[Role] = &[Role::Agency, Role::Dashboard, Role::Service, Role::Admin];

/// The referral as `caller` may see it, or NOT_FOUND: an agency sees only
/// referrals that reached one of its programs, and only its own legs.
/// Dashboards read it without free text.
fn visible_to(caller: &Caller, id: Uuid, mut referral: pb::Referral) -> ApiResult<pb::Referral> {
    if caller.role == Role::Dashboard {
        return Ok(without_free_text(referral));
    }
    let Some(agency) = caller.tenant_for(Role::Agency) else {
        return Ok(referral);
    };
    if !referral.legs.iter().any(|leg| leg.agency_id == agency) {
        return Err(ApiError::not_found("referral", id));
    }
    referral.legs.retain(|leg| leg.agency_id == agency);
    Ok(referral)
}

/// What makes two hand-offs the same need: a redelivery whose company
/// snapshot was refreshed in between is still the same need and gets the
/// first answer; the same need id for another case, company or category
/// is refused.
fn hand_off_identity(request: &pb::CreateReferralRequest) -> pb::CreateReferralRequest {
    pb::CreateReferralRequest {
        need_id: request.need_id.clone(),
        case_id: request.case_id.clone(),
        category: request.category,
        company: request.company.as_ref().map(|company| CompanySnapshot {
            company_id: company.company_id.clone(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

fn action_event(action: &Action) -> ReferralEvent {
    match action {
        Action::Accept { .. } => ReferralEvent::Accepted,
        Action::Decline { .. } => ReferralEvent::Declined,
        Action::Start { .. } => ReferralEvent::Started,
        Action::Complete { .. } => ReferralEvent::Completed,
        Action::Fail { .. } => ReferralEvent::Failed,
        Action::Cancel { .. } => ReferralEvent::Cancelled,
    }
}

fn action_cause(action: &Action) -> &'static str {
    match action {
        Action::Complete { .. } => "completed",
        Action::Fail { .. } => "failed",
        _ => "cancelled",
    }
}

/// The lifecycle RPCs: each turns its request into a [`Move`] and goes
/// through [`ReferralApi::transition`] under its own name (which scopes its
/// idempotency keys) and roles.
macro_rules! lifecycle_rpcs {
    ($($rpc:ident($request:ident) as $method:literal by $roles:path;)+) => {
        impl ReferralApi {$(
            pub(super) async fn $rpc(
                &self,
                caller: Caller,
                request: pb::$request,
            ) -> ApiResult<pb::Referral> {
                let step = Move::try_from(&request);
                self.transition(caller, ($method, $roles), &request.idempotency_key, &request, step)
                    .await
            }
        )+}
    };
}

lifecycle_rpcs! {
    accept_referral(AcceptReferralRequest) as "AcceptReferral" by lifecycle::RECEIVING_AGENCY;
    decline_referral(DeclineReferralRequest) as "DeclineReferral" by lifecycle::RECEIVING_AGENCY;
    start_referral(StartReferralRequest) as "StartReferral" by lifecycle::RECEIVING_AGENCY;
    complete_referral(CompleteReferralRequest) as "CompleteReferral" by lifecycle::RECEIVING_AGENCY;
    fail_referral(FailReferralRequest) as "FailReferral" by lifecycle::RECEIVING_AGENCY;
    cancel_referral(CancelReferralRequest) as "CancelReferral" by lifecycle::REFERRER;
}

impl ReferralApi {
    pub(super) async fn create_referral(
        &self,
        caller: Caller,
        request: pb::CreateReferralRequest,
    ) -> ApiResult<pb::Referral> {
        caller.require(&[Role::Service, Role::Admin])?;
        let valid = NewReferral::try_from(&request)?;
        let key = IdempotencyKey::natural(
            "CreateReferral",
            &request.need_id,
            &hand_off_identity(&request),
        );
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Referral>(&mut tx).await? {
            return Ok(first);
        }
        let (eligible, ineligible) =
            routing::evaluate_all(&mut tx, valid.category, &valid.company).await?;
        let preferred = request.preferred_program_id.as_str();
        let preferred_evaluation = if preferred.is_empty() {
            None
        } else {
            let found = eligible
                .iter()
                .chain(ineligible.iter())
                .find(|e| eligibility::program_id(e) == preferred)
                .cloned();
            match found {
                Some(evaluation) => Some(evaluation),
                None => match store::load_program(&mut tx, preferred).await? {
                    None => {
                        return Err(ApiError::invalid(
                            "preferred_program_id",
                            "no such program in the directory",
                        ));
                    }
                    // A program of other categories: routing goes by the
                    // need's category and says why the program was passed
                    // over. (One that serves it but is inactive was simply
                    // not among the candidates.)
                    Some(program)
                        if !program
                            .categories
                            .contains(&(valid.category.to_proto() as i32)) =>
                    {
                        Some(eligibility::not_serving(&program, valid.category))
                    }
                    Some(_) => None,
                },
            }
        };
        let id = Uuid::now_v7();
        let mut referral = pb::Referral {
            referral_id: id.to_string(),
            need_id: request.need_id.clone(),
            case_id: request.case_id.clone(),
            company_id: request
                .company
                .as_ref()
                .map(|c| c.company_id.clone())
                .unwrap_or_default(),
            category: valid.category.to_proto() as i32,
            company: request.company.clone(),
            target_markets: request.target_markets.clone(),
            hs_codes: request.hs_codes.clone(),
            detail: request.detail.clone(),
            status: ReferralStatus::Unroutable as i32,
            preferred_program_id: request.preferred_program_id.clone(),
            created_at: Some(to_timestamp(now)),
            updated_at: Some(to_timestamp(now)),
            ..Default::default()
        };
        let first = eligibility::routing_order(&eligible, &[], preferred)
            .into_iter()
            .next();
        let event_type = match first {
            Some(evaluation) => {
                let is_preferred =
                    !preferred.is_empty() && eligibility::program_id(&evaluation) == preferred;
                if !is_preferred {
                    referral.preferred_program_evaluation = preferred_evaluation;
                }
                routing::send_to(&mut referral, evaluation, is_preferred, now);
                ReferralEvent::Routed
            }
            None => {
                referral.preferred_program_evaluation = preferred_evaluation;
                referral.unroutable_reasons = eligible.into_iter().chain(ineligible).collect();
                ReferralEvent::Unroutable
            }
        };
        if let Err(error) = store::insert_referral(&mut tx, id, &referral).await {
            // Only reachable if the idempotency claim was bypassed; the
            // unique need id still keeps one referral per need.
            if onestop_platform::error::is_unique_violation(&error) {
                drop(tx);
                let mut conn = self.pool.acquire().await?;
                if let Some(existing) = store::referral_by_need(&mut conn, &request.need_id).await?
                {
                    return Ok(existing);
                }
            }
            return Err(error.into());
        }
        events::append_all(
            &mut tx,
            [
                referral_event(ReferralEvent::Created, &referral),
                referral_event(event_type, &referral),
            ],
        )
        .await?;
        key.record(&mut tx, &referral, &referral.referral_id)
            .await?;
        tx.commit().await?;
        tracing::info!(referral_id = %id, event = %event_type, "referral created");
        Ok(referral)
    }

    pub(super) async fn get_referral(
        &self,
        caller: Caller,
        request: pb::GetReferralRequest,
    ) -> ApiResult<pb::Referral> {
        caller.require(REFERRAL_READERS)?;
        let id = onestop_platform::error::parse_id("referral_id", &request.referral_id)?;
        let mut conn = self.pool.acquire().await?;
        let referral = store::load_referral(&mut conn, id, Lock::None)
            .await?
            .ok_or_else(|| ApiError::not_found("referral", id))?;
        visible_to(&caller, id, referral)
    }

    pub(super) async fn list_referrals(
        &self,
        caller: Caller,
        request: pb::ListReferralsRequest,
    ) -> ApiResult<pb::ListReferralsResponse> {
        caller.require(REFERRAL_READERS)?;
        let ReferralQuery { mut filter, page } = ReferralQuery::try_from(&request)?;
        if let Some(own) = caller.tenant_for(Role::Agency) {
            filter.agency_id = Some(own.to_owned());
        }
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_referrals(&mut conn, &filter, &page).await?;
        let next_page_token = page.finish(&mut rows, |(id, _)| *id);
        let referrals = rows
            .into_iter()
            .map(|(id, referral)| visible_to(&caller, id, referral))
            .collect::<ApiResult<Vec<_>>>()?;
        Ok(pb::ListReferralsResponse {
            referrals,
            next_page_token,
        })
    }

    /// One lifecycle move: role, tenancy, legality, slots, re-routing and
    /// events, all in one transaction. The role is checked before the
    /// request is judged, so a caller that may not move referrals learns
    /// nothing from validation.
    async fn transition<R: Message>(
        &self,
        caller: Caller,
        (method, roles): (&'static str, &'static [Role]),
        key: &str,
        request: &R,
        step: Result<Move, onestop_platform::Violations>,
    ) -> ApiResult<pb::Referral> {
        caller.require(roles)?;
        let Move {
            referral_id: id,
            action,
        } = step?;
        let key = IdempotencyKey::new(&caller, method, key, request)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Referral>(&mut tx).await? {
            return Ok(first);
        }
        let mut referral = store::load_referral(&mut tx, id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| ApiError::not_found("referral", id))?;
        visible_to(&caller, id, referral.clone())?;
        if let Some(agency) = caller.tenant_for(Role::Agency)
            && referral
                .legs
                .last()
                .is_none_or(|leg| leg.agency_id != agency)
        {
            return Err(ApiError::failed_precondition(
                "NOT_CURRENT_AGENCY",
                "the referral has moved on to another program",
            ));
        }
        action.check_legal(referral.status)?;
        apply_move(&mut tx, id, &mut referral, &action, now).await?;
        let response = visible_to(&caller, id, referral)?;
        key.record(&mut tx, &response, &id.to_string()).await?;
        tx.commit().await?;
        tracing::info!(referral_id = %id, action = action.name(), "referral moved");
        Ok(response)
    }
}

/// Applies a legal move to the referral, with what it does to the
/// program's capacity and the re-routing a decline calls for, and stores
/// it with its events.
pub(crate) async fn apply_move(
    conn: &mut sqlx::PgConnection,
    id: Uuid,
    referral: &mut pb::Referral,
    action: &Action,
    now: chrono::DateTime<chrono::Utc>,
) -> ApiResult<()> {
    let program_id = referral
        .legs
        .last()
        .map(|leg| leg.program_id.clone())
        .unwrap_or_default();
    let mut pending = Vec::new();
    match action {
        Action::Accept { .. } => {
            let program = store::take_slot(conn, &program_id).await?.ok_or_else(|| {
                ApiError::failed_precondition(
                    "NO_OPEN_SLOT",
                    "the program has no open slot; complete or fail a referral first, or decline with NO_CAPACITY",
                )
            })?;
            pending.push(capacity_event(&program, "accepted"));
        }
        Action::Complete { .. } | Action::Fail { .. } | Action::Cancel { .. }
            if lifecycle::holds_slot(referral.status) =>
        {
            if let Some(program) = store::free_slot(conn, &program_id).await? {
                pending.push(capacity_event(&program, action_cause(action)));
            }
        }
        _ => {}
    }
    lifecycle::apply(referral, action, now);
    pending.insert(0, referral_event(action_event(action), referral));
    if matches!(action, Action::Decline { .. }) && !lifecycle::ends_referral(action) {
        pending.extend(routing::reroute(conn, referral, now).await?);
    }
    store::save_referral(conn, id, referral).await?;
    events::append_all(conn, pending).await?;
    Ok(())
}
