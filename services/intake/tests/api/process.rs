use std::time::{Duration, Instant};

use onestop_contracts::events::v1::WatchRequest;
use onestop_contracts::events::v1::event_feed_client::EventFeedClient;
use onestop_platform::Role;
use onestop_platform::auth::TokenKeys;
use onestop_test_support::{Bearer, ServiceProcess, TestDb, channel};
use tokio_stream::StreamExt;

const BINARY: &str = env!("CARGO_BIN_EXE_onestop-intake");

#[tokio::test]
async fn sigterm_with_an_open_watch_exits_within_the_drain_bound() {
    let db = TestDb::new().await;
    let mut service = ServiceProcess::spawn(
        BINARY,
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ONESTOP_SHUTDOWN_GRACE", "2s"),
        ],
    )
    .await;
    let mut feed = EventFeedClient::with_interceptor(
        channel(service.addr),
        Bearer::role(Role::Dashboard, None),
    );
    let mut stream = feed
        .watch(WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    // The stream is open and idle.
    assert!(
        tokio::time::timeout(Duration::from_millis(300), stream.next())
            .await
            .is_err()
    );

    let started = Instant::now();
    service.terminate();
    let status = tokio::time::timeout(Duration::from_secs(8), service.child.wait())
        .await
        .expect("exits within the drain bound")
        .unwrap();
    let took = started.elapsed();
    assert!(status.success(), "{status:?}");
    assert!(
        took < Duration::from_secs(4),
        "took {took:?} with a 2s grace"
    );
    // The watcher was told to resume elsewhere rather than left hanging.
    match tokio::time::timeout(Duration::from_secs(2), stream.next())
        .await
        .unwrap()
    {
        Some(Err(status)) => assert_eq!(status.code(), tonic::Code::Unavailable),
        None => {}
        Some(Ok(event)) => panic!("unexpected event {event:?}"),
    }
}

#[test]
fn help_names_every_setting() {
    let output = std::process::Command::new(BINARY)
        .arg("--help")
        .output()
        .unwrap();
    assert!(output.status.success());
    let help = String::from_utf8_lossy(&output.stdout);
    for variable in [
        "DATABASE_URL",
        "ONESTOP_LISTEN",
        "ONESTOP_AUTH_SECRET",
        "ONESTOP_REQUEST_TIMEOUT",
        "ONESTOP_MAX_IN_FLIGHT",
        "ONESTOP_MAX_MESSAGE_BYTES",
        "ONESTOP_SHUTDOWN_GRACE",
        "ONESTOP_HEALTH_INTERVAL",
        "ONESTOP_DB_MAX_CONNECTIONS",
        "ONESTOP_EVENT_RETENTION",
        "ONESTOP_IDEMPOTENCY_RETENTION",
        "issue-token",
    ] {
        assert!(help.contains(variable), "--help lacks {variable}:\n{help}");
    }
}

#[test]
fn issue_token_mints_tokens_the_services_accept() {
    let output = std::process::Command::new(BINARY)
        .args([
            "issue-token",
            "--role",
            "agency",
            "--tenant",
            "sbc",
            "--ttl",
            "1h",
        ])
        .env("ONESTOP_AUTH_SECRET", "ci-secret")
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap();
    let caller = TokenKeys::new("ci-secret").verify(token.trim()).unwrap();
    assert_eq!(caller.role, Role::Agency);
    assert_eq!(caller.tenant.as_deref(), Some("sbc"));

    let refused = std::process::Command::new(BINARY)
        .args(["issue-token", "--role", "agency"])
        .output()
        .unwrap();
    assert!(!refused.status.success());
}
