//! Builds the mentoring server: bind first, then database, then serve with
//! the sweeper and the follower of intake's feed (erasures) beside it.

use std::sync::Arc;
use std::time::Duration;

use onestop_contracts::mentoring::v1::mentoring_service_server::MentoringServiceServer;
use onestop_platform::config::ServerSettings;
use onestop_platform::server::{CancellationToken, ServiceHost};
use onestop_platform::time::{Clock, SystemClock};
use sqlx::PgPool;

use onestop_contracts::event_types::MentoringEvent;
use onestop_platform::company_feed::{self, IntakeFeedSettings, OwnerParts};

use crate::agency_requests::OverdueRequests;
use crate::continuity::Rules;
use crate::domain::cadence::Cadence;
use crate::domain::matching::Weights;
use crate::erasure::MentoringEraser;
use crate::grpc::MentoringApi;
use crate::ladder::CadenceFollower;
use crate::withdrawal::RequestCloser;

pub const SERVICE_NAME: &str = "mentoring";
pub const DEFAULT_PORT: u16 = 50052;

/// Mentoring's own settings, beside the ones every service reads.
#[derive(Debug, Clone, clap::Args)]
pub struct MentoringSettings {
    #[command(flatten)]
    pub cadence: Cadence,

    /// Days both advisors stay listed after a deactivation, unless the
    /// request names another window.
    #[arg(long, env = "ONESTOP_HANDOVER_DAYS", default_value_t = 30)]
    pub handover_days: u32,

    /// How often the sweeper raises overdue contacts, accrues fees, ends
    /// handover windows and fills the waitlist.
    #[arg(long, env = "ONESTOP_SWEEP_INTERVAL", default_value = "60s", value_parser = onestop_platform::config::parse_positive_duration)]
    pub sweep_interval: Duration,

    /// Whether the server sweeps by itself (first at start, then every
    /// `sweep_interval`). Always on for the binary; tests that drive the
    /// sweep step by step turn it off, so a sweep at start cannot race them.
    #[arg(skip = true)]
    pub background_sweep: bool,

    #[command(flatten)]
    pub intake: IntakeFeedSettings,
}

impl Default for MentoringSettings {
    fn default() -> Self {
        Self {
            cadence: Cadence::default(),
            handover_days: 30,
            sweep_interval: Duration::from_secs(60),
            background_sweep: true,
            intake: IntakeFeedSettings::default(),
        }
    }
}

impl MentoringSettings {
    pub fn rules(&self) -> Rules {
        Rules {
            weights: Weights::default(),
            cadence: self.cadence,
            handover_days: self.handover_days,
        }
    }
}

pub struct Application {
    host: ServiceHost,
    settings: MentoringSettings,
    clock: Arc<dyn Clock>,
}

impl Application {
    /// Binds the listen address (port 0 picks a free one), connects to the
    /// database and applies migrations.
    pub async fn build(server: ServerSettings) -> anyhow::Result<Self> {
        Self::build_with(server, MentoringSettings::default(), Arc::new(SystemClock)).await
    }

    /// As [`Application::build`], with mentoring's own settings and the
    /// clock the API and the sweeper read (tests pass one they control).
    pub async fn build_with(
        server: ServerSettings,
        settings: MentoringSettings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let host = ServiceHost::start(
            SERVICE_NAME,
            DEFAULT_PORT,
            server,
            sqlx::migrate!("./migrations"),
        )
        .await?;
        Ok(Self {
            host,
            settings,
            clock,
        })
    }

    pub fn pool(&self) -> PgPool {
        self.host.pool().clone()
    }
}

impl onestop_platform::server::Application for Application {
    fn local_addr(&self) -> std::net::SocketAddr {
        self.host.local_addr()
    }

    /// Cancel to shut the server and the sweeper down gracefully.
    fn shutdown_token(&self) -> CancellationToken {
        self.host.shutdown_token()
    }

    async fn run_until_stopped(self) -> anyhow::Result<()> {
        let rules = self.settings.rules();
        if self.settings.background_sweep {
            crate::sweeper::spawn(
                self.host.pool().clone(),
                rules,
                self.clock.clone(),
                self.settings.sweep_interval,
                self.host.supervisor(),
            );
        }
        company_feed::spawn(
            self.host.pool().clone(),
            SERVICE_NAME,
            &self.settings.intake,
            &self.host,
            OwnerParts {
                eraser: MentoringEraser,
                erased: MentoringEvent::PersonalDataErased,
                closer: RequestCloser {
                    clock: self.clock.clone(),
                },
                ladder: CadenceFollower {
                    cadence: rules.cadence,
                },
                requests: OverdueRequests,
            },
        )?;
        let max_message = self.host.settings().max_message_bytes;
        let api = MentoringServiceServer::new(MentoringApi::new(
            self.host.pool().clone(),
            rules,
            self.clock.clone(),
        ))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
        self.host.serve(api).await
    }
}
