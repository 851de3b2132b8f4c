//! Who works with whom: finding a consenting company by its registration
//! number, listing a company's partners, and admins' grants.

use onestop_contracts::intake::v1 as pb;
use onestop_domain::BusinessRegistrationNumber;
use onestop_platform::error::parse_id;
use onestop_platform::{ApiError, ApiResult, Caller, Role, Violations};

use super::{IntakeApi, READERS};
use crate::access;
use crate::domain::partner::{
    GrantCommand, Partner, PartnerQuery, Relationship, Source, State, View, may_look_up,
};
use crate::relationships;
use crate::store;

impl IntakeApi {
    pub(super) async fn look_up_company(
        &self,
        caller: Caller,
        request: pb::LookUpCompanyRequest,
    ) -> ApiResult<pb::Company> {
        // Any reader may try; what it finds depends on who it is (see
        // `domain::partner::may_look_up`).
        caller.require(READERS)?;
        let mut violations = Violations::default();
        let number = violations.check(
            "business_registration_number",
            BusinessRegistrationNumber::parse(&request.business_registration_number),
        );
        let number = violations.finish_with(|| number)?;
        let not_found =
            || ApiError::NotFound(format!("no company {} visible to you", number.as_str()));
        let mut conn = self.pool.acquire().await?;
        let company = store::company_by_registration_number(&mut conn, number.as_str())
            .await?
            .ok_or_else(not_found)?;
        let consented = company.network_consent.is_some();
        let works_with = match (
            Partner::of(&caller),
            parse_id("company_id", &company.company_id),
        ) {
            (Some(partner), Ok(id)) => store::works_with(&mut conn, id, &partner).await?,
            _ => false,
        };
        if !may_look_up(&caller, works_with, consented) {
            return Err(not_found());
        }
        // A business profile: contacts are for GetCompany's readers.
        Ok(access::present(View::BusinessProfile, company))
    }

    pub(super) async fn list_company_partners(
        &self,
        caller: Caller,
        request: pb::ListCompanyPartnersRequest,
    ) -> ApiResult<pb::ListCompanyPartnersResponse> {
        caller.require(&[Role::Admin, Role::Service])?;
        let PartnerQuery { company_id, page } = PartnerQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        if !store::company_exists(&mut conn, company_id).await? {
            return Err(ApiError::not_found("company", company_id));
        }
        let mut rows = store::list_partners(&mut conn, company_id, &page).await?;
        let next_page_token = page.finish(&mut rows, |(key, _)| key.clone());
        Ok(pb::ListCompanyPartnersResponse {
            partners: rows.into_iter().map(|(_, partner)| partner).collect(),
            next_page_token,
        })
    }

    pub(super) async fn grant_partner(
        &self,
        caller: Caller,
        request: pb::GrantPartnerRequest,
    ) -> ApiResult<pb::CompanyPartner> {
        caller.require(&[Role::Admin])?;
        let GrantCommand {
            company_id,
            partner,
        } = GrantCommand::try_from(&request)?;
        self.set_grant(company_id, partner, State::Active).await
    }

    pub(super) async fn revoke_partner(
        &self,
        caller: Caller,
        request: pb::RevokePartnerRequest,
    ) -> ApiResult<pb::CompanyPartner> {
        caller.require(&[Role::Admin])?;
        let GrantCommand {
            company_id,
            partner,
        } = GrantCommand::try_from(&request)?;
        self.set_grant(company_id, partner, State::Ended).await
    }

    /// Grants (Active) or revokes (Ended) an admin's grant; revoking
    /// needs one in force.
    async fn set_grant(
        &self,
        company_id: uuid::Uuid,
        partner: Partner,
        state: State,
    ) -> ApiResult<pb::CompanyPartner> {
        let mut tx = self.pool.begin().await?;
        if !store::company_exists(&mut tx, company_id).await? {
            return Err(ApiError::not_found("company", company_id));
        }
        if state == State::Ended && !store::has_active_grant(&mut tx, company_id, &partner).await? {
            return Err(ApiError::NotFound(format!(
                "no grant to {} {} on company {company_id}",
                partner.role.as_str(),
                partner.tenant
            )));
        }
        relationships::record(
            &mut tx,
            &Relationship {
                company_id,
                partner: partner.clone(),
                source: Source::Grant,
                reference: String::new(),
                state,
            },
        )
        .await?;
        let recorded = store::load_relationship(&mut tx, company_id, &partner, Source::Grant, "")
            .await?
            .ok_or_else(|| ApiError::Internal(anyhow::anyhow!("grant vanished")))?;
        tx.commit().await?;
        Ok(recorded)
    }
}
