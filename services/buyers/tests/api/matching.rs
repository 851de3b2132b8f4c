use chrono::Duration;
use onestop_contracts::buyers::v1 as pb;
use tonic::Code;

use crate::common::{Buyers, buyer_profile, company, violations};

async fn find(buyers: &Buyers, request: pb::FindBuyersRequest) -> Vec<pb::BuyerCandidate> {
    buyers
        .agency("kotra")
        .find_buyers(request)
        .await
        .expect("finds")
        .into_inner()
        .candidates
}

fn names(candidates: &[pb::BuyerCandidate]) -> Vec<String> {
    candidates
        .iter()
        .map(|c| c.buyer.as_ref().unwrap().company_name.clone())
        .collect()
}

fn request(markets: &[&str]) -> pb::FindBuyersRequest {
    pb::FindBuyersRequest {
        company: Some(company("company-1", &["330499"], &["ko", "en"])),
        target_markets: markets.iter().map(|m| m.to_string()).collect(),
        ..Default::default()
    }
}

#[tokio::test]
async fn exact_subheading_ranks_above_heading_above_chapter() {
    let buyers = Buyers::start().await;
    // Weaker buyers on the other factors, so only the HS level can explain the order.
    buyers
        .verified(
            "o",
            buyer_profile("Chapter", "US", &["330510"], &["en"]),
            100,
        )
        .await;
    buyers
        .verified("o", buyer_profile("Heading", "US", &["3304"], &["en"]), 60)
        .await;
    buyers
        .verified("o", buyer_profile("Exact", "DE", &["330499"], &["de"]), 10)
        .await;
    buyers
        .verified(
            "o",
            buyer_profile("Elsewhere", "US", &["340111"], &["en"]),
            100,
        )
        .await;
    let found = find(&buyers, request(&["US"])).await;
    assert_eq!(names(&found), vec!["Exact", "Heading", "Chapter"]);
    let exact = found[0].score.clone().unwrap();
    assert_eq!(exact.hs_match_level, pb::HsMatchLevel::Exact as i32);
    assert_eq!(exact.company_hs_code, "330499");
    assert_eq!(exact.buyer_hs_code, "330499");
    assert!(!exact.market_fit);
    assert!(exact.shared_languages.is_empty());
    let heading = found[1].score.clone().unwrap();
    assert_eq!(heading.hs_match_level, pb::HsMatchLevel::Heading as i32);
    assert!(heading.market_fit);
    assert_eq!(heading.shared_languages, vec!["en"]);
    assert_eq!(heading.quality_score, 60);
    let sum = heading.hs_points
        + heading.market_points
        + heading.language_points
        + heading.quality_points;
    assert!((heading.total - sum).abs() < 1e-9);
    assert_eq!(
        found[2].score.clone().unwrap().hs_match_level,
        pb::HsMatchLevel::Chapter as i32
    );
    assert_eq!(
        found.iter().map(|c| c.rank).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
}

#[tokio::test]
async fn target_market_fit_ranks_above_language_and_quality() {
    let buyers = Buyers::start().await;
    buyers
        .verified(
            "o",
            buyer_profile("Elsewhere", "DE", &["330499"], &["en"]),
            100,
        )
        .await;
    buyers
        .verified(
            "o",
            buyer_profile("In market", "US", &["330499"], &["es"]),
            10,
        )
        .await;
    let found = find(&buyers, request(&["US"])).await;
    assert_eq!(names(&found), vec!["In market", "Elsewhere"]);
}

#[tokio::test]
async fn a_shared_language_ranks_above_quality() {
    let buyers = Buyers::start().await;
    buyers
        .verified(
            "o",
            buyer_profile("No common tongue", "US", &["330499"], &["es"]),
            100,
        )
        .await;
    buyers
        .verified(
            "o",
            buyer_profile("Speaks English", "US", &["330499"], &["en", "es"]),
            10,
        )
        .await;
    let found = find(&buyers, request(&["US"])).await;
    assert_eq!(names(&found), vec!["Speaks English", "No common tongue"]);
}

#[tokio::test]
async fn quality_orders_buyers_equal_on_everything_else() {
    let buyers = Buyers::start().await;
    buyers
        .verified("o", buyer_profile("Fair", "US", &["330499"], &["en"]), 40)
        .await;
    buyers
        .verified(
            "o",
            buyer_profile("Excellent", "US", &["330499"], &["en"]),
            95,
        )
        .await;
    let found = find(&buyers, request(&["US"])).await;
    assert_eq!(names(&found), vec!["Excellent", "Fair"]);
    let scores: Vec<u32> = found
        .iter()
        .map(|c| c.score.as_ref().unwrap().quality_score)
        .collect();
    assert_eq!(scores, vec![95, 40]);
}

#[tokio::test]
async fn unverified_rejected_and_stale_buyers_are_never_found_or_proposed() {
    let buyers = Buyers::start().await;
    let start = onestop_platform::time::Clock::now(&buyers.clock);
    buyers.clock.set(start - Duration::days(400));
    buyers
        .verified("o", buyer_profile("Stale", "US", &["330499"], &["en"]), 99)
        .await;
    buyers.clock.set(start);
    buyers
        .register("o", buyer_profile("Unverified", "US", &["330499"], &["en"]))
        .await;
    let rejected = buyers
        .register("o", buyer_profile("Rejected", "US", &["330499"], &["en"]))
        .await;
    buyers
        .vet("o", &rejected.buyer_id, pb::VettingStatus::Rejected, 99)
        .await;
    // Verified once, rejected on re-vetting: out of matching.
    let revoked = buyers
        .verified(
            "o",
            buyer_profile("Revoked", "US", &["330499"], &["en"]),
            99,
        )
        .await;
    buyers
        .vet("o", &revoked, pb::VettingStatus::Rejected, 10)
        .await;
    buyers
        .verified("o", buyer_profile("Fresh", "US", &["330499"], &["en"]), 30)
        .await;

    let found = find(&buyers, request(&["US"])).await;
    assert_eq!(names(&found), vec!["Fresh"]);

    let search = buyers
        .service()
        .open_buyer_search(pb::OpenBuyerSearchRequest {
            need_id: "need-1".into(),
            case_id: "case-1".into(),
            category: onestop_contracts::common::v1::NeedCategory::BuyerDiscovery as i32,
            company: Some(company("company-1", &["330499"], &["en"])),
            count: 10,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let proposed: Vec<String> = search
        .matches
        .iter()
        .map(|m| m.buyer.as_ref().unwrap().company_name.clone())
        .collect();
    assert_eq!(proposed, vec!["Fresh"]);
}

#[tokio::test]
async fn find_buyers_validates_its_request() {
    let buyers = Buyers::start().await;
    let status = buyers
        .admin()
        .find_buyers(pb::FindBuyersRequest {
            company: Some(company("c", &["33049"], &[])),
            target_markets: vec!["usa".into()],
            limit: 500,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec!["company.hs_codes[0]", "limit", "target_markets[0]"]
    );
}
