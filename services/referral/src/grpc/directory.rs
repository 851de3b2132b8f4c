//! The agency and program directory, and explained recommendations.

use onestop_contracts::referral::v1 as pb;
use onestop_platform::{ApiResult, Caller, Role};

use super::ReferralApi;
use crate::catalog;
use crate::domain::directory::{AgencyQuery, AgencyUpsert, ProgramQuery, ProgramUpsert};
use crate::domain::referral::Recommendation;
use crate::{routing, store};

/// Everyone who may read the directory.
const DIRECTORY_READERS: &[Role] = &Role::ALL;
/// Who may ask for recommendations: the referrer and the people who help
/// companies choose.
const RECOMMENDERS: &[Role] = &[
    Role::Agency,
    Role::Advisor,
    Role::Dashboard,
    Role::Service,
    Role::Admin,
];

impl ReferralApi {
    pub(super) async fn upsert_agency(
        &self,
        caller: Caller,
        request: pb::UpsertAgencyRequest,
    ) -> ApiResult<pb::Agency> {
        caller.require(&[Role::Admin])?;
        let AgencyUpsert { agency } = AgencyUpsert::try_from(&request)?;
        let mut tx = self.pool.begin().await?;
        let (stored, _) = catalog::save_agency(&mut tx, &agency).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn list_agencies(
        &self,
        caller: Caller,
        request: pb::ListAgenciesRequest,
    ) -> ApiResult<pb::ListAgenciesResponse> {
        caller.require(DIRECTORY_READERS)?;
        let AgencyQuery { page } = AgencyQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        let mut agencies = store::list_agencies(&mut conn, &page).await?;
        let next_page_token = page.finish(&mut agencies, |a| a.agency_id.clone());
        Ok(pb::ListAgenciesResponse {
            agencies,
            next_page_token,
        })
    }

    pub(super) async fn upsert_program(
        &self,
        caller: Caller,
        request: pb::UpsertProgramRequest,
    ) -> ApiResult<pb::Program> {
        caller.require(&[Role::Admin])?;
        let ProgramUpsert { program } = ProgramUpsert::try_from(&request)?;
        let mut tx = self.pool.begin().await?;
        let (stored, _) = catalog::save_program(&mut tx, &program).await?;
        tx.commit().await?;
        Ok(stored)
    }

    pub(super) async fn list_programs(
        &self,
        caller: Caller,
        request: pb::ListProgramsRequest,
    ) -> ApiResult<pb::ListProgramsResponse> {
        caller.require(DIRECTORY_READERS)?;
        let ProgramQuery { filter, page } = ProgramQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        let mut programs = store::list_programs(&mut conn, &filter, &page).await?;
        let next_page_token = page.finish(&mut programs, |p| p.program_id.clone());
        Ok(pb::ListProgramsResponse {
            programs,
            next_page_token,
        })
    }

    pub(super) async fn recommend_programs(
        &self,
        caller: Caller,
        request: pb::RecommendProgramsRequest,
    ) -> ApiResult<pb::RecommendProgramsResponse> {
        caller.require(RECOMMENDERS)?;
        let Recommendation { category, company } = Recommendation::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        let (eligible, ineligible) = routing::evaluate_all(&mut conn, category, &company).await?;
        Ok(pb::RecommendProgramsResponse {
            eligible,
            ineligible,
        })
    }
}
