//! Latencies per RPC in HdrHistograms (microseconds, three significant
//! digits), call and error counts, and the report printed at the end.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Attempts at a call the service answers ABORTED.
pub const ATTEMPTS: u32 = 3;

/// Highest latency a histogram holds: one minute, in microseconds.
const HIGHEST_MICROS: u64 = 60_000_000;

pub fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, HIGHEST_MICROS, 3).expect("valid histogram bounds")
}

/// Records `latency` into `histogram`, clamped into its range.
pub fn record(histogram: &mut Histogram<u64>, latency: Duration) {
    let micros = (latency.as_micros() as u64).clamp(1, HIGHEST_MICROS);
    histogram.record(micros).expect("clamped into range");
}

#[derive(Default)]
struct PerRpc {
    latencies: Option<Histogram<u64>>,
    errors: u64,
    /// Attempts answered ABORTED and made again.
    retries: u64,
    /// The first error seen, so a failing run says why.
    first_error: Option<String>,
}

/// Everything measured during the load phase.
#[derive(Default)]
pub struct Stats {
    rpcs: Mutex<BTreeMap<&'static str, PerRpc>>,
    calls: AtomicU64,
    errors: AtomicU64,
}

impl Stats {
    pub fn ok(&self, rpc: &'static str, latency: Duration) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let mut rpcs = self.rpcs.lock().expect("stats");
        let entry = rpcs.entry(rpc).or_default();
        record(entry.latencies.get_or_insert_with(histogram), latency);
    }

    pub fn error(&self, rpc: &'static str, status: &tonic::Status) {
        self.calls.fetch_add(1, Ordering::Relaxed);
        self.errors.fetch_add(1, Ordering::Relaxed);
        let mut rpcs = self.rpcs.lock().expect("stats");
        let entry = rpcs.entry(rpc).or_default();
        entry.errors += 1;
        entry
            .first_error
            .get_or_insert_with(|| format!("{:?}: {}", status.code(), status.message()));
    }

    /// Runs `call`, timing it under `rpc`; None when it failed (counted).
    /// ABORTED is the service asking for a retry (its transaction lost a
    /// race and was rolled back), so the call is made again, as a client
    /// should, up to [`ATTEMPTS`] times; the latency is the whole of it.
    pub async fn timed<T, F, Fut>(&self, rpc: &'static str, mut call: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<tonic::Response<T>, tonic::Status>>,
    {
        let started = Instant::now();
        let mut attempt = 1;
        loop {
            match call().await {
                Ok(response) => {
                    self.ok(rpc, started.elapsed());
                    return Some(response.into_inner());
                }
                Err(status) if status.code() == tonic::Code::Aborted && attempt < ATTEMPTS => {
                    attempt += 1;
                    self.retried(rpc);
                }
                Err(status) => {
                    self.error(rpc, &status);
                    return None;
                }
            }
        }
    }

    fn retried(&self, rpc: &'static str) {
        let mut rpcs = self.rpcs.lock().expect("stats");
        rpcs.entry(rpc).or_default().retries += 1;
    }

    pub fn calls(&self) -> u64 {
        self.calls.load(Ordering::Relaxed)
    }

    pub fn errors(&self) -> u64 {
        self.errors.load(Ordering::Relaxed)
    }

    /// Calls per second of `rpc` over `elapsed`.
    pub fn rate_of(&self, rpc: &str, elapsed: Duration) -> f64 {
        let rpcs = self.rpcs.lock().expect("stats");
        rpcs.get(rpc)
            .and_then(|r| r.latencies.as_ref())
            .map_or(0.0, |h| h.len() as f64 / elapsed.as_secs_f64())
    }

    /// The table of every RPC: calls, errors, calls/s and percentiles.
    pub fn report(&self, elapsed: Duration) -> String {
        let rpcs = self.rpcs.lock().expect("stats");
        let mut out = format!(
            "{:<30} {:>8} {:>7} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "rpc",
            "calls",
            "errors",
            "retries",
            "calls/s",
            "p50 ms",
            "p99 ms",
            "p99.9 ms",
            "max ms"
        );
        for (rpc, per) in rpcs.iter() {
            let empty = histogram();
            let h = per.latencies.as_ref().unwrap_or(&empty);
            let ok = h.len();
            out.push_str(&format!(
                "{:<30} {:>8} {:>7} {:>8} {:>9.1} {:>9.2} {:>9.2} {:>9.2} {:>9.2}\n",
                rpc,
                ok + per.errors,
                per.errors,
                per.retries,
                ok as f64 / elapsed.as_secs_f64(),
                millis(h.value_at_quantile(0.5)),
                millis(h.value_at_quantile(0.99)),
                millis(h.value_at_quantile(0.999)),
                millis(h.max()),
            ));
        }
        for (rpc, per) in rpcs.iter() {
            if let Some(first) = &per.first_error {
                out.push_str(&format!("first error of {rpc}: {first}\n"));
            }
        }
        out
    }
}

pub fn millis(micros: u64) -> f64 {
    micros as f64 / 1000.0
}
