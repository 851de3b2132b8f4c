use std::time::{Duration, Instant};

use onestop_contracts::events::v1::{WatchRequest, watch_response};
use onestop_contracts::intake::v1::RegisterCompanyRequest;
use onestop_platform::Role;
use onestop_platform::auth::TokenVerifier;
use onestop_platform::config::ServerSettings;
use onestop_test_support::fixtures::{company_profile, registration_number};
use onestop_test_support::{
    Bearer, Connect, FeedClient, IntakeClient, ServiceProcess, TestDb, channel, eventually,
    next_event,
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
        "ONESTOP_LOG_FORMAT",
        "RUST_LOG",
        "OTEL_EXPORTER_OTLP_ENDPOINT",
        "OTEL_TRACES_EXPORTER",
        "OTEL_SERVICE_NAME",
        "OTEL_*",
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

/// Two replicas on one database: what one writes reaches the other's
/// watchers at once, announced by the writing replica after its own
/// transaction (appending transactions notify nobody), well before the
/// other's idle check would find it.
#[tokio::test]
async fn a_replica_hears_what_another_replica_appends() {
    let db = TestDb::new().await;
    let env = [("DATABASE_URL", db.url.as_str())];
    let writer = ServiceProcess::spawn(BINARY, &env).await;
    let reader = ServiceProcess::spawn(BINARY, &env).await;
    let mut feed = <FeedClient as Connect>::connect(channel(reader.addr), Bearer::dashboard());
    let mut stream = feed
        .watch(WatchRequest {
            from_latest: true,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut intake = <IntakeClient as Connect>::connect(channel(writer.addr), Bearer::service());
    for seed in 0..3 {
        let company = intake
            .register_company(RegisterCompanyRequest {
                profile: Some(company_profile(&registration_number(900 + seed))),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            let heard = next_event(&mut stream, deadline - Instant::now())
                .await
                .expect("the other replica's watcher hears it within 2 s");
            if heard.aggregate_id == company.company_id {
                break;
            }
        }
    }
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
            .args(["probe", "--timeout", "5s", "--addr"])
            .arg(addr.to_string())
            .output()
            .await
            .expect("probe runs")
            .status
    };
    // Readiness follows the database: the first check may come a moment
    // after the server listens on a busy machine.
    assert!(
        eventually(Duration::from_secs(15), || async {
            probe(intake.addr).await.success()
        })
        .await,
        "the probe succeeds once the service serves"
    );
    intake.shutdown.cancel();
    // Draining takes a moment on a busy machine; the probe must fail once
    // it has, and keep failing.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while probe(intake.addr).await.success() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the probe still succeeds 15 s after shutdown began"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(!probe(intake.addr).await.success());
}

/// Starts the binary under `rust_log` (None: the defaults), stops it with
/// SIGTERM and returns its log lines.
async fn log_of_a_run(rust_log: Option<&str>) -> Vec<String> {
    let db = TestDb::new().await;
    let mut env = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("ONESTOP_SHUTDOWN_GRACE", "1s"),
    ];
    let unset: &[&str] = match rust_log {
        Some(filter) => {
            env.push(("RUST_LOG", filter));
            &[]
        }
        None => &["RUST_LOG"],
    };
    let service = ServiceProcess::spawn_unset(BINARY, &env, unset).await;
    let (status, lines) = service.terminate_and_collect(Duration::from_secs(10)).await;
    assert!(status.success(), "{status:?}: {lines:?}");
    lines
}

#[tokio::test]
async fn no_log_line_is_lost_under_the_readme_filter_or_the_defaults() {
    let runs = [
        Some("info,onestop_platform=debug"),
        Some("info,onestop_platform=debug"),
        None,
        None,
        None,
    ];
    let logs = futures_util::future::join_all(runs.map(log_of_a_run)).await;
    for (filter, lines) in runs.iter().zip(logs) {
        for expected in [
            "ONESTOP_DEV_MODE is true",
            "listening",
            "shutdown signal received",
            "draining",
            "stopped",
        ] {
            assert!(
                lines.iter().any(|line| line.contains(expected)),
                "RUST_LOG={filter:?}: no {expected:?} line in {lines:#?}"
            );
        }
    }
}

/// Runs the binary in development mode with `env` for at most 30 s.
async fn run_briefly(env: &[(&str, &str)]) -> std::process::Output {
    let mut command = tokio::process::Command::new(BINARY);
    command
        .env("ONESTOP_DEV_MODE", "true")
        .env("ONESTOP_LISTEN", "127.0.0.1:0")
        .env("RUST_BACKTRACE", "1")
        .kill_on_drop(true);
    for (key, value) in env {
        command.env(key, value);
    }
    tokio::time::timeout(Duration::from_secs(30), command.output())
        .await
        .expect("ends on its own")
        .expect("runs")
}

#[tokio::test]
async fn a_refused_setting_names_its_environment_variable() {
    let db = TestDb::new().await;
    for (variable, value) in [
        ("ONESTOP_REQUEST_TIMEOUT", "0s"),
        ("ONESTOP_HEALTH_INTERVAL", "0ms"),
        ("ONESTOP_LOG_FORMAT", "yaml"),
        ("ONESTOP_SHUTDOWN_GRACE", "soon"),
    ] {
        let output = run_briefly(&[("DATABASE_URL", db.url.as_str()), (variable, value)]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(
            output.status.code(),
            Some(2),
            "{variable}={value}: {stderr}"
        );
        assert!(
            stderr.contains(variable) && stderr.contains(value),
            "{variable}={value}: {stderr}"
        );
        assert!(!stderr.contains("backtrace"), "{stderr}");
    }
}

#[tokio::test]
async fn a_permanent_database_error_ends_the_process_saying_what_to_fix() {
    let db = TestDb::new().await;
    let (server, _) = db.url.rsplit_once('/').expect("a database URL");
    let missing_database = format!("{server}/onestop_no_such_database");
    let unknown_role = missing_database.replacen("://postgres@", "://onestop_no_such_role@", 1);
    assert_ne!(unknown_role, missing_database);
    for (url, reason) in [
        (
            missing_database.as_str(),
            "\"onestop_no_such_database\" does not exist",
        ),
        (
            &unknown_role,
            "role \"onestop_no_such_role\" does not exist",
        ),
        ("mysql://root@127.0.0.1:3306/onestop", "not mysql://"),
    ] {
        let output = run_briefly(&[("DATABASE_URL", url)]).await;
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(1), "{url}: {stderr}");
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: DATABASE_URL") && last.contains(reason),
            "{url}: {stderr}"
        );
        assert!(!stderr.contains("backtrace"), "{stderr}");
    }
}

#[tokio::test]
async fn a_database_not_answering_yet_is_waited_for_with_health_not_serving() {
    use tokio::io::AsyncBufReadExt;
    let free_port = |_| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("a free port")
    };
    let (listen, silent_database) = (free_port(0), free_port(1));
    let url = format!("postgres://postgres@{silent_database}/onestop");
    let mut child = tokio::process::Command::new(BINARY)
        .env("ONESTOP_DEV_MODE", "true")
        .env("ONESTOP_LISTEN", listen.to_string())
        .env("RUST_LOG", "info")
        .env("DATABASE_URL", &url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("starts");
    let mut lines = tokio::io::BufReader::new(child.stdout.take().expect("stdout")).lines();
    let waiting = tokio::time::timeout(Duration::from_secs(20), async {
        while let Ok(Some(line)) = lines.next_line().await {
            if line.contains("database not reachable yet") {
                return line;
            }
        }
        panic!("ended without saying it waits for the database");
    })
    .await
    .expect("says it waits");
    assert!(
        waiting.contains(&silent_database.to_string()) && waiting.contains("reason="),
        "{waiting}"
    );
    let probe = tokio::process::Command::new(BINARY)
        .args(["probe", "--timeout", "3s", "--addr"])
        .arg(listen.to_string())
        .output()
        .await
        .expect("probe runs");
    assert!(!probe.status.success());
    assert!(
        String::from_utf8_lossy(&probe.stderr).contains("NOT_SERVING"),
        "{}",
        String::from_utf8_lossy(&probe.stderr)
    );
    assert!(child.try_wait().expect("status").is_none(), "still waiting");
    child.kill().await.expect("kill");
}

/// Runs a command of the binary to its end with RUST_BACKTRACE=1 and
/// nothing else set; returns its status and stderr without the
/// development-mode warning.
async fn command(args: &[&str]) -> (std::process::ExitStatus, String) {
    let output = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(BINARY)
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .env_remove("ONESTOP_DEV_MODE")
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("ends on its own")
    .expect("runs");
    let stderr = String::from_utf8_lossy(&output.stderr)
        .lines()
        .filter(|line| !line.starts_with("WARNING: ONESTOP_DEV_MODE"))
        .collect::<Vec<_>>()
        .join("\n");
    (output.status, stderr)
}

#[tokio::test]
async fn settings_stand_before_or_after_the_subcommand() {
    for args in [
        &["--dev-mode", "issue-token", "--role", "admin"][..],
        &["issue-token", "--role", "admin", "--dev-mode"],
    ] {
        let (status, stderr) = command(args).await;
        assert!(status.success(), "{args:?}: {stderr}");
    }
    for args in [
        &["--request-timeout", "0s", "probe"][..],
        &["probe", "--request-timeout", "0s"],
    ] {
        let (status, stderr) = command(args).await;
        assert_eq!(status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains("ONESTOP_REQUEST_TIMEOUT"), "{stderr}");
    }
}

#[tokio::test]
async fn user_mistakes_print_one_line_and_no_backtrace() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .to_string();
    for (args, says) in [
        (&["no-such-command"][..], "no-such-command"),
        (
            &["issue-token", "--role", "admin", "--ttl", "0s"],
            "above zero",
        ),
        (
            &[
                "issue-token",
                "--role",
                "admin",
                "--ttl",
                "99999999999d",
                "--dev-mode",
            ],
            "at most 30 days",
        ),
        (
            &[
                "issue-token",
                "--role",
                "admin",
                "--ttl",
                "999999999999999999999d",
            ],
            "not a duration",
        ),
        (&["issue-token", "--role", "agency", "--dev-mode"], "tenant"),
        (&["probe", "--timeout", "2s", "--addr", &closed], &closed),
    ] {
        let (status, stderr) = command(args).await;
        assert!(!status.success(), "{args:?} is refused");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(
            stderr.starts_with("error: ") && stderr.contains(says),
            "{args:?}: {stderr}"
        );
    }
}

#[tokio::test]
async fn watch_feeds_stops_on_a_token_that_cannot_watch() {
    let intake = crate::common::Intake::start().await;
    let url = format!("http://{}", intake.addr);
    let feed = format!("intake={url}");
    // Every role may watch (partners their own events), so only a token
    // that is refused outright stops it now.
    for (token, reason) in [("not-a-token", "Unauthenticated")] {
        let output = tokio::time::timeout(
            Duration::from_secs(20),
            tokio::process::Command::new(BINARY)
                .args(["watch-feeds", "--feed", &feed, "--cursor-file"])
                .arg(tempfile_dir().join("cursor.json"))
                .env("ONESTOP_TOKEN", token)
                .kill_on_drop(true)
                .output(),
        )
        .await
        .expect("stops rather than retrying forever")
        .expect("runs");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!("following intake at {url}")),
            "{stderr}"
        );
        let last = stderr.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("error: ") && last.contains(&url) && last.contains(reason),
            "{stderr}"
        );
    }
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
