use onestop_contracts::buyers::v1 as pb;

use crate::common::{Buyers, buyer_profile, violations};

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

#[tokio::test]
async fn sixty_thousand_hs_codes_are_refused_by_count_before_any_is_read() {
    let buyers = Buyers::start().await;
    let hs_codes: Vec<String> = (0..60_000).map(|i| format!("{:06}", 100_000 + i)).collect();
    let started = std::time::Instant::now();
    let status = buyers
        .dashboard()
        .recommend_markets(pb::RecommendMarketsRequest {
            hs_codes,
            blocked_markets: vec!["JP".into(); 60_000],
            ..Default::default()
        })
        .await
        .unwrap_err();
    let took = started.elapsed();
    eprintln!("60,000 HS codes refused in {took:?} (round trip)");
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert_eq!(violations(&status), vec!["blocked_markets", "hs_codes"]);
    assert!(took < std::time::Duration::from_secs(2), "took {took:?}");
}

#[tokio::test]
async fn repeated_codes_within_the_limit_count_once() {
    let buyers = Buyers::start().await;
    buyers
        .verified("kbc", buyer_profile("us-1", "US", &["330499"], &["en"]), 50)
        .await;
    let markets = buyers
        .dashboard()
        .recommend_markets(pb::RecommendMarketsRequest {
            hs_codes: vec!["330499".into(); 50],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .markets;
    assert_eq!(markets.len(), 1);
    assert_eq!(markets[0].exact_hs_buyers, 1);
}
