//! A trade office's partner feed: its Watch stream on buyers' event feed
//! carries its own buyers and the matches and deals made with them, and
//! nothing of another office's.

use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::events::v1::Event;
use onestop_test_support::{Bearer, events_until_quiet};

use crate::common::{Buyers, buyer_profile};
use crate::matches::{advance, proposed, record_deal};

async fn watch_all(buyers: &Buyers, office: &str) -> Vec<Event> {
    events_until_quiet(buyers.client(Bearer::trade_office(office)), 0).await
}

fn types(events: &[Event]) -> Vec<&str> {
    events.iter().map(|e| e.r#type.as_str()).collect()
}

#[tokio::test]
async fn a_trade_office_watches_its_own_buyers_and_their_matches() {
    let buyers = Buyers::start().await;
    let tokyo = buyers
        .verified(
            "kbc-tokyo",
            buyer_profile("T", "JP", &["330499"], &["ja"]),
            85,
        )
        .await;
    let matches = proposed(&buyers).await;
    assert_eq!(matches.len(), 3);
    let first = &matches[0].match_id;
    for step in [
        pb::MatchStatus::Introduced,
        pb::MatchStatus::MeetingScheduled,
        pb::MatchStatus::Negotiating,
    ] {
        advance(&buyers, first, step, pb::NoDealReason::Unspecified)
            .await
            .expect("advanced");
    }
    record_deal(&buyers, first).await.expect("deal recorded");

    let new_york = watch_all(&buyers, "kbc-newyork").await;
    let seen = types(&new_york);
    for (event_type, count) in [
        ("buyer.registered", 3),
        ("buyer.vetted", 3),
        ("match.proposed", 3),
        ("match.advanced", 4),
        ("deal.recorded", 1),
    ] {
        assert_eq!(
            seen.iter().filter(|t| **t == event_type).count(),
            count,
            "{event_type} in {seen:?}"
        );
    }
    assert!(new_york.iter().all(|e| e.aggregate_id != tokyo));

    let tokyos = watch_all(&buyers, "kbc-tokyo").await;
    assert_eq!(types(&tokyos), ["buyer.registered", "buyer.vetted"]);
    assert!(tokyos.iter().all(|e| e.aggregate_id == tokyo));
    // An office's own acts keep its staff as actor; nobody else's do.
    assert!(tokyos.iter().all(|e| {
        let actor = e.actor.clone().unwrap_or_default();
        actor.tenant == "kbc-tokyo" && !actor.subject.is_empty()
    }));
}
