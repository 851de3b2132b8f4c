//! Alternative markets for products whose export channel is blocked.

use onestop_contracts::buyers::v1 as pb;
use onestop_platform::{ApiResult, Caller};

use super::{BuyersApi, READERS};
use crate::domain::buyer;
use crate::domain::markets::{self, MarketQuery};
use crate::store;

impl BuyersApi {
    pub(super) async fn recommend_markets(
        &self,
        caller: Caller,
        request: pb::RecommendMarketsRequest,
    ) -> ApiResult<pb::RecommendMarketsResponse> {
        caller.require(READERS)?;
        let MarketQuery {
            hs_codes,
            skip,
            limit,
        } = MarketQuery::try_from(&request)?;
        let fresh_since = buyer::freshness_cutoff(self.clock.now());
        let mut conn = self.pool.acquire().await?;
        let demand = store::market_demand(&mut conn, &hs_codes, &skip, fresh_since).await?;
        Ok(pb::RecommendMarketsResponse {
            markets: markets::rank_markets(demand, limit),
        })
    }
}
