//! Builds the referral server: bind first, then database, then serve with
//! the SLA sweeper and the follower of intake's feed (erasures) beside it.

use std::sync::Arc;
use std::time::Duration;

use onestop_contracts::referral::v1::referral_service_server::ReferralServiceServer;
use onestop_platform::config::ServerSettings;
use onestop_platform::server::{CancellationToken, ServiceHost};
use onestop_platform::time::{Clock, SystemClock};
use sqlx::PgPool;

use onestop_contracts::event_types::ReferralEvent;
use onestop_platform::company_feed::{self, IntakeFeedSettings, OwnerParts};

use crate::erasure::ReferralEraser;
use crate::grpc::ReferralApi;
use crate::sweeper;
use crate::withdrawal::ReferralCloser;

pub const SERVICE_NAME: &str = "referral";
pub const DEFAULT_PORT: u16 = 50054;

/// What the referral service adds to the common settings.
#[derive(Debug, Clone, clap::Args)]
pub struct ReferralSettings {
    /// How often this replica looks for referrals past their response SLA.
    #[arg(long, env = "ONESTOP_SLA_SWEEP_INTERVAL", default_value = "30s",
          value_parser = onestop_platform::config::parse_positive_duration)]
    pub sla_sweep_interval: Duration,

    #[command(flatten)]
    pub intake: IntakeFeedSettings,
}

impl Default for ReferralSettings {
    fn default() -> Self {
        Self {
            sla_sweep_interval: Duration::from_secs(30),
            intake: IntakeFeedSettings::default(),
        }
    }
}

pub struct Application {
    host: ServiceHost,
    referral: ReferralSettings,
    clock: Arc<dyn Clock>,
}

impl Application {
    /// Binds the listen address (port 0 picks a free one), connects to the
    /// database and applies migrations.
    pub async fn build(settings: ServerSettings) -> anyhow::Result<Self> {
        Self::build_with(settings, ReferralSettings::default(), Arc::new(SystemClock)).await
    }

    /// As `build`, with the service's own settings and the clock that
    /// stamps referrals and drives the SLA sweeper (tests pass their own).
    pub async fn build_with(
        settings: ServerSettings,
        referral: ReferralSettings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let mut host = ServiceHost::start(
            SERVICE_NAME,
            DEFAULT_PORT,
            settings,
            sqlx::migrate!("./migrations"),
        )
        .await?;
        host.trim_for_partners(crate::routing::trim_for_agency);
        Ok(Self {
            host,
            referral,
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
        let pool = self.host.pool().clone();
        sweeper::spawn(
            pool.clone(),
            self.clock.clone(),
            self.referral.sla_sweep_interval,
            self.host.supervisor(),
        );
        company_feed::spawn(
            pool.clone(),
            SERVICE_NAME,
            &self.referral.intake,
            &self.host,
            OwnerParts {
                eraser: ReferralEraser,
                erased: ReferralEvent::PersonalDataErased,
                closer: ReferralCloser {
                    clock: self.clock.clone(),
                },
                ladder: (),
                requests: (),
            },
        )?;
        let max_message = self.host.settings().max_message_bytes;
        let api = ReferralServiceServer::new(ReferralApi::new(pool, self.clock))
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message);
        self.host.serve(api).await
    }
}
