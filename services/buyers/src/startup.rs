//! Builds the buyers server: bind first, then database, then serve, with
//! the follow-up sweeper and the follower of intake's feed (who works with
//! which company, erasures) running beside it.

use std::sync::Arc;

use onestop_contracts::buyers::v1::buyer_service_server::BuyerServiceServer;
use onestop_platform::config::ServerSettings;
use onestop_platform::server::{CancellationToken, ServiceHost};
use onestop_platform::time::{Clock, SystemClock};
use sqlx::PgPool;

use onestop_contracts::event_types::BuyersEvent;
use onestop_platform::company_feed::{self, IntakeFeedSettings, OwnerParts};

use crate::erasure::BuyersEraser;
use crate::grpc::BuyersApi;
use crate::sweeper;
use crate::withdrawal::SearchCloser;

pub const SERVICE_NAME: &str = "buyers";
pub const DEFAULT_PORT: u16 = 50053;

pub struct Application {
    host: ServiceHost,
    clock: Arc<dyn Clock>,
    intake: IntakeFeedSettings,
    sweep_interval: std::time::Duration,
}

impl Application {
    /// Binds the listen address (port 0 picks a free one), connects to the
    /// database and applies migrations.
    pub async fn build(settings: ServerSettings) -> anyhow::Result<Self> {
        Self::build_with_clock(settings, Arc::new(SystemClock)).await
    }

    /// As `build`, following intake's feed at `intake` (who works with
    /// which company, erasures).
    pub async fn build_following(
        settings: ServerSettings,
        intake: IntakeFeedSettings,
    ) -> anyhow::Result<Self> {
        let mut app = Self::build(settings).await?;
        app.intake = intake;
        Ok(app)
    }

    /// As `build`, with the clock that vetting ages, follow-up cadences and
    /// the sweeper read.
    pub async fn build_with_clock(
        settings: ServerSettings,
        clock: Arc<dyn Clock>,
    ) -> anyhow::Result<Self> {
        let host = ServiceHost::start(
            SERVICE_NAME,
            DEFAULT_PORT,
            settings,
            sqlx::migrate!("./migrations"),
        )
        .await?;
        Ok(Self {
            host,
            clock,
            intake: IntakeFeedSettings::default(),
            sweep_interval: sweeper::EVERY,
        })
    }

    /// How often the follow-up sweeper runs (ONESTOP_SWEEP_INTERVAL).
    pub fn with_sweep_interval(mut self, every: std::time::Duration) -> Self {
        self.sweep_interval = every;
        self
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
        let max_message = self.host.settings().max_message_bytes;
        let pool = self.host.pool().clone();
        sweeper::spawn(
            pool.clone(),
            self.clock.clone(),
            self.sweep_interval,
            self.host.supervisor(),
        );
        company_feed::spawn(
            pool.clone(),
            SERVICE_NAME,
            &self.intake,
            &self.host,
            OwnerParts {
                eraser: BuyersEraser,
                erased: BuyersEvent::PersonalDataErased,
                closer: SearchCloser {
                    clock: self.clock.clone(),
                },
                ladder: (),
                requests: (),
            },
        )?;
        let api = BuyerServiceServer::new(BuyersApi::new(pool, self.clock))
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message);
        self.host.serve(api).await
    }
}
