//! The fee ledger of fee-charging programs.

use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::{ApiResult, Caller};

use super::{MentoringApi, OVERSEERS};
use crate::domain::fees::FeeQuery;
use crate::store;

impl MentoringApi {
    pub(super) async fn list_fee_charges(
        &self,
        caller: Caller,
        request: pb::ListFeeChargesRequest,
    ) -> ApiResult<pb::ListFeeChargesResponse> {
        caller.require(OVERSEERS)?;
        let FeeQuery { filter, page } = FeeQuery::try_from(&request)?;
        let mut conn = self.pool.acquire().await?;
        let mut rows = store::list_fee_charges(&mut conn, &filter, &page).await?;
        let next_page_token = page.finish(&mut rows, |(key, _)| key.clone());
        let totals = store::fee_totals(&mut conn, &filter).await?;
        Ok(pb::ListFeeChargesResponse {
            charges: rows.into_iter().map(|(_, charge)| charge).collect(),
            next_page_token,
            totals,
        })
    }
}
