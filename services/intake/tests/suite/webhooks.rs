//! Signed webhooks over the real binaries: SBC registers one endpoint at
//! intake for referral events; its referral's events arrive from the
//! referral service signed (verified with the independent
//! `standardwebhooks` crate), in feed order, and nothing of KOTRA's; the
//! receiver answering 500 and then down for a while loses nothing, and a
//! rotated secret verifies.

use std::collections::BTreeMap;
use std::time::Duration;

use onestop_contracts::common::v1::{Money, NeedCategory};
use onestop_contracts::events::v1::{WatchRequest, watch_response};
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::referral::v1 as referral_pb;
use onestop_test_support::{
    Bearer, FeedClient, IntakeClient, Received, ReferralClient, WebhookReceiver, eventually,
};

use crate::support;

const WITHIN: Duration = Duration::from_secs(30);

fn json(received: &Received) -> serde_json::Value {
    serde_json::from_slice(&received.body).expect("a JSON body")
}

/// The event ids the receiver answered with a 2xx, in arrival order.
fn delivered(receiver: &WebhookReceiver) -> Vec<i64> {
    receiver
        .received()
        .iter()
        .filter(|r| r.answered / 100 == 2)
        .map(|r| json(r)["data"]["id"].as_i64().expect("an event id"))
        .collect()
}

fn verifies(secret: &str, received: &Received) -> bool {
    standardwebhooks::Webhook::new(secret)
        .expect("a whsec_ secret")
        .verify(&received.body, &received.headers)
        .is_ok()
}

/// The referral `agency` received for `need_id`.
async fn referral_of(suite: &support::Suite, agency: &str, need_id: &str) -> referral_pb::Referral {
    let mut inbox: ReferralClient = suite.client("referral", Bearer::agency(agency));
    let started = std::time::Instant::now();
    while started.elapsed() < WITHIN {
        let found = inbox
            .list_referrals(referral_pb::ListReferralsRequest {
                need_id: need_id.to_owned(),
                ..Default::default()
            })
            .await
            .expect("the inbox lists")
            .into_inner()
            .referrals
            .into_iter()
            .next();
        if let Some(referral) = found {
            return referral;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    panic!("{agency} receives its referral")
}

/// The referral events SBC's own Watch stream carries, by id.
async fn sbc_stream(suite: &support::Suite) -> Vec<i64> {
    let mut feed: FeedClient = suite.client("referral", Bearer::agency("sbc"));
    let mut stream = feed
        .watch(WatchRequest {
            types: vec!["referral.*".into()],
            ..Default::default()
        })
        .await
        .expect("SBC watches referral")
        .into_inner();
    let mut ids = Vec::new();
    // Everything retained comes at once; a quiet second means the end.
    while let Ok(Ok(Some(message))) =
        tokio::time::timeout(Duration::from_secs(1), stream.message()).await
    {
        if let Some(watch_response::Item::Event(event)) = message.item {
            ids.push(event.id);
        }
    }
    ids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sbc_gets_its_referral_events_signed_in_order_through_an_outage_and_a_rotation() {
    let suite = support::start(&[
        ("ONESTOP_WEBHOOK_FIRST_RETRY", "100ms"),
        ("ONESTOP_WEBHOOK_MAX_RETRY", "400ms"),
        ("ONESTOP_WEBHOOK_RESCAN", "200ms"),
        ("ONESTOP_WEBHOOK_TIMEOUT", "2s"),
    ])
    .await;
    suite.seed_directory().await;
    let mut receiver = WebhookReceiver::start().await;

    // SBC registers once, at intake, for referral's events.
    let sbc_intake: IntakeClient = suite.client("intake", Bearer::agency("sbc"));
    let registered = sbc_intake
        .clone()
        .register_webhook(pb::RegisterWebhookRequest {
            url: receiver.url(),
            event_types: vec!["referral.*".into()],
            idempotency_key: "sbc-hook".into(),
            ..Default::default()
        })
        .await
        .expect("SBC registers its endpoint")
        .into_inner();
    let webhook_id = registered.webhook.clone().unwrap().webhook_id;

    // KOTRA opens a case whose needs go to SBC's program and to KOTRA's own.
    let kotra: IntakeClient = suite.client("intake", Bearer::agency("kotra"));
    let company = kotra
        .clone()
        .register_company(pb::RegisterCompanyRequest {
            idempotency_key: "hooks-company".into(),
            profile: Some(pb::CompanyProfile {
                business_registration_number: "107-86-14075".into(),
                name_ko: "경기뷰티".into(),
                name_en: "Gyeonggi Beauty Co., Ltd.".into(),
                region: "KR-41".into(),
                industry_ksic: "20423".into(),
                hs_codes: vec!["330499".into()],
                employees: 18,
                export_revenue: Some(Money {
                    currency_code: "USD".into(),
                    amount_minor: 5_000_000,
                }),
                languages: vec!["ko".into(), "en".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("company registers")
        .into_inner();
    let need = |program_id: &str| pb::NeedRequest {
        category: NeedCategory::BuyerDiscovery as i32,
        target_markets: vec!["US".into()],
        hs_codes: vec!["330499".into()],
        program_id: program_id.into(),
        ..Default::default()
    };
    let opened = kotra
        .clone()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: "hooks-case".into(),
            company_id: company.company_id.clone(),
            needs: vec![need("sbc.buyer-matching"), need("kotra.export-first-step")],
        })
        .await
        .expect("case opens")
        .into_inner();
    let sbc_referral = referral_of(&suite, "sbc", &opened.needs[0].need_id).await;
    let kotra_referral = referral_of(&suite, "kotra", &opened.needs[1].need_id).await;
    let sbc: ReferralClient = suite.client("referral", Bearer::agency("sbc"));
    sbc.clone()
        .accept_referral(referral_pb::AcceptReferralRequest {
            idempotency_key: "hooks-accept".into(),
            referral_id: sbc_referral.referral_id.clone(),
            ..Default::default()
        })
        .await
        .expect("SBC accepts");
    let accepted_arrives = || async {
        receiver
            .received()
            .iter()
            .any(|r| r.answered == 200 && json(r)["type"] == "referral.accepted")
    };
    assert!(
        eventually(WITHIN, accepted_arrives).await,
        "SBC's acceptance is pushed"
    );
    for received in receiver.received() {
        assert!(
            verifies(&registered.secret, &received),
            "signed with SBC's secret"
        );
        let body = json(&received);
        assert_eq!(body["data"]["source"], "referral");
        assert_eq!(body["data"]["aggregateId"], sbc_referral.referral_id);
        let id = received.headers["webhook-id"].to_str().unwrap();
        assert!(id.starts_with("referral:"), "{id}");
        // Referral's own trim for SBC: its legs only.
        let legs = body["data"]["payload"]["legs"].as_array().expect("legs");
        assert!(legs.iter().all(|leg| leg["agencyId"] == "sbc"), "{legs:?}");
    }

    // A new secret; then the receiver fails with 500, then goes down, while
    // SBC starts and completes the referral.
    let rotated = sbc_intake
        .clone()
        .rotate_webhook_secret(pb::RotateWebhookSecretRequest {
            webhook_id: webhook_id.clone(),
        })
        .await
        .expect("SBC rotates its secret")
        .into_inner();
    let before_outage = receiver.received().len();
    receiver.answer_with(500);
    sbc.clone()
        .start_referral(referral_pb::StartReferralRequest {
            idempotency_key: "hooks-start".into(),
            referral_id: sbc_referral.referral_id.clone(),
            ..Default::default()
        })
        .await
        .expect("SBC starts serving");
    assert!(
        eventually(WITHIN, || async {
            receiver.received()[before_outage..]
                .iter()
                .filter(|r| r.answered == 500)
                .count()
                >= 2
        })
        .await,
        "the start is tried, and tried again"
    );
    receiver.go_down().await;
    sbc.clone()
        .complete_referral(referral_pb::CompleteReferralRequest {
            idempotency_key: "hooks-complete".into(),
            referral_id: sbc_referral.referral_id.clone(),
            outcome: Some(referral_pb::ReferralOutcome {
                kind: referral_pb::OutcomeKind::ServiceDelivered as i32,
                ..Default::default()
            }),
        })
        .await
        .expect("SBC completes");
    tokio::time::sleep(Duration::from_secs(1)).await;
    let down_attempts = sbc_intake
        .clone()
        .list_webhook_deliveries(pb::ListWebhookDeliveriesRequest {
            webhook_id: webhook_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    assert!(
        down_attempts
            .iter()
            .any(|d| d.error == "connect" && d.status_code == 0),
        "attempts while down are logged: {down_attempts:?}"
    );
    receiver.answer_with(200);
    receiver.come_back().await;
    let completed_arrives = || async {
        receiver
            .received()
            .iter()
            .any(|r| r.answered == 200 && json(r)["type"] == "referral.completed")
    };
    assert!(
        eventually(WITHIN, completed_arrives).await,
        "deliveries resume"
    );

    // Every event of SBC's own stream arrived with one 2xx each, in feed
    // order; repeats only of attempts that never got one.
    let ids = delivered(&receiver);
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "in feed order: {ids:?}"
    );
    assert_eq!(ids, sbc_stream(&suite).await, "nothing lost, nothing extra");
    let mut attempts: BTreeMap<String, Vec<u16>> = BTreeMap::new();
    for received in receiver.received() {
        let id = received.headers["webhook-id"].to_str().unwrap().to_owned();
        attempts.entry(id).or_default().push(received.answered);
    }
    for (id, answers) in &attempts {
        assert_eq!(answers.last(), Some(&200), "{id}: {answers:?}");
        assert_eq!(answers.iter().filter(|a| **a == 200).count(), 1, "{id}");
    }
    for received in &receiver.received()[before_outage..] {
        assert!(
            verifies(&rotated.secret, received),
            "the rotated secret verifies"
        );
    }
    assert!(
        receiver
            .received()
            .iter()
            .all(|r| !String::from_utf8_lossy(&r.body).contains(&kotra_referral.referral_id)),
        "nothing of KOTRA's referral reaches SBC"
    );
    suite.stop().await;
}
