//! Alternative markets, ranked by matchable buyer demand. A buyer seeking
//! the exact product weighs three times one sharing only the chapter, one
//! seeking the heading twice.

use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::common::v1::Money;

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
