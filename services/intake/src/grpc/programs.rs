//! The agency programs a partner may pick for a need of the company: the
//! directory is referral's, so intake asks referral, with a deadline of its
//! own so a slow directory never holds a partner's call for long.

use std::time::Duration;

use onestop_contracts::intake::v1 as pb;
use onestop_contracts::referral::v1 as referral_pb;
use onestop_contracts::referral::v1::referral_service_client::ReferralServiceClient;
use onestop_domain::NeedCategory;
use onestop_platform::{ApiError, ApiResult, Caller, Violations};

use super::{IntakeApi, WRITERS};
use crate::access;
use crate::domain::company::snapshot;
use crate::store::{self, Lock};

/// Longest wait for referral's recommendation.
const RECOMMEND_DEADLINE: Duration = Duration::from_secs(5);

impl IntakeApi {
    pub(super) async fn recommend_programs(
        &self,
        caller: Caller,
        request: pb::RecommendProgramsRequest,
    ) -> ApiResult<pb::RecommendProgramsResponse> {
        caller.require(WRITERS)?;
        let mut violations = Violations::default();
        let company_id = violations.id("company_id", &request.company_id);
        let category = violations.check("category", NeedCategory::from_proto(request.category));
        let (company_id, category) = violations.finish_with(|| Some((company_id?, category?)))?;

        let company = {
            let mut conn = self.pool.acquire().await?;
            // Whoever may open a case for the company may see what fits it;
            // nothing is recorded until a case is opened.
            access::case_opening(&mut conn, &caller, company_id).await?;
            store::load_company(&mut conn, company_id, Lock::None)
                .await?
                .ok_or_else(|| ApiError::not_found("company", company_id))?
        };
        let Some(channel) = self.downstreams.referral.clone() else {
            return Err(ApiError::Unavailable(
                "the agency directory (ONESTOP_REFERRAL_URL) is not configured".into(),
            ));
        };
        let mut call = tonic::Request::new(referral_pb::RecommendProgramsRequest {
            category: category.to_proto() as i32,
            company: Some(snapshot(&company)),
        });
        call.set_timeout(RECOMMEND_DEADLINE);
        let recommended =
            ReferralServiceClient::with_interceptor(channel, self.downstreams.credentials.clone())
                .recommend_programs(call)
                .await
                .map_err(|status| {
                    tracing::warn!(code = ?status.code(), "referral's recommendation failed");
                    ApiError::Unavailable(format!(
                        "the agency directory did not answer: {:?}",
                        status.code()
                    ))
                })?
                .into_inner();
        Ok(pb::RecommendProgramsResponse {
            eligible: recommended.eligible,
            ineligible: recommended.ineligible,
        })
    }
}
