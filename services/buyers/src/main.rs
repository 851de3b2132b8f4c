use onestop_buyers::admin::Command;
use onestop_buyers::startup::{Application, SERVICE_NAME};
use onestop_platform::company_feed::IntakeFeedSettings;
use onestop_platform::config::ServerSettings;

/// OneStop buyer discovery service: vetted overseas buyers, matching,
/// consultations, sample tests and trade-show follow-up. Serves gRPC on
/// ONESTOP_LISTEN (default 0.0.0.0:50053).
#[derive(clap::Parser)]
#[command(name = "onestop-buyers", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: ServerSettings,
    #[command(flatten)]
    intake: IntakeFeedSettings,
    /// How often the follow-up sweeper raises due checkpoints and moves
    /// leads without progress to reactivation.
    #[arg(long, env = "ONESTOP_SWEEP_INTERVAL", default_value = "60s",
          value_parser = onestop_platform::config::parse_positive_duration)]
    sweep_interval: std::time::Duration,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    onestop_platform::cli::exit_code(run(onestop_platform::cli::parse()).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(command) = cli.command {
        return onestop_buyers::admin::run(command, cli.settings).await;
    }
    onestop_platform::server::run(SERVICE_NAME, cli.settings.log_format, async move {
        let app = Application::build_following(cli.settings, cli.intake).await?;
        Ok(app.with_sweep_interval(cli.sweep_interval))
    })
    .await
}
