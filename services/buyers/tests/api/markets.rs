use onestop_contracts::buyers::v1 as pb;

use crate::common::{Buyers, buyer_profile};

#[tokio::test]
async fn other_markets_rank_by_verified_demand_with_counts() {
    let buyers = Buyers::start().await;
    for (name, country, code) in [
        ("us-1", "US", "330499"),
        ("us-2", "US", "330499"),
        ("de-1", "DE", "3304"),
        ("vn-1", "VN", "330510"),
        ("vn-2", "VN", "330590"),
        ("vn-3", "VN", "3307"),
        ("jp-1", "JP", "330499"),
    ] {
        buyers
            .verified("kbc", buyer_profile(name, country, &[code], &["en"]), 50)
            .await;
    }
    // Unverified demand does not count.
    buyers
        .register("kbc", buyer_profile("de-2", "DE", &["330499"], &["de"]))
        .await;
    let markets = buyers
        .service()
        .recommend_markets(pb::RecommendMarketsRequest {
            hs_codes: vec!["330499".into()],
            blocked_markets: vec!["JP".into()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .markets;
    let order: Vec<(&str, u32)> = markets
        .iter()
        .map(|m| (m.country.as_str(), m.verified_buyers))
        .collect();
    assert_eq!(order, vec![("US", 2), ("VN", 3), ("DE", 1)]);
    assert_eq!(markets[0].exact_hs_buyers, 2);
    assert_eq!(markets[1].chapter_hs_buyers, 3);
    assert_eq!(markets[2].heading_hs_buyers, 1);
    assert_eq!(
        markets[0]
            .total_import_volume
            .as_ref()
            .unwrap()
            .amount_minor,
        2 * 25_000_000
    );
    assert_eq!(markets[0].rank, 1);
}
