//! The load generator against the real service binaries at a tiny scale,
//! so it keeps working: three seconds, two clients, twenty watchers, the
//! pgbench baseline and the tracing comparison. It must print every figure and count no error.

use std::path::Path;
use std::process::Command;

/// The number in the `column`th column of the row starting with `rpc`.
fn column(report: &str, rpc: &str, column: usize) -> Option<f64> {
    report
        .lines()
        .find(|line| line.split_whitespace().next() == Some(rpc))?
        .split_whitespace()
        .nth(column)?
        .parse()
        .ok()
}

#[test]
fn a_tiny_run_against_the_real_services_prints_its_figures_without_errors() {
    let loadgen = env!("CARGO_BIN_EXE_onestop-loadgen");
    let bin_dir = Path::new(loadgen)
        .parent()
        .expect("the binaries' directory");
    for service in ["intake", "mentoring", "buyers", "referral"] {
        assert!(
            bin_dir.join(format!("onestop-{service}")).exists(),
            "onestop-{service} is missing: run `cargo build --workspace --bins` \
             (or `cargo test --workspace`) first"
        );
    }
    let output = Command::new(loadgen)
        .args([
            "--spawn",
            "--duration",
            "3s",
            "--concurrency",
            "2",
            "--companies",
            "20",
        ])
        // Every intake operation in each client's first seven calls (the mix
        // is drawn in shuffled decks), and the owners acting on what was
        // handed to them by then.
        .args([
            "--mix",
            "register,diagnose,open-case,get-company,referral,buyers,mentoring",
        ])
        .args([
            "--watchers",
            "20",
            "--probes",
            "2",
            "--baseline",
            "--tracing",
        ])
        .output()
        .expect("onestop-loadgen runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "onestop-loadgen failed:\n{stdout}\n{stderr}"
    );

    // A progress line each second.
    assert!(stderr.contains("calls/s"), "no progress line: {stderr}");
    // Every intake operation of the mix ran and has its percentiles.
    for rpc in [
        "intake.RegisterCompany",
        "intake.DiagnoseReadiness",
        "intake.OpenCase",
        "intake.GetCompany",
    ] {
        let calls = column(&stdout, rpc, 1).unwrap_or(0.0);
        let p99 = column(&stdout, rpc, 6).unwrap_or(0.0);
        assert!(calls > 0.0 && p99 > 0.0, "no figures for {rpc}:\n{stdout}");
    }
    assert!(stdout.contains("p99.9 ms"), "{stdout}");
    assert!(
        stdout.contains("watchers: 20 of 20 subscribed"),
        "every watcher subscribes:\n{stdout}"
    );
    assert!(
        stdout.contains("watch delivery: 20 of 20 subscribed streams received all 2 probe events"),
        "every watcher receives every probe:\n{stdout}"
    );
    assert!(stdout.contains("intake RSS with 20 watchers"), "{stdout}");
    assert!(
        stdout.contains("intake's database while idle: "),
        "idle database load measured:\n{stdout}"
    );
    let idle = stdout
        .lines()
        .skip_while(|line| !line.starts_with("idle RSS"))
        .skip(1)
        .take_while(|line| line.starts_with("  "))
        .filter(|line| line.trim_end().ends_with("MiB"))
        .count();
    assert_eq!(idle, 4, "idle RSS of the four services:\n{stdout}");
    assert!(
        stdout.contains("ratio OpenCase/pgbench: "),
        "the baseline ran:\n{stdout}"
    );
    // The baseline waited for the hand-off to deliver what the run opened.
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("hand-off: ") && line.contains("all delivered")),
        "the hand-off drained before the baseline:\n{stdout}"
    );
    let spans = stdout
        .lines()
        .find_map(|line| line.strip_prefix("ratio traced/untraced GetCompany: "))
        .and_then(|rest| rest.split("; ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse::<u64>().ok());
    assert!(
        spans.is_some_and(|n| n > 0),
        "the traced intake exported its spans:\n{stdout}"
    );
    assert!(stdout.contains("\nerrors: 0\n"), "no errors:\n{stdout}");
}
