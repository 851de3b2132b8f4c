use chrono::Duration;
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::event_types::BuyersEvent;
use tonic::Code;

use crate::common::{Buyers, buyer_profile, error_reason, violations};

#[tokio::test]
async fn a_trade_office_registers_a_buyer_for_its_own_office_unverified() {
    let buyers = Buyers::start().await;
    let buyer = buyers
        .register(
            "kbc-newyork",
            buyer_profile("Atlantic Beauty", "US", &["330499", "3305"], &["en"]),
        )
        .await;
    assert_eq!(buyer.trade_office_id, "kbc-newyork");
    let vetting = buyer.vetting.clone().unwrap();
    assert_eq!(vetting.status, pb::VettingStatus::Unverified as i32);
    assert!(!buyer.matchable);
    assert_eq!(buyer.profile.as_ref().unwrap().contacts.len(), 1);

    let registered: Vec<pb::BuyerRegistered> =
        buyers.event_payloads(BuyersEvent::BuyerRegistered).await;
    assert_eq!(registered.len(), 1);
    assert_eq!(registered[0].buyer_id, buyer.buyer_id);
    assert_eq!(registered[0].hs_codes, vec!["330499", "3305"]);
    // Events never carry the contacts.
    let raw: Vec<u8> = buyers
        .events_after(0)
        .await
        .into_iter()
        .flat_map(|event| event.payload.unwrap_or_default().value)
        .collect();
    assert!(!String::from_utf8_lossy(&raw).contains("Dana"));

    // Another office's token cannot register for this one.
    let status = buyers
        .trade_office("kbc-hanoi")
        .register_buyer(pb::RegisterBuyerRequest {
            trade_office_id: "kbc-newyork".into(),
            profile: Some(buyer_profile("X", "US", &["330499"], &["en"])),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn bad_input_gets_field_violations_and_stores_nothing() {
    let buyers = Buyers::start().await;
    let mut profile = buyer_profile("", "USA", &["33", "12345"], &["english"]);
    profile.time_zone = "Mars/Olympus".into();
    profile.annual_import_volume = Some(pb_money("KRW", 5));
    profile.contacts[0].email = "not-an-email".into();
    let status = buyers
        .trade_office("kbc-newyork")
        .register_buyer(pb::RegisterBuyerRequest {
            profile: Some(profile),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec![
            "profile.annual_import_volume",
            "profile.company_name",
            "profile.contacts[0].email",
            "profile.country",
            "profile.hs_codes[0]",
            "profile.hs_codes[1]",
            "profile.languages[0]",
            "profile.time_zone",
        ]
    );
    assert_eq!(buyers.count("buyer").await, 0);
    assert_eq!(buyers.count("buyer_contact").await, 0);
    assert_eq!(buyers.count("event_log").await, 0);

    let status = buyers
        .trade_office("kbc-newyork")
        .vet_buyer(pb::VetBuyerRequest {
            buyer_id: "nope".into(),
            status: pb::VettingStatus::Unverified as i32,
            quality_score: 101,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        violations(&status),
        vec!["buyer_id", "quality_score", "status"]
    );
}

fn pb_money(currency: &str, amount: i64) -> onestop_contracts::common::v1::Money {
    onestop_contracts::common::v1::Money {
        currency_code: currency.into(),
        amount_minor: amount,
    }
}

#[tokio::test]
async fn a_duplicate_external_reference_names_the_existing_buyer() {
    let buyers = Buyers::start().await;
    let mut profile = buyer_profile("Atlantic Beauty", "US", &["330499"], &["en"]);
    profile.external_ref = "NY-0001".into();
    let first = buyers.register("kbc-newyork", profile.clone()).await;
    let status = buyers
        .trade_office("kbc-newyork")
        .register_buyer(pb::RegisterBuyerRequest {
            profile: Some(profile.clone()),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::AlreadyExists);
    assert_eq!(error_reason(&status), "BUYER_EXISTS");
    // The same reference is free in another office.
    buyers.register("kbc-hanoi", profile).await;
    assert_eq!(buyers.count("buyer").await, 2);
    assert!(!first.buyer_id.is_empty());
}

#[tokio::test]
async fn vetting_keeps_history_and_goes_stale_after_twelve_months() {
    let buyers = Buyers::start().await;
    let start = onestop_platform::time::Clock::now(&buyers.clock);
    let buyer = buyers
        .register(
            "kbc-newyork",
            buyer_profile("Atlantic Beauty", "US", &["330499"], &["en"]),
        )
        .await;
    let rejected = buyers
        .vet(
            "kbc-newyork",
            &buyer.buyer_id,
            pb::VettingStatus::Rejected,
            20,
        )
        .await;
    assert!(!rejected.matchable);
    buyers.clock.set(start + Duration::days(30));
    let verified = buyers
        .vet(
            "kbc-newyork",
            &buyer.buyer_id,
            pb::VettingStatus::Verified,
            80,
        )
        .await;
    assert!(verified.matchable);
    assert_eq!(verified.vetting_history.len(), 2);
    assert_eq!(
        verified.vetting_history[0].status,
        pb::VettingStatus::Verified as i32
    );
    assert_eq!(
        verified.vetting_history[1].status,
        pb::VettingStatus::Rejected as i32
    );
    let vetted: Vec<pb::BuyerVetted> = buyers.event_payloads(BuyersEvent::BuyerVetted).await;
    assert_eq!(vetted.len(), 2);
    assert_eq!(
        vetted[1].previous_status,
        pb::VettingStatus::Rejected as i32
    );

    buyers.clock.set(start + Duration::days(30 + 366));
    let stale = buyers
        .trade_office("kbc-newyork")
        .get_buyer(pb::GetBuyerRequest {
            buyer_id: buyer.buyer_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(!stale.matchable);
    assert_eq!(
        stale.vetting.unwrap().status,
        pb::VettingStatus::Verified as i32
    );
}

#[tokio::test]
async fn a_trade_office_cannot_vet_or_see_another_offices_buyer() {
    let buyers = Buyers::start().await;
    let buyer = buyers
        .register(
            "kbc-newyork",
            buyer_profile("Atlantic Beauty", "US", &["330499"], &["en"]),
        )
        .await;
    let status = buyers
        .trade_office("kbc-hanoi")
        .vet_buyer(pb::VetBuyerRequest {
            buyer_id: buyer.buyer_id.clone(),
            status: pb::VettingStatus::Verified as i32,
            criteria_met: vec![pb::VettingCriterion::SiteVisit as i32],
            quality_score: 90,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(buyers.count("buyer_vetting").await, 0);
    assert_eq!(buyers.count_events(BuyersEvent::BuyerVetted).await, 0);

    let status = buyers
        .trade_office("kbc-hanoi")
        .get_buyer(pb::GetBuyerRequest {
            buyer_id: buyer.buyer_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    let listed = buyers
        .trade_office("kbc-hanoi")
        .list_buyers(pb::ListBuyersRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert!(listed.buyers.is_empty());
}

#[tokio::test]
async fn services_see_buyers_without_contacts_and_lists_filter() {
    let buyers = Buyers::start().await;
    let us = buyers
        .verified(
            "kbc-newyork",
            buyer_profile("Atlantic Beauty", "US", &["330499"], &["en"]),
            70,
        )
        .await;
    buyers
        .register(
            "kbc-hanoi",
            buyer_profile("Saigon Trading", "VN", &["0901"], &["vi"]),
        )
        .await;
    let seen = buyers
        .service()
        .get_buyer(pb::GetBuyerRequest {
            buyer_id: us.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(seen.profile.unwrap().contacts.is_empty());

    let matchable = buyers
        .admin()
        .list_buyers(pb::ListBuyersRequest {
            matchable_only: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(matchable.buyers.len(), 1);
    assert_eq!(matchable.buyers[0].buyer_id, us);
    let by_code = buyers
        .admin()
        .list_buyers(pb::ListBuyersRequest {
            hs_code: "09".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(by_code.buyers.len(), 1);
    assert_eq!(by_code.buyers[0].profile.as_ref().unwrap().country, "VN");
}

#[tokio::test]
async fn a_buyer_shows_its_latest_fifty_vetting_decisions() {
    let buyers = Buyers::start().await;
    let buyer = buyers
        .register(
            "kbc-newyork",
            buyer_profile("Atlantic Beauty", "US", &["330499"], &["en"]),
        )
        .await;
    let mut last = None;
    for score in 1..=55 {
        last = Some(
            buyers
                .vet(
                    "kbc-newyork",
                    &buyer.buyer_id,
                    pb::VettingStatus::Verified,
                    score,
                )
                .await,
        );
    }
    let last = last.unwrap();
    assert_eq!(
        buyers.count("buyer_vetting").await,
        55,
        "every decision kept"
    );
    assert_eq!(last.vetting_history.len(), 50);
    let scores: Vec<u32> = last
        .vetting_history
        .iter()
        .map(|v| v.quality_score)
        .collect();
    assert_eq!(scores, (6..=55).rev().collect::<Vec<_>>(), "newest first");
    let read = buyers
        .trade_office("kbc-newyork")
        .get_buyer(pb::GetBuyerRequest {
            buyer_id: buyer.buyer_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(read.vetting_history, last.vetting_history);
}
