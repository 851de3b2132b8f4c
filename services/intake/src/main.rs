use onestop_intake::startup::{Application, DEFAULT_PORT, SERVICE_NAME};
use onestop_intake::upstreams::UpstreamSettings;
use onestop_platform::cli::AdminCommand;
use onestop_platform::config::ServerSettings;
use onestop_platform::server::Application as _;

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
    let _telemetry = onestop_platform::telemetry::init(
        &format!("onestop-{SERVICE_NAME}"),
        cli.settings.log_format,
    )?;
    let app = Application::build_with_upstreams(cli.settings, cli.upstreams).await?;
    onestop_platform::server::cancel_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}
