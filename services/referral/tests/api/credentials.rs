//! Credentials against the real server: which tokens prove a caller, key
//! rotation, revocation, external OpenID Connect providers, and refusing
//! to start without keys.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use chrono::Utc;
use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::referral::v1 as pb;
use onestop_platform::Role;
use onestop_platform::auth::{
    Claims, ISSUER, KeyOwner, Revocation, RevocationList, SigningKey, dev_issuer_key, dev_jwks,
};
use onestop_referral::startup::Application;
use onestop_test_support::{
    AUDIENCE, Bearer, Connect, ReferralClient, StaticHttps, TestKeys, TestPki, TestServer,
    eventually,
};
use tonic::Code;

use crate::common::create_request;

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Valid claims for `role`, issued now for an hour.
fn claims(subject: &str, role: Role, tenant: Option<&str>) -> Claims {
    let now = now();
    Claims {
        iss: ISSUER.into(),
        sub: subject.into(),
        aud: AUDIENCE.into(),
        iat: now,
        nbf: now,
        exp: now + 3600,
        role,
        tenant: tenant.map(str::to_owned),
    }
}

async fn start(keys: &TestKeys) -> TestServer<ReferralClient> {
    TestServer::start(|mut settings| {
        keys.apply(&mut settings);
        Application::build(settings)
    })
    .await
}

/// The status of listing referrals with `token`.
async fn list_with(server: &TestServer<ReferralClient>, token: &str) -> Code {
    match server
        .api(Bearer::new(token))
        .list_referrals(pb::ListReferralsRequest::default())
        .await
    {
        Ok(_) => Code::Ok,
        Err(status) => status.code(),
    }
}

#[tokio::test]
async fn tokens_that_prove_nothing_are_unauthenticated() {
    let keys = TestKeys::generate();
    let server = start(&keys).await;
    let issuer = keys.issuer();
    let key = issuer.key();
    let admin = claims("ops", Role::Admin, None);
    let (stranger, _) = SigningKey::generate().unwrap();

    let good = issuer
        .issue("ops", Role::Admin, None, Duration::from_secs(60))
        .unwrap();
    assert_eq!(list_with(&server, &good).await, Code::Ok);

    let refused = [
        (
            "wrong audience",
            key.sign(&Claims {
                aud: "another-suite".into(),
                ..admin.clone()
            }),
        ),
        (
            "expired beyond the leeway",
            key.sign(&Claims {
                iat: now() - 7200,
                nbf: now() - 7200,
                exp: now() - 120,
                ..admin.clone()
            }),
        ),
        (
            "not yet valid beyond the leeway",
            key.sign(&Claims {
                nbf: now() + 600,
                ..admin.clone()
            }),
        ),
        (
            "issued in the future",
            key.sign(&Claims {
                iat: now() + 600,
                ..admin.clone()
            }),
        ),
        ("unknown key id", stranger.sign(&admin)),
        (
            "a service key claiming admin",
            keys.service("intake").key().sign(&Claims {
                sub: "intake".into(),
                ..admin.clone()
            }),
        ),
        (
            "a service key speaking for another service",
            keys.service("intake")
                .key()
                .sign(&claims("referral", Role::Service, None)),
        ),
        (
            "the issuer key claiming the service role",
            key.sign(&claims("intake", Role::Service, None)),
        ),
        (
            "the development key without development mode",
            dev_issuer_key().sign(&admin),
        ),
        (
            "a lifetime past the maximum",
            key.sign(&Claims {
                exp: now() + 365 * 86_400,
                ..admin.clone()
            }),
        ),
        (
            "another issuer",
            key.sign(&Claims {
                iss: "someone-else".into(),
                ..admin.clone()
            }),
        ),
    ];
    for (why, token) in refused {
        let token = token.unwrap();
        assert_eq!(
            list_with(&server, &token).await,
            Code::Unauthenticated,
            "{why}"
        );
    }
    for garbage in ["", "garbage", "a.b.c"] {
        assert_eq!(list_with(&server, garbage).await, Code::Unauthenticated);
    }
    assert_eq!(
        server
            .api(Bearer::anonymous())
            .list_referrals(pb::ListReferralsRequest::default())
            .await
            .unwrap_err()
            .code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn a_hand_off_is_signed_by_the_service_that_makes_it() {
    let keys = TestKeys::generate();
    let server = start(&keys).await;
    let intake = keys
        .service("intake")
        .issue("intake", Role::Service, None, Duration::from_secs(60))
        .unwrap();
    server
        .api(Bearer::new(&intake))
        .create_referral(create_request("need-signed", NeedCategory::ExportFinance))
        .await
        .expect("intake's own key is accepted for its hand-off");
    assert_eq!(server.count("referral").await, 1);
}

#[tokio::test]
async fn rotation_keeps_old_tokens_valid_until_their_key_is_retired() {
    let keys = TestKeys::generate();
    let server = start(&keys).await;
    let ttl = Duration::from_secs(600);
    let old = keys.issuer();
    let before = old.issue("ops", Role::Admin, None, ttl).unwrap();
    assert_eq!(list_with(&server, &before).await, Code::Ok);

    let (old_kid, new_kid) = keys.directory().rotate(&KeyOwner::Issuer).unwrap();
    assert_eq!(old_kid.as_deref(), Some(old.key().kid()));
    let after = keys.issuer().issue("ops", Role::Admin, None, ttl).unwrap();
    assert_eq!(keys.issuer().key().kid(), new_kid);
    assert!(
        eventually(Duration::from_secs(5), || async {
            list_with(&server, &after).await == Code::Ok
        })
        .await,
        "the new key is trusted once the services reload"
    );
    assert_eq!(
        list_with(&server, &before).await,
        Code::Ok,
        "during the rollover both keys are valid"
    );

    keys.directory().retire(old.key().kid()).unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            list_with(&server, &before).await == Code::Unauthenticated
        })
        .await,
        "tokens of a retired key are refused"
    );
    assert_eq!(list_with(&server, &after).await, Code::Ok);
}

#[tokio::test]
async fn revoking_a_partner_refuses_its_older_tokens_on_a_running_server() {
    let keys = TestKeys::generate();
    let server = start(&keys).await;
    let key = keys.issuer().key().clone();
    let issued = |tenant: &str, seconds_ago: u64| {
        key.sign(&Claims {
            iat: now() - seconds_ago,
            nbf: now() - seconds_ago,
            ..claims("staff", Role::Agency, Some(tenant))
        })
        .unwrap()
    };
    let sbc_old = issued("sbc", 30);
    let kotra_old = issued("kotra", 30);
    assert_eq!(list_with(&server, &sbc_old).await, Code::Ok);

    RevocationList {
        revoked: vec![Revocation {
            tenant: Some("sbc".into()),
            subject: None,
            role: None,
            issued_before: Utc::now() - chrono::Duration::seconds(10),
        }],
    }
    .write(&keys.revocations_path())
    .unwrap();
    assert!(
        eventually(Duration::from_secs(5), || async {
            list_with(&server, &sbc_old).await == Code::Unauthenticated
        })
        .await,
        "the revocation holds once the list reloads"
    );
    assert_eq!(
        list_with(&server, &kotra_old).await,
        Code::Ok,
        "other partners keep working"
    );
    assert_eq!(
        list_with(&server, &issued("sbc", 0)).await,
        Code::Ok,
        "the partner's new credentials work"
    );
}

#[tokio::test]
async fn an_external_provider_s_tokens_map_to_a_role_and_tenant() {
    let pki = TestPki::generate();
    let provider_key = SigningKey::generate().unwrap().0;
    let mut jwk = serde_json::to_value(provider_key.public_jwk(&KeyOwner::Issuer)).unwrap();
    jwk.as_object_mut().unwrap().remove("onestop_signer");
    let identity_provider = StaticHttps::start(
        &pki,
        "operator",
        serde_json::to_vec(&serde_json::json!({ "keys": [jwk] })).unwrap(),
    )
    .await;
    let issuer = "https://sso.kotra.test/realms/partners";
    let providers = std::env::temp_dir().join(format!("oidc-{}.json", uuid::Uuid::new_v4()));
    std::fs::write(
        &providers,
        serde_json::to_vec(&serde_json::json!([{
            "name": "kotra-sso",
            "issuer": issuer,
            "jwks_url": identity_provider.url("/realms/partners/protocol/openid-connect/certs"),
            "audience": "onestop-api",
            "role_claim": "realm_access.roles",
            "role_prefix": "onestop-",
            "roles": ["agency"],
            "tenant": "kotra"
        }]))
        .unwrap(),
    )
    .unwrap();
    let server = TestServer::<ReferralClient>::start(|mut settings| {
        settings.auth.oidc_providers = Some(providers.clone());
        // The provider's certificate comes from the test CA.
        settings.tls.tls_ca = Some(pki.ca_path());
        Application::build(settings)
    })
    .await;
    let token = |roles: &[&str], audience: &str| {
        let now = now();
        provider_key
            .sign(&serde_json::json!({
                "iss": issuer, "sub": "f81d4fae", "aud": audience,
                "iat": now, "exp": now + 300,
                "realm_access": { "roles": roles }
            }))
            .unwrap()
    };

    let agency = token(&["offline_access", "onestop-agency"], "onestop-api");
    assert_eq!(list_with(&server, &agency).await, Code::Ok);
    // Acting for KOTRA only: another agency's referral stays hidden.
    let referral = server
        .service()
        .create_referral(create_request("need-oidc", NeedCategory::ExportFinance))
        .await
        .unwrap()
        .into_inner();
    let seen = server
        .api(Bearer::new(&agency))
        .get_referral(pb::GetReferralRequest {
            referral_id: referral.referral_id,
        })
        .await;
    assert_eq!(seen.unwrap_err().code(), Code::NotFound);

    for (why, refused) in [
        (
            "a role the provider may not grant",
            token(&["onestop-admin"], "onestop-api"),
        ),
        ("no OneStop role", token(&["offline_access"], "onestop-api")),
        ("another audience", token(&["onestop-agency"], "account")),
    ] {
        assert_eq!(
            list_with(&server, &refused).await,
            Code::Unauthenticated,
            "{why}"
        );
    }
    let _ = std::fs::remove_file(providers);
}

#[tokio::test]
async fn a_service_refuses_to_start_without_keys_or_with_the_development_keys() {
    let no_keys = TestServer::<ReferralClient>::try_start(|mut settings| {
        settings.auth.dev_mode = false;
        Application::build(settings)
    })
    .await
    .expect_err("no key set, no development mode");
    assert!(no_keys.contains("ONESTOP_JWKS"), "{no_keys}");

    let keys = TestKeys::generate();
    dev_jwks().write(&keys.jwks_path()).unwrap();
    let development = TestServer::<ReferralClient>::try_start(|mut settings| {
        keys.apply(&mut settings);
        Application::build(settings)
    })
    .await
    .expect_err("development keys without development mode");
    assert!(development.contains("development key"), "{development}");
}

const BINARY: &str = env!("CARGO_BIN_EXE_onestop-referral");

/// Runs the referral binary with `args` and `env` (development mode off).
async fn run(args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let output = tokio::process::Command::new(BINARY)
        .args(args)
        .env("ONESTOP_DEV_MODE", "false")
        .env("RUST_LOG", "warn")
        .envs(env.iter().copied())
        .output()
        .await
        .expect("the binary runs");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("panicked"), "{args:?} panicked: {stderr}");
    output
}

#[tokio::test]
async fn keys_from_the_command_line_run_a_service_mint_and_revoke_its_tokens() {
    let dir = std::env::temp_dir().join(format!("onestop-cli-keys-{}", uuid::Uuid::new_v4()));
    let out = dir.display().to_string();
    assert!(
        run(&["keys", "generate", "--out", &out], &[])
            .await
            .status
            .success()
    );
    assert!(
        !run(&["keys", "generate", "--out", &out], &[])
            .await
            .status
            .success()
    );
    assert!(
        run(&["keys", "generate", "--out", &out, "--keep-existing"], &[])
            .await
            .status
            .success()
    );
    let jwks = dir.join("public/jwks.json").display().to_string();
    let issuer_key = dir.join("operator/issuer.key.pem").display().to_string();
    let revocations = dir.join("revocations.json").display().to_string();

    let refused = run(&[], &[("DATABASE_URL", "postgres://127.0.0.1:1/none")]).await;
    assert!(!refused.status.success());
    assert!(
        String::from_utf8_lossy(&refused.stderr).contains("ONESTOP_JWKS"),
        "says which setting is missing"
    );

    let db = onestop_test_support::TestDb::new().await;
    let service = onestop_test_support::ServiceProcess::spawn(
        BINARY,
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ONESTOP_DEV_MODE", "false"),
            ("ONESTOP_JWKS", &jwks),
            ("ONESTOP_REVOCATIONS", &revocations),
            ("ONESTOP_KEYS_RELOAD", "200ms"),
        ],
    )
    .await;
    let issue = |extra: &'static [&'static str]| {
        let issuer_key = issuer_key.clone();
        async move {
            let mut args = vec!["issue-token"];
            args.extend_from_slice(extra);
            run(&args, &[("ONESTOP_ISSUER_KEY", issuer_key.as_str())]).await
        }
    };
    let minted = issue(&["--role", "agency", "--tenant", "sbc", "--ttl", "1h"]).await;
    assert!(
        minted.status.success(),
        "{}",
        String::from_utf8_lossy(&minted.stderr)
    );
    let token = String::from_utf8(minted.stdout).unwrap().trim().to_owned();
    let client = || {
        ReferralClient::connect(
            onestop_test_support::channel(service.addr),
            Bearer::new(&token),
        )
    };
    let status = |result: Result<tonic::Response<pb::ListReferralsResponse>, tonic::Status>| {
        result.map_or_else(|s| s.code(), |_| Code::Ok)
    };
    assert_eq!(
        status(
            client()
                .list_referrals(pb::ListReferralsRequest::default())
                .await
        ),
        Code::Ok
    );

    for bad in [
        &["--role", "admin", "--ttl", "0s"][..],
        &["--role", "admin", "--ttl", "31d"],
        &["--role", "admin", "--ttl", "99999999999999999d"],
        &["--role", "service"],
        &["--role", "agency"],
    ] {
        let mut args = vec!["issue-token"];
        args.extend_from_slice(bad);
        let output = run(&args, &[("ONESTOP_ISSUER_KEY", issuer_key.as_str())]).await;
        assert!(!output.status.success(), "{bad:?} is refused");
    }
    let without_key = run(&["issue-token", "--role", "admin"], &[]).await;
    assert!(!without_key.status.success());
    assert!(String::from_utf8_lossy(&without_key.stderr).contains("ONESTOP_ISSUER_KEY"));

    let revoked = run(
        &["keys", "revoke", "--list", &revocations, "--tenant", "sbc"],
        &[],
    )
    .await;
    assert!(
        revoked.status.success(),
        "{}",
        String::from_utf8_lossy(&revoked.stderr)
    );
    assert!(
        eventually(Duration::from_secs(5), || async {
            status(
                client()
                    .list_referrals(pb::ListReferralsRequest::default())
                    .await,
            ) == Code::Unauthenticated
        })
        .await,
        "the running service refuses the revoked partner's token"
    );
    service.terminate();
    let _ = std::fs::remove_dir_all(dir);
}
