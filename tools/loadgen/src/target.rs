//! The services under load: started here from the release binaries on a
//! fresh database each (`--spawn`), or already running at given URLs.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use anyhow::Context;
use onestop_contracts::common::v1::Money;
use onestop_contracts::mentoring::v1 as mentoring;
use onestop_platform::auth::Role;
use onestop_test_support::{Bearer, Connect, MentoringClient, Suite};
use tonic::transport::{Channel, Endpoint};

/// Owners start before intake, which hands needs to them.
const SERVICES: [&str; 4] = ["mentoring", "buyers", "referral", "intake"];
/// The overseas office whose vetted buyers the seed registers.
pub const TRADE_OFFICE: &str = "kbc-newyork";
/// The agency that registers the companies and opens their cases.
pub const AGENCY: &str = "kotra";
/// Watch streams one caller may hold open per replica, by default: watchers
/// are spread over callers so the per-caller limit is not what is measured.
const WATCHERS_PER_CALLER: usize = 32;

pub struct Target {
    urls: HashMap<&'static str, String>,
    suite: Option<Suite>,
    /// One token for every call, instead of tokens signed here with the
    /// development keys.
    token: Option<String>,
    /// Intake's database, when this process created it.
    intake_database: Option<String>,
    /// Partner tokens already signed, by role and tenant.
    bearers: Mutex<HashMap<(Role, String), Bearer>>,
}

impl Target {
    /// Starts the four services from the binaries in `bin_dir` in
    /// development mode, each on a fresh database, with room for
    /// `watchers` Watch streams on intake, and seeds the agency directory,
    /// advisors and vetted buyers.
    pub async fn spawn(bin_dir: &Path, watchers: usize) -> anyhow::Result<Self> {
        let sibling = bin_dir.join("onestop-intake");
        anyhow::ensure!(
            sibling.exists(),
            "{} is missing: build the services first (cargo build --release -p onestop-intake \
             -p onestop-mentoring -p onestop-buyers -p onestop-referral) or pass --bin-dir",
            sibling.display()
        );
        let max_watchers = (watchers + 256).max(1024).to_string();
        let env = [
            // Only the line that says where a service listens: logging
            // every call would measure the log, not the service.
            ("RUST_LOG", "warn,onestop_platform::server=info"),
            ("ONESTOP_MAX_WATCHERS", max_watchers.as_str()),
        ];
        let suite = Suite::start(&sibling.to_string_lossy(), &SERVICES, &env).await;
        suite.seed_directory().await;
        suite.vetted_buyers(TRADE_OFFICE, "loadgen", 5).await;
        let urls = SERVICES
            .iter()
            .map(|service| (*service, format!("http://{}", suite.addr(service))))
            .collect();
        let target = Self {
            urls,
            intake_database: Some(suite.database_url("intake").to_owned()),
            suite: Some(suite),
            token: None,
            bearers: Mutex::new(HashMap::new()),
        };
        target.register_advisors(10).await?;
        Ok(target)
    }

    /// Services already running at `urls` (plain HTTP/2); every call
    /// carries `token` when given, else tokens signed with the development
    /// keys, which only a service in development mode accepts.
    pub fn connect(urls: HashMap<&'static str, String>, token: Option<String>) -> Self {
        Self {
            urls,
            intake_database: None,
            suite: None,
            token,
            bearers: Mutex::new(HashMap::new()),
        }
    }

    pub fn intake_database(&self) -> Option<&str> {
        self.intake_database.as_deref()
    }

    pub fn has(&self, service: &str) -> bool {
        self.urls.contains_key(service)
    }

    /// The loopback port `service` listens on, to find its process.
    pub fn port(&self, service: &str) -> Option<u16> {
        let url = self.urls.get(service)?;
        url.rsplit(':').next()?.trim_end_matches('/').parse().ok()
    }

    pub fn services(&self) -> Vec<&'static str> {
        SERVICES.into_iter().filter(|s| self.has(s)).collect()
    }

    /// A bearer for `role` acting for `tenant`.
    pub fn bearer(&self, role: Role, tenant: Option<&str>) -> Bearer {
        if let Some(token) = &self.token {
            return Bearer::new(token);
        }
        let key = (role, tenant.unwrap_or_default().to_owned());
        self.bearers
            .lock()
            .expect("bearers")
            .entry(key)
            .or_insert_with(|| Bearer::role(role, tenant))
            .clone()
    }

    /// The dashboard bearer of watcher `index`: one caller per
    /// [`WATCHERS_PER_CALLER`] watchers.
    pub fn watcher_bearer(&self, index: usize) -> Bearer {
        if let Some(token) = &self.token {
            return Bearer::new(token);
        }
        let subject = format!("loadgen-dashboard-{}", index / WATCHERS_PER_CALLER);
        let token = onestop_test_support::issuer()
            .issue(&subject, Role::Dashboard, None, Duration::from_secs(3600))
            .expect("a dashboard token");
        Bearer::new(&token)
    }

    /// A connection of its own to `service`; clients with any bearer can
    /// share it.
    pub fn channel(&self, service: &str) -> anyhow::Result<Channel> {
        let url = self
            .urls
            .get(service)
            .with_context(|| format!("no URL for {service}"))?;
        Ok(Endpoint::from_shared(url.clone())
            .with_context(|| format!("{service} URL {url}"))?
            .connect_timeout(Duration::from_secs(5))
            .tcp_nodelay(true)
            .connect_lazy())
    }

    /// A client of `service` on a connection of its own.
    pub fn client<K: Connect>(&self, service: &str, bearer: Bearer) -> anyhow::Result<K> {
        Ok(K::connect(self.channel(service)?, bearer))
    }

    /// Advisors for the mentoring needs, enough for every company a run
    /// registers (`count` × 200).
    async fn register_advisors(&self, count: usize) -> anyhow::Result<()> {
        let mut client: MentoringClient =
            self.client("mentoring", self.bearer(Role::Admin, None))?;
        for i in 0..count {
            client
                .register_advisor(mentoring::RegisterAdvisorRequest {
                    idempotency_key: format!("loadgen-advisor-{i}"),
                    profile: Some(mentoring::AdvisorProfile {
                        kind: mentoring::AdvisorKind::RetiredExpert as i32,
                        contact: Some(mentoring::AdvisorContact {
                            name: format!("Advisor {i}"),
                            email: format!("advisor{i}@example.org"),
                            phone: "+82 31-555-0190".into(),
                        }),
                        languages: vec!["ko".into(), "en".into()],
                        industries_ksic: vec!["204".into()],
                        hs_chapters: vec!["33".into()],
                        markets: vec!["US".into()],
                        region: "KR-26".into(),
                        capacity: 200,
                        remote: true,
                        program: Some(mentoring::AdvisorProgram {
                            program_id: "kintex.post-show-expert-marketing".into(),
                            agency: "kintex".into(),
                            name: "Post-show marketing with retired experts".into(),
                            monthly_fee: Some(Money {
                                currency_code: "KRW".into(),
                                amount_minor: 100_000,
                            }),
                        }),
                    }),
                })
                .await
                .context("registering an advisor")?;
        }
        Ok(())
    }

    /// Stops what `spawn` started and drops its databases.
    pub async fn stop(self) {
        if let Some(suite) = self.suite {
            suite.stop().await;
        }
    }
}
