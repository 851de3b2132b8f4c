//! What every drill uses: the sibling binaries, health probes watched over
//! time, writers that keep registering companies, a seeded random source
//! and the figures each drill prints.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::intake::v1 as pb;
use onestop_test_support::fixtures::{company_profile, registration_number};
use onestop_test_support::{Bearer, Connect, IntakeClient, ServiceProcess, channel};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

/// `ONESTOP_DRILL_FULL=1`: the product's default intervals and timeouts
/// and full-size runs, instead of the shortened ones CI uses.
pub fn full() -> bool {
    std::env::var("ONESTOP_DRILL_FULL").is_ok_and(|v| v == "1" || v == "true")
}

/// Drills run one at a time: each measures how long recovery takes, which
/// another drill's load on the same cores would distort. Hold the guard for
/// the whole drill.
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    static DRILL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    DRILL.lock().await
}

/// Prints one figure of `drill` (visible with `--nocapture`) and returns
/// it, to repeat in assertion messages.
pub fn figure(drill: &str, text: String) -> String {
    println!("drill {drill}: {text}");
    text
}

/// The path of `service`'s binary, next to intake's (`cargo test
/// --workspace` builds them all; `cargo build --workspace --bins` first
/// when running this target alone).
pub fn binary(service: &str) -> String {
    let path = PathBuf::from(env!("CARGO_BIN_EXE_onestop-intake"))
        .parent()
        .expect("a binary in a directory")
        .join(format!("onestop-{service}"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

pub fn intake_client(addr: SocketAddr) -> IntakeClient {
    <IntakeClient as Connect>::connect(channel(addr), Bearer::agency("kotra"))
}

/// The status `addr` reports for the health name `name`; `None` when it
/// does not answer within a second.
pub async fn health(addr: SocketAddr, name: &str) -> Option<ServingStatus> {
    let mut client = HealthClient::new(channel(addr));
    let request = HealthCheckRequest {
        service: name.into(),
    };
    let response = tokio::time::timeout(Duration::from_secs(1), client.check(request))
        .await
        .ok()?
        .ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

/// Each status a health name reported, with when it was first seen.
type Changes = Arc<Mutex<Vec<(Instant, Option<ServingStatus>)>>>;

/// Polls one health name every 50 ms and keeps every change with when it
/// was seen, until dropped.
pub struct HealthWatch {
    changes: Changes,
    task: tokio::task::AbortHandle,
}

impl HealthWatch {
    pub fn start(addr: SocketAddr, name: &'static str) -> Self {
        let changes: Changes = Arc::default();
        let seen = changes.clone();
        let task = tokio::spawn(async move {
            let mut last = None;
            loop {
                let status = health(addr, name).await;
                if last != Some(status) {
                    seen.lock().expect("changes").push((Instant::now(), status));
                    last = Some(status);
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .abort_handle();
        Self { changes, task }
    }

    /// When `status` was first seen at or after `since`.
    pub fn first(&self, status: ServingStatus, since: Instant) -> Option<Instant> {
        self.changes
            .lock()
            .expect("changes")
            .iter()
            .find(|(at, seen)| *at >= since && *seen == Some(status))
            .map(|(at, _)| *at)
    }

    /// Every status seen, in order, for messages.
    pub fn history(&self) -> Vec<String> {
        self.changes
            .lock()
            .expect("changes")
            .iter()
            .map(|(_, status)| format!("{status:?}"))
            .collect()
    }

    /// Waits up to `within` for `status` at or after `since`.
    pub async fn wait_for(
        &self,
        status: ServingStatus,
        since: Instant,
        within: Duration,
    ) -> Option<Instant> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(at) = self.first(status, since) {
                return Some(at);
            }
            if Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for HealthWatch {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// A company registration under `key` for registration number `seed`.
pub fn company(key: String, seed: u32) -> pb::RegisterCompanyRequest {
    pb::RegisterCompanyRequest {
        idempotency_key: key,
        profile: Some(company_profile(&registration_number(seed))),
        ..Default::default()
    }
}

/// Tasks that register companies one after another until stopped, each
/// retrying a failed registration with the same idempotency key, as a
/// careful client does.
pub struct Writers {
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicUsize>,
    tasks: Vec<tokio::task::JoinHandle<Written>>,
}

/// What the writers were told.
#[derive(Default, Debug)]
pub struct Written {
    /// Ids of acknowledged companies, with when each was acknowledged.
    pub acked: Vec<(Instant, String)>,
    /// Failed attempts by status code.
    pub failures: BTreeMap<String, usize>,
    /// The longest a failed attempt took to fail.
    pub slowest_failure: Duration,
}

impl Written {
    pub fn ids(&self) -> Vec<String> {
        self.acked.iter().map(|(_, id)| id.clone()).collect()
    }

    /// The first acknowledgement at or after `since`.
    pub fn first_after(&self, since: Instant) -> Option<Instant> {
        self.acked
            .iter()
            .map(|(at, _)| *at)
            .filter(|at| *at >= since)
            .min()
    }
}

impl Writers {
    /// `count` writers against intake at `addr`; `seed` keeps several
    /// drills' registration numbers apart.
    pub fn start(addr: SocketAddr, count: u32, seed: u32) -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let acked = Arc::new(AtomicUsize::new(0));
        let tasks = (0..count)
            .map(|writer| {
                let stop = stop.clone();
                let acked = acked.clone();
                let mut client = intake_client(addr);
                tokio::spawn(async move {
                    let mut written = Written::default();
                    let mut n = 0u32;
                    while !stop.load(Ordering::SeqCst) {
                        let number = seed + writer * 100_000 + n;
                        let request = company(format!("drill-{number}"), number);
                        let call = client.register_company(request);
                        let sent = Instant::now();
                        match tokio::time::timeout(Duration::from_secs(10), call).await {
                            Ok(Ok(response)) => {
                                written
                                    .acked
                                    .push((Instant::now(), response.into_inner().company_id));
                                acked.fetch_add(1, Ordering::SeqCst);
                                n += 1;
                            }
                            Ok(Err(status)) => {
                                written.slowest_failure =
                                    written.slowest_failure.max(sent.elapsed());
                                *written
                                    .failures
                                    .entry(format!("{:?}", status.code()))
                                    .or_default() += 1;
                                tokio::time::sleep(Duration::from_millis(50)).await;
                            }
                            Err(_) => {
                                *written
                                    .failures
                                    .entry("no answer in 10s".into())
                                    .or_default() += 1;
                            }
                        }
                    }
                    written
                })
            })
            .collect();
        Self { stop, acked, tasks }
    }

    /// Acknowledged registrations so far.
    pub fn acked(&self) -> usize {
        self.acked.load(Ordering::SeqCst)
    }

    /// Waits until `more` registrations beyond those acknowledged now are.
    pub async fn wait_for_more(&self, more: usize, within: Duration) -> bool {
        let target = self.acked() + more;
        onestop_test_support::eventually(within, || async { self.acked() >= target }).await
    }

    pub async fn finish(self) -> Written {
        self.stop.store(true, Ordering::SeqCst);
        let mut all = Written::default();
        for task in self.tasks {
            let written = task.await.expect("writer task");
            all.acked.extend(written.acked);
            all.slowest_failure = all.slowest_failure.max(written.slowest_failure);
            for (code, count) in written.failures {
                *all.failures.entry(code).or_default() += count;
            }
        }
        all
    }
}

/// Which of `ids` are missing from intake's companies in `pool`.
pub async fn missing_companies(pool: &sqlx::PgPool, ids: &[String]) -> Vec<String> {
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT id::text FROM company WHERE id::text = ANY($1)")
            .bind(ids)
            .fetch_all(pool)
            .await
            .expect("stored companies");
    let stored: std::collections::HashSet<String> = stored.into_iter().collect();
    ids.iter()
        .filter(|id| !stored.contains(*id))
        .cloned()
        .collect()
}

/// A small seeded random source (xorshift), so a failing run can be
/// repeated with `ONESTOP_DRILL_SEED`.
pub struct Random(u64);

impl Random {
    /// Seeded from `ONESTOP_DRILL_SEED`, else the clock; returns the seed
    /// too, to print.
    pub fn seeded() -> (Self, u64) {
        let seed = std::env::var("ONESTOP_DRILL_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|d| d.as_nanos() as u64)
                    .unwrap_or(1)
            });
        (Self::new(seed), seed)
    }

    pub fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    /// A number in `0..bound`.
    pub fn below(&mut self, bound: u64) -> u64 {
        self.next() % bound.max(1)
    }
}

/// Milliseconds between two instants, for figures.
pub fn ms(from: Instant, to: Instant) -> u128 {
    to.saturating_duration_since(from).as_millis()
}

/// A small database pool per process: the drills share a Postgres server
/// with whatever else runs, and need few connections each.
pub const SMALL_POOL: (&str, &str) = ("ONESTOP_DB_MAX_CONNECTIONS", "5");

/// Starts `service`'s binary with a small pool and `env` on a loopback
/// port.
pub async fn spawn(service: &str, env: &[(&str, String)]) -> ServiceProcess {
    let env: Vec<(&str, &str)> = std::iter::once(SMALL_POOL)
        .chain(env.iter().map(|(k, v)| (*k, v.as_str())))
        .collect();
    ServiceProcess::spawn(&binary(service), &env).await
}

/// A company registered for `seed` with a case of one need of `category`;
/// returns (case id, need id).
pub async fn open_case(
    intake: &mut IntakeClient,
    seed: u32,
    category: NeedCategory,
) -> (String, String) {
    let company = intake
        .register_company(company(String::new(), seed))
        .await
        .expect("company registers")
        .into_inner();
    let case = intake
        .open_case(pb::OpenCaseRequest {
            idempotency_key: String::new(),
            company_id: company.company_id,
            needs: vec![pb::NeedRequest {
                category: category as i32,
                detail: "Working capital and an advisor for a first order to Vietnam".into(),
                target_markets: vec!["VN".into()],
                hs_codes: vec!["330499".into()],
                ..Default::default()
            }],
        })
        .await
        .expect("case opens")
        .into_inner();
    let need = case
        .needs
        .iter()
        .find(|need| need.category == category as i32)
        .expect("the need asked for");
    (case.case_id, need.need_id.clone())
}

/// The need as intake reports it now.
pub async fn need(intake: &mut IntakeClient, case_id: &str, need_id: &str) -> pb::Need {
    intake
        .get_case(pb::GetCaseRequest {
            case_id: case_id.into(),
        })
        .await
        .expect("case reads")
        .into_inner()
        .needs
        .into_iter()
        .find(|need| need.need_id == need_id)
        .expect("the need is on its case")
}

pub fn is_delivered(need: &pb::Need) -> bool {
    need.delivery == pb::DeliveryState::Delivered as i32
}

/// Waits up to `within` until every one of `needs` (case id, need id) is
/// delivered; returns when the last one was seen delivered.
pub async fn all_delivered(
    intake: &mut IntakeClient,
    needs: &[(String, String)],
    within: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + within;
    let mut waiting: Vec<&(String, String)> = needs.iter().collect();
    loop {
        let mut still = Vec::new();
        for pair in waiting {
            if !is_delivered(&need(intake, &pair.0, &pair.1).await) {
                still.push(pair);
            }
        }
        if still.is_empty() {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        waiting = still;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The last 40 lines of a service's log, for a drill's failure message.
pub fn log_tail(lines: &[String]) -> String {
    lines[lines.len().saturating_sub(40)..].join("\n")
}
