//! Companies: registration, reads, masked updates, listings.

use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_domain::GrowthStage;
use onestop_platform::error::{is_unique_violation, parse_id};
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller};
use uuid::Uuid;

use super::{IntakeApi, READERS, WRITERS};
use crate::domain::company::{self, CompanyChange, CompanyQuery, NewCompany, stage_of};
use crate::domain::partner::{Partner, Relationship, Source, State};
use crate::relationships;
use crate::store::{self, Lock};
use crate::{access, ladder};

pub(super) fn stage_event(
    company_id: Uuid,
    from: GrowthStage,
    to: GrowthStage,
    cause: &str,
) -> NewEvent {
    NewEvent::new(
        IntakeEvent::CompanyStageChanged,
        company_id,
        &pb::CompanyStageChanged {
            company_id: company_id.to_string(),
            from: from.to_proto() as i32,
            to: to.to_proto() as i32,
            cause: cause.to_owned(),
        },
    )
}

/// A record this transaction wrote is not there to read back.
pub(super) fn vanished(what: &str) -> ApiError {
    ApiError::Internal(anyhow::anyhow!("{what} vanished in its own transaction"))
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

impl IntakeApi {
    pub(super) async fn register_company(
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
        let NewCompany { profile, consent } = NewCompany::try_from(&request)?;

        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::Company>(&mut tx).await? {
            return Ok(first);
        }
        let number = profile.registration_number.as_str();
        if let Some(existing) = store::company_id_by_registration_number(&mut tx, number).await? {
            return Err(already_registered(existing));
        }
        let id = Uuid::now_v7();
        let inserted =
            store::insert_company(&mut tx, id, &profile, consent.as_ref(), &caller.scope()).await;
        if let Err(error) = inserted {
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
                IntakeEvent::CompanyRegistered,
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
        // The partner that registers a company works with it from now on.
        if let Some(partner) = Partner::of(&caller) {
            relationships::record(
                &mut tx,
                &Relationship {
                    company_id: id,
                    partner,
                    source: Source::Registered,
                    reference: String::new(),
                    state: State::Active,
                },
            )
            .await?;
        }
        let company = store::load_company(&mut tx, id, Lock::None)
            .await?
            .ok_or_else(|| vanished("company"))?;
        let company = access::present(access::related_view(&caller), company);
        key.record(&mut tx, &company, &id.to_string()).await?;
        tx.commit().await?;
        tracing::info!(company_id = %id, "company registered");
        Ok(company)
    }

    pub(super) async fn get_company(
        &self,
        caller: Caller,
        request: pb::GetCompanyRequest,
    ) -> ApiResult<pb::Company> {
        caller.require(READERS)?;
        let id = parse_id("company_id", &request.company_id)?;
        let mut conn = self.pool.acquire().await?;
        let view = access::company_view(&mut conn, &caller, id).await?;
        let company = store::load_company(&mut conn, id, Lock::None)
            .await?
            .ok_or_else(|| ApiError::not_found("company", id))?;
        let company = access::present(view, company);
        access::audit_contacts(&mut conn, &[&company]).await?;
        Ok(company)
    }

    pub(super) async fn update_company(
        &self,
        caller: Caller,
        request: pb::UpdateCompanyRequest,
    ) -> ApiResult<pb::Company> {
        caller.require(WRITERS)?;
        let key =
            IdempotencyKey::new(&caller, "UpdateCompany", &request.idempotency_key, &request)?;
        let change = CompanyChange::try_from(&request)?;
        let id = change.company_id;
        let mut tx = self.pool.begin().await?;
        // Profile writes need a partner that works with the company now.
        let view = access::company_view(&mut tx, &caller, id).await?;
        if let Some(first) = key.replay::<pb::Company>(&mut tx).await? {
            return Ok(first);
        }
        let current = store::load_company(&mut tx, id, Lock::ForUpdate)
            .await?
            .ok_or_else(|| ApiError::not_found("company", id))?;
        let current_profile = current.profile.clone().unwrap_or_default();
        let profile = change.apply_to(&current_profile)?;

        let changed = company::changed_fields(&current_profile, &profile.to_proto());
        if changed.is_empty() {
            let current = access::present(view, current);
            access::audit_contacts(&mut tx, &[&current]).await?;
            tx.commit().await?;
            return Ok(current);
        }
        store::update_company(&mut tx, id, &profile).await?;
        // The change's events go in one append, in this order.
        let mut new_events = vec![NewEvent::new(
            IntakeEvent::CompanyUpdated,
            id,
            &pb::CompanyUpdated {
                company_id: id.to_string(),
                changed_fields: changed,
            },
        )];
        let before = stage_of(&current);
        if profile.stage() != before {
            new_events.push(stage_event(id, before, profile.stage(), "update"));
            let moved = store::load_company(&mut tx, id, Lock::None)
                .await?
                .ok_or_else(|| vanished("company"))?;
            new_events
                .extend(ladder::open_follow_ons(&mut tx, &moved, before, profile.stage()).await?);
        }
        events::append_all(&mut tx, new_events).await?;
        let company = store::load_company(&mut tx, id, Lock::None)
            .await?
            .ok_or_else(|| vanished("company"))?;
        let company = access::present(view, company);
        access::audit_contacts(&mut tx, &[&company]).await?;
        key.record(&mut tx, &company, &id.to_string()).await?;
        tx.commit().await?;
        Ok(company)
    }

    pub(super) async fn list_companies(
        &self,
        caller: Caller,
        request: pb::ListCompaniesRequest,
    ) -> ApiResult<pb::ListCompaniesResponse> {
        caller.require(READERS)?;
        let CompanyQuery { filter, page } = CompanyQuery::try_from(&request)?;
        let partner = access::listing_partner(&caller);
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_companies(&mut conn, &filter, partner.as_ref(), &page).await?;
        let next_page_token = page.finish(&mut rows, |(id, _)| *id);
        // A partner lists only companies it works with.
        let view = access::related_view(&caller);
        let companies: Vec<pb::Company> = rows
            .into_iter()
            .map(|(_, company)| access::present(view, company))
            .collect();
        access::audit_contacts(&mut conn, &companies.iter().collect::<Vec<_>>()).await?;
        Ok(pb::ListCompaniesResponse {
            companies,
            next_page_token,
        })
    }
}
