//! Partners' webhooks against a real receiver on loopback: registered once
//! with the secret shown once, deliveries signed as Standard Webhooks say
//! (checked with the independent `standardwebhooks` crate), listed,
//! rotated, disabled and enabled by their own partner only, retried and
//! finally disabled when the endpoint keeps failing.

use std::time::Duration;

use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::events::v1::{PartnerRef, WatchRequest};
use onestop_contracts::intake::v1 as pb;
use onestop_intake::upstreams::UpstreamSettings;
use onestop_intake::webhooks::WebhookSettings;
use onestop_platform::tls::{CertificateAuthority, TlsSettings};
use onestop_test_support::{
    Bearer, Connect, FeedClient, IntakeClient, Received, TestDb, WebhookReceiver, eventually,
};
use tonic::Code;

use crate::common::{Intake, profile, registration_number, violations};

const WITHIN: Duration = Duration::from_secs(20);

/// Short waits, so retries and giving up take seconds.
fn fast(give_up_after: Duration) -> UpstreamSettings {
    UpstreamSettings {
        webhooks: WebhookSettings {
            webhook_timeout: Duration::from_secs(2),
            webhook_first_retry: Duration::from_millis(100),
            webhook_max_retry: Duration::from_millis(400),
            webhook_give_up_after: give_up_after,
            webhook_secret_overlap: Duration::from_secs(3600),
            webhook_rescan: Duration::from_millis(200),
        },
        ..Default::default()
    }
}

async fn start(give_up_after: Duration) -> Intake {
    Intake::start_wired(TestDb::new().await, |_| {}, fast(give_up_after)).await
}

async fn register(
    client: &IntakeClient,
    url: &str,
    types: &[&str],
) -> Result<pb::RegisteredWebhook, tonic::Status> {
    client
        .clone()
        .register_webhook(pb::RegisterWebhookRequest {
            url: url.into(),
            event_types: types.iter().map(|t| t.to_string()).collect(),
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

/// A company `agency` registers, which makes it the company's partner: an
/// event naming the agency on intake's feed.
async fn company_by(intake: &Intake, agency: &str, seed: u32) -> String {
    intake
        .agency(agency)
        .register_company(pb::RegisterCompanyRequest {
            profile: Some(profile(&registration_number(seed))),
            ..Default::default()
        })
        .await
        .expect("registers")
        .into_inner()
        .company_id
}

/// Registers an endpoint; its id.
async fn registered_id(client: &IntakeClient, url: &str, types: &[&str]) -> String {
    register(client, url, types)
        .await
        .expect("registers")
        .webhook
        .expect("the endpoint")
        .webhook_id
}

/// Whether no delivery mentioning `text` comes to `receiver` for a while.
async fn stays_away(receiver: &WebhookReceiver, text: &str) -> bool {
    tokio::time::sleep(Duration::from_millis(800)).await;
    !receiver
        .received()
        .iter()
        .any(|r| String::from_utf8_lossy(&r.body).contains(text))
}

/// The oldest endpoint `client` lists.
async fn first_webhook(client: &IntakeClient) -> pb::Webhook {
    client
        .clone()
        .list_webhooks(pb::ListWebhooksRequest::default())
        .await
        .unwrap()
        .into_inner()
        .webhooks[0]
        .clone()
}

/// Whether a delivery `receiver` got mentions `text`, within a while.
async fn arrives(receiver: &WebhookReceiver, text: &str) -> bool {
    eventually(WITHIN, || async {
        receiver
            .received()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(text))
    })
    .await
}

/// Verifies `received` with `secret` as an independent receiver would.
fn verifies(secret: &str, received: &Received) -> bool {
    standardwebhooks::Webhook::new(secret)
        .expect("a whsec_ secret")
        .verify(&received.body, &received.headers)
        .is_ok()
}

fn json(received: &Received) -> serde_json::Value {
    serde_json::from_slice(&received.body).expect("a JSON body")
}

fn event_types_received(receiver: &WebhookReceiver) -> Vec<String> {
    receiver
        .received()
        .iter()
        .filter(|r| r.answered / 100 == 2)
        .map(|r| json(r)["type"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn a_partner_registers_once_and_gets_its_own_events_signed_rotates_disables_and_enables() {
    let intake = start(Duration::from_secs(3600)).await;
    let receiver = WebhookReceiver::start().await;
    let sbc = intake.agency("sbc");
    let registered = register(&sbc, &receiver.url(), &["company.*", "webhook.*"])
        .await
        .expect("registers");
    let secret = registered.secret.clone();
    assert!(secret.starts_with("whsec_"), "{secret}");
    let webhook = registered.webhook.expect("the endpoint");
    assert_eq!(webhook.state, pb::WebhookState::Enabled as i32);
    assert_eq!(webhook.partner_tenant, "sbc");
    assert_eq!(webhook.partner_role, pb::PartnerRole::Agency as i32);
    let id = webhook.webhook_id.clone();

    // SBC's company arrives; KOTRA's does not.
    let kotra_company = company_by(&intake, "kotra", 1).await;
    let sbc_company = company_by(&intake, "sbc", 2).await;
    assert!(
        eventually(WITHIN, || async {
            event_types_received(&receiver).contains(&"company.partner_changed".to_owned())
        })
        .await,
        "SBC's partner change is delivered"
    );
    let first = receiver
        .received()
        .into_iter()
        .find(|r| json(r)["type"] == "company.partner_changed")
        .unwrap();
    assert!(verifies(&secret, &first), "signed with the secret shown");
    let body = json(&first);
    assert_eq!(body["data"]["source"], "intake");
    assert_eq!(body["data"]["payload"]["companyId"], sbc_company);
    let message_id = first.headers["webhook-id"].to_str().unwrap().to_owned();
    assert!(
        message_id.starts_with("intake:")
            && message_id.ends_with(&format!(":{}", body["data"]["id"])),
        "{message_id}"
    );
    assert!(
        !receiver
            .received()
            .iter()
            .any(|r| String::from_utf8_lossy(&r.body).contains(&kotra_company)),
        "nothing of KOTRA's company reaches SBC"
    );

    // Only SBC (and an admin) sees and changes the endpoint.
    let listed = |client: IntakeClient| async move {
        client
            .clone()
            .list_webhooks(pb::ListWebhooksRequest::default())
            .await
            .unwrap()
            .into_inner()
            .webhooks
    };
    assert_eq!(listed(sbc.clone()).await.len(), 1);
    assert!(listed(intake.kotra()).await.is_empty());
    assert_eq!(listed(intake.admin()).await.len(), 1);
    let admin_for = |tenant: &str| {
        let admin = intake.admin();
        let request = pb::ListWebhooksRequest {
            partner_role: pb::PartnerRole::Agency as i32,
            partner_tenant: tenant.into(),
            ..Default::default()
        };
        async move {
            admin
                .clone()
                .list_webhooks(request)
                .await
                .unwrap()
                .into_inner()
                .webhooks
                .len()
        }
    };
    assert_eq!(admin_for("sbc").await, 1);
    assert_eq!(admin_for("kotra").await, 0);
    assert!(listed(intake.agency("sbc")).await[0].url == receiver.url());
    let kotra = intake.kotra();
    let hidden = [
        kotra
            .clone()
            .rotate_webhook_secret(pb::RotateWebhookSecretRequest {
                webhook_id: id.clone(),
            })
            .await
            .map(|_| ()),
        kotra
            .clone()
            .disable_webhook(pb::DisableWebhookRequest {
                webhook_id: id.clone(),
            })
            .await
            .map(|_| ()),
        kotra
            .clone()
            .enable_webhook(pb::EnableWebhookRequest {
                webhook_id: id.clone(),
            })
            .await
            .map(|_| ()),
        kotra
            .clone()
            .list_webhook_deliveries(pb::ListWebhookDeliveriesRequest {
                webhook_id: id.clone(),
                ..Default::default()
            })
            .await
            .map(|_| ()),
    ];
    for result in hidden {
        assert_eq!(result.unwrap_err().code(), Code::NotFound);
    }
    let advisor_sbc = intake
        .advisor("sbc")
        .disable_webhook(pb::DisableWebhookRequest {
            webhook_id: id.clone(),
        })
        .await;
    assert_eq!(
        advisor_sbc.unwrap_err().code(),
        Code::NotFound,
        "the same tenant id in another role is another partner"
    );

    // Rotation: the new secret is shown once; during the overlap both sign.
    let rotated = sbc
        .clone()
        .rotate_webhook_secret(pb::RotateWebhookSecretRequest {
            webhook_id: id.clone(),
        })
        .await
        .expect("rotates")
        .into_inner();
    assert_ne!(rotated.secret, secret);
    assert!(rotated.webhook.unwrap().previous_secret_until.is_some());
    assert!(
        eventually(WITHIN, || async {
            event_types_received(&receiver).contains(&"webhook.endpoint_secret_rotated".to_owned())
        })
        .await
    );
    let after_rotation = receiver
        .received()
        .into_iter()
        .find(|r| json(r)["type"] == "webhook.endpoint_secret_rotated")
        .unwrap();
    assert!(
        verifies(&rotated.secret, &after_rotation),
        "the new secret verifies"
    );
    assert!(
        verifies(&secret, &after_rotation),
        "and the old one, during the overlap"
    );
    assert!(!verifies(
        "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
        &after_rotation
    ));
    assert!(
        !String::from_utf8_lossy(&after_rotation.body).contains(&receiver.url())
            && !String::from_utf8_lossy(&after_rotation.body).contains("whsec_"),
        "no URL or secret on the feed"
    );

    // Disabled: nothing arrives; enabled: what happened meanwhile follows.
    let disabled = sbc
        .clone()
        .disable_webhook(pb::DisableWebhookRequest {
            webhook_id: id.clone(),
        })
        .await
        .expect("disables")
        .into_inner();
    assert_eq!(disabled.state, pb::WebhookState::Disabled as i32);
    assert_eq!(
        disabled.disabled_cause,
        pb::WebhookDisableCause::Requested as i32
    );
    let while_disabled = company_by(&intake, "sbc", 3).await;
    assert!(
        stays_away(&receiver, &while_disabled).await,
        "a disabled endpoint gets nothing"
    );
    let enabled = sbc
        .clone()
        .enable_webhook(pb::EnableWebhookRequest {
            webhook_id: id.clone(),
        })
        .await
        .expect("enables")
        .into_inner();
    assert_eq!(enabled.state, pb::WebhookState::Enabled as i32);
    assert!(
        arrives(&receiver, &while_disabled).await,
        "deliveries resume from the cursor"
    );

    // The delivery log: every attempt, newest first, paged.
    let page = sbc
        .clone()
        .list_webhook_deliveries(pb::ListWebhookDeliveriesRequest {
            webhook_id: id.clone(),
            page_size: 2,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(page.deliveries.len(), 2);
    assert!(page.deliveries[0].delivery_id > page.deliveries[1].delivery_id);
    assert!(!page.next_page_token.is_empty());
    assert!(
        page.deliveries
            .iter()
            .all(|d| d.status_code == 200 && d.error.is_empty() && d.source == "intake")
    );
    // Each change of the endpoint is on the feed, naming SBC.
    for event in [
        IntakeEvent::WebhookRegistered,
        IntakeEvent::WebhookSecretRotated,
        IntakeEvent::WebhookDisabled,
        IntakeEvent::WebhookEnabled,
    ] {
        assert_eq!(intake.count_events(event).await, 1, "{event}");
    }
}

#[tokio::test]
async fn registration_refuses_bad_endpoints_and_callers_and_stores_nothing() {
    let intake = start(Duration::from_secs(3600)).await;
    let sbc = intake.agency("sbc");
    let refused = |url: &'static str, types: &'static [&'static str]| {
        let sbc = sbc.clone();
        async move { register(&sbc, url, types).await.unwrap_err() }
    };
    for (url, types, fields) in [
        (
            "http://hooks.example.com/x",
            &["referral.*"][..],
            vec!["url"],
        ),
        (
            "ftp://hooks.example.com/x",
            &["referral.*"][..],
            vec!["url"],
        ),
        (
            "https://u:p@hooks.example.com/",
            &["referral.*"][..],
            vec!["url"],
        ),
        ("", &["referral.*"][..], vec!["url"]),
        ("https://hooks.example.com/x", &[][..], vec!["event_types"]),
        (
            "https://hooks.example.com/x",
            &["Referral!"][..],
            vec!["event_types[0]"],
        ),
    ] {
        let status = refused(url, types).await;
        assert_eq!(status.code(), Code::InvalidArgument, "{url} {types:?}");
        assert_eq!(violations(&status), fields, "{url} {types:?}");
    }
    let long = format!("https://hooks.example.com/{}", "a".repeat(300));
    let status = register(&sbc, &long, &["referral.*"]).await.unwrap_err();
    assert_eq!(violations(&status), vec!["url"]);
    let many: Vec<String> = (0..65).map(|i| format!("t{i}.created")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let status = register(&sbc, "https://hooks.example.com/x", &many)
        .await
        .unwrap_err();
    assert_eq!(violations(&status), vec!["event_types"]);

    for client in [intake.dashboard(), intake.service()] {
        let status = register(&client, "https://hooks.example.com/x", &["referral.*"])
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
    }
    // A partner registers for itself only.
    let status = sbc
        .clone()
        .register_webhook(pb::RegisterWebhookRequest {
            url: "https://hooks.example.com/x".into(),
            event_types: vec!["referral.*".into()],
            partner_role: pb::PartnerRole::Agency as i32,
            partner_tenant: "kotra".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    // An admin names the partner.
    let status = register(
        &intake.admin(),
        "https://hooks.example.com/x",
        &["referral.*"],
    )
    .await
    .unwrap_err();
    assert_eq!(violations(&status), vec!["partner_role"]);
    assert_eq!(intake.count("webhook_endpoint").await, 0);
    let for_kotra = intake
        .admin()
        .register_webhook(pb::RegisterWebhookRequest {
            url: "https://hooks.example.com/x".into(),
            event_types: vec!["referral.*".into()],
            partner_role: pb::PartnerRole::Agency as i32,
            partner_tenant: "kotra".into(),
            idempotency_key: "kotra-hook".into(),
        })
        .await
        .expect("an admin registers for KOTRA")
        .into_inner();
    assert_eq!(for_kotra.webhook.unwrap().partner_tenant, "kotra");
    assert_eq!(
        intake
            .kotra()
            .list_webhooks(pb::ListWebhooksRequest::default())
            .await
            .unwrap()
            .into_inner()
            .webhooks
            .len(),
        1
    );

    // Watching on a partner's behalf is for services and admins.
    let on_behalf = |role: &str, tenant: &str| WatchRequest {
        from_latest: true,
        on_behalf_of: Some(PartnerRef {
            role: role.into(),
            tenant: tenant.into(),
        }),
        ..Default::default()
    };
    let mut partner_feed: FeedClient = intake.client(Bearer::agency("sbc"));
    let status = partner_feed
        .watch(on_behalf("agency", "kotra"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);
    let mut service_feed: FeedClient = intake.client(Bearer::service());
    let status = service_feed
        .watch(on_behalf("admin", ""))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec!["on_behalf_of.role", "on_behalf_of.tenant"]
    );
    assert!(
        service_feed
            .watch(on_behalf("agency", "kotra"))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn a_failing_endpoint_is_retried_in_order_then_disabled_with_an_event() {
    let intake = start(Duration::from_secs(2)).await;
    let receiver = WebhookReceiver::start().await;
    receiver.answer_with(500);
    let sbc = intake.agency("sbc");
    let id = registered_id(&sbc, &receiver.url(), &["company.*"]).await;
    let first = company_by(&intake, "sbc", 1).await;
    company_by(&intake, "sbc", 2).await;
    let disabled = || first_webhook(&sbc);
    assert!(
        eventually(WITHIN, || async {
            disabled().await.state == pb::WebhookState::Disabled as i32
        })
        .await,
        "disabled after failing for the give-up period"
    );
    let endpoint = disabled().await;
    assert_eq!(
        endpoint.disabled_cause,
        pb::WebhookDisableCause::Failing as i32
    );
    assert!(
        endpoint.failures_in_a_row >= 2,
        "{}",
        endpoint.failures_in_a_row
    );
    // Every attempt was the first event, again: nothing skipped ahead of it.
    let received = receiver.received();
    assert!(received.len() >= 2);
    assert!(
        received
            .iter()
            .all(|r| String::from_utf8_lossy(&r.body).contains(&first))
    );
    let ids: std::collections::BTreeSet<_> = received
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert_eq!(ids.len(), 1, "one webhook-id across the retries");
    let log = sbc
        .clone()
        .list_webhook_deliveries(pb::ListWebhookDeliveriesRequest {
            webhook_id: id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    assert!(
        log.iter()
            .all(|d| d.status_code == 500 && d.error == "status")
    );
    assert_eq!(intake.count_events(IntakeEvent::WebhookDisabled).await, 1);

    // Back and enabled: both events arrive, in feed order.
    receiver.answer_with(204);
    sbc.clone()
        .enable_webhook(pb::EnableWebhookRequest {
            webhook_id: id.clone(),
        })
        .await
        .unwrap();
    assert!(
        eventually(WITHIN, || async {
            event_types_received(&receiver).len() == 2
        })
        .await
    );
    let delivered: Vec<i64> = receiver
        .received()
        .iter()
        .filter(|r| r.answered == 204)
        .map(|r| json(r)["data"]["id"].as_i64().unwrap())
        .collect();
    assert!(delivered.windows(2).all(|w| w[0] < w[1]), "{delivered:?}");
    let endpoint = disabled().await;
    assert_eq!(endpoint.failures_in_a_row, 0);
    assert_eq!(endpoint.state, pb::WebhookState::Enabled as i32);
}

#[tokio::test]
async fn one_partners_endpoints_take_no_watch_place_of_anothers() {
    // One Watch stream per caller: intake's deliveries for SBC and for
    // KOTRA are counted per partner, so both flow.
    let intake = Intake::start_wired(
        TestDb::new().await,
        |settings| settings.max_watchers_per_caller = 1,
        fast(Duration::from_secs(3600)),
    )
    .await;
    let mut receivers = Vec::new();
    for (seed, agency) in [(1, "sbc"), (2, "kotra")] {
        let receiver = WebhookReceiver::start().await;
        register(&intake.agency(agency), &receiver.url(), &["company.*"])
            .await
            .expect("registers");
        let company_id = company_by(&intake, agency, seed).await;
        receivers.push((receiver, company_id));
    }
    for (receiver, company_id) in &receivers {
        assert!(
            arrives(receiver, company_id).await,
            "each partner's endpoint gets its company"
        );
    }
}

#[tokio::test]
async fn the_delivery_log_keeps_the_latest_attempts_only() {
    let intake = start(Duration::from_secs(3600)).await;
    let sbc = intake.agency("sbc");
    let id = registered_id(&sbc, "https://hooks.example.com/x", &["quiet_family.*"]).await;
    let webhook_id: uuid::Uuid = id.parse().unwrap();
    let mut conn = intake.pool.acquire().await.unwrap();
    let kept = onestop_intake::webhooks::DELIVERY_LOG;
    // A full log at once, then five attempts as the dispatcher logs them.
    sqlx::query(
        "INSERT INTO webhook_delivery
             (webhook_id, source, event_id, event_type, message_id, status_code, error, duration_ms)
         SELECT $1, 'referral', n, 'referral.created', 'referral:e:' || n, 503, 'status', 12
           FROM generate_series(1, $2) AS n",
    )
    .bind(webhook_id)
    .bind(kept)
    .execute(&mut *conn)
    .await
    .unwrap();
    for event_id in kept + 1..=kept + 5 {
        onestop_intake::store::log_attempt(
            &mut conn,
            &onestop_intake::store::Attempt {
                webhook_id,
                source: "referral",
                event_id,
                event_type: "referral.created",
                message_id: &format!("referral:e:{event_id}"),
                status_code: 503,
                error: "status",
                duration_ms: 12,
            },
        )
        .await
        .unwrap();
    }
    let mut listed = Vec::new();
    let mut page_token = String::new();
    loop {
        let page = sbc
            .clone()
            .list_webhook_deliveries(pb::ListWebhookDeliveriesRequest {
                webhook_id: id.clone(),
                page_size: 500,
                page_token,
            })
            .await
            .unwrap()
            .into_inner();
        listed.extend(page.deliveries.iter().map(|d| d.event_id));
        if page.next_page_token.is_empty() {
            break;
        }
        page_token = page.next_page_token;
    }
    let expected: Vec<i64> = (6..=kept + 5).rev().collect();
    assert_eq!(listed, expected, "the latest {kept}, newest first");
}

#[tokio::test]
async fn two_replicas_deliver_each_event_once_in_order() {
    let first = start(Duration::from_secs(3600)).await;
    let url = first.database_url.clone();
    let second = Intake::start_wired(
        TestDb::new().await,
        |settings| settings.database_url = Some(url),
        fast(Duration::from_secs(3600)),
    )
    .await;
    let receiver = WebhookReceiver::start().await;
    register(&first.agency("sbc"), &receiver.url(), &["company.*"])
        .await
        .expect("registers");
    for seed in 1..=6 {
        // Half through each replica.
        let replica = if seed % 2 == 0 { &first } else { &second };
        company_by(replica, "sbc", seed).await;
    }
    assert!(
        eventually(WITHIN, || async {
            event_types_received(&receiver).len() >= 6
        })
        .await,
        "every partner change arrives"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    let ids: Vec<i64> = receiver
        .received()
        .iter()
        .map(|r| json(r)["data"]["id"].as_i64().unwrap())
        .collect();
    assert_eq!(ids.len(), 6, "each once: {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "in order: {ids:?}");
}

#[tokio::test]
async fn intake_serving_tls_under_a_name_other_than_localhost_delivers_its_own_events() {
    // A certificate naming only the service's DNS name, as an operator's
    // CA would issue: intake's own events still reach the endpoint.
    let dir = std::env::temp_dir().join(format!("onestop-hooks-tls-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    let ca = CertificateAuthority::generate("test CA").unwrap();
    let (cert, key) = ca
        .issue("intake.internal", &["intake.internal".to_owned()])
        .unwrap();
    let write = |name: &str, pem: &str| {
        let path = dir.join(name);
        std::fs::write(&path, pem).unwrap();
        path
    };
    let tls = TlsSettings {
        tls_cert: Some(write("tls.pem", &cert)),
        tls_key: Some(write("tls.key.pem", &key)),
        tls_ca: Some(write("ca.pem", ca.cert_pem())),
        ..Default::default()
    };
    let served = tls.clone();
    let intake = Intake::start_wired(
        TestDb::new().await,
        move |settings| settings.tls = served,
        fast(Duration::from_secs(3600)),
    )
    .await;
    let channel = tls
        .probe_client("intake.internal")
        .unwrap()
        .endpoint(&format!("https://{}", intake.addr))
        .unwrap()
        .connect_lazy();
    let sbc = IntakeClient::connect(channel.clone(), Bearer::agency("sbc"));
    let receiver = WebhookReceiver::start().await;
    register(&sbc, &receiver.url(), &["company.*"])
        .await
        .expect("registers over TLS");
    let company_id = sbc
        .clone()
        .register_company(pb::RegisterCompanyRequest {
            profile: Some(profile(&registration_number(1))),
            ..Default::default()
        })
        .await
        .expect("registers")
        .into_inner()
        .company_id;
    let delivered = arrives(&receiver, &company_id).await;
    let _ = std::fs::remove_dir_all(&dir);
    assert!(delivered, "intake's own event is delivered");
}

#[tokio::test]
async fn a_partner_deletes_its_own_endpoint_and_deliveries_stop() {
    let intake = start(Duration::from_secs(3600)).await;
    let receiver = WebhookReceiver::start().await;
    let sbc = intake.agency("sbc");
    let id = registered_id(&sbc, &receiver.url(), &["company.*"]).await;
    let before = company_by(&intake, "sbc", 1).await;
    assert!(
        arrives(&receiver, &before).await,
        "delivered while registered"
    );
    let delete = |client: IntakeClient, webhook_id: String| async move {
        client
            .clone()
            .delete_webhook(pb::DeleteWebhookRequest { webhook_id })
            .await
    };

    // Nobody else's: another partner, the same tenant in another role.
    for other in [intake.kotra(), intake.advisor("sbc")] {
        let status = delete(other, id.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::NotFound);
    }
    for denied in [intake.dashboard(), intake.service()] {
        let status = delete(denied, id.clone()).await.unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
    }
    let status = delete(sbc.clone(), "not-an-id".into()).await.unwrap_err();
    assert_eq!(violations(&status), vec!["webhook_id"]);
    assert_eq!(intake.count("webhook_endpoint").await, 1);
    assert_eq!(intake.count_events(IntakeEvent::WebhookDeleted).await, 0);

    let deleted = delete(sbc.clone(), id.clone())
        .await
        .expect("its partner deletes it")
        .into_inner();
    assert_eq!(deleted.webhook_id, id);
    assert!(
        sbc.clone()
            .list_webhooks(pb::ListWebhooksRequest::default())
            .await
            .unwrap()
            .into_inner()
            .webhooks
            .is_empty()
    );
    for table in ["webhook_endpoint", "webhook_cursor", "webhook_delivery"] {
        assert_eq!(intake.count(table).await, 0, "{table} keeps nothing");
    }
    assert_eq!(intake.count_events(IntakeEvent::WebhookDeleted).await, 1);
    let status = delete(sbc.clone(), id.clone()).await.unwrap_err();
    assert_eq!(status.code(), Code::NotFound, "gone for good");

    let after = company_by(&intake, "sbc", 2).await;
    assert!(
        stays_away(&receiver, &after).await,
        "a deleted endpoint gets nothing"
    );
}

#[tokio::test]
async fn a_failing_endpoint_shows_when_its_next_attempt_is_due() {
    let mut settings = fast(Duration::from_secs(3600));
    settings.webhooks.webhook_first_retry = Duration::from_secs(60);
    settings.webhooks.webhook_max_retry = Duration::from_secs(600);
    let intake = Intake::start_wired(TestDb::new().await, |_| {}, settings).await;
    let receiver = WebhookReceiver::start().await;
    receiver.answer_with(503);
    let sbc = intake.agency("sbc");
    let registered = register(&sbc, &receiver.url(), &["company.*"])
        .await
        .expect("registers")
        .webhook
        .unwrap();
    assert!(registered.next_attempt_at.is_none(), "nothing failed yet");
    company_by(&intake, "sbc", 1).await;
    let listed = || first_webhook(&sbc);
    assert!(
        eventually(WITHIN, || async {
            listed().await.next_attempt_at.is_some()
        })
        .await,
        "a failing endpoint shows its next attempt"
    );
    let endpoint = listed().await;
    assert_eq!(endpoint.failures_in_a_row, 1);
    let attempts = sbc
        .clone()
        .list_webhook_deliveries(pb::ListWebhookDeliveriesRequest {
            webhook_id: endpoint.webhook_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .deliveries;
    assert_eq!(attempts.len(), 1);
    let failed_at = attempts[0].attempted_at.unwrap().seconds;
    let due = endpoint.next_attempt_at.unwrap().seconds;
    // The first wait, 60 s, shortened by at most half.
    assert!(
        (29..=62).contains(&(due - failed_at)),
        "next attempt {} s after the failure",
        due - failed_at
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.received().len(), 1, "nothing is tried before then");

    // Disabled, nothing is due.
    sbc.clone()
        .disable_webhook(pb::DisableWebhookRequest {
            webhook_id: endpoint.webhook_id.clone(),
        })
        .await
        .unwrap();
    assert!(listed().await.next_attempt_at.is_none());
}
