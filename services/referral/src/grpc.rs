//! `ReferralService` handlers: check the caller, validate into domain types,
//! apply the rules, store the change with its events in one transaction.

use std::sync::Arc;

use onestop_contracts::common::v1::CompanySnapshot;
use onestop_contracts::referral::v1 as pb;
use onestop_contracts::referral::v1::referral_service_server::ReferralService;
use onestop_contracts::referral::v1::{ProgramStatus, ReferralStatus};
use onestop_domain::{CountryCode, HsInterest, NeedCategory, Province};
use onestop_platform::auth::with_caller;
use onestop_platform::events;
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::pagination::Page;
use onestop_platform::time::{Clock, to_timestamp};
use onestop_platform::{ApiError, ApiResult, Caller, Role, Violations};
use prost::Message;
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::catalog;
use crate::domain::directory;
use crate::domain::eligibility::{self, Company, check_id};
use crate::domain::lifecycle::{self, Action};
use crate::routing::{self, capacity_event, referral_event};
use crate::store::{self, ProgramFilter, ReferralFilter};

/// Everyone who may read the directory.
const DIRECTORY_READERS: &[Role] = &Role::ALL;
/// Who may read referrals; agency tokens only their own.
const REFERRAL_READERS: &[Role] = &[Role::Agency, Role::Dashboard, Role::Service, Role::Admin];
/// Who may ask for recommendations: the referrer and the people who help
/// companies choose.
const RECOMMENDERS: &[Role] = &[
    Role::Agency,
    Role::Advisor,
    Role::Dashboard,
    Role::Service,
    Role::Admin,
];
const MAX_DETAIL: usize = 4000;

#[derive(Clone)]
pub struct ReferralApi {
    pool: PgPool,
    clock: Arc<dyn Clock>,
}

impl ReferralApi {
    pub fn new(pool: PgPool, clock: Arc<dyn Clock>) -> Self {
        Self { pool, clock }
    }
}

fn parse_referral_id(text: &str) -> ApiResult<Uuid> {
    onestop_platform::error::parse_id("referral_id", text)
}

fn optional(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

fn category_filter(value: i32, field: &str, violations: &mut Violations) -> Option<String> {
    if value == 0 {
        return None;
    }
    violations
        .check(field, NeedCategory::from_proto(value))
        .map(|c| c.as_str().to_owned())
}

/// The referral as `caller` may see it, or NOT_FOUND: an agency sees only
/// referrals that reached one of its programs, and only its own legs.
fn visible_to(caller: &Caller, id: Uuid, mut referral: pb::Referral) -> ApiResult<pb::Referral> {
    let Some(agency) = caller.tenant_for(Role::Agency) else {
        return Ok(referral);
    };
    if !referral.legs.iter().any(|leg| leg.agency_id == agency) {
        return Err(ApiError::not_found("referral", id));
    }
    referral.legs.retain(|leg| leg.agency_id == agency);
    Ok(referral)
}

/// Validated hand-off of one need.
struct NewReferral {
    category: NeedCategory,
    company: Company,
}

fn parse_create(request: &pb::CreateReferralRequest) -> ApiResult<NewReferral> {
    let mut violations = Violations::default();
    check_id("need_id", &request.need_id, &mut violations);
    check_id("case_id", &request.case_id, &mut violations);
    let category = violations.check("category", NeedCategory::from_proto(request.category));
    let company = Company::parse(request.company.as_ref(), "company", &mut violations);
    if !request.preferred_program_id.is_empty() {
        check_id(
            "preferred_program_id",
            &request.preferred_program_id,
            &mut violations,
        );
    }
    for (i, market) in request.target_markets.iter().enumerate() {
        violations.check(format!("target_markets[{i}]"), CountryCode::parse(market));
    }
    for (i, code) in request.hs_codes.iter().enumerate() {
        violations.check(format!("hs_codes[{i}]"), HsInterest::parse(code));
    }
    if request.detail.chars().count() > MAX_DETAIL {
        violations.add("detail", format!("at most {MAX_DETAIL} characters"));
    }
    violations.finish()?;
    match (category, company) {
        (Some(category), Some(company)) => Ok(NewReferral { category, company }),
        _ => Err(ApiError::invalid("company", "invalid")),
    }
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

impl ReferralApi {
    async fn upsert_agency(
        &self,
        caller: Caller,
        request: pb::UpsertAgencyRequest,
    ) -> ApiResult<pb::Agency> {
        caller.require(&[Role::Admin])?;
        let mut violations = Violations::default();
        let agency = directory::parse_agency(request.agency.as_ref(), &mut violations);
        violations.finish()?;
        let agency = agency.ok_or_else(|| ApiError::invalid("agency", "invalid"))?;
        let mut tx = self.pool.begin().await?;
        let (stored, _) = catalog::save_agency(&mut tx, &agency).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn list_agencies(
        &self,
        caller: Caller,
        request: pb::ListAgenciesRequest,
    ) -> ApiResult<pb::ListAgenciesResponse> {
        caller.require(DIRECTORY_READERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        violations.finish()?;
        let mut conn = self.pool.acquire().await?;
        let mut agencies = store::list_agencies(&mut conn, &page).await?;
        let next_page_token = page.finish(&mut agencies, |a| a.agency_id.clone());
        Ok(pb::ListAgenciesResponse {
            agencies,
            next_page_token,
        })
    }

    async fn upsert_program(
        &self,
        caller: Caller,
        request: pb::UpsertProgramRequest,
    ) -> ApiResult<pb::Program> {
        caller.require(&[Role::Admin])?;
        let mut violations = Violations::default();
        let program = directory::parse_program(request.program.as_ref(), &mut violations);
        violations.finish()?;
        let program = program.ok_or_else(|| ApiError::invalid("program", "invalid"))?;
        let mut tx = self.pool.begin().await?;
        let (stored, _) = catalog::save_program(&mut tx, &program).await?;
        tx.commit().await?;
        Ok(stored)
    }

    async fn list_programs(
        &self,
        caller: Caller,
        request: pb::ListProgramsRequest,
    ) -> ApiResult<pb::ListProgramsResponse> {
        caller.require(DIRECTORY_READERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let category = category_filter(request.category, "category", &mut violations);
        let status = match ProgramStatus::try_from(request.status) {
            Ok(ProgramStatus::Unspecified) => None,
            Ok(status) => Some(directory::stored_name(
                status.as_str_name(),
                "PROGRAM_STATUS_",
            )),
            Err(_) => {
                violations.add("status", "one of ACTIVE, INACTIVE");
                None
            }
        };
        let region = optional(&request.region);
        if let Some(region) = &region {
            violations.check("region", Province::parse(region));
        }
        violations.finish()?;
        let filter = ProgramFilter {
            agency_id: optional(&request.agency_id),
            category,
            status,
            region,
        };
        let mut conn = self.pool.acquire().await?;
        let mut programs = store::list_programs(&mut conn, &filter, &page).await?;
        let next_page_token = page.finish(&mut programs, |p| p.program_id.clone());
        Ok(pb::ListProgramsResponse {
            programs,
            next_page_token,
        })
    }

    async fn recommend_programs(
        &self,
        caller: Caller,
        request: pb::RecommendProgramsRequest,
    ) -> ApiResult<pb::RecommendProgramsResponse> {
        caller.require(RECOMMENDERS)?;
        let mut violations = Violations::default();
        let category = violations.check("category", NeedCategory::from_proto(request.category));
        let company = Company::parse(request.company.as_ref(), "company", &mut violations);
        violations.finish()?;
        let (Some(category), Some(company)) = (category, company) else {
            return Err(ApiError::invalid("company", "invalid"));
        };
        let mut conn = self.pool.acquire().await?;
        let (eligible, ineligible) = routing::evaluate_all(&mut conn, category, &company).await?;
        Ok(pb::RecommendProgramsResponse {
            eligible,
            ineligible,
        })
    }

    async fn create_referral(
        &self,
        caller: Caller,
        request: pb::CreateReferralRequest,
    ) -> ApiResult<pb::Referral> {
        caller.require(&[Role::Service, Role::Admin])?;
        let valid = parse_create(&request)?;
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
            if found.is_none() && store::load_program(&mut tx, preferred).await?.is_none() {
                return Err(ApiError::invalid(
                    "preferred_program_id",
                    "no such program in the directory",
                ));
            }
            found
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
                "referral.routed"
            }
            None => {
                referral.preferred_program_evaluation = preferred_evaluation;
                referral.unroutable_reasons = eligible.into_iter().chain(ineligible).collect();
                "referral.unroutable"
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
                referral_event("referral.created", &referral),
                referral_event(event_type, &referral),
            ],
        )
        .await?;
        key.record(&mut tx, &referral, &referral.referral_id)
            .await?;
        tx.commit().await?;
        tracing::info!(referral_id = %id, event = event_type, "referral created");
        Ok(referral)
    }

    async fn get_referral(
        &self,
        caller: Caller,
        request: pb::GetReferralRequest,
    ) -> ApiResult<pb::Referral> {
        caller.require(REFERRAL_READERS)?;
        let id = parse_referral_id(&request.referral_id)?;
        let mut conn = self.pool.acquire().await?;
        let referral = store::load_referral(&mut conn, id, false)
            .await?
            .ok_or_else(|| ApiError::not_found("referral", id))?;
        visible_to(&caller, id, referral)
    }

    async fn list_referrals(
        &self,
        caller: Caller,
        request: pb::ListReferralsRequest,
    ) -> ApiResult<pb::ListReferralsResponse> {
        caller.require(REFERRAL_READERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let mut statuses = Vec::new();
        for (i, status) in request.statuses.iter().enumerate() {
            match ReferralStatus::try_from(*status) {
                Ok(ReferralStatus::Unspecified) | Err(_) => {
                    violations.add(format!("statuses[{i}]"), "a referral status such as SENT")
                }
                Ok(status) => statuses.push(lifecycle::status_name(status).to_owned()),
            }
        }
        let category = category_filter(request.category, "category", &mut violations);
        violations.finish()?;
        let agency_id = match caller.tenant_for(Role::Agency) {
            Some(own) => Some(own.to_owned()),
            None => optional(&request.agency_id),
        };
        let filter = ReferralFilter {
            statuses,
            agency_id,
            include_rerouted_away: request.include_rerouted_away,
            program_id: optional(&request.program_id),
            company_id: optional(&request.company_id),
            case_id: optional(&request.case_id),
            need_id: optional(&request.need_id),
            category,
        };
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_referrals(&mut conn, &filter, &page).await?;
        let next_page_token = page.finish(&mut rows, |(id, _)| id.to_string());
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
    /// events, all in one transaction.
    async fn transition<R: Message>(
        &self,
        caller: Caller,
        (method, roles): (&'static str, &'static [Role]),
        key: &str,
        request: &R,
        referral_id: &str,
        action: ApiResult<Action>,
    ) -> ApiResult<pb::Referral> {
        caller.require(roles)?;
        let id = parse_referral_id(referral_id)?;
        let action = action?;
        let key = IdempotencyKey::new(&caller, method, key, request)?;
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Referral>(&mut tx).await? {
            return Ok(first);
        }
        let mut referral = store::load_referral(&mut tx, id, true)
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
        let program_id = referral
            .legs
            .last()
            .map(|leg| leg.program_id.clone())
            .unwrap_or_default();
        let mut pending = Vec::new();
        match &action {
            Action::Accept { .. } => {
                let program = store::take_slot(&mut tx, &program_id).await?.ok_or_else(|| {
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
                if let Some(program) = store::free_slot(&mut tx, &program_id).await? {
                    pending.push(capacity_event(&program, action_cause(&action)));
                }
            }
            _ => {}
        }
        lifecycle::apply(&mut referral, &action, now);
        pending.insert(0, referral_event(action_event(&action), &referral));
        if matches!(action, Action::Decline { .. }) && !lifecycle::ends_referral(&action) {
            pending.extend(routing::reroute(&mut tx, &mut referral, now).await?);
        }
        store::save_referral(&mut tx, id, &referral).await?;
        events::append_all(&mut tx, pending).await?;
        let response = visible_to(&caller, id, referral)?;
        key.record(&mut tx, &response, &id.to_string()).await?;
        tx.commit().await?;
        tracing::info!(referral_id = %id, action = action.name(), "referral moved");
        Ok(response)
    }
}

impl ReferralApi {
    /// A lifecycle RPC: the request's action, key and referral, moved.
    async fn act<Req: Message>(
        &self,
        request: Request<Req>,
        method: (&'static str, &'static [Role]),
        parts: impl FnOnce(&Req) -> (ApiResult<Action>, &String, &String),
    ) -> Result<Response<pb::Referral>, Status> {
        with_caller(request, |caller, req| async move {
            let (action, key, referral_id) = parts(&req);
            self.transition(caller, method, key, &req, referral_id, action)
                .await
        })
        .await
    }
}

fn action_event(action: &Action) -> &'static str {
    match action {
        Action::Accept { .. } => "referral.accepted",
        Action::Decline { .. } => "referral.declined",
        Action::Start { .. } => "referral.started",
        Action::Complete { .. } => "referral.completed",
        Action::Fail { .. } => "referral.failed",
        Action::Cancel { .. } => "referral.cancelled",
    }
}

fn action_cause(action: &Action) -> &'static str {
    match action {
        Action::Complete { .. } => "completed",
        Action::Fail { .. } => "failed",
        _ => "cancelled",
    }
}

#[tonic::async_trait]
impl ReferralService for ReferralApi {
    async fn upsert_agency(
        &self,
        request: Request<pb::UpsertAgencyRequest>,
    ) -> Result<Response<pb::Agency>, Status> {
        with_caller(request, |caller, req| self.upsert_agency(caller, req)).await
    }
    async fn list_agencies(
        &self,
        request: Request<pb::ListAgenciesRequest>,
    ) -> Result<Response<pb::ListAgenciesResponse>, Status> {
        with_caller(request, |caller, req| self.list_agencies(caller, req)).await
    }
    async fn upsert_program(
        &self,
        request: Request<pb::UpsertProgramRequest>,
    ) -> Result<Response<pb::Program>, Status> {
        with_caller(request, |caller, req| self.upsert_program(caller, req)).await
    }
    async fn list_programs(
        &self,
        request: Request<pb::ListProgramsRequest>,
    ) -> Result<Response<pb::ListProgramsResponse>, Status> {
        with_caller(request, |caller, req| self.list_programs(caller, req)).await
    }
    async fn recommend_programs(
        &self,
        request: Request<pb::RecommendProgramsRequest>,
    ) -> Result<Response<pb::RecommendProgramsResponse>, Status> {
        with_caller(request, |caller, req| self.recommend_programs(caller, req)).await
    }
    async fn create_referral(
        &self,
        request: Request<pb::CreateReferralRequest>,
    ) -> Result<Response<pb::Referral>, Status> {
        with_caller(request, |caller, req| self.create_referral(caller, req)).await
    }
    async fn get_referral(
        &self,
        request: Request<pb::GetReferralRequest>,
    ) -> Result<Response<pb::Referral>, Status> {
        with_caller(request, |caller, req| self.get_referral(caller, req)).await
    }
    async fn list_referrals(
        &self,
        request: Request<pb::ListReferralsRequest>,
    ) -> Result<Response<pb::ListReferralsResponse>, Status> {
        with_caller(request, |caller, req| self.list_referrals(caller, req)).await
    }
    async fn accept_referral(
        &self,
        request: Request<pb::AcceptReferralRequest>,
    ) -> Result<Response<pb::Referral>, Status> {
        self.act(
            request,
            ("AcceptReferral", lifecycle::RECEIVING_AGENCY),
            |req| {
                (
                    Action::accept(&req.note),
                    &req.idempotency_key,
                    &req.referral_id,
                )
            },
        )
        .await
    }
    async fn decline_referral(
        &self,
        request: Request<pb::DeclineReferralRequest>,
    ) -> Result<Response<pb::Referral>, Status> {
        self.act(
            request,
            ("DeclineReferral", lifecycle::RECEIVING_AGENCY),
            |req| {
                (
                    Action::decline(req.reason, req.declined_by, &req.note),
                    &req.idempotency_key,
                    &req.referral_id,
                )
            },
        )
        .await
    }
    async fn start_referral(
        &self,
        request: Request<pb::StartReferralRequest>,
    ) -> Result<Response<pb::Referral>, Status> {
        self.act(
            request,
            ("StartReferral", lifecycle::RECEIVING_AGENCY),
            |req| {
                (
                    Action::start(&req.note),
                    &req.idempotency_key,
                    &req.referral_id,
                )
            },
        )
        .await
    }
    async fn complete_referral(
        &self,
        request: Request<pb::CompleteReferralRequest>,
    ) -> Result<Response<pb::Referral>, Status> {
        self.act(
            request,
            ("CompleteReferral", lifecycle::RECEIVING_AGENCY),
            |req| {
                (
                    Action::complete(req.outcome.as_ref()),
                    &req.idempotency_key,
                    &req.referral_id,
                )
            },
        )
        .await
    }
    async fn fail_referral(
        &self,
        request: Request<pb::FailReferralRequest>,
    ) -> Result<Response<pb::Referral>, Status> {
        self.act(
            request,
            ("FailReferral", lifecycle::RECEIVING_AGENCY),
            |req| {
                (
                    Action::fail(req.reason, &req.note),
                    &req.idempotency_key,
                    &req.referral_id,
                )
            },
        )
        .await
    }
    async fn cancel_referral(
        &self,
        request: Request<pb::CancelReferralRequest>,
    ) -> Result<Response<pb::Referral>, Status> {
        self.act(request, ("CancelReferral", lifecycle::REFERRER), |req| {
            (
                Action::cancel(&req.reason),
                &req.idempotency_key,
                &req.referral_id,
            )
        })
        .await
    }
}
