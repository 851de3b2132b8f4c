//! The suite as separate processes: real service binaries on ephemeral
//! loopback ports, each on its own fresh database, wired to each other as
//! in production (intake to the need owners, insights to every feed).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use onestop_contracts::buyers::v1 as buyers;
use onestop_contracts::common::v1::Money;

use crate::{Bearer, BuyersClient, Connect, ServiceProcess, TestDb, TestKeys, TestPki, channel};

/// The services intake hands needs to.
pub const OWNERS: [&str; 3] = ["mentoring", "buyers", "referral"];
/// Every feed insights follows.
const FEEDS: [&str; 4] = ["intake", "mentoring", "buyers", "referral"];

pub struct Suite {
    bin_dir: PathBuf,
    databases: HashMap<&'static str, TestDb>,
    processes: HashMap<&'static str, ServiceProcess>,
    env: Vec<(String, String)>,
    secured: Option<Secured>,
    /// Where intake listens (or will): the owners follow its feed, so they
    /// must know the address before intake starts after them.
    intake_addr: Option<SocketAddr>,
}

/// What a secured suite runs with: keys generated for the run (no
/// development keys) and a private CA for mutual TLS everywhere.
struct Secured {
    keys: TestKeys,
    pki: TestPki,
}

impl Suite {
    /// Starts `services` in order from the binaries in the directory of
    /// `sibling` (a test's `env!("CARGO_BIN_EXE_onestop-...")`; `cargo test
    /// --workspace` builds every service's binary before any test runs).
    /// Start owners before intake and the feeds before insights. `env` goes
    /// to every process.
    pub async fn start(sibling: &str, services: &[&'static str], env: &[(&str, &str)]) -> Self {
        Self::start_with(sibling, services, env, None).await
    }

    /// As [`Suite::start`], with keys generated for the run (development
    /// mode off) and mutual TLS between every process and every client.
    pub async fn start_secured(
        sibling: &str,
        services: &[&'static str],
        env: &[(&str, &str)],
    ) -> Self {
        let secured = Secured {
            keys: TestKeys::generate(),
            pki: TestPki::generate(),
        };
        Self::start_with(sibling, services, env, Some(secured)).await
    }

    async fn start_with(
        sibling: &str,
        services: &[&'static str],
        env: &[(&str, &str)],
        secured: Option<Secured>,
    ) -> Self {
        let bin_dir = PathBuf::from(sibling)
            .parent()
            .expect("a binary in a directory")
            .to_path_buf();
        let mut suite = Self {
            bin_dir,
            databases: HashMap::new(),
            processes: HashMap::new(),
            env: env
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
            secured,
            intake_addr: None,
        };
        for service in services {
            suite.databases.insert(service, TestDb::new().await);
        }
        // The port stays held while the others bind theirs, so none of them
        // is handed it.
        let mut reserved = services
            .contains(&"intake")
            .then(|| std::net::TcpListener::bind("127.0.0.1:0").expect("a free loopback port"));
        suite.intake_addr = reserved.as_ref().and_then(|l| l.local_addr().ok());
        for service in services {
            if *service == "intake" {
                drop(reserved.take());
                let addr = suite.intake_addr;
                suite.spawn(service, addr).await;
            } else {
                suite.spawn(service, None).await;
            }
        }
        suite
    }

    /// The path of `service`'s binary.
    pub fn binary(&self, service: &str) -> String {
        let path = self.bin_dir.join(format!("onestop-{service}"));
        assert!(
            path.exists(),
            "{} is missing: run `cargo build --workspace --bins` (or `cargo test --workspace`) first",
            path.display()
        );
        path.to_string_lossy().into_owned()
    }

    pub fn addr(&self, service: &str) -> SocketAddr {
        self.processes[service].addr
    }

    /// A generated client of `service` calling with `bearer`'s token (over
    /// mutual TLS with the run's keys when secured).
    pub fn client<K: Connect>(&self, service: &str, bearer: Bearer) -> K {
        match &self.secured {
            Some(secured) => K::connect(
                secured.pki.channel(self.addr(service), true),
                bearer.signed_with(&secured.keys),
            ),
            None => K::connect(channel(self.addr(service)), bearer),
        }
    }

    pub fn database_url(&self, service: &str) -> &str {
        &self.databases[service].url
    }

    /// The running process of `service`, to signal it (hang it with
    /// `STOP`, resume it with `CONT`) or ask whether it still runs.
    pub fn process(&mut self, service: &str) -> &mut ServiceProcess {
        self.processes.get_mut(service).expect("a running service")
    }

    /// Everything `service` has logged so far.
    pub fn output(&self, service: &str) -> Vec<String> {
        self.processes[service].output()
    }

    fn url_of(&self, service: &str) -> Option<(String, String)> {
        let addr = match self.processes.get(service) {
            Some(process) => process.addr,
            None if service == "intake" => self.intake_addr?,
            None => return None,
        };
        let scheme = if self.secured.is_some() {
            "https"
        } else {
            "http"
        };
        Some((
            format!("ONESTOP_{}_URL", service.to_uppercase()),
            format!("{scheme}://{addr}"),
        ))
    }

    async fn spawn(&mut self, service: &'static str, listen: Option<SocketAddr>) {
        let mut env: Vec<(String, String)> = self.env.clone();
        env.push(("DATABASE_URL".into(), self.databases[service].url.clone()));
        env.push(("OTEL_SERVICE_NAME".into(), format!("onestop-{service}")));
        if let Some(listen) = listen {
            env.push(("ONESTOP_LISTEN".into(), listen.to_string()));
        }
        if let Some(secured) = &self.secured {
            env.extend(secured.keys.env(service));
            env.extend(secured.pki.env(service, true));
        }
        match service {
            "intake" => {
                env.extend(OWNERS.iter().filter_map(|owner| self.url_of(owner)));
                env.push(("ONESTOP_HANDOFF_MAX_BACKOFF".into(), "500ms".into()));
            }
            owner if OWNERS.contains(&owner) => {
                env.extend(self.url_of("intake"));
            }
            "insights" => {
                env.extend(FEEDS.iter().filter_map(|feed| self.url_of(feed)));
                env.push(("ONESTOP_HTTP_LISTEN".into(), "127.0.0.1:0".into()));
            }
            _ => {}
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let process = ServiceProcess::spawn(&self.binary(service), &env).await;
        self.processes.insert(service, process);
    }

    /// SIGKILL: no drain, no flush, exactly like a crash.
    pub async fn kill(&mut self, service: &'static str) -> SocketAddr {
        let mut process = self.processes.remove(service).expect("running service");
        process.child.kill().await.expect("kill -9");
        process.addr
    }

    /// Starts `service` again on the address it had, so peers' URLs hold.
    pub async fn restart(&mut self, service: &'static str, addr: SocketAddr) {
        self.spawn(service, Some(addr)).await;
    }

    /// Loads the agency directory with the referral binary's own command.
    pub async fn seed_directory(&self) {
        let status = tokio::process::Command::new(self.binary("referral"))
            .arg("seed-directory")
            .env("DATABASE_URL", self.database_url("referral"))
            .env("RUST_LOG", "warn")
            .status()
            .await
            .expect("seed-directory runs");
        assert!(status.success(), "seed-directory succeeds");
    }

    /// Registers and verifies `count` buyers through `office`, with
    /// idempotency keys under `key`; returns their ids.
    pub async fn vetted_buyers(&self, office: &str, key: &str, count: usize) -> Vec<String> {
        let mut client: BuyersClient = self.client("buyers", Bearer::trade_office(office));
        let mut ids = Vec::new();
        for i in 0..count {
            let buyer = client
                .register_buyer(buyers::RegisterBuyerRequest {
                    idempotency_key: format!("{key}-buyer-{i}"),
                    trade_office_id: office.into(),
                    profile: Some(buyers::BuyerProfile {
                        company_name: format!("Evergreen Beauty Imports {key} {i}"),
                        country: "US".into(),
                        city: "New York".into(),
                        time_zone: "America/New_York".into(),
                        hs_codes: vec!["330499".into()],
                        annual_import_volume: Some(Money {
                            currency_code: "USD".into(),
                            amount_minor: 250_000_000,
                        }),
                        languages: vec!["en".into()],
                        ..Default::default()
                    }),
                })
                .await
                .expect("buyer registers")
                .into_inner();
            client
                .vet_buyer(buyers::VetBuyerRequest {
                    idempotency_key: format!("{key}-vet-{i}"),
                    buyer_id: buyer.buyer_id.clone(),
                    status: buyers::VettingStatus::Verified as i32,
                    criteria_met: vec![
                        buyers::VettingCriterion::RegistryChecked as i32,
                        buyers::VettingCriterion::ImportHistory as i32,
                    ],
                    quality_score: 80 + i as u32,
                    note: String::new(),
                })
                .await
                .expect("buyer is verified");
            ids.push(buyer.buyer_id);
        }
        ids
    }

    /// SIGTERM to every process and wait, so exporters flush.
    pub async fn stop(mut self) {
        for process in self.processes.values() {
            process.terminate();
        }
        for (_, mut process) in self.processes.drain() {
            let _ = tokio::time::timeout(std::time::Duration::from_secs(15), process.child.wait())
                .await;
        }
    }
}
