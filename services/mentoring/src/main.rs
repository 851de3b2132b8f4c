use onestop_mentoring::admin::seed::{self, SeedAdvisorsArgs};
use onestop_mentoring::startup::{Application, DEFAULT_PORT, MentoringSettings, SERVICE_NAME};
use onestop_platform::cli::AdminCommand;
use onestop_platform::config::ServerSettings;
use onestop_platform::time::SystemClock;

/// OneStop mentoring service: advisor pool, explained matching, three-year
/// continuity with warm handover, home-doctor cadence, fee ledger. Serves
/// gRPC on ONESTOP_LISTEN (default 0.0.0.0:50052).
#[derive(clap::Parser)]
#[command(name = "onestop-mentoring", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: ServerSettings,
    #[command(flatten)]
    mentoring: MentoringSettings,
}

#[derive(clap::Subcommand)]
enum Command {
    #[command(flatten)]
    Admin(AdminCommand),
    /// Register the demo advisors (or those in --file) with the running
    /// service at ONESTOP_MENTORING_URL; seeding again changes nothing.
    SeedAdvisors(SeedAdvisorsArgs),
}

#[tokio::main]
async fn main() -> std::process::ExitCode {
    onestop_platform::cli::exit_code(run(onestop_platform::cli::parse()).await)
}

async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Some(Command::Admin(command)) => {
            onestop_platform::cli::run(command, &cli.settings, DEFAULT_PORT).await
        }
        Some(Command::SeedAdvisors(args)) => {
            let registered = seed::run(&cli.settings, &args).await?;
            println!("{registered} advisors registered (or already there)");
            Ok(())
        }
        None => {
            onestop_platform::server::run(
                SERVICE_NAME,
                cli.settings.log_format,
                Application::build_with(
                    cli.settings,
                    cli.mentoring,
                    std::sync::Arc::new(SystemClock),
                ),
            )
            .await
        }
    }
}
