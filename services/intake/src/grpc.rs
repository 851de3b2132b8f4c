//! `IntakeService` handlers: check the caller, validate into domain types,
//! apply the rules, store the change with its events in one transaction.

use onestop_contracts::intake::v1 as pb;
use onestop_contracts::intake::v1::intake_service_server::IntakeService;
use onestop_domain::GrowthStage;
use onestop_platform::auth::with_caller;
use onestop_platform::error::is_unique_violation;
use onestop_platform::error::parse_id;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency::{self, IdempotencyKey};
use onestop_platform::pagination::Page;
use onestop_platform::time::to_timestamp;
use onestop_platform::{ApiError, ApiResult, Caller, Role, Violations};
use sqlx::PgPool;
use tonic::{Request, Response, Status};
use uuid::Uuid;

use crate::domain::case;
use crate::domain::company::{self, CompanyProfile};
use crate::domain::readiness::{self, Answers};
use crate::{needs, store};

/// Partners and services that register companies and open cases.
const WRITERS: &[Role] = &[Role::Agency, Role::Advisor, Role::Service, Role::Admin];
/// Everyone who may read intake's records.
const READERS: &[Role] = &[
    Role::Agency,
    Role::Advisor,
    Role::Service,
    Role::Admin,
    Role::Dashboard,
];

#[derive(Clone)]
pub struct IntakeApi {
    pool: PgPool,
}

impl IntakeApi {
    pub fn new(pool: PgPool) -> Self {
        Self { pool }
    }
}

/// Dashboards see companies without their contacts: they need the
/// business picture, not the people.
fn redact_for(caller: &Caller, mut company: pb::Company) -> pb::Company {
    if caller.role == Role::Dashboard
        && let Some(profile) = company.profile.as_mut()
    {
        profile.contacts.clear();
    }
    company
}

fn stage_event(company_id: Uuid, from: GrowthStage, to: GrowthStage, cause: &str) -> NewEvent {
    NewEvent::new(
        "company.stage_changed",
        "company",
        company_id,
        &pb::CompanyStageChanged {
            company_id: company_id.to_string(),
            from: from.to_proto() as i32,
            to: to.to_proto() as i32,
            cause: cause.to_owned(),
        },
    )
}

fn stored_stage(company: &pb::Company) -> GrowthStage {
    GrowthStage::from_proto(company.stage).unwrap_or(GrowthStage::Domestic)
}

impl IntakeApi {
    async fn register_company(
        &self,
        caller: Caller,
        request: pb::RegisterCompanyRequest,
    ) -> ApiResult<pb::Company> {
        caller.require(WRITERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "RegisterCompany",
            &request.idempotency_key,
            &request,
        )?;
        let mut violations = Violations::default();
        let profile =
            violations.required("profile", request.profile.as_ref(), CompanyProfile::parse);
        violations.finish()?;
        let profile = profile.ok_or_else(|| ApiError::invalid("profile", "invalid"))?;

        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Company>(&mut tx).await? {
            return Ok(first);
        }
        let number = profile.registration_number.as_str();
        if let Some(existing) = store::company_id_by_registration_number(&mut tx, number).await? {
            return Err(already_registered(existing));
        }
        let id = Uuid::now_v7();
        if let Err(error) = store::insert_company(&mut tx, id, &profile).await {
            // A concurrent registration of the same number won the race.
            if is_unique_violation(&error) {
                drop(tx);
                let mut conn = self.pool.acquire().await?;
                if let Some(existing) =
                    store::company_id_by_registration_number(&mut conn, number).await?
                {
                    return Err(already_registered(existing));
                }
            }
            return Err(error.into());
        }
        events::append(
            &mut tx,
            NewEvent::new(
                "company.registered",
                "company",
                id,
                &pb::CompanyRegistered {
                    company_id: id.to_string(),
                    business_registration_number: number.to_owned(),
                    region: profile.region.code().to_owned(),
                    industry_ksic: profile.industry.as_str().to_owned(),
                    stage: profile.stage().to_proto() as i32,
                    small_merchant: profile.small_merchant,
                },
            ),
        )
        .await?;
        let company = store::load_company(&mut tx, id, false)
            .await?
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!("company vanished in its own transaction"))
            })?;
        key.record(&mut tx, &company, &id.to_string()).await?;
        tx.commit().await?;
        tracing::info!(company_id = %id, "company registered");
        Ok(company)
    }

    async fn get_company(
        &self,
        caller: Caller,
        request: pb::GetCompanyRequest,
    ) -> ApiResult<pb::Company> {
        caller.require(READERS)?;
        let id = parse_id("company_id", &request.company_id)?;
        let mut conn = self.pool.acquire().await?;
        let company = store::load_company(&mut conn, id, false)
            .await?
            .ok_or_else(|| ApiError::not_found("company", id))?;
        Ok(redact_for(&caller, company))
    }

    async fn update_company(
        &self,
        caller: Caller,
        request: pb::UpdateCompanyRequest,
    ) -> ApiResult<pb::Company> {
        caller.require(WRITERS)?;
        let key =
            IdempotencyKey::new(&caller, "UpdateCompany", &request.idempotency_key, &request)?;
        let id = parse_id("company_id", &request.company_id)?;
        let Some(update) = &request.profile else {
            return Err(ApiError::invalid("profile", "required"));
        };
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Company>(&mut tx).await? {
            return Ok(first);
        }
        let current = store::load_company(&mut tx, id, true)
            .await?
            .ok_or_else(|| ApiError::not_found("company", id))?;
        let current_profile = current.profile.clone().unwrap_or_default();
        let mut violations = Violations::default();
        let merged = company::apply_mask(
            &current_profile,
            update,
            &request.update_mask,
            &mut violations,
        );
        let profile = CompanyProfile::parse(&merged, "profile", &mut violations);
        violations.finish()?;
        let profile = profile.ok_or_else(|| ApiError::invalid("profile", "invalid"))?;

        let changed = changed_fields(&current_profile, &profile.to_proto());
        if changed.is_empty() {
            return Ok(current);
        }
        store::update_company(&mut tx, id, &profile).await?;
        events::append(
            &mut tx,
            NewEvent::new(
                "company.updated",
                "company",
                id,
                &pb::CompanyUpdated {
                    company_id: id.to_string(),
                    changed_fields: changed,
                },
            ),
        )
        .await?;
        let before = stored_stage(&current);
        if profile.stage() != before {
            events::append(&mut tx, stage_event(id, before, profile.stage(), "update")).await?;
        }
        let company = store::load_company(&mut tx, id, false)
            .await?
            .ok_or_else(|| ApiError::not_found("company", id))?;
        key.record(&mut tx, &company, &id.to_string()).await?;
        tx.commit().await?;
        Ok(company)
    }

    async fn list_companies(
        &self,
        caller: Caller,
        request: pb::ListCompaniesRequest,
    ) -> ApiResult<pb::ListCompaniesResponse> {
        caller.require(READERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let region = (!request.region.is_empty())
            .then(|| violations.check("region", onestop_domain::Province::parse(&request.region)))
            .flatten()
            .map(|p| p.code().to_owned());
        let stage = match request.stage {
            0 => None,
            value => violations.check("stage", GrowthStage::from_proto(value)),
        };
        let after = page
            .after
            .as_deref()
            .and_then(|key| Uuid::parse_str(key).ok());
        violations.finish()?;
        let filter = store::CompanyFilter {
            region,
            stage,
            small_merchants_only: request.small_merchants_only,
        };
        let mut companies = store::list_companies(&self.pool, &filter, &page, after).await?;
        let next_page_token = page.finish(&mut companies, |c| c.company_id.clone());
        Ok(pb::ListCompaniesResponse {
            companies: companies
                .into_iter()
                .map(|c| redact_for(&caller, c))
                .collect(),
            next_page_token,
        })
    }

    async fn diagnose_readiness(
        &self,
        caller: Caller,
        request: pb::DiagnoseReadinessRequest,
    ) -> ApiResult<pb::Assessment> {
        caller.require(WRITERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "DiagnoseReadiness",
            &request.idempotency_key,
            &request,
        )?;
        let mut violations = Violations::default();
        let company_id = violations.check(
            "company_id",
            Uuid::parse_str(&request.company_id).map_err(|_| "a UUID returned by this API"),
        );
        let answers = Answers::parse(request.answers.as_ref(), &mut violations);
        violations.finish()?;
        let (Some(company_id), Some(answers)) = (company_id, answers) else {
            return Err(ApiError::invalid("answers", "invalid"));
        };

        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Assessment>(&mut tx).await? {
            return Ok(first);
        }
        let company = store::load_company(&mut tx, company_id, true)
            .await?
            .ok_or_else(|| ApiError::not_found("company", company_id))?;
        let languages: Vec<onestop_domain::LanguageCode> = company
            .profile
            .as_ref()
            .map(|p| {
                p.languages
                    .iter()
                    .filter_map(|l| onestop_domain::LanguageCode::parse(l).ok())
                    .collect()
            })
            .unwrap_or_default();
        let diagnosis = readiness::diagnose(&answers, &languages);
        let before = stored_stage(&company);
        let version = company.assessment_version as i32 + 1;
        let assessment_id = Uuid::now_v7();
        store::insert_assessment(
            &mut tx,
            assessment_id,
            company_id,
            version,
            before,
            &store::answers_to_proto(&answers),
            &diagnosis,
        )
        .await?;
        events::append(
            &mut tx,
            NewEvent::new(
                "company.assessed",
                "company",
                company_id,
                &pb::CompanyAssessed {
                    company_id: company_id.to_string(),
                    assessment_id: assessment_id.to_string(),
                    version: version as u32,
                    score: diagnosis.score,
                    stage: diagnosis.stage.to_proto() as i32,
                },
            ),
        )
        .await?;
        if diagnosis.stage != before {
            events::append(
                &mut tx,
                stage_event(company_id, before, diagnosis.stage, "assessment"),
            )
            .await?;
        }
        let assessment = store::list_assessments(&mut tx, company_id, Some(assessment_id))
            .await?
            .pop()
            .ok_or_else(|| {
                ApiError::Internal(anyhow::anyhow!(
                    "assessment vanished in its own transaction"
                ))
            })?;
        key.record(&mut tx, &assessment, &company_id.to_string())
            .await?;
        tx.commit().await?;
        Ok(assessment)
    }

    async fn list_assessments(
        &self,
        caller: Caller,
        request: pb::ListAssessmentsRequest,
    ) -> ApiResult<pb::ListAssessmentsResponse> {
        caller.require(READERS)?;
        let company_id = parse_id("company_id", &request.company_id)?;
        let mut conn = self.pool.acquire().await?;
        if store::load_company(&mut conn, company_id, false)
            .await?
            .is_none()
        {
            return Err(ApiError::not_found("company", company_id));
        }
        let assessments = store::list_assessments(&mut conn, company_id, None).await?;
        Ok(pb::ListAssessmentsResponse { assessments })
    }

    async fn open_case(&self, caller: Caller, request: pb::OpenCaseRequest) -> ApiResult<pb::Case> {
        caller.require(WRITERS)?;
        let key = IdempotencyKey::new(&caller, "OpenCase", &request.idempotency_key, &request)?;
        let mut violations = Violations::default();
        let company_id = violations.check(
            "company_id",
            Uuid::parse_str(&request.company_id).map_err(|_| "a UUID returned by this API"),
        );
        let specs = case::parse_needs(&request.needs, &mut violations);
        violations.finish()?;
        let company_id = company_id.ok_or_else(|| ApiError::invalid("company_id", "required"))?;

        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Case>(&mut tx).await? {
            return Ok(first);
        }
        // Locked so two cases opened at once for one company agree on
        // whether it already has an open mentoring need.
        let company = store::load_company(&mut tx, company_id, true)
            .await?
            .ok_or_else(|| ApiError::not_found("company", company_id))?;
        let small_merchant = company.profile.as_ref().is_some_and(|p| p.small_merchant);
        let has_mentoring = store::has_open_mentoring_need(&mut tx, company_id).await?;
        let planned = case::plan(specs, stored_stage(&company), small_merchant, has_mentoring);

        let case_id = Uuid::now_v7();
        store::insert_case(&mut tx, case_id, company_id).await?;
        store::add_timeline_entry(
            &mut tx,
            case_id,
            None,
            "intake",
            "case.opened",
            &format!("Case opened with {} need(s)", planned.len()),
            None,
        )
        .await?;
        let snapshot = store::snapshot(&company);
        let mut need_ids = Vec::with_capacity(planned.len());
        let mut need_events = Vec::with_capacity(planned.len());
        for (position, need) in planned.iter().enumerate() {
            let (need_id, event) =
                needs::open_need(&mut tx, case_id, position, need, &snapshot).await?;
            need_ids.push(need_id);
            need_events.push(event);
        }
        let opened = store::load_case(&mut tx, case_id).await?.ok_or_else(|| {
            ApiError::Internal(anyhow::anyhow!("case vanished in its own transaction"))
        })?;
        let mut new_events = vec![NewEvent::new(
            "case.opened",
            "case",
            case_id,
            &pb::CaseOpened {
                case_id: case_id.to_string(),
                company_id: company_id.to_string(),
                need_ids: need_ids.iter().map(Uuid::to_string).collect(),
            },
        )];
        new_events.extend(need_events);
        events::append_all(&mut tx, new_events).await?;
        key.record(&mut tx, &opened, &company_id.to_string())
            .await?;
        tx.commit().await?;
        tracing::info!(case_id = %case_id, needs = planned.len(), "case opened");
        Ok(opened)
    }

    async fn get_case(&self, caller: Caller, request: pb::GetCaseRequest) -> ApiResult<pb::Case> {
        caller.require(READERS)?;
        let case_id = parse_id("case_id", &request.case_id)?;
        let mut conn = self.pool.acquire().await?;
        store::load_case(&mut conn, case_id)
            .await?
            .ok_or_else(|| ApiError::not_found("case", case_id))
    }

    async fn list_cases(
        &self,
        caller: Caller,
        request: pb::ListCasesRequest,
    ) -> ApiResult<pb::ListCasesResponse> {
        caller.require(READERS)?;
        let mut violations = Violations::default();
        let page = Page::parse(request.page.as_ref(), "page", &mut violations);
        let company_id = (!request.company_id.is_empty())
            .then(|| {
                violations.check(
                    "company_id",
                    Uuid::parse_str(&request.company_id).map_err(|_| "a UUID returned by this API"),
                )
            })
            .flatten();
        let status = match pb::CaseStatus::try_from(request.status) {
            Ok(pb::CaseStatus::Unspecified) => None,
            Ok(pb::CaseStatus::Open) => Some("OPEN"),
            Ok(pb::CaseStatus::Closed) => Some("CLOSED"),
            Err(_) => {
                violations.add("status", "OPEN or CLOSED");
                None
            }
        };
        let after = page
            .after
            .as_deref()
            .and_then(|key| Uuid::parse_str(key).ok());
        violations.finish()?;
        let mut cases = store::list_cases(&self.pool, company_id, status, &page, after).await?;
        let next_page_token = page.finish(&mut cases, |c| c.case_id.clone());
        Ok(pb::ListCasesResponse {
            cases,
            next_page_token,
        })
    }

    async fn get_case_timeline(
        &self,
        caller: Caller,
        request: pb::GetCaseTimelineRequest,
    ) -> ApiResult<pb::CaseTimeline> {
        caller.require(READERS)?;
        let case_id = parse_id("case_id", &request.case_id)?;
        let mut conn = self.pool.acquire().await?;
        if store::load_case(&mut conn, case_id).await?.is_none() {
            return Err(ApiError::not_found("case", case_id));
        }
        let entries = store::timeline(&mut conn, case_id).await?;
        Ok(pb::CaseTimeline {
            case_id: case_id.to_string(),
            entries,
        })
    }

    async fn erase_personal_data(
        &self,
        caller: Caller,
        request: pb::ErasePersonalDataRequest,
    ) -> ApiResult<pb::ErasePersonalDataResponse> {
        caller.require(&[Role::Admin])?;
        let company_id = parse_id("company_id", &request.company_id)?;
        let mut tx = self.pool.begin().await?;
        if store::load_company(&mut tx, company_id, true)
            .await?
            .is_none()
        {
            return Err(ApiError::not_found("company", company_id));
        }
        let erased = store::erase_contacts(&mut tx, company_id).await?;
        // Stored first responses of RegisterCompany/UpdateCompany repeat the
        // contacts; a retry after erasure must not bring them back.
        idempotency::forget_resource(&mut tx, &company_id.to_string()).await?;
        events::append(
            &mut tx,
            NewEvent::new(
                "company.personal_data_erased",
                "company",
                company_id,
                &pb::PersonalDataErased {
                    company_id: company_id.to_string(),
                    contacts_erased: erased as u32,
                },
            ),
        )
        .await?;
        let company = store::load_company(&mut tx, company_id, false)
            .await?
            .ok_or_else(|| ApiError::not_found("company", company_id))?;
        tx.commit().await?;
        tracing::info!(company_id = %company_id, contacts_erased = erased, "personal data erased");
        Ok(pb::ErasePersonalDataResponse {
            contacts_erased: erased as u32,
            erased_at: company
                .personal_data_erased_at
                .or(Some(to_timestamp(chrono::Utc::now()))),
        })
    }
}

fn already_registered(existing: Uuid) -> ApiError {
    ApiError::AlreadyExists {
        reason: "COMPANY_ALREADY_REGISTERED",
        message: format!(
            "a company with this registration number is already registered as {existing}"
        ),
        metadata: vec![("company_id", existing.to_string())],
    }
}

/// Names of profile fields whose value differs (contacts are compared, but
/// only the field name is reported: events carry no personal data).
fn changed_fields(before: &pb::CompanyProfile, after: &pb::CompanyProfile) -> Vec<String> {
    let mut changed = Vec::new();
    let mut check = |name: &str, differs: bool| {
        if differs {
            changed.push(name.to_owned());
        }
    };
    check("name_ko", before.name_ko != after.name_ko);
    check("name_en", before.name_en != after.name_en);
    check("region", before.region != after.region);
    check("industry_ksic", before.industry_ksic != after.industry_ksic);
    check("hs_codes", before.hs_codes != after.hs_codes);
    check("employees", before.employees != after.employees);
    check(
        "annual_revenue",
        before.annual_revenue != after.annual_revenue,
    );
    check(
        "export_revenue",
        before.export_revenue != after.export_revenue,
    );
    check(
        "export_countries",
        before.export_countries != after.export_countries,
    );
    check("languages", before.languages != after.languages);
    check(
        "small_merchant",
        before.small_merchant != after.small_merchant,
    );
    check("contacts", before.contacts != after.contacts);
    changed
}

#[tonic::async_trait]
impl IntakeService for IntakeApi {
    async fn register_company(
        &self,
        request: Request<pb::RegisterCompanyRequest>,
    ) -> Result<Response<pb::Company>, Status> {
        with_caller(request, |caller, req| self.register_company(caller, req)).await
    }
    async fn get_company(
        &self,
        request: Request<pb::GetCompanyRequest>,
    ) -> Result<Response<pb::Company>, Status> {
        with_caller(request, |caller, req| self.get_company(caller, req)).await
    }
    async fn update_company(
        &self,
        request: Request<pb::UpdateCompanyRequest>,
    ) -> Result<Response<pb::Company>, Status> {
        with_caller(request, |caller, req| self.update_company(caller, req)).await
    }
    async fn list_companies(
        &self,
        request: Request<pb::ListCompaniesRequest>,
    ) -> Result<Response<pb::ListCompaniesResponse>, Status> {
        with_caller(request, |caller, req| self.list_companies(caller, req)).await
    }
    async fn diagnose_readiness(
        &self,
        request: Request<pb::DiagnoseReadinessRequest>,
    ) -> Result<Response<pb::Assessment>, Status> {
        with_caller(request, |caller, req| self.diagnose_readiness(caller, req)).await
    }
    async fn list_assessments(
        &self,
        request: Request<pb::ListAssessmentsRequest>,
    ) -> Result<Response<pb::ListAssessmentsResponse>, Status> {
        with_caller(request, |caller, req| self.list_assessments(caller, req)).await
    }
    async fn open_case(
        &self,
        request: Request<pb::OpenCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        with_caller(request, |caller, req| self.open_case(caller, req)).await
    }
    async fn get_case(
        &self,
        request: Request<pb::GetCaseRequest>,
    ) -> Result<Response<pb::Case>, Status> {
        with_caller(request, |caller, req| self.get_case(caller, req)).await
    }
    async fn list_cases(
        &self,
        request: Request<pb::ListCasesRequest>,
    ) -> Result<Response<pb::ListCasesResponse>, Status> {
        with_caller(request, |caller, req| self.list_cases(caller, req)).await
    }
    async fn get_case_timeline(
        &self,
        request: Request<pb::GetCaseTimelineRequest>,
    ) -> Result<Response<pb::CaseTimeline>, Status> {
        with_caller(request, |caller, req| self.get_case_timeline(caller, req)).await
    }
    async fn erase_personal_data(
        &self,
        request: Request<pb::ErasePersonalDataRequest>,
    ) -> Result<Response<pb::ErasePersonalDataResponse>, Status> {
        with_caller(request, |caller, req| self.erase_personal_data(caller, req)).await
    }
}
