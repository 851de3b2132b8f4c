use onestop_intake::startup::{Application, DEFAULT_PORT, SERVICE_NAME};
use onestop_intake::upstreams::UpstreamSettings;
use onestop_platform::cli::AdminCommand;
use onestop_platform::config::ServerSettings;

/// OneStop intake service: companies, readiness diagnosis, growth stage,
/// cases and their needs. Serves gRPC on ONESTOP_LISTEN (default
/// 0.0.0.0:50051).
#[derive(clap::Parser)]
#[command(name = "onestop-intake", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<AdminCommand>,
    #[command(flatten)]
    settings: ServerSettings,
    #[command(flatten)]
    upstreams: UpstreamSettings,
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    onestop_platform::cli::exit_code(run(onestop_platform::cli::parse()).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    if let Some(command) = cli.command {
        return onestop_platform::cli::run(command, &cli.settings, DEFAULT_PORT).await;
    }
    onestop_platform::server::run(
        SERVICE_NAME,
        cli.settings.log_format,
        Application::build_with_upstreams(cli.settings, cli.upstreams),
    )
    .await
}
