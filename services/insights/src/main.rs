use onestop_insights::startup::{Application, DEFAULT_PORT, InsightsSettings, SERVICE_NAME};
use onestop_platform::cli::AdminCommand;
use onestop_platform::config::ServerSettings;
use onestop_platform::time::SystemClock;

/// OneStop insights: live indicators from the four services' event feeds.
/// Serves gRPC on ONESTOP_LISTEN (default 0.0.0.0:50055) and the dashboard
/// page with gRPC-Web on ONESTOP_HTTP_LISTEN (default 0.0.0.0:8080).
#[derive(clap::Parser)]
#[command(name = "onestop-insights", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<AdminCommand>,
    #[command(flatten)]
    settings: ServerSettings,
    #[command(flatten)]
    insights: InsightsSettings,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    onestop_platform::cli::exit_code(run(onestop_platform::cli::parse()).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(command) => onestop_platform::cli::run(command, &cli.settings, DEFAULT_PORT).await,
        None => {
            onestop_platform::server::run(
                SERVICE_NAME,
                cli.settings.log_format,
                Application::build_with(
                    cli.settings,
                    cli.insights,
                    std::sync::Arc::new(SystemClock),
                ),
            )
            .await
        }
    }
}
