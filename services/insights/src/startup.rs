//! Builds the insights server: bind the gRPC and HTTP ports first, then the
//! database; then follow the four feeds and serve the API on gRPC and the
//! dashboard page with gRPC-Web on HTTP.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use onestop_contracts::insights::v1::insights_service_server::InsightsServiceServer;
use onestop_platform::client::lazy_channel;
use onestop_platform::config::ServerSettings;
use onestop_platform::server::{CancellationToken, ServiceHost};
use onestop_platform::time::{Clock, SystemClock};
use sqlx::PgPool;
use tokio::net::TcpListener;

use crate::changes::Changes;
use crate::domain::money::UsdRates;
use crate::domain::source::Source;
use crate::follow::Follower;
use crate::grpc::InsightsApi;
use crate::indicators::{Indicators, Targets};
use crate::web;

pub const SERVICE_NAME: &str = "insights";
pub const DEFAULT_PORT: u16 = 50055;
pub const DEFAULT_HTTP_PORT: u16 = 8080;

/// What insights adds to the common settings.
#[derive(Debug, Clone, clap::Args)]
pub struct InsightsSettings {
    /// gRPC URL of intake, whose feed gives companies, cases and needs.
    #[arg(long, env = "ONESTOP_INTAKE_URL")]
    pub intake_url: Option<String>,

    /// gRPC URL of mentoring (advisors, assignments, fees).
    #[arg(long, env = "ONESTOP_MENTORING_URL")]
    pub mentoring_url: Option<String>,

    /// gRPC URL of buyer discovery (vetting, consultations, deals).
    #[arg(long, env = "ONESTOP_BUYERS_URL")]
    pub buyers_url: Option<String>,

    /// gRPC URL of agency referral (the referral funnel).
    #[arg(long, env = "ONESTOP_REFERRAL_URL")]
    pub referral_url: Option<String>,

    /// Where the dashboard page and gRPC-Web are served [default:
    /// 0.0.0.0:8080]; port 0 picks a free port.
    #[arg(long, env = "ONESTOP_HTTP_LISTEN")]
    pub http_listen: Option<SocketAddr>,

    /// Directory of the built dashboard page [default: `dashboard` next to
    /// the binary, else `../share/onestop-insights/dashboard` from it].
    #[arg(long, env = "ONESTOP_DASHBOARD_DIR")]
    pub dashboard_dir: Option<PathBuf>,

    /// Origins whose pages may call the API over gRPC-Web, comma-separated,
    /// or `*` for any. Calls still need a bearer token.
    #[arg(long, env = "ONESTOP_CORS_ORIGINS", default_value = "*")]
    pub cors_origins: String,

    /// Buyers the trade offices together should vet (VERIFIED) per month.
    #[arg(long, env = "ONESTOP_TARGET_VETTED_BUYERS", default_value_t = 1000)]
    pub target_vetted_buyers: u64,

    /// Companies that should have a consultation booked per month.
    #[arg(
        long,
        env = "ONESTOP_TARGET_CONSULTATION_COMPANIES",
        default_value_t = 1500
    )]
    pub target_consultation_companies: u64,

    /// Buyers that should have a consultation booked per month.
    #[arg(
        long,
        env = "ONESTOP_TARGET_CONSULTATION_BUYERS",
        default_value_t = 5000
    )]
    pub target_consultation_buyers: u64,

    /// USD per one unit of each currency deals are converted at, as
    /// CODE=RATE pairs (e.g. "KRW=0.00072,EUR=1.08"). Deal values in other
    /// currencies are reported unconverted.
    #[arg(long, env = "ONESTOP_USD_RATES", default_value = UsdRates::DEFAULT)]
    pub usd_rates: UsdRates,
}

impl Default for InsightsSettings {
    fn default() -> Self {
        Self {
            intake_url: None,
            mentoring_url: None,
            buyers_url: None,
            referral_url: None,
            http_listen: None,
            dashboard_dir: None,
            cors_origins: "*".into(),
            target_vetted_buyers: 1000,
            target_consultation_companies: 1500,
            target_consultation_buyers: 5000,
            usd_rates: UsdRates::DEFAULT.parse().expect("default rates parse"),
        }
    }
}

impl InsightsSettings {
    fn feeds(&self) -> [(Source, Option<&str>); 4] {
        [
            (Source::Intake, self.intake_url.as_deref()),
            (Source::Mentoring, self.mentoring_url.as_deref()),
            (Source::Buyers, self.buyers_url.as_deref()),
            (Source::Referral, self.referral_url.as_deref()),
        ]
    }

    fn targets(&self) -> Targets {
        Targets {
            vetted_buyers: self.target_vetted_buyers,
            consultation_companies: self.target_consultation_companies,
            consultation_buyers: self.target_consultation_buyers,
        }
    }

    /// The dashboard directory: the setting, else the first default that
    /// exists (or the first default, for the warning).
    fn dashboard_dir(&self) -> PathBuf {
        if let Some(dir) = &self.dashboard_dir {
            return dir.clone();
        }
        let beside_binary = std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(PathBuf::from))
            .unwrap_or_default();
        let candidates = [
            beside_binary.join("dashboard"),
            beside_binary.join("../share/onestop-insights/dashboard"),
        ];
        candidates
            .iter()
            .find(|dir| dir.is_dir())
            .unwrap_or(&candidates[0])
            .clone()
    }
}

pub struct Application {
    host: ServiceHost,
    http: TcpListener,
    http_addr: SocketAddr,
    insights: InsightsSettings,
    clock: Arc<dyn Clock>,
}

impl Application {
    /// Binds both listen addresses (port 0 picks free ones), connects to
    /// the database and applies migrations.
    pub async fn build(settings: ServerSettings) -> anyhow::Result<Self> {
        Self::build_with(settings, InsightsSettings::default(), Arc::new(SystemClock)).await
    }

    /// As `build`, with insights' own settings and the clock that decides
    /// the current month (tests pass their own).
    pub async fn build_with(
        settings: ServerSettings,
        insights: InsightsSettings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let http_listen = insights
            .http_listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], DEFAULT_HTTP_PORT)));
        let http = TcpListener::bind(http_listen)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {http_listen}: {error}"))?;
        let http_addr = http.local_addr()?;
        let host = ServiceHost::start(
            SERVICE_NAME,
            DEFAULT_PORT,
            settings,
            sqlx::migrate!("./migrations"),
        )
        .await?;
        Ok(Self {
            host,
            http,
            http_addr,
            insights,
            clock,
        })
    }

    /// Where the dashboard page and gRPC-Web are served.
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    pub fn pool(&self) -> PgPool {
        self.host.pool().clone()
    }
}

impl onestop_platform::server::Application for Application {
    fn local_addr(&self) -> SocketAddr {
        self.host.local_addr()
    }

    /// Cancel to stop following, and to shut both servers down gracefully.
    fn shutdown_token(&self) -> CancellationToken {
        self.host.shutdown_token()
    }

    async fn run_until_stopped(self) -> anyhow::Result<()> {
        let pool = self.host.pool().clone();
        let shutdown = self.host.shutdown_token();
        let settings = self.host.settings().clone();
        let credentials = self.host.service_credentials()?;
        for (source, url) in self.insights.feeds() {
            let Some(url) = url.filter(|url| !url.is_empty()) else {
                tracing::warn!(source = %source, "feed URL unset; its indicators stay empty");
                continue;
            };
            // Watch streams are long-lived; no call deadline on them.
            let channel = lazy_channel(
                url,
                std::time::Duration::from_secs(365 * 24 * 3600),
                self.host.client_tls(),
                &settings.keepalive,
            )?;
            let follower = Follower::new(pool.clone(), source, channel, credentials.clone());
            follower.spawn(source.follower_name(), self.host.supervisor());
        }
        let changes = Changes::spawn(pool.clone(), self.host.supervisor());
        let indicators = Indicators::new(
            pool,
            self.clock,
            self.insights.targets(),
            self.insights.usd_rates.clone(),
        );
        let api = InsightsApi::new(indicators, changes, shutdown.clone());
        let max_message = settings.max_message_bytes;
        let grpc = || {
            InsightsServiceServer::new(api.clone())
                .max_decoding_message_size(max_message)
                .max_encoding_message_size(max_message)
        };
        let page = web::Page {
            listener: self.http,
            dashboard_dir: self.insights.dashboard_dir(),
            cors_origins: self.insights.cors_origins.clone(),
            watchers: self.host.watch_limit(),
        };
        let http = tokio::spawn(page.serve(
            grpc(),
            settings,
            self.host.token_verifier(),
            shutdown.clone(),
        ));
        let served = self.host.serve(grpc()).await;
        shutdown.cancel();
        match http.await {
            Ok(Err(error)) => tracing::error!(error = %error, "dashboard server failed"),
            Err(error) => tracing::error!(error = %error, "dashboard server panicked"),
            Ok(Ok(())) => {}
        }
        served
    }
}
