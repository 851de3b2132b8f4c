use clap::Parser;
use onestop_mentoring::startup::{Application, DEFAULT_PORT, MentoringSettings, SERVICE_NAME};
use onestop_platform::cli::AdminCommand;
use onestop_platform::config::ServerSettings;

/// OneStop mentoring service: advisor pool, explained matching, three-year
/// continuity with warm handover, home-doctor cadence, fee ledger. Serves
/// gRPC on ONESTOP_LISTEN (default 0.0.0.0:50052).
#[derive(Parser)]
#[command(name = "onestop-mentoring", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<AdminCommand>,
    #[command(flatten)]
    settings: ServerSettings,
    #[command(flatten)]
    mentoring: MentoringSettings,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return onestop_platform::cli::run(command, &cli.settings, DEFAULT_PORT).await;
    }
    let _telemetry = onestop_platform::telemetry::init(&format!("onestop-{SERVICE_NAME}"))?;
    let app = Application::build(cli.settings, cli.mentoring).await?;
    onestop_platform::server::cancel_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}
