//! Matching: ranking verified buyers for a company (FindBuyers), and
//! intake's hand-off of a buyers-owned need, which proposes the best of
//! them as matches (OpenBuyerSearch).

use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::common::v1::CompanySnapshot;
use onestop_contracts::event_types::BuyersEvent;
use onestop_platform::events::{self, NewEvent, Partner};
use onestop_platform::idempotency::IdempotencyKey;
use onestop_platform::{ApiError, ApiResult, Caller, Role};
use uuid::Uuid;

use super::{BuyersApi, COMPANY_SIDE, SEARCHERS};
use crate::domain::buyer;
use crate::domain::matching::{MatchQuery, NewSearch, SearchKind};
use crate::store;

/// What makes two hand-offs the same need: only its company is compared,
/// so a redelivery carrying a fresher snapshot still replays the first.
fn hand_off_identity(need_id: &str, company_id: &str) -> pb::OpenBuyerSearchRequest {
    pb::OpenBuyerSearchRequest {
        need_id: need_id.to_owned(),
        company: Some(CompanySnapshot {
            company_id: company_id.to_owned(),
            ..Default::default()
        }),
        ..Default::default()
    }
}

impl BuyersApi {
    pub(super) async fn find_buyers(
        &self,
        caller: Caller,
        request: pb::FindBuyersRequest,
    ) -> ApiResult<pb::FindBuyersResponse> {
        caller.require(SEARCHERS)?;
        let query = MatchQuery::try_from(&request)?;
        let fresh_since = buyer::freshness_cutoff(self.clock.now());
        let mut conn = self.pool.acquire().await?;
        let mut found =
            store::find_buyers(&mut conn, &query, fresh_since, &[], query.limit).await?;
        // Another office's buyers do not exist for a trade office.
        if let Some(own) = caller.tenant_for(Role::TradeOffice) {
            found.retain(|candidate| candidate.summary.trade_office_id == own);
        }
        Ok(pb::FindBuyersResponse {
            candidates: found
                .into_iter()
                .enumerate()
                .map(|(i, found)| pb::BuyerCandidate {
                    buyer: Some(found.summary),
                    score: Some(found.score),
                    rank: i as u32 + 1,
                })
                .collect(),
        })
    }

    pub(super) async fn open_buyer_search(
        &self,
        caller: Caller,
        request: pb::OpenBuyerSearchRequest,
    ) -> ApiResult<pb::BuyerSearch> {
        caller.require(COMPANY_SIDE)?;
        let NewSearch {
            need_id,
            case_id,
            kind,
            query,
        } = NewSearch::try_from(&request)?;
        let key = IdempotencyKey::natural(
            "OpenBuyerSearch",
            &need_id,
            &hand_off_identity(&need_id, &query.company_id),
        );
        let now = self.clock.now();
        let mut tx = self.pool.begin().await?;
        if let Some(first) = key.replay::<pb::BuyerSearch>(&mut tx).await? {
            return Ok(first);
        }
        if let Some((existing, company)) = store::search_by_need(&mut tx, &need_id).await? {
            if company != query.company_id {
                return Err(ApiError::failed_precondition(
                    "IDEMPOTENCY_KEY_REUSED",
                    "this need already has a buyer search for another company",
                ));
            }
            return store::load_search(&mut tx, existing)
                .await?
                .ok_or_else(|| store::vanished("search"));
        }
        let search_id = Uuid::now_v7();
        let count = query.limit;
        let category = onestop_domain::NeedCategory::from_proto(request.category)
            .map(|category| category.as_str())
            .unwrap_or_default();
        store::insert_search(
            &mut tx,
            &store::NewBuyerSearch {
                id: search_id,
                need_id: &need_id,
                case_id: &case_id,
                company_id: &query.company_id,
                category,
                requested: count,
            },
            now,
        )
        .await?;
        let found = match kind {
            SearchKind::Proposing => {
                store::lock_company_matching(&mut tx, &query.company_id).await?;
                let open = store::open_match_buyers(&mut tx, &query.company_id).await?;
                let fresh_since = buyer::freshness_cutoff(now);
                store::find_buyers(&mut tx, &query, fresh_since, &open, count).await?
            }
            SearchKind::RecordOnly => Vec::new(),
        };
        let mut new_events = Vec::new();
        for (i, buyer) in found.iter().enumerate() {
            let match_id = Uuid::now_v7();
            let rank = i as u32 + 1;
            store::insert_match(
                &mut tx,
                &store::NewMatch {
                    id: match_id,
                    search_id,
                    need_id: &need_id,
                    case_id: &case_id,
                    company_id: &query.company_id,
                    buyer_id: buyer.buyer_id,
                    score: &buyer.score,
                    rank,
                },
                &caller.subject,
                now,
            )
            .await?;
            new_events.push(
                NewEvent::new(
                    BuyersEvent::MatchProposed,
                    match_id,
                    &pb::MatchProposed {
                        match_id: match_id.to_string(),
                        search_id: search_id.to_string(),
                        need_id: need_id.clone(),
                        case_id: case_id.clone(),
                        company_id: query.company_id.clone(),
                        buyer_id: buyer.buyer_id.to_string(),
                        buyer_country: buyer.summary.country.clone(),
                        score: buyer.score.total,
                        rank,
                        trade_office_id: buyer.summary.trade_office_id.clone(),
                    },
                )
                .for_partners([Partner::trade_office(&buyer.summary.trade_office_id)]),
            );
        }
        events::append_all(&mut tx, new_events).await?;
        let search = store::load_search(&mut tx, search_id)
            .await?
            .ok_or_else(|| store::vanished("search"))?;
        key.record(&mut tx, &search, &search_id.to_string()).await?;
        tx.commit().await?;
        tracing::info!(search_id = %search_id, proposed = found.len(), "buyer search opened");
        Ok(search)
    }
}
