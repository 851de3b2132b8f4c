//! TLS and mutual TLS on the real server and the real binary, with
//! certificates generated for the run.

use std::time::Duration;

use onestop_contracts::referral::v1 as pb;
use onestop_referral::startup::Application;
use onestop_test_support::{
    Bearer, Connect, ReferralClient, ServiceProcess, TestDb, TestPki, TestServer, channel,
};
use sqlx::postgres::{PgConnectOptions, PgConnection, PgSslMode};
use sqlx::{ConnectOptions, Connection};
use tonic::Code;

const BINARY: &str = env!("CARGO_BIN_EXE_onestop-referral");

async fn start(pki: &TestPki, mutual: bool) -> TestServer<ReferralClient> {
    TestServer::start(|mut settings| {
        pki.apply(&mut settings, "referral", mutual);
        Application::build(settings)
    })
    .await
}

async fn list(client: ReferralClient) -> Result<usize, tonic::Status> {
    let mut client = client;
    tokio::time::timeout(
        Duration::from_secs(10),
        client.list_referrals(pb::ListReferralsRequest::default()),
    )
    .await
    .expect("an answer or a refusal, not a hang")
    .map(|response| response.into_inner().referrals.len())
}

#[tokio::test]
async fn a_listener_with_a_certificate_speaks_tls_only() {
    let pki = TestPki::generate();
    let server = start(&pki, false).await;

    let over_tls = ReferralClient::connect(pki.channel(server.addr, false), Bearer::admin());
    assert_eq!(list(over_tls).await.unwrap(), 0);

    let plaintext = ReferralClient::connect(channel(server.addr), Bearer::admin());
    let refused = list(plaintext).await.unwrap_err();
    assert_ne!(refused.code(), Code::Ok);

    let other_ca = TestPki::generate();
    let untrusted = ReferralClient::connect(other_ca.channel(server.addr, false), Bearer::admin());
    let refused = list(untrusted).await.unwrap_err();
    assert_eq!(refused.code(), Code::Unavailable, "{refused:?}");
}

#[tokio::test]
async fn mutual_tls_refuses_a_client_without_a_certificate() {
    let pki = TestPki::generate();
    let server = start(&pki, true).await;

    let with_certificate = ReferralClient::connect(pki.channel(server.addr, true), Bearer::admin());
    assert_eq!(list(with_certificate).await.unwrap(), 0);

    // Under TLS 1.3 the server refuses the missing certificate right after
    // the handshake, with a CertificateRequired alert.
    let without = ReferralClient::connect(pki.channel(server.addr, false), Bearer::admin());
    let refused = list(without).await.unwrap_err();
    assert!(
        format!("{refused:?}").contains("CertificateRequired"),
        "{refused:?}"
    );

    // A certificate is not a credential: the token is still required.
    let anonymous = ReferralClient::connect(pki.channel(server.addr, true), Bearer::anonymous());
    assert_eq!(
        list(anonymous).await.unwrap_err().code(),
        Code::Unauthenticated
    );
}

#[tokio::test]
async fn the_binary_serves_mutual_tls_and_its_probe_speaks_it() {
    let pki = TestPki::generate();
    let db = TestDb::new().await;
    let mut env = pki.env("referral", true);
    env.push(("DATABASE_URL".into(), db.url.clone()));
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let service = ServiceProcess::spawn(BINARY, &env).await;

    let client = ReferralClient::connect(pki.channel(service.addr, true), Bearer::admin());
    assert_eq!(list(client).await.unwrap(), 0);

    let serving = tokio::process::Command::new(BINARY)
        .args(["probe", "--timeout", "5s", "--addr"])
        .arg(service.addr.to_string())
        .envs(env.iter().copied())
        .output()
        .await
        .unwrap();
    assert!(
        serving.status.success(),
        "{}",
        String::from_utf8_lossy(&serving.stderr)
    );
    // Without its certificate the probe is refused like any other client.
    let plain = tokio::process::Command::new(BINARY)
        .args(["probe", "--timeout", "3s", "--addr"])
        .arg(service.addr.to_string())
        .output()
        .await
        .unwrap();
    assert!(!plain.status.success());
    service.terminate();
}

/// The URL of `db` with `sslmode` (and a root certificate) set.
fn with_sslmode(db: &TestDb, mode: PgSslMode, root: Option<&std::path::Path>) -> String {
    let mut options: PgConnectOptions = db.url.parse().unwrap();
    options = options.ssl_mode(mode);
    if let Some(root) = root {
        options = options.ssl_root_cert(root);
    }
    options.to_url_lossy().to_string()
}

#[tokio::test]
async fn database_connections_honour_sslmode() {
    let db = TestDb::new().await;
    let server_has_tls: String = sqlx::query_scalar("SHOW ssl")
        .fetch_one(&db.pool().await)
        .await
        .unwrap();
    if server_has_tls == "on" {
        // The service itself connects over TLS when its URL requires it.
        let url = with_sslmode(&db, PgSslMode::Require, None);
        let server = TestServer::<ReferralClient>::start_on(db, |mut settings| {
            settings.database_url = Some(url);
            Application::build(settings)
        })
        .await;
        list(server.admin()).await.unwrap();
        let (connections, encrypted): (i64, Option<bool>) = sqlx::query_as(
            "SELECT count(*), bool_and(s.ssl) FROM pg_stat_ssl s
             JOIN pg_stat_activity a USING (pid)
             WHERE a.datname = current_database() AND a.pid <> pg_backend_pid()",
        )
        .fetch_one(&server.pool)
        .await
        .unwrap();
        assert!(connections > 0);
        assert_eq!(
            encrypted,
            Some(true),
            "every connection of the service is TLS"
        );
    } else {
        let refused = PgConnection::connect(&with_sslmode(&db, PgSslMode::Require, None)).await;
        assert!(
            refused.is_err(),
            "sslmode=require refuses a server without TLS"
        );
    }

    // verify-full checks the server's certificate against the given root:
    // a CA that did not sign it is refused.
    let db = TestDb::new().await;
    let stranger = TestPki::generate();
    let unverified = PgConnection::connect(&with_sslmode(
        &db,
        PgSslMode::VerifyFull,
        Some(&stranger.ca_path()),
    ))
    .await;
    assert!(
        unverified.is_err(),
        "a server certificate from another CA is refused"
    );
}
