//! Alternative markets, ranked by matchable buyer demand. A buyer seeking
//! the exact product weighs three times one sharing only the chapter, one
//! seeking the heading twice.

use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::common::v1::Money;
use onestop_domain::{CountryCode, HsInterest};
use onestop_platform::Violations;

use super::{bounded_count, parse_list, required_text};

/// Demand in one market, counted over matchable buyers.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct MarketDemand {
    pub country: String,
    pub buyers: i64,
    pub exact: i64,
    pub heading: i64,
    pub chapter: i64,
    /// USD minor units.
    pub import_volume: i64,
    pub average_quality: f64,
}

impl MarketDemand {
    pub fn score(&self) -> f64 {
        (3 * self.exact + 2 * self.heading + self.chapter) as f64
    }
}

pub fn rank_markets(mut demand: Vec<MarketDemand>, limit: u32) -> Vec<pb::MarketRecommendation> {
    demand.sort_by(|a, b| {
        b.score()
            .total_cmp(&a.score())
            .then(b.import_volume.cmp(&a.import_volume))
            .then(a.country.cmp(&b.country))
    });
    let count = |n: i64| n.clamp(0, i64::from(u32::MAX)) as u32;
    demand
        .into_iter()
        .take(limit as usize)
        .enumerate()
        .map(|(i, market)| pb::MarketRecommendation {
            rank: i as u32 + 1,
            score: market.score(),
            verified_buyers: count(market.buyers),
            exact_hs_buyers: count(market.exact),
            heading_hs_buyers: count(market.heading),
            chapter_hs_buyers: count(market.chapter),
            total_import_volume: Some(Money {
                currency_code: "USD".into(),
                amount_minor: market.import_volume,
            }),
            average_quality_score: market.average_quality,
            country: market.country,
        })
        .collect()
}

/// The market a company takes up for its market-diversification need,
/// validated.
#[derive(Debug)]
pub struct MarketAcceptance {
    pub need_id: String,
    pub country: CountryCode,
}

impl TryFrom<&pb::AcceptMarketRecommendationRequest> for MarketAcceptance {
    type Error = Violations;
    fn try_from(request: &pb::AcceptMarketRecommendationRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let need_id = required_text(
            "need_id",
            &request.need_id,
            onestop_platform::limits::MAX_NAME,
            &mut violations,
        );
        let country = violations.check("country", CountryCode::parse(&request.country));
        violations.finish_with(|| {
            Some(MarketAcceptance {
                need_id,
                country: country?,
            })
        })
    }
}

const DEFAULT_MARKETS: u32 = 10;
const MAX_MARKETS: u32 = 50;

/// Products whose channel is blocked, validated: the codes to find demand
/// for, the markets to leave out, how many to recommend.
#[derive(Debug)]
pub struct MarketQuery {
    pub hs_codes: Vec<String>,
    /// Blocked and excluded markets alike.
    pub skip: Vec<String>,
    pub limit: u32,
}

impl TryFrom<&pb::RecommendMarketsRequest> for MarketQuery {
    type Error = Violations;
    fn try_from(request: &pb::RecommendMarketsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        if request.hs_codes.is_empty() {
            violations.add("hs_codes", "at least one HS code");
        }
        let codes = parse_list(
            "hs_codes",
            &request.hs_codes,
            HsInterest::parse,
            &mut violations,
        );
        let blocked = parse_list(
            "blocked_markets",
            &request.blocked_markets,
            CountryCode::parse,
            &mut violations,
        );
        let excluded = parse_list(
            "exclude_markets",
            &request.exclude_markets,
            CountryCode::parse,
            &mut violations,
        );
        let limit = bounded_count(
            "limit",
            request.limit,
            DEFAULT_MARKETS,
            MAX_MARKETS,
            &mut violations,
        );
        violations.finish_with(|| {
            Some(MarketQuery {
                hs_codes: codes.iter().map(|c| c.as_str().to_owned()).collect(),
                skip: blocked
                    .iter()
                    .chain(&excluded)
                    .map(|c| c.as_str().to_owned())
                    .collect(),
                limit,
            })
        })
    }
}
