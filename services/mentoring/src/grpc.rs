//! `MentoringService` handlers: check the caller, validate into domain
//! types, apply the rules, store the change with its events in one
//! transaction.

use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};
use onestop_contracts::mentoring::v1 as pb;
use onestop_contracts::mentoring::v1::mentoring_service_server::MentoringService;
use onestop_domain::{CountryCode, GrowthStage, LanguageCode, Province};
use onestop_platform::auth::with_caller;
use onestop_platform::error::is_unique_violation;
use onestop_platform::error::parse_id;
use onestop_platform::events::NewEvent;
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::pagination::{Page, encode_token};
use onestop_platform::time::{Clock, from_timestamp};
use onestop_platform::{ApiError, ApiResult, Caller, Role, Violations};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::continuity::{self, Outbox, Placement, Retirement, Rules};
use crate::domain::advisor::{self, AdvisorKind, AdvisorProfile};
use crate::domain::request::AdvisorRequest;
use crate::domain::session::SessionLog;
use crate::store::{self, CompanyRecord};

/// Who may read the pool, assignments and ledgers.
const READERS: &[Role] = &[Role::Admin, Role::Service, Role::Dashboard, Role::Advisor];
/// Internal readers that see every advisor's records.
const OVERSEERS: &[Role] = &[Role::Admin, Role::Service, Role::Dashboard];

#[derive(Clone)]
pub struct MentoringApi {
    pool: PgPool,
    rules: Rules,
    clock: Arc<dyn Clock>,
}

impl MentoringApi {
    pub fn new(pool: PgPool, rules: Rules, clock: Arc<dyn Clock>) -> Self {
        Self { pool, rules, clock }
    }
}

fn optional_id(field: &str, text: &str, violations: &mut Violations) -> Option<Uuid> {
    if text.is_empty() {
        return None;
    }
    let parsed = Uuid::parse_str(text).ok();
    if parsed.is_none() {
        violations.add(field, "a UUID returned by this API");
    }
    parsed
}

fn optional_time(
    field: &str,
    at: Option<&prost_types::Timestamp>,
    violations: &mut Violations,
) -> Option<DateTime<Utc>> {
    let at = at?;
    let parsed = from_timestamp(at);
    if parsed.is_none() {
        violations.add(field, "a valid timestamp");
    }
    parsed
}

/// A validated request to replace or end an assignment.
struct Change {
    assignment_id: Uuid,
    reason: &'static str,
    reason_proto: pb::ReassignReason,
    note: String,
}

impl Change {
    fn parse(
        assignment_id: &str,
        reason: i32,
        note: &str,
        advisor_left_allowed: bool,
        violations: &mut Violations,
    ) -> Option<Self> {
        let id = optional_id("assignment_id", assignment_id, violations);
        if assignment_id.is_empty() {
            violations.add("assignment_id", "required");
        }
        let reason_proto = pb::ReassignReason::try_from(reason).ok();
        let reason = match reason_proto {
            Some(pb::ReassignReason::AdvisorLeft) if advisor_left_allowed => Some("ADVISOR_LEFT"),
            Some(pb::ReassignReason::CompanyRequest) => Some("COMPANY_REQUEST"),
            Some(pb::ReassignReason::Conflict) => Some("CONFLICT"),
            Some(pb::ReassignReason::Other) => Some("OTHER"),
            _ => {
                violations.add(
                    "reason",
                    if advisor_left_allowed {
                        "required: one of ADVISOR_LEFT, COMPANY_REQUEST, CONFLICT, OTHER"
                    } else {
                        "required: one of COMPANY_REQUEST, CONFLICT, OTHER"
                    },
                );
                None
            }
        };
        let note = note.trim().to_owned();
        if reason == Some("OTHER") && note.is_empty() {
            violations.add("note", "required when the reason is OTHER");
        }
        if note.chars().count() > 1000 {
            violations.add("note", "at most 1000 characters");
        }
        Some(Self {
            assignment_id: id?,
            reason: reason?,
            reason_proto: reason_proto?,
            note,
        })
    }
}

/// Locks the assignment's company, then the assignment, which must be
/// ACTIVE; call with the waitlist lock held.
async fn lock_active_assignment(
    tx: &mut sqlx::PgConnection,
    assignment_id: Uuid,
) -> ApiResult<(CompanyRecord, pb::Assignment)> {
    let current = store::load_assignment(tx, assignment_id, false)
        .await?
        .ok_or_else(|| ApiError::not_found("assignment", assignment_id))?;
    let company_id = stored_id(&current.company_id)?;
    let company = store::lock_company(tx, company_id)
        .await?
        .ok_or_else(|| ApiError::not_found("company", company_id))?;
    let current = store::load_assignment(tx, assignment_id, true)
        .await?
        .ok_or_else(|| ApiError::not_found("assignment", assignment_id))?;
    if current.status != pb::AssignmentStatus::Active as i32 {
        return Err(ApiError::failed_precondition(
            "ASSIGNMENT_NOT_ACTIVE",
            format!("assignment {assignment_id} is not active"),
        ));
    }
    Ok((company, current))
}

fn stored_id(text: &str) -> ApiResult<Uuid> {
    Uuid::parse_str(text).map_err(|error| ApiError::Internal(anyhow::anyhow!("stored id: {error}")))
}

/// The advisor an advisor token acts for; None for every other role.
fn own_advisor(caller: &Caller) -> Option<Uuid> {
    caller
        .tenant_for(Role::Advisor)
        .and_then(|tenant| Uuid::parse_str(tenant).ok())
}

/// Advisors read only their own records; anyone else's look absent.
fn visible_to(caller: &Caller, advisor_ids: &[&str]) -> bool {
    if caller.role != Role::Advisor {
        return true;
    }
    let Some(own) = own_advisor(caller) else {
        return false;
    };
    let own = own.to_string();
    advisor_ids.iter().any(|id| **id == own)
}

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

fn month_filter(field: &str, text: &str, violations: &mut Violations) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let valid = text.len() == 7
        && text.as_bytes()[4] == b'-'
        && text[..4].chars().all(|c| c.is_ascii_digit())
        && matches!(text[5..].parse::<u32>(), Ok(1..=12));
    if !valid {
        violations.add(field, "a month as YYYY-MM, e.g. 2026-03");
        return None;
    }
    Some(text.to_owned())
}

impl MentoringApi {
    fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    async fn register_advisor(
        &self,
        caller: Caller,
        request: pb::RegisterAdvisorRequest,
    ) -> ApiResult<pb::Advisor> {
        caller.require(&[Role::Admin])?;
        let key = IdempotencyKey::new(
            &caller,
            "RegisterAdvisor",
            &request.idempotency_key,
            &request,
        )?;
        let mut violations = Violations::default();
        let profile =
            violations.required("profile", request.profile.as_ref(), AdvisorProfile::parse);
        violations.finish()?;
        let profile = profile.ok_or_else(|| ApiError::invalid("profile", "invalid"))?;

        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Advisor>(&mut tx).await? {
            return Ok(first);
        }
        // A new advisor is new capacity: the waitlist may fill.
        continuity::lock_waitlist(&mut tx).await?;
        let id = Uuid::now_v7();
        let now = self.now();
        store::save_advisor(&mut tx, id, &profile, now).await?;
        let mut outbox = Outbox::default();
        outbox.push(NewEvent::new(
            "advisor.registered",
            "advisor",
            id,
            &pb::AdvisorRegistered {
                advisor_id: id.to_string(),
                kind: profile.kind.to_proto() as i32,
                region: profile.region.code().to_owned(),
                capacity: profile.capacity,
                remote: profile.remote,
                languages: profile
                    .languages
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
                markets: profile
                    .markets
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
                industries_ksic: profile
                    .industries_ksic
                    .iter()
                    .map(|c| c.as_str().to_owned())
                    .collect(),
                program_id: profile.program.id.clone(),
            },
        ));
        continuity::fill_waitlist(&mut tx, &self.rules, now, &mut outbox).await?;
        outbox.append(&mut tx).await?;
        let advisor = store::load_advisor(&mut tx, id, false)
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("advisor vanished")))?;
        key.record(&mut tx, &advisor, &id.to_string()).await?;
        tx.commit().await?;
        tracing::info!(advisor_id = %id, "advisor registered");
        Ok(advisor)
    }

    async fn update_advisor(
        &self,
        caller: Caller,
        request: pb::UpdateAdvisorRequest,
    ) -> ApiResult<pb::Advisor> {
        caller.require(&[Role::Admin, Role::Advisor])?;
        let key =
            IdempotencyKey::new(&caller, "UpdateAdvisor", &request.idempotency_key, &request)?;
        let id = parse_id("advisor_id", &request.advisor_id)?;
        if caller.role == Role::Advisor && own_advisor(&caller) != Some(id) {
            return Err(ApiError::not_found("advisor", id));
        }
        let Some(update) = &request.profile else {
            return Err(ApiError::invalid("profile", "required"));
        };
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Advisor>(&mut tx).await? {
            return Ok(first);
        }
        // A raised capacity may fill the waitlist: take its lock first.
        continuity::lock_waitlist(&mut tx).await?;
        let current = store::load_advisor(&mut tx, id, true)
            .await?
            .ok_or_else(|| ApiError::not_found("advisor", id))?;
        let current_profile = current.profile.clone().unwrap_or_default();
        let mut violations = Violations::default();
        let merged = advisor::apply_mask(
            &current_profile,
            update,
            &request.update_mask,
            &mut violations,
        );
        let profile = AdvisorProfile::parse(&merged, "profile", &mut violations);
        violations.finish()?;
        let profile = profile.ok_or_else(|| ApiError::invalid("profile", "invalid"))?;
        if caller.role == Role::Advisor && merged.program != current_profile.program {
            return Err(ApiError::PermissionDenied(
                "only an admin changes the program and fee an advisor serves under".into(),
            ));
        }
        let now = self.now();
        store::save_advisor(&mut tx, id, &profile, now).await?;
        let mut outbox = Outbox::default();
        if current.status == pb::AdvisorStatus::Active as i32
            && profile.capacity > current_profile.capacity
        {
            continuity::fill_waitlist(&mut tx, &self.rules, now, &mut outbox).await?;
        }
        outbox.append(&mut tx).await?;
        let advisor = store::load_advisor(&mut tx, id, false)
            .await?
            .ok_or_else(|| ApiError::not_found("advisor", id))?;
        key.record(&mut tx, &advisor, &id.to_string()).await?;
        tx.commit().await?;
        Ok(advisor)
    }

    async fn deactivate_advisor(
        &self,
        caller: Caller,
        request: pb::DeactivateAdvisorRequest,
    ) -> ApiResult<pb::DeactivateAdvisorResponse> {
        caller.require(&[Role::Admin])?;
        let key = IdempotencyKey::new(
            &caller,
            "DeactivateAdvisor",
            &request.idempotency_key,
            &request,
        )?;
        let id = parse_id("advisor_id", &request.advisor_id)?;
        if request.handover_days > 365 {
            return Err(ApiError::invalid("handover_days", "0 to 365 days"));
        }
        let days = match request.handover_days {
            0 => self.rules.handover_days.max(1),
            days => days,
        };
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::DeactivateAdvisorResponse>(&mut tx).await? {
            return Ok(first);
        }
        continuity::lock_waitlist(&mut tx).await?;
        let now = self.now();
        store::load_advisor(&mut tx, id, true)
            .await?
            .ok_or_else(|| ApiError::not_found("advisor", id))?;
        if !store::mark_advisor_inactive(&mut tx, id, now).await? {
            return Err(ApiError::failed_precondition(
                "ADVISOR_INACTIVE",
                format!("advisor {id} is already inactive"),
            ));
        }
        // Inactive under the row lock, the advisor takes no new company, so
        // this list is complete.
        let mut companies = store::companies_of_advisor(&mut tx, id).await?;
        companies.sort();
        let mut records = Vec::new();
        for company in &companies {
            if let Some(record) = store::lock_company(&mut tx, *company).await? {
                records.push(record);
            }
        }
        let handover_until = now + Duration::days(i64::from(days));
        let mut outbox = Outbox::default();
        let mut handovers = Vec::new();
        for company in &records {
            let Some(outgoing) = store::active_assignment_of(&mut tx, company.id).await? else {
                continue;
            };
            if outgoing.advisor_id != id.to_string() {
                continue;
            }
            let retirement = Retirement {
                assignment: &outgoing,
                reason: "ADVISOR_LEFT",
                reason_proto: pb::ReassignReason::AdvisorLeft,
                note: String::new(),
                handover_until: Some(handover_until),
            };
            continuity::retire(&mut tx, &retirement, now).await?;
            let outgoing_id = stored_id(&outgoing.assignment_id)?;
            let placement = Placement {
                company,
                exclude: Some(id),
                only: None,
                predecessor: Some(outgoing_id),
                from_waitlist: false,
                patient: true,
            };
            let successor =
                continuity::assign_best(&mut tx, &self.rules, placement, now, &mut outbox).await?;
            outbox.push(continuity::departure_event(&retirement, successor.as_ref()));
            let successor = match successor {
                Some(successor) => {
                    continuity::record_successor(&mut tx, &retirement, &successor, &mut outbox)
                        .await?;
                    pb::handover::Successor::SuccessorAssignment(successor)
                }
                None => pb::handover::Successor::Waitlisted(
                    continuity::enqueue(
                        &mut tx,
                        company.id,
                        None,
                        Some(&outgoing),
                        now,
                        &mut outbox,
                    )
                    .await?,
                ),
            };
            handovers.push(pb::Handover {
                company_id: company.id.to_string(),
                outgoing_assignment_id: outgoing.assignment_id.clone(),
                handover_until: Some(onestop_platform::time::to_timestamp(handover_until)),
                successor: Some(successor),
            });
        }
        let handover_ids = handovers
            .iter()
            .map(|h| h.outgoing_assignment_id.clone())
            .collect();
        // Deactivation comes first on the feed: it explains what follows.
        let mut ordered = Outbox::default();
        ordered.push(NewEvent::new(
            "advisor.deactivated",
            "advisor",
            id,
            &pb::AdvisorDeactivated {
                advisor_id: id.to_string(),
                handover_assignment_ids: handover_ids,
            },
        ));
        ordered.append(&mut tx).await?;
        outbox.append(&mut tx).await?;
        let advisor = store::load_advisor(&mut tx, id, false)
            .await?
            .ok_or_else(|| ApiError::not_found("advisor", id))?;
        let response = pb::DeactivateAdvisorResponse {
            advisor: Some(advisor),
            handovers,
        };
        key.record(&mut tx, &response, &id.to_string()).await?;
        tx.commit().await?;
        tracing::info!(advisor_id = %id, handovers = response.handovers.len(), "advisor deactivated");
        Ok(response)
    }

    async fn get_advisor(
        &self,
        caller: Caller,
        request: pb::GetAdvisorRequest,
    ) -> ApiResult<pb::Advisor> {
        caller.require(READERS)?;
        let id = parse_id("advisor_id", &request.advisor_id)?;
        if !visible_to(&caller, &[&request.advisor_id]) {
            return Err(ApiError::not_found("advisor", id));
        }
        let mut conn = self.pool.acquire().await?;
        let advisor = store::load_advisor(&mut conn, id, false)
            .await?
            .ok_or_else(|| ApiError::not_found("advisor", id))?;
        Ok(redact_for(&caller, advisor))
    }

    async fn list_advisors(
        &self,
        caller: Caller,
        request: pb::ListAdvisorsRequest,
    ) -> ApiResult<pb::ListAdvisorsResponse> {
        caller.require(OVERSEERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let kind = match request.kind {
            0 => None,
            value => match AdvisorKind::from_proto(value) {
                Some(kind) => Some(kind.as_str()),
                None => {
                    violations.add("kind", "one of AGENCY_STAFF, RETIRED_EXPERT, HOME_DOCTOR");
                    None
                }
            },
        };
        let status = match pb::AdvisorStatus::try_from(request.status) {
            Ok(pb::AdvisorStatus::Unspecified) => None,
            Ok(pb::AdvisorStatus::Active) => Some(store::ACTIVE),
            Ok(pb::AdvisorStatus::Inactive) => Some(store::INACTIVE),
            Err(_) => {
                violations.add("status", "one of ACTIVE, INACTIVE");
                None
            }
        };
        let region = (!request.region.is_empty())
            .then(|| violations.check("region", Province::parse(&request.region)))
            .flatten()
            .map(|p| p.code().to_owned());
        let language = (!request.language.is_empty())
            .then(|| violations.check("language", LanguageCode::parse(&request.language)))
            .flatten()
            .map(|c| c.as_str().to_owned());
        let market = (!request.market.is_empty())
            .then(|| violations.check("market", CountryCode::parse(&request.market)))
            .flatten()
            .map(|c| c.as_str().to_owned());
        let after = page.after.as_deref().and_then(|k| Uuid::parse_str(k).ok());
        violations.finish()?;
        let filter = store::AdvisorFilter {
            kind,
            status,
            region,
            language,
            market,
            with_free_capacity_only: request.with_free_capacity_only,
        };
        let mut advisors =
            store::list_advisors(&self.pool, &filter, after, page.fetch_limit()).await?;
        let next_page_token = page.finish(&mut advisors, |a| a.advisor_id.clone());
        Ok(pb::ListAdvisorsResponse {
            advisors: advisors
                .into_iter()
                .map(|a| redact_for(&caller, a))
                .collect(),
            next_page_token,
        })
    }

    async fn request_advisor(
        &self,
        caller: Caller,
        request: pb::RequestAdvisorRequest,
    ) -> ApiResult<pb::RequestAdvisorResponse> {
        caller.require(&[Role::Service, Role::Admin])?;
        let mut violations = Violations::default();
        let parsed = AdvisorRequest::parse(&request, &mut violations);
        violations.finish()?;
        let parsed = parsed.ok_or_else(|| ApiError::invalid("company", "invalid"))?;
        // Keyed on the need and its company only: a redelivery carrying a
        // fresher snapshot of the same company still replays the first result.
        let identity = pb::RequestAdvisorRequest {
            need_id: request.need_id.clone(),
            company: Some(onestop_contracts::common::v1::CompanySnapshot {
                company_id: parsed.company_id.to_string(),
                ..Default::default()
            }),
            ..Default::default()
        };
        let key = IdempotencyKey::natural("RequestAdvisor", &parsed.need_id.to_string(), &identity);

        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::RequestAdvisorResponse>(&mut tx).await? {
            return Ok(first);
        }
        let now = self.now();
        store::upsert_company(&mut tx, &parsed, now).await?;
        if let Err(error) = store::insert_need(&mut tx, &parsed, now).await {
            if is_unique_violation(&error) {
                return Err(ApiError::failed_precondition(
                    "IDEMPOTENCY_KEY_REUSED",
                    "this need was handed over before with a different request",
                ));
            }
            return Err(error.into());
        }
        let mut outbox = Outbox::default();
        let outcome = self.place(&mut tx, &parsed, now, &mut outbox).await?;
        outbox.append(&mut tx).await?;
        let response = pb::RequestAdvisorResponse {
            outcome: Some(outcome),
        };
        key.record(&mut tx, &response, &parsed.company_id.to_string())
            .await?;
        tx.commit().await?;
        Ok(response)
    }

    /// Joins the company's current assignment or queue entry, or assigns
    /// the best free advisor, or queues the company.
    async fn place(
        &self,
        tx: &mut sqlx::PgConnection,
        request: &AdvisorRequest,
        now: DateTime<Utc>,
        outbox: &mut Outbox,
    ) -> ApiResult<pb::request_advisor_response::Outcome> {
        use pb::request_advisor_response::Outcome;
        if let Some(active) = store::active_assignment_of(tx, request.company_id).await? {
            let assignment_id = stored_id(&active.assignment_id)?;
            store::add_need_to_assignment(tx, assignment_id, request.need_id, request.case_id)
                .await?;
            // A company that climbed the ladder gets the cadence of its new stage.
            store::set_stage(
                tx,
                assignment_id,
                request.stage,
                self.rules.cadence.interval_days(request.stage),
            )
            .await?;
            let joined = store::load_assignment(tx, assignment_id, false)
                .await?
                .unwrap_or(active);
            return Ok(Outcome::AlreadyAssigned(joined));
        }
        if let Some(waiting) = store::waiting_entry_of_company(tx, request.company_id).await? {
            return Ok(Outcome::Waitlisted(waiting));
        }
        let company = CompanyRecord {
            id: request.company_id,
            stage: request.stage,
            features: request.features.clone(),
        };
        let placement = |patient| Placement {
            company: &company,
            exclude: None,
            only: None,
            predecessor: None,
            from_waitlist: false,
            patient,
        };
        // A candidate that filled up under our feet can stay locked by the
        // failed claim; the savepoint lets go of such locks before this
        // transaction queues for the waitlist lock.
        let mut attempt = sqlx::Connection::begin(&mut *tx).await?;
        match continuity::assign_best(&mut attempt, &self.rules, placement(false), now, outbox)
            .await?
        {
            Some(assignment) => {
                attempt.commit().await?;
                return Ok(Outcome::Assigned(assignment));
            }
            None => attempt.rollback().await?,
        }
        // Look again under the waitlist lock: a slot freed since the first
        // look would otherwise be missed by this request and by the fill.
        continuity::lock_waitlist(tx).await?;
        if let Some(assignment) =
            continuity::assign_best(tx, &self.rules, placement(true), now, outbox).await?
        {
            return Ok(Outcome::Assigned(assignment));
        }
        let entry = continuity::enqueue(
            tx,
            request.company_id,
            Some((request.need_id, request.case_id)),
            None,
            now,
            outbox,
        )
        .await?;
        Ok(Outcome::Waitlisted(entry))
    }

    async fn get_assignment(
        &self,
        caller: Caller,
        request: pb::GetAssignmentRequest,
    ) -> ApiResult<pb::Assignment> {
        use pb::get_assignment_request::Lookup;
        caller.require(READERS)?;
        let mut conn = self.pool.acquire().await?;
        let assignment = match &request.lookup {
            Some(Lookup::AssignmentId(id)) => {
                let id = parse_id("assignment_id", id)?;
                store::load_assignment(&mut conn, id, false)
                    .await?
                    .ok_or_else(|| ApiError::not_found("assignment", id))?
            }
            Some(Lookup::CompanyId(id)) => {
                let id = parse_id("company_id", id)?;
                store::active_assignment_of(&mut conn, id)
                    .await?
                    .ok_or_else(|| ApiError::not_found("active assignment of company", id))?
            }
            None => {
                return Err(ApiError::invalid(
                    "lookup",
                    "assignment_id or company_id is required",
                ));
            }
        };
        if !visible_to(&caller, &[&assignment.advisor_id]) {
            return Err(ApiError::NotFound("assignment not found".into()));
        }
        Ok(assignment)
    }

    async fn reassign_advisor(
        &self,
        caller: Caller,
        request: pb::ReassignAdvisorRequest,
    ) -> ApiResult<pb::ReassignAdvisorResponse> {
        caller.require(&[Role::Admin])?;
        let key = IdempotencyKey::new(
            &caller,
            "ReassignAdvisor",
            &request.idempotency_key,
            &request,
        )?;
        let mut violations = Violations::default();
        let change = Change::parse(
            &request.assignment_id,
            request.reason,
            &request.note,
            true,
            &mut violations,
        );
        let named = optional_id("advisor_id", &request.advisor_id, &mut violations);
        if request.handover_days > 365 {
            violations.add("handover_days", "0 to 365 days");
        }
        violations.finish()?;
        let change = change.ok_or_else(|| ApiError::invalid("reason", "required"))?;
        let assignment_id = change.assignment_id;

        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::ReassignAdvisorResponse>(&mut tx).await? {
            return Ok(first);
        }
        continuity::lock_waitlist(&mut tx).await?;
        let now = self.now();
        let (company, current) = lock_active_assignment(&mut tx, assignment_id).await?;
        let company_id = company.id;
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
            reason_proto: change.reason_proto,
            note: change.note,
            handover_until: (request.handover_days > 0)
                .then(|| now + Duration::days(i64::from(request.handover_days))),
        };
        continuity::retire(&mut tx, &retirement, now).await?;
        let mut outbox = Outbox::default();
        let placement = Placement {
            company: &company,
            exclude: Some(current_advisor),
            only: named,
            predecessor: Some(assignment_id),
            from_waitlist: false,
            patient: true,
        };
        let Some(successor) =
            continuity::assign_best(&mut tx, &self.rules, placement, now, &mut outbox).await?
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
        continuity::record_successor(&mut tx, &retirement, &successor, &mut outbox).await?;
        outbox.push(continuity::departure_event(&retirement, Some(&successor)));
        // The outgoing advisor's slot is free now.
        continuity::fill_waitlist(&mut tx, &self.rules, now, &mut outbox).await?;
        outbox.append(&mut tx).await?;
        let previous = store::load_assignment(&mut tx, assignment_id, false)
            .await?
            .ok_or_else(|| ApiError::not_found("assignment", assignment_id))?;
        let response = pb::ReassignAdvisorResponse {
            previous: Some(previous),
            current: Some(successor),
        };
        key.record(&mut tx, &response, &company_id.to_string())
            .await?;
        tx.commit().await?;
        Ok(response)
    }

    async fn end_assignment(
        &self,
        caller: Caller,
        request: pb::EndAssignmentRequest,
    ) -> ApiResult<pb::Assignment> {
        caller.require(&[Role::Admin])?;
        let key =
            IdempotencyKey::new(&caller, "EndAssignment", &request.idempotency_key, &request)?;
        let mut violations = Violations::default();
        let change = Change::parse(
            &request.assignment_id,
            request.reason,
            &request.note,
            false,
            &mut violations,
        );
        violations.finish()?;
        let change = change.ok_or_else(|| ApiError::invalid("reason", "required"))?;

        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Assignment>(&mut tx).await? {
            return Ok(first);
        }
        continuity::lock_waitlist(&mut tx).await?;
        let now = self.now();
        let (_, current) = lock_active_assignment(&mut tx, change.assignment_id).await?;
        let retirement = Retirement {
            assignment: &current,
            reason: change.reason,
            reason_proto: change.reason_proto,
            note: change.note,
            handover_until: None,
        };
        continuity::retire(&mut tx, &retirement, now).await?;
        let mut outbox = Outbox::default();
        outbox.push(continuity::departure_event(&retirement, None));
        continuity::fill_waitlist(&mut tx, &self.rules, now, &mut outbox).await?;
        outbox.append(&mut tx).await?;
        let ended = store::load_assignment(&mut tx, change.assignment_id, false)
            .await?
            .ok_or_else(|| ApiError::not_found("assignment", change.assignment_id))?;
        key.record(&mut tx, &ended, &ended.company_id).await?;
        tx.commit().await?;
        Ok(ended)
    }

    async fn get_advisor_history(
        &self,
        caller: Caller,
        request: pb::GetAdvisorHistoryRequest,
    ) -> ApiResult<pb::AdvisorHistory> {
        caller.require(READERS)?;
        let company_id = parse_id("company_id", &request.company_id)?;
        let mut conn = self.pool.acquire().await?;
        let assignments = store::assignments_of_company(&mut conn, company_id).await?;
        let advisors: Vec<&str> = assignments.iter().map(|a| a.advisor_id.as_str()).collect();
        if assignments.is_empty() || !visible_to(&caller, &advisors) {
            return Err(ApiError::not_found(
                "advisor history of company",
                company_id,
            ));
        }
        let changes = store::changes_of_company(&mut conn, company_id).await?;
        Ok(pb::AdvisorHistory {
            company_id: company_id.to_string(),
            assignments,
            changes,
        })
    }

    async fn log_session(
        &self,
        caller: Caller,
        request: pb::LogSessionRequest,
    ) -> ApiResult<pb::Session> {
        caller.require(&[Role::Admin, Role::Advisor])?;
        let key = IdempotencyKey::new(&caller, "LogSession", &request.idempotency_key, &request)?;
        let now = self.now();
        let mut violations = Violations::default();
        let assignment_id = optional_id("assignment_id", &request.assignment_id, &mut violations);
        if request.assignment_id.is_empty() {
            violations.add("assignment_id", "required");
        }
        let log = SessionLog::parse(&request, now, &mut violations);
        violations.finish()?;
        let (Some(assignment_id), Some(log)) = (assignment_id, log) else {
            return Err(ApiError::invalid("assignment_id", "required"));
        };
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Session>(&mut tx).await? {
            return Ok(first);
        }
        let assignment = store::load_assignment(&mut tx, assignment_id, true)
            .await?
            .ok_or_else(|| ApiError::not_found("assignment", assignment_id))?;
        if caller.role == Role::Advisor && !visible_to(&caller, &[&assignment.advisor_id]) {
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
        let mut outbox = Outbox::default();
        outbox.push(NewEvent::new(
            "session.logged",
            "assignment",
            assignment_id,
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
        ));
        outbox.append(&mut tx).await?;
        key.record(&mut tx, &session, &assignment_id.to_string())
            .await?;
        tx.commit().await?;
        Ok(session)
    }

    async fn list_sessions(
        &self,
        caller: Caller,
        request: pb::ListSessionsRequest,
    ) -> ApiResult<pb::ListSessionsResponse> {
        caller.require(READERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let mut filter = store::SessionFilter {
            assignment_id: optional_id("assignment_id", &request.assignment_id, &mut violations),
            company_id: optional_id("company_id", &request.company_id, &mut violations),
            advisor_id: optional_id("advisor_id", &request.advisor_id, &mut violations),
            held_from: optional_time("held_from", request.held_from.as_ref(), &mut violations),
            held_to: optional_time("held_to", request.held_to.as_ref(), &mut violations),
        };
        let after = page.after.as_deref().and_then(|key| {
            let (at, id) = key.split_once('|')?;
            let at = DateTime::parse_from_rfc3339(at).ok()?.with_timezone(&Utc);
            Some((at, Uuid::parse_str(id).ok()?))
        });
        violations.finish()?;
        if caller.role == Role::Advisor {
            let own = own_advisor(&caller);
            if filter.advisor_id.is_some() && filter.advisor_id != own {
                return Ok(pb::ListSessionsResponse::default());
            }
            filter.advisor_id = Some(own.unwrap_or_default());
        }
        let mut sessions =
            store::list_sessions(&self.pool, &filter, after, page.fetch_limit()).await?;
        let next_page_token = page.finish(&mut sessions, |s| {
            let at = s
                .held_at
                .as_ref()
                .and_then(from_timestamp)
                .map(|at| at.to_rfc3339())
                .unwrap_or_default();
            format!("{at}|{}", s.session_id)
        });
        Ok(pb::ListSessionsResponse {
            sessions,
            next_page_token,
        })
    }

    async fn list_overdue_contacts(
        &self,
        caller: Caller,
        request: pb::ListOverdueContactsRequest,
    ) -> ApiResult<pb::ListOverdueContactsResponse> {
        caller.require(READERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let mut advisor_id = optional_id("advisor_id", &request.advisor_id, &mut violations);
        let region = (!request.region.is_empty())
            .then(|| violations.check("region", Province::parse(&request.region)))
            .flatten()
            .map(|p| p.code().to_owned());
        let stage = match request.stage {
            0 => None,
            value => violations
                .check("stage", GrowthStage::from_proto(value))
                .map(GrowthStage::as_str),
        };
        let offset = offset_of(&page, &mut violations);
        violations.finish()?;
        if caller.role == Role::Advisor {
            let own = own_advisor(&caller);
            if advisor_id.is_some() && advisor_id != own {
                return Ok(pb::ListOverdueContactsResponse::default());
            }
            advisor_id = Some(own.unwrap_or_default());
        }
        let filter = store::OverdueFilter {
            advisor_id,
            region,
            stage,
        };
        let mut contacts =
            store::list_overdue(&self.pool, &filter, self.now(), offset, page.fetch_limit())
                .await?;
        let next_page_token = next_offset_token(&page, &mut contacts, offset);
        Ok(pb::ListOverdueContactsResponse {
            contacts,
            next_page_token,
        })
    }

    async fn list_waitlist(
        &self,
        caller: Caller,
        request: pb::ListWaitlistRequest,
    ) -> ApiResult<pb::ListWaitlistResponse> {
        caller.require(OVERSEERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let status = match pb::WaitlistStatus::try_from(request.status) {
            Ok(pb::WaitlistStatus::Unspecified) => None,
            Ok(pb::WaitlistStatus::Waiting) => Some(store::WAITING),
            Ok(pb::WaitlistStatus::Filled) => Some(store::FILLED),
            Err(_) => {
                violations.add("status", "one of WAITING, FILLED");
                None
            }
        };
        let company_id = optional_id("company_id", &request.company_id, &mut violations);
        let offset = offset_of(&page, &mut violations);
        violations.finish()?;
        let mut entries =
            store::list_waitlist(&self.pool, status, company_id, offset, page.fetch_limit())
                .await?;
        let next_page_token = next_offset_token(&page, &mut entries, offset);
        Ok(pb::ListWaitlistResponse {
            entries,
            next_page_token,
        })
    }

    async fn list_fee_charges(
        &self,
        caller: Caller,
        request: pb::ListFeeChargesRequest,
    ) -> ApiResult<pb::ListFeeChargesResponse> {
        caller.require(OVERSEERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let filter = store::FeeFilter {
            company_id: optional_id("company_id", &request.company_id, &mut violations),
            month: month_filter("month", &request.month, &mut violations),
            advisor_id: optional_id("advisor_id", &request.advisor_id, &mut violations),
            program_id: (!request.program_id.is_empty()).then(|| request.program_id.clone()),
        };
        let offset = offset_of(&page, &mut violations);
        violations.finish()?;
        let mut charges =
            store::list_fee_charges(&self.pool, &filter, offset, page.fetch_limit()).await?;
        let next_page_token = next_offset_token(&page, &mut charges, offset);
        let totals = store::fee_totals(&self.pool, &filter).await?;
        Ok(pb::ListFeeChargesResponse {
            charges,
            next_page_token,
            totals,
        })
    }
}

/// Lists whose order is computed (queue positions, overdue days) page by
/// offset; the token is still opaque.
fn offset_of(page: &Page, violations: &mut Violations) -> i64 {
    match page.after.as_deref() {
        None => 0,
        Some(key) => match key.strip_prefix("offset:").and_then(|n| n.parse().ok()) {
            Some(offset) => offset,
            None => {
                violations.add("page.page_token", "not a token returned by this list");
                0
            }
        },
    }
}

fn next_offset_token<T>(page: &Page, rows: &mut Vec<T>, offset: i64) -> String {
    if rows.len() > page.size as usize {
        rows.truncate(page.size as usize);
        encode_token(&format!("offset:{}", offset + i64::from(page.size)))
    } else {
        String::new()
    }
}

#[tonic::async_trait]
impl MentoringService for MentoringApi {
    async fn register_advisor(
        &self,
        request: Request<pb::RegisterAdvisorRequest>,
    ) -> Result<Response<pb::Advisor>, Status> {
        with_caller(request, |caller, req| self.register_advisor(caller, req)).await
    }
    async fn update_advisor(
        &self,
        request: Request<pb::UpdateAdvisorRequest>,
    ) -> Result<Response<pb::Advisor>, Status> {
        with_caller(request, |caller, req| self.update_advisor(caller, req)).await
    }
    async fn deactivate_advisor(
        &self,
        request: Request<pb::DeactivateAdvisorRequest>,
    ) -> Result<Response<pb::DeactivateAdvisorResponse>, Status> {
        with_caller(request, |caller, req| self.deactivate_advisor(caller, req)).await
    }
    async fn get_advisor(
        &self,
        request: Request<pb::GetAdvisorRequest>,
    ) -> Result<Response<pb::Advisor>, Status> {
        with_caller(request, |caller, req| self.get_advisor(caller, req)).await
    }
    async fn list_advisors(
        &self,
        request: Request<pb::ListAdvisorsRequest>,
    ) -> Result<Response<pb::ListAdvisorsResponse>, Status> {
        with_caller(request, |caller, req| self.list_advisors(caller, req)).await
    }
    async fn request_advisor(
        &self,
        request: Request<pb::RequestAdvisorRequest>,
    ) -> Result<Response<pb::RequestAdvisorResponse>, Status> {
        with_caller(request, |caller, req| self.request_advisor(caller, req)).await
    }
    async fn get_assignment(
        &self,
        request: Request<pb::GetAssignmentRequest>,
    ) -> Result<Response<pb::Assignment>, Status> {
        with_caller(request, |caller, req| self.get_assignment(caller, req)).await
    }
    async fn reassign_advisor(
        &self,
        request: Request<pb::ReassignAdvisorRequest>,
    ) -> Result<Response<pb::ReassignAdvisorResponse>, Status> {
        with_caller(request, |caller, req| self.reassign_advisor(caller, req)).await
    }
    async fn end_assignment(
        &self,
        request: Request<pb::EndAssignmentRequest>,
    ) -> Result<Response<pb::Assignment>, Status> {
        with_caller(request, |caller, req| self.end_assignment(caller, req)).await
    }
    async fn get_advisor_history(
        &self,
        request: Request<pb::GetAdvisorHistoryRequest>,
    ) -> Result<Response<pb::AdvisorHistory>, Status> {
        with_caller(request, |caller, req| self.get_advisor_history(caller, req)).await
    }
    async fn log_session(
        &self,
        request: Request<pb::LogSessionRequest>,
    ) -> Result<Response<pb::Session>, Status> {
        with_caller(request, |caller, req| self.log_session(caller, req)).await
    }
    async fn list_sessions(
        &self,
        request: Request<pb::ListSessionsRequest>,
    ) -> Result<Response<pb::ListSessionsResponse>, Status> {
        with_caller(request, |caller, req| self.list_sessions(caller, req)).await
    }
    async fn list_overdue_contacts(
        &self,
        request: Request<pb::ListOverdueContactsRequest>,
    ) -> Result<Response<pb::ListOverdueContactsResponse>, Status> {
        with_caller(request, |caller, req| {
            self.list_overdue_contacts(caller, req)
        })
        .await
    }
    async fn list_waitlist(
        &self,
        request: Request<pb::ListWaitlistRequest>,
    ) -> Result<Response<pb::ListWaitlistResponse>, Status> {
        with_caller(request, |caller, req| self.list_waitlist(caller, req)).await
    }
    async fn list_fee_charges(
        &self,
        request: Request<pb::ListFeeChargesRequest>,
    ) -> Result<Response<pb::ListFeeChargesResponse>, Status> {
        with_caller(request, |caller, req| self.list_fee_charges(caller, req)).await
    }
}
