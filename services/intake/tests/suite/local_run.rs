//! `deploy/run-local.sh` as a user runs it, on the binaries already built
//! (`ONESTOP_BIN_DIR`), ports and databases of its own: a taken port is
//! refused before anything starts, a service that dies stops the run with
//! its log's last lines, and `--check` fails when one of its own services
//! is gone even though its port was probed healthy.

use std::net::TcpListener;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use sqlx::postgres::PgConnectOptions;

const SERVICES: [&str; 5] = ["intake", "mentoring", "buyers", "referral", "insights"];

/// One run of the script: its ports, databases, binaries and logs.
struct LocalRun {
    base: u16,
    prefix: String,
    bin_dir: PathBuf,
    logs: PathBuf,
    scratch: PathBuf,
}

impl LocalRun {
    /// Binaries linked from the target directory, with `replace`d ones
    /// swapped for the given shell scripts (`$REAL` is the real binary).
    fn new(replace: &[(&str, &str)]) -> Self {
        let scratch = std::env::temp_dir().join(format!(
            "onestop-local-run-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let bin_dir = scratch.join("bin");
        std::fs::create_dir_all(&bin_dir).expect("scratch dir");
        for service in SERVICES {
            let real = crate::support::built_binary(service);
            let path = bin_dir.join(format!("onestop-{service}"));
            match replace.iter().find(|(name, _)| *name == service) {
                Some((_, script)) => {
                    let body = format!("#!/usr/bin/env bash\nREAL={}\n{script}\n", real.display());
                    std::fs::write(&path, body).expect("write script");
                    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                        .expect("executable");
                }
                None => symlink(&real, &path).expect("link binary"),
            }
        }
        Self {
            base: free_ports(6),
            prefix: format!(
                "onestop_lr_{}",
                &uuid::Uuid::new_v4().simple().to_string()[..12]
            ),
            bin_dir,
            logs: scratch.join("logs"),
            scratch,
        }
    }

    fn command(&self, args: &[&str]) -> Command {
        let server: PgConnectOptions = onestop_test_support::server_url().parse().expect("url");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
        let mut command = Command::new(root.join("deploy/run-local.sh"));
        command
            .args(args)
            .env("ONESTOP_BIN_DIR", &self.bin_dir)
            .env("ONESTOP_RUN_LOGS", &self.logs)
            .env("ONESTOP_NO_PAGE", "1")
            .env("ONESTOP_BASE_PORT", self.base.to_string())
            .env("ONESTOP_DB_PREFIX", &self.prefix)
            // Postgres is shared with the rest of the tests: small pools.
            .env("ONESTOP_DB_MAX_CONNECTIONS", "2")
            .env("PGHOST", server.get_host())
            .env("PGPORT", server.get_port().to_string())
            .env("PGUSER", server.get_username())
            .env_remove("DATABASE_URL")
            .env_remove("RUST_LOG")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        command
    }

    /// Runs the script to its end, at most `within`.
    fn run(&self, args: &[&str], within: Duration) -> (Output, Duration) {
        let started = Instant::now();
        let child = self.command(args).spawn().expect("run-local.sh starts");
        let output = wait_within(child, within);
        (output, started.elapsed())
    }

    fn port(&self, service: &str) -> u16 {
        self.base
            + SERVICES
                .iter()
                .position(|s| *s == service)
                .expect("service") as u16
    }

    /// Whether any of the suite's ports still answers.
    fn any_port_answers(&self) -> bool {
        (0..6).any(|i| std::net::TcpStream::connect(("127.0.0.1", self.base + i)).is_ok())
    }

    fn databases(&self) -> Vec<String> {
        let out = psql(&format!(
            "SELECT datname FROM pg_database WHERE datname LIKE '{}\\_%' ORDER BY 1",
            self.prefix
        ));
        out.lines().map(str::to_owned).collect()
    }
}

impl Drop for LocalRun {
    fn drop(&mut self) {
        for service in SERVICES {
            psql(&format!(
                "DROP DATABASE IF EXISTS {}_{service} WITH (FORCE)",
                self.prefix
            ));
        }
        let _ = std::fs::remove_dir_all(&self.scratch);
    }
}

fn psql(sql: &str) -> String {
    let server: PgConnectOptions = onestop_test_support::server_url().parse().expect("url");
    let output = Command::new("psql")
        .args([
            "-h",
            server.get_host(),
            "-U",
            server.get_username(),
            "-d",
            "postgres",
            "-tAc",
            sql,
        ])
        .args(["-p", &server.get_port().to_string()])
        .output()
        .expect("psql runs");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Waits for `child` at most `within`, killing it past that.
fn wait_within(mut child: Child, within: Duration) -> Output {
    let deadline = Instant::now() + within;
    while child.try_wait().expect("try_wait").is_none() {
        if Instant::now() > deadline {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .status();
            let output = child.wait_with_output().expect("output");
            panic!(
                "run-local.sh still ran after {within:?}; it printed:\n{}\n{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    child.wait_with_output().expect("output")
}

/// The first of `count` consecutive free loopback ports, from a spread-out
/// start so parallel tests and other suites on the machine do not meet,
/// and below the kernel's ephemeral range: the services start a moment
/// after the ports are picked, and a socket another test binds to port 0
/// meanwhile is never given one of them.
fn free_ports(count: u16) -> u16 {
    let ephemeral_from = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|range| range.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32_768);
    let low = 10_000u16.min(ephemeral_from / 2);
    let span = u128::from(
        ephemeral_from
            .saturating_sub(low)
            .saturating_sub(count)
            .max(1),
    );
    let seed = uuid::Uuid::new_v4().as_u128();
    for attempt in 0..200u128 {
        let base = low + ((seed + attempt * 7919) % span) as u16;
        let all_free = (0..count).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok());
        if all_free {
            return base;
        }
    }
    panic!("no {count} consecutive free ports");
}

fn text(output: &Output) -> String {
    format!(
        "{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

#[test]
fn a_taken_port_is_refused_before_anything_starts() {
    let run = LocalRun::new(&[]);
    let taken = TcpListener::bind(("127.0.0.1", run.port("buyers"))).expect("take the port");
    let (output, took) = run.run(&["--check"], Duration::from_secs(30));
    drop(taken);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "refused: {}", text(&output));
    assert!(
        stderr.contains(&format!(
            "port {} (buyers) is already in use",
            run.port("buyers")
        )),
        "names the port and its service: {stderr}"
    );
    assert!(
        took < Duration::from_secs(10),
        "refused at once, took {took:?}"
    );
    assert!(run.databases().is_empty(), "nothing was created");
    assert!(!run.logs.exists(), "nothing was started");
}

#[test]
fn a_service_dying_at_start_stops_the_run_with_its_log_tail() {
    let run = LocalRun::new(&[(
        "buyers",
        "[ $# -gt 0 ] && exec \"$REAL\" \"$@\"\necho 'buyers cannot start: simulated fault'\nexit 3",
    )]);
    let (output, took) = run.run(&["--check"], Duration::from_secs(60));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the run fails: {}", text(&output));
    assert!(
        stderr.contains("buyers exited (status 3)") && stderr.contains("simulated fault"),
        "names the service and shows its log's end: {stderr}"
    );
    assert!(!run.any_port_answers(), "the other services were stopped");
    // The run kept its logs in a folder of its own, named by `latest`.
    let latest = run.logs.join("latest");
    assert!(latest.join("buyers.log").exists(), "logs under latest");
    assert!(
        std::fs::read_link(&latest).is_ok(),
        "latest links to the run's folder"
    );
    eprintln!("noticed in {took:?}");
}

/// What fooled the check before: the process the script started is gone,
/// and another one (started outside the script) answers on its port.
#[test]
fn check_fails_when_its_own_service_is_gone_though_the_port_answers() {
    let run = LocalRun::new(&[(
        "insights",
        "[ $# -gt 0 ] && exec \"$REAL\" \"$@\"\n\
         setsid \"$REAL\" >/dev/null 2>&1 < /dev/null & echo $! > \"$IMPOSTOR_PID\"\n\
         exit 0",
    )]);
    let impostor = run.scratch.join("impostor.pid");
    let mut command = run.command(&["--check"]);
    command.env("IMPOSTOR_PID", &impostor);
    let output = wait_within(command.spawn().expect("starts"), Duration::from_secs(90));
    if let Ok(pid) = std::fs::read_to_string(&impostor) {
        let _ = Command::new("kill").args(["-KILL", pid.trim()]).status();
    }
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !output.status.success(),
        "the check fails: {}",
        text(&output)
    );
    assert!(
        stderr.contains("insights exited (status 0)"),
        "names the service it lost: {stderr}"
    );
    assert!(!text(&output).contains("check passed"));
}

/// Running (not a check), insights serves, then dies without a word: the
/// run notices, says so with its log's end and stops the others.
#[test]
fn the_run_notices_a_service_dying_and_stops_the_rest() {
    let run = LocalRun::new(&[(
        "insights",
        "[ $# -gt 0 ] && exec \"$REAL\" \"$@\"\n\"$REAL\" & pid=$!\n\
         trap 'kill -KILL $pid 2>/dev/null; exit 143' TERM\n\
         until \"$REAL\" probe >/dev/null 2>&1; do sleep 0.2; done\n\
         sleep 2; kill -KILL $pid; wait $pid; exit 137",
    )]);
    let (output, _) = run.run(&[], Duration::from_secs(90));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "the run fails: {}", text(&output));
    assert!(
        stderr.contains("insights exited (status 137)") && stderr.contains("listening"),
        "names the dead service with its log's end: {stderr}"
    );
    assert!(!run.any_port_answers(), "the other services were stopped");
}
