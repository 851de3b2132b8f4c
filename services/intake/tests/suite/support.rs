//! The whole suite as separate processes: the four real binaries on
//! ephemeral loopback ports, each on its own fresh database.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use onestop_test_support::{Bearer, Connect, ServiceProcess, TestDb, channel};

pub const OWNERS: [&str; 3] = ["mentoring", "buyers", "referral"];

/// A sibling of the intake binary in the target directory. `cargo test
/// --workspace` builds every service's binary before any test runs.
pub fn binary(service: &str) -> String {
    let intake = PathBuf::from(env!("CARGO_BIN_EXE_onestop-intake"));
    let path = intake.with_file_name(format!("onestop-{service}"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (or `cargo test --workspace`) first",
        path.display()
    );
    path.to_string_lossy().into_owned()
}

pub struct Suite {
    databases: HashMap<&'static str, TestDb>,
    processes: HashMap<&'static str, ServiceProcess>,
    env: Vec<(String, String)>,
}

impl Suite {
    /// Starts mentoring, buyers and referral, then intake wired to them.
    /// `env` goes to every process.
    pub async fn start(env: &[(&str, &str)]) -> Self {
        let mut suite = Self {
            databases: HashMap::new(),
            processes: HashMap::new(),
            env: env
                .iter()
                .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
                .collect(),
        };
        for service in ["intake", "mentoring", "buyers", "referral"] {
            suite.databases.insert(service, TestDb::new().await);
        }
        for owner in OWNERS {
            suite.spawn(owner, None).await;
        }
        suite.spawn("intake", None).await;
        suite
    }

    pub fn addr(&self, service: &str) -> SocketAddr {
        self.processes[service].addr
    }

    /// A generated client of `service` calling with `bearer`'s token.
    pub fn client<K: Connect>(&self, service: &str, bearer: Bearer) -> K {
        K::connect(channel(self.addr(service)), bearer)
    }

    pub fn database_url(&self, service: &str) -> &str {
        &self.databases[service].url
    }

    async fn spawn(&mut self, service: &'static str, listen: Option<SocketAddr>) {
        let mut env: Vec<(String, String)> = self.env.clone();
        env.push(("DATABASE_URL".into(), self.databases[service].url.clone()));
        env.push(("OTEL_SERVICE_NAME".into(), format!("onestop-{service}")));
        if let Some(listen) = listen {
            env.push(("ONESTOP_LISTEN".into(), listen.to_string()));
        }
        if service == "intake" {
            for owner in OWNERS {
                env.push((
                    format!("ONESTOP_{}_URL", owner.to_uppercase()),
                    format!("http://{}", self.addr(owner)),
                ));
            }
            env.push(("ONESTOP_HANDOFF_MAX_BACKOFF".into(), "500ms".into()));
        }
        let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let process = ServiceProcess::spawn(&binary(service), &env).await;
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
