use std::time::{Duration, Instant};

use onestop_contracts::events::v1::{WatchRequest, watch_response};
use onestop_platform::Role;
use onestop_platform::auth::TokenVerifier;
use onestop_platform::config::ServerSettings;
use onestop_test_support::{
    Bearer, Connect, FeedClient, ServiceProcess, TestDb, channel, next_event,
};
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
    let mut feed = <FeedClient as Connect>::connect(channel(service.addr), Bearer::dashboard());
    let mut stream = feed
        .watch(WatchRequest::default())
        .await
        .unwrap()
        .into_inner();
    // The stream is open and idle.
    assert!(
        next_event(&mut stream, Duration::from_millis(300))
            .await
            .is_none()
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
    loop {
        match tokio::time::timeout(Duration::from_secs(2), stream.next())
            .await
            .unwrap()
        {
            Some(Err(status)) => assert_eq!(status.code(), tonic::Code::Unavailable),
            None => {}
            Some(Ok(message)) => match message.item {
                Some(watch_response::Item::Status(_)) => continue,
                item => panic!("unexpected message {item:?}"),
            },
        }
        break;
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
        "ONESTOP_DEV_MODE",
        "ONESTOP_JWKS",
        "ONESTOP_SERVICE_KEY",
        "ONESTOP_ISSUER_KEY",
        "ONESTOP_AUDIENCE",
        "ONESTOP_REVOCATIONS",
        "ONESTOP_OIDC_PROVIDERS",
        "ONESTOP_KEYS_RELOAD",
        "ONESTOP_TLS_CERT",
        "ONESTOP_TLS_KEY",
        "ONESTOP_TLS_CLIENT_CA",
        "ONESTOP_TLS_CA",
        "ONESTOP_TLS_CLIENT_CERT",
        "ONESTOP_TLS_CLIENT_KEY",
        "ONESTOP_REQUEST_TIMEOUT",
        "ONESTOP_MAX_IN_FLIGHT",
        "ONESTOP_MAX_MESSAGE_BYTES",
        "ONESTOP_SHUTDOWN_GRACE",
        "ONESTOP_HEALTH_INTERVAL",
        "ONESTOP_DB_MAX_CONNECTIONS",
        "ONESTOP_EVENT_RETENTION",
        "ONESTOP_IDEMPOTENCY_RETENTION",
        "issue-token",
        "keys",
    ] {
        assert!(help.contains(variable), "--help lacks {variable}:\n{help}");
    }
}

#[tokio::test]
async fn issue_token_mints_tokens_the_services_accept() {
    let keys = onestop_test_support::TestKeys::generate();
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
        .env("ONESTOP_ISSUER_KEY", keys.directory().issuer_key_path())
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let token = String::from_utf8(output.stdout).unwrap();
    let mut settings = ServerSettings::for_database("");
    keys.apply(&mut settings);
    let verifier = TokenVerifier::load(&settings.auth, &Default::default())
        .await
        .unwrap();
    let caller = verifier.verify(token.trim()).unwrap();
    assert_eq!(caller.role, Role::Agency);
    assert_eq!(caller.tenant.as_deref(), Some("sbc"));

    let refused = std::process::Command::new(BINARY)
        .args(["issue-token", "--role", "agency"])
        .env("ONESTOP_ISSUER_KEY", keys.directory().issuer_key_path())
        .output()
        .unwrap();
    assert!(!refused.status.success());
}

/// Runs `watch-feeds` against `addr` until it has printed `lines` lines,
/// then kills it; returns the event ids it printed.
async fn watch_feeds(
    addr: std::net::SocketAddr,
    cursor_file: &std::path::Path,
    lines: usize,
) -> Vec<i64> {
    use tokio::io::AsyncBufReadExt;
    let mut child = tokio::process::Command::new(BINARY)
        .args(["watch-feeds", "--feed"])
        .arg(format!("intake=http://{addr}"))
        // Signs its dashboard token with the development key.
        .env("ONESTOP_DEV_MODE", "true")
        .arg("--cursor-file")
        .arg(cursor_file)
        .args(["--type", "company.*"])
        .stdout(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("watch-feeds starts");
    let mut output = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let mut ids = Vec::new();
    while ids.len() < lines {
        let line = tokio::time::timeout(Duration::from_secs(10), output.next_line())
            .await
            .expect("a line arrives")
            .expect("stdout readable")
            .expect("still running");
        let parsed: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
        assert_eq!(parsed["source"], "intake");
        assert_eq!(parsed["type"], "company.registered");
        assert!(
            parsed["payload_type"]
                .as_str()
                .is_some_and(|t| t.ends_with("CompanyRegistered"))
        );
        ids.push(parsed["id"].as_i64().expect("numeric id"));
    }
    // Give it a moment to save the cursor of the last line, then crash it.
    tokio::time::sleep(Duration::from_millis(200)).await;
    child.kill().await.expect("kill");
    ids
}

#[tokio::test]
async fn the_reference_feed_consumer_resumes_where_it_stopped() {
    let intake = crate::common::Intake::start().await;
    let cursor_dir = tempfile_dir();
    let cursor_file = cursor_dir.join("feeds.json");
    for seed in 0..2 {
        intake
            .register_by(
                onestop_test_support::Bearer::service(),
                &crate::common::registration_number(700 + seed),
                0,
                false,
            )
            .await;
    }
    let first = watch_feeds(intake.addr, &cursor_file, 2).await;
    for seed in 2..4 {
        intake
            .register_by(
                onestop_test_support::Bearer::service(),
                &crate::common::registration_number(700 + seed),
                0,
                false,
            )
            .await;
    }
    let second = watch_feeds(intake.addr, &cursor_file, 2).await;
    assert!(
        second
            .iter()
            .all(|id| id > first.last().expect("first run printed")),
        "the second run starts after the first: {first:?} then {second:?}"
    );
    let saved: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&cursor_file).expect("cursor file")).expect("JSON");
    assert_eq!(saved["intake"].as_i64(), second.last().copied());
    let _ = std::fs::remove_dir_all(cursor_dir);
}

fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("onestop-feeds-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

#[tokio::test]
async fn probe_exits_zero_only_while_the_service_is_serving() {
    let intake = crate::common::Intake::start().await;
    let probe = |addr: std::net::SocketAddr| async move {
        tokio::process::Command::new(BINARY)
            .args(["probe", "--timeout", "2s", "--addr"])
            .arg(addr.to_string())
            .output()
            .await
            .expect("probe runs")
            .status
    };
    assert!(probe(intake.addr).await.success());
    intake.shutdown.cancel();
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!probe(intake.addr).await.success());
}

/// `watch-feeds` on `feeds` (NAME=URL) from the cursors in `cursors`.
fn watch_feeds_command(feeds: &[String], cursors: &serde_json::Value) -> tokio::process::Command {
    let dir = tempfile_dir();
    let cursor_file = dir.join("feeds.json");
    std::fs::write(&cursor_file, cursors.to_string()).expect("cursor file");
    let mut command = tokio::process::Command::new(BINARY);
    command.arg("watch-feeds");
    for feed in feeds {
        command.args(["--feed", feed]);
    }
    command
        .env("ONESTOP_DEV_MODE", "true")
        .arg("--cursor-file")
        .arg(&cursor_file)
        .args(["--type", "company.*"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true);
    command
}

#[tokio::test]
async fn a_feed_that_refuses_its_cursor_stops_alone_and_visibly() {
    use tokio::io::AsyncBufReadExt;
    let intake = crate::common::Intake::start().await;
    intake
        .register_by(
            onestop_test_support::Bearer::service(),
            &crate::common::registration_number(720),
            0,
            false,
        )
        .await;
    let url = format!("http://{}", intake.addr);
    // "ahead" holds a cursor past the feed's newest event; "intake" starts
    // from the beginning of the same feed.
    let mut child = watch_feeds_command(
        &[format!("ahead={url}"), format!("intake={url}")],
        &serde_json::json!({ "ahead": 1_000_000 }),
    )
    .spawn()
    .expect("watch-feeds starts");
    let mut stderr = tokio::io::BufReader::new(child.stderr.take().expect("stderr")).lines();
    // Development mode warns first.
    let report = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            let line = stderr.next_line().await.expect("stderr readable")?;
            if line.starts_with("ahead:") {
                return Some(line);
            }
        }
    })
    .await
    .expect("the stop is reported")
    .expect("a line");
    assert!(report.starts_with("ahead: feed stopped"), "{report}");
    assert!(
        report.contains("OutOfRange") || report.contains("out of range"),
        "{report}"
    );
    let mut stdout = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), stdout.next_line())
        .await
        .expect("the other feed goes on")
        .expect("stdout readable")
        .expect("a line");
    let parsed: serde_json::Value = serde_json::from_str(&line).expect("a JSON line");
    assert_eq!(parsed["source"], "intake");
    assert!(child.try_wait().expect("status").is_none(), "still running");
    child.kill().await.expect("kill");

    // With every feed stopped, the command ends and says so.
    let alone = tokio::time::timeout(
        Duration::from_secs(15),
        watch_feeds_command(
            &[format!("ahead={url}")],
            &serde_json::json!({ "ahead": 1_000_000 }),
        )
        .output(),
    )
    .await
    .expect("exits by itself")
    .expect("runs");
    assert!(!alone.status.success());
    let stderr = String::from_utf8_lossy(&alone.stderr);
    assert!(stderr.contains("ahead: feed stopped"), "{stderr}");
    assert!(stderr.contains("every feed stopped: ahead"), "{stderr}");
}
