//! The Postgres baseline: pgbench running a transaction of OpenCase's shape
//! against the same server, on a scratch database, in the same run.
//!
//! OpenCase with one need writes, in one transaction, the case row and two
//! events (`case.opened`, `need.opened`) and notifies the feed. The script
//! does the same writes, one statement each, into tables shaped like
//! `support_case` and `event_log`, and nothing else: it is what the
//! database alone can do for that work, so OpenCase's throughput over it is
//! the share the service keeps (reads, checks, hand-off rows, the gRPC and
//! auth layers, and the append's serialisation are what it spends).

use std::process::Stdio;

use anyhow::Context;
use onestop_test_support::TestDb;

const SCHEMA: [&str; 3] = [
    "CREATE TABLE bench_case (
         id uuid PRIMARY KEY, company_id uuid NOT NULL, status text NOT NULL,
         opened_at timestamptz NOT NULL DEFAULT now())",
    "CREATE TABLE bench_event (
         id bigint PRIMARY KEY, event_type text NOT NULL, aggregate_type text NOT NULL,
         aggregate_id text NOT NULL, occurred_at timestamptz NOT NULL DEFAULT now(),
         payload_type text NOT NULL, payload bytea NOT NULL,
         traceparent text NOT NULL DEFAULT '', tracestate text NOT NULL DEFAULT '')",
    "CREATE SEQUENCE bench_event_seq AS bigint OWNED BY bench_event.id",
];

const SCRIPT: &str = r"\set company random(1, 1000000000)
BEGIN;
INSERT INTO bench_case (id, company_id, status) VALUES (gen_random_uuid(), gen_random_uuid(), 'OPEN');
INSERT INTO bench_event (id, event_type, aggregate_type, aggregate_id, payload_type, payload) VALUES (nextval('bench_event_seq'), 'case.opened', 'case', :company, 'type.googleapis.com/onestop.intake.v1.CaseOpened', '\x0a2430313933');
INSERT INTO bench_event (id, event_type, aggregate_type, aggregate_id, payload_type, payload) VALUES (nextval('bench_event_seq'), 'need.opened', 'need', :company, 'type.googleapis.com/onestop.intake.v1.NeedOpened', '\x0a2430313933');
SELECT pg_notify('onestop_events', '');
COMMIT;
";

pub struct Baseline {
    pub tps: f64,
    pub latency_ms: Option<f64>,
}

/// Runs the script with `clients` connections for `seconds` on a scratch
/// database of the Postgres server the tests use (`DATABASE_URL`'s, else
/// 127.0.0.1:5432), dropped afterwards.
pub async fn pgbench(clients: usize, seconds: u64) -> anyhow::Result<Baseline> {
    let db = TestDb::new().await;
    let pool = db.pool().await;
    for statement in SCHEMA {
        sqlx::query(statement)
            .execute(&pool)
            .await
            .context("baseline schema")?;
    }
    pool.close().await;
    let script = std::env::temp_dir().join(format!("onestop-loadgen-{}.sql", std::process::id()));
    std::fs::write(&script, SCRIPT).context("writing the pgbench script")?;
    let binary = std::env::var("PGBENCH").unwrap_or_else(|_| "pgbench".into());
    let output = tokio::process::Command::new(&binary)
        .args(["-n", "-M", "prepared", "-c", &clients.to_string()])
        .args([
            "-j",
            &clients.min(2).to_string(),
            "-T",
            &seconds.to_string(),
        ])
        .arg("-f")
        .arg(&script)
        // libpq refuses the driver's own options in the query string.
        .arg(db.url.split('?').next().unwrap_or_default())
        .stdin(Stdio::null())
        .output()
        .await
        .with_context(|| format!("running {binary} (set PGBENCH to its path)"))?;
    let _ = std::fs::remove_file(&script);
    let stdout = String::from_utf8_lossy(&output.stdout);
    anyhow::ensure!(
        output.status.success(),
        "pgbench failed: {}{}",
        stdout,
        String::from_utf8_lossy(&output.stderr)
    );
    parse(&stdout).with_context(|| format!("no tps in pgbench's output: {stdout}"))
}

fn parse(output: &str) -> Option<Baseline> {
    let number_after = |prefix: &str| {
        output
            .lines()
            .find_map(|line| line.trim().strip_prefix(prefix))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse::<f64>().ok())
    };
    Some(Baseline {
        tps: number_after("tps = ")?,
        latency_ms: number_after("latency average = "),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tps_and_latency_from_pgbench_output() {
        let output = "transaction type: x.sql\nlatency average = 2.296 ms\n\
                      initial connection time = 9.1 ms\n\
                      tps = 3484.123456 (without initial connection time)\n";
        let baseline = parse(output).expect("parsed");
        assert!((baseline.tps - 3484.123456).abs() < 1e-6);
        assert_eq!(baseline.latency_ms, Some(2.296));
    }
}
