//! Builds the intake server: bind first, then database, then serve.

use onestop_contracts::intake::v1::intake_service_server::IntakeServiceServer;
use onestop_platform::config::ServerSettings;
use onestop_platform::server::CancellationToken;
use onestop_platform::server::ServiceHost;
use sqlx::PgPool;

use crate::grpc::IntakeApi;

pub const SERVICE_NAME: &str = "intake";
pub const DEFAULT_PORT: u16 = 50051;

pub struct Application {
    host: ServiceHost,
}

impl Application {
    /// Binds the listen address (port 0 picks a free one), connects to the
    /// database and applies migrations.
    pub async fn build(settings: ServerSettings) -> anyhow::Result<Self> {
        let host = ServiceHost::start(
            SERVICE_NAME,
            DEFAULT_PORT,
            settings,
            sqlx::migrate!("./migrations"),
        )
        .await?;
        Ok(Self { host })
    }

    pub fn local_addr(&self) -> std::net::SocketAddr {
        self.host.local_addr()
    }

    pub fn pool(&self) -> PgPool {
        self.host.pool().clone()
    }

    /// Cancel to shut the server down gracefully.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.host.shutdown_token()
    }

    pub async fn run_until_stopped(self) -> anyhow::Result<()> {
        let max_message = self.host.settings().max_message_bytes;
        let api = IntakeServiceServer::new(IntakeApi::new(self.host.pool().clone()))
            .max_decoding_message_size(max_message)
            .max_encoding_message_size(max_message);
        self.host.serve(api).await
    }
}
