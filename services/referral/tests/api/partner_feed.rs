//! An agency's partner feed: its Watch stream on referral's event feed
//! carries the referrals it holds or held a leg of and its own programs'
//! capacity, each referral trimmed to its own legs, and nothing of another
//! agency's; its cursor resumes like anyone's.

use std::time::Duration;

use onestop_contracts::common::v1::{GrowthStage, NeedCategory};
use onestop_contracts::events::v1::{Event, WatchRequest};
use onestop_contracts::referral::v1 as pb;
use onestop_test_support::{Bearer, FeedClient, events_until_quiet, next_event};
use prost::Message;

use crate::common::{Referral, create_request, current_program, program};
use crate::rerouting::decline;

/// Everything `bearer` may watch after `after`.
async fn watch_all(referral: &Referral, bearer: Bearer, after: i64) -> Vec<Event> {
    events_until_quiet(referral.client(bearer), after).await
}

/// (program capacity changes, referral events), each in feed order.
fn by_kind(events: Vec<Event>) -> (Vec<Event>, Vec<Event>) {
    events
        .into_iter()
        .partition(|e| e.r#type == "program.capacity_changed")
}

fn referral_of(event: &Event) -> Option<pb::Referral> {
    let payload = event.payload.as_ref()?;
    payload.to_msg::<pb::Referral>().ok()
}

#[tokio::test]
async fn an_agency_watches_its_own_referral_legs_and_nothing_of_another_agencys() {
    let referral = Referral::start().await;
    for id in ["sbc", "kotra"] {
        referral.add_agency(id).await;
    }
    // SBC's loans are the more specific fit, so routing tries SBC first.
    let mut sbc_loans = program("sbc.loans", "sbc", NeedCategory::ExportFinance);
    sbc_loans.eligibility = Some(pb::Eligibility {
        stages: vec![GrowthStage::Domestic as i32],
        max_employees: 300,
        ..Default::default()
    });
    let mut kotra_loans = program("kotra.loans", "kotra", NeedCategory::ExportFinance);
    kotra_loans.eligibility = Some(pb::Eligibility {
        max_employees: 300,
        ..Default::default()
    });
    let kotra_marketing = program("kotra.marketing", "kotra", NeedCategory::Marketing);
    for p in [sbc_loans, kotra_loans, kotra_marketing] {
        referral.add_program(p).await;
    }

    // One referral SBC declines, so it moves on to KOTRA; one only KOTRA
    // ever holds.
    let shared = referral.create("need-shared").await;
    assert_eq!(current_program(&shared), "sbc.loans");
    decline(&referral, "sbc", &shared.referral_id).await;
    assert_eq!(
        current_program(&referral.get(&shared.referral_id).await),
        "kotra.loans"
    );
    let kotras = referral
        .create_with(create_request("need-kotra", NeedCategory::Marketing))
        .await;
    assert_eq!(current_program(&kotras), "kotra.marketing");

    let everything_sbc = watch_all(&referral, Bearer::agency("sbc"), 0).await;
    let (capacity, sbc) = by_kind(everything_sbc.clone());
    assert!(
        !capacity.is_empty(),
        "SBC hears of its own program's capacity"
    );
    for event in &capacity {
        let change = event.payload.as_ref().unwrap();
        let change = change.to_msg::<pb::ProgramCapacityChanged>().unwrap();
        assert_eq!(change.agency_id, "sbc");
    }
    let types: Vec<&str> = sbc.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        types,
        [
            "referral.created",
            "referral.routed",
            "referral.declined",
            "referral.rerouted",
            "referral.routed",
        ],
        "SBC's feed: the referral it held, from creation to its hand-on"
    );
    for event in &sbc {
        assert_eq!(event.aggregate_id, shared.referral_id);
        let payload = referral_of(event).expect("a referral payload");
        assert!(
            !payload.legs.is_empty() && payload.legs.iter().all(|leg| leg.agency_id == "sbc"),
            "{}: SBC reads only its own legs, not KOTRA's",
            event.r#type
        );
        assert!(event.traceparent.is_empty(), "no internal trace context");
    }
    // SBC's own decline (and the re-route it caused) name SBC as the
    // actor; what intake's hand-off did names no one.
    let declined = &sbc[2];
    let actor = declined.actor.clone().unwrap_or_default();
    assert_eq!(
        (actor.role.as_str(), actor.tenant.as_str()),
        ("agency", "sbc")
    );
    assert!(!actor.subject.is_empty());
    let created = sbc[0].actor.clone().unwrap_or_default();
    assert_eq!(created.role, "service");
    assert!(created.subject.is_empty() && created.tenant.is_empty());

    let (capacity, kotra) = by_kind(watch_all(&referral, Bearer::agency("kotra"), 0).await);
    assert!(
        capacity
            .iter()
            .all(|e| e.aggregate_id.starts_with("kotra."))
    );
    let seen: Vec<(&str, &str)> = kotra
        .iter()
        .map(|e| (e.r#type.as_str(), e.aggregate_id.as_str()))
        .collect();
    assert_eq!(
        seen,
        [
            ("referral.rerouted", shared.referral_id.as_str()),
            ("referral.routed", shared.referral_id.as_str()),
            ("referral.created", kotras.referral_id.as_str()),
            ("referral.routed", kotras.referral_id.as_str()),
        ]
    );
    for event in &kotra {
        let payload = referral_of(event).expect("a referral payload");
        assert!(payload.legs.iter().all(|leg| leg.agency_id == "kotra"));
        // SBC's decline reached KOTRA as a re-route, without SBC's staff.
        let actor = event.actor.clone().unwrap_or_default();
        assert_ne!(actor.tenant, "sbc");
        assert!(actor.subject.is_empty());
    }

    // Internal readers still see every leg.
    let whole = watch_all(&referral, Bearer::dashboard(), 0).await;
    let rerouted = whole
        .iter()
        .find(|e| e.r#type == "referral.rerouted")
        .and_then(referral_of)
        .unwrap();
    assert_eq!(rerouted.legs.len(), 2);

    // A partner resumes from the last event it handled.
    let resumed = watch_all(&referral, Bearer::agency("sbc"), everything_sbc[1].id).await;
    let ids = |events: &[Event]| events.iter().map(|e| e.id).collect::<Vec<_>>();
    assert_eq!(ids(&resumed), ids(&everything_sbc[2..]));
    assert!(!resumed.is_empty());
    // And from the latest event it sees only what comes next.
    let mut feed: FeedClient = referral.client(Bearer::agency("sbc"));
    let mut live = feed
        .watch(WatchRequest {
            from_latest: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let next = referral.create("need-next").await;
    let mut event = next_event(&mut live, Duration::from_secs(10))
        .await
        .expect("the new referral reaches SBC");
    while event.r#type == "program.capacity_changed" {
        event = next_event(&mut live, Duration::from_secs(10))
            .await
            .unwrap();
    }
    assert_eq!(
        (event.r#type.as_str(), event.aggregate_id.as_str()),
        ("referral.created", next.referral_id.as_str())
    );
    let _ = pb::Referral::decode(event.payload.unwrap().value.as_slice()).unwrap();
}
