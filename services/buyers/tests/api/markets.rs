use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::event_types::BuyersEvent;
use tonic::Code;

use crate::common::{Buyers, buyer_profile, error_reason, violations};

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

/// Intake's hand-off of a market-diversification need of a company on
/// file, which its advisor ("advisor-on-file") works with.
async fn diversification_search(buyers: &Buyers, need_id: &str, company_id: &str) {
    buyers.company_on_file(company_id).await;
    let mut diversify = crate::matches::search_request(need_id, company_id, 1);
    diversify.category = NeedCategory::MarketDiversification as i32;
    buyers.service().open_buyer_search(diversify).await.unwrap();
}

async fn accepted_events(buyers: &Buyers) -> Vec<pb::MarketRecommendationAccepted> {
    buyers.event_payloads(BuyersEvent::MarketAccepted).await
}

fn take_up(need_id: &str, country: &str, key: &str) -> pb::AcceptMarketRecommendationRequest {
    pb::AcceptMarketRecommendationRequest {
        idempotency_key: key.into(),
        need_id: need_id.into(),
        country: country.into(),
    }
}

/// The company's advisor records the market it takes up for its
/// market-diversification need, once, with its event; another market, a
/// need of another category, bad input and a partner that does not work
/// with the company are refused with nothing stored.
#[tokio::test]
async fn the_company_takes_up_one_recommended_market_for_its_need() {
    let buyers = Buyers::start().await;
    diversification_search(&buyers, "need-m", "company-m").await;
    buyers
        .service()
        .open_buyer_search(crate::matches::search_request("need-b", "company-m", 1))
        .await
        .unwrap();
    let advisor = || buyers.advisor("advisor-on-file");

    let refused = advisor()
        .accept_market_recommendation(take_up("", "Vietnam", ""))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violations(&refused), ["country", "need_id"]);
    let stranger = buyers
        .agency("semas")
        .accept_market_recommendation(take_up("need-m", "VN", ""))
        .await
        .unwrap_err();
    assert_eq!(stranger.code(), Code::NotFound);
    let other_category = advisor()
        .accept_market_recommendation(take_up("need-b", "VN", ""))
        .await
        .unwrap_err();
    assert_eq!(error_reason(&other_category), "NOT_MARKET_DIVERSIFICATION");
    assert!(accepted_events(&buyers).await.is_empty());

    let accepted = advisor()
        .accept_market_recommendation(take_up("need-m", "VN", "first"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(accepted.accepted_market, "VN");
    assert!(accepted.accepted_at.is_some());
    // The same market again (or a retry) changes nothing; another is refused.
    let again = advisor()
        .accept_market_recommendation(take_up("need-m", "VN", ""))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again.accepted_at, accepted.accepted_at);
    let retried = advisor()
        .accept_market_recommendation(take_up("need-m", "VN", "first"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried, accepted);
    let another = buyers
        .admin()
        .accept_market_recommendation(take_up("need-m", "TH", ""))
        .await
        .unwrap_err();
    assert_eq!(error_reason(&another), "MARKET_ALREADY_ACCEPTED");
    assert_eq!(
        accepted_events(&buyers).await,
        [pb::MarketRecommendationAccepted {
            search_id: accepted.search_id.clone(),
            need_id: "need-m".into(),
            case_id: "case-of-need-m".into(),
            company_id: "company-m".into(),
            country: "VN".into(),
        }]
    );
}

/// A need cancelled at intake closes its search: the company can no longer
/// take up a market for it.
#[tokio::test]
async fn no_market_is_taken_up_for_a_cancelled_need() {
    use onestop_platform::company_feed::NeedCloser;

    let buyers = Buyers::start().await;
    diversification_search(&buyers, "need-c", "company-c").await;
    let closer = onestop_buyers::withdrawal::SearchCloser {
        clock: std::sync::Arc::new(buyers.clock.clone()),
    };
    let mut conn = buyers.pool.acquire().await.unwrap();
    closer.close(&mut conn, "need-c").await.unwrap();

    let refused = buyers
        .advisor("advisor-on-file")
        .accept_market_recommendation(take_up("need-c", "VN", ""))
        .await
        .unwrap_err();
    assert_eq!(error_reason(&refused), "SEARCH_CLOSED");
    assert!(accepted_events(&buyers).await.is_empty());
}
