//! Alternative markets for products whose export channel is blocked, and
//! the market a company takes up for its market-diversification need.

use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::event_types::BuyersEvent;
use onestop_domain::NeedCategory;
use onestop_platform::events::{self, NewEvent};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller, Role};

use super::{BuyersApi, READERS};
use crate::access;
use crate::domain::buyer;
use crate::domain::markets::{self, MarketAcceptance, MarketQuery};
use crate::store;

/// Who answers for the company on a recommended market: its agency or
/// advisor, intake, admins.
const MARKET_TAKERS: &[Role] = &[Role::Agency, Role::Advisor, Role::Service, Role::Admin];

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

    pub(super) async fn accept_market_recommendation(
        &self,
        caller: Caller,
        request: pb::AcceptMarketRecommendationRequest,
    ) -> ApiResult<pb::BuyerSearch> {
        caller.require(MARKET_TAKERS)?;
        let key = IdempotencyKey::new(
            &caller,
            "AcceptMarketRecommendation",
            &request.idempotency_key,
            &request,
        )?;
        let MarketAcceptance { need_id, country } = MarketAcceptance::try_from(&request)?;
        let mut tx = self.pool.begin().await?;
        let not_found = || ApiError::not_found("need", &need_id);
        let search = store::lock_search_by_need(&mut tx, &need_id)
            .await?
            .ok_or_else(not_found)?;
        if !access::works_with(&mut tx, &caller, &search.company_id).await? {
            return Err(not_found());
        }
        if let Some(first) = key.replay::<pb::BuyerSearch>(&mut tx).await? {
            return Ok(first);
        }
        if search.category != NeedCategory::MarketDiversification.as_str() {
            return Err(ApiError::failed_precondition(
                "NOT_MARKET_DIVERSIFICATION",
                format!("need {need_id} is not a market-diversification need"),
            ));
        }
        match search.accepted_market.as_deref() {
            Some(accepted) if accepted == country.as_str() => {
                return store::load_search(&mut tx, search.id)
                    .await?
                    .ok_or_else(not_found);
            }
            Some(accepted) => {
                return Err(ApiError::failed_precondition(
                    "MARKET_ALREADY_ACCEPTED",
                    format!("the company took up {accepted} for need {need_id}"),
                ));
            }
            None => {}
        }
        if search.closed {
            return Err(ApiError::failed_precondition(
                "SEARCH_CLOSED",
                format!("need {need_id} was cancelled"),
            ));
        }
        store::accept_market(&mut tx, search.id, country.as_str(), self.clock.now()).await?;
        events::append(
            &mut tx,
            NewEvent::new(
                BuyersEvent::MarketAccepted,
                search.id,
                &pb::MarketRecommendationAccepted {
                    search_id: search.id.to_string(),
                    need_id: need_id.clone(),
                    case_id: search.case_id.clone(),
                    company_id: search.company_id.clone(),
                    country: country.as_str().to_owned(),
                },
            ),
        )
        .await?;
        let accepted = store::load_search(&mut tx, search.id)
            .await?
            .ok_or_else(not_found)?;
        key.record(&mut tx, &accepted, &search.id.to_string())
            .await?;
        tx.commit().await?;
        tracing::info!(search_id = %search.id, country = country.as_str(), "market recommendation accepted");
        Ok(accepted)
    }
}
