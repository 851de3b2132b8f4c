use onestop_platform::cli::AdminCommand;
use onestop_platform::config::ServerSettings;
use onestop_platform::time::SystemClock;
use onestop_referral::admin::seed::{self, SeedArgs};
use onestop_referral::startup::{Application, DEFAULT_PORT, ReferralSettings, SERVICE_NAME};

/// OneStop agency referral service: program directory, explained routing,
/// closed-loop referrals with SLA re-routing. Serves gRPC on ONESTOP_LISTEN
/// (default 0.0.0.0:50054).
#[derive(clap::Parser)]
#[command(name = "onestop-referral", version)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    settings: ServerSettings,
    #[command(flatten)]
    referral: ReferralSettings,
}

#[derive(clap::Subcommand)]
enum Command {
    #[command(flatten)]
    Admin(AdminCommand),
    /// Load the agency and program directory (the built-in seed unless
    /// --file is given) into DATABASE_URL; loading it again changes nothing.
    SeedDirectory(SeedArgs),
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
        Some(Command::SeedDirectory(args)) => {
            let summary = seed::run(&cli.settings, &args).await?;
            println!("{summary}");
            Ok(())
        }
        None => {
            onestop_platform::server::run(
                SERVICE_NAME,
                cli.settings.log_format,
                Application::build_with(
                    cli.settings,
                    cli.referral,
                    std::sync::Arc::new(SystemClock),
                ),
            )
            .await
        }
    }
}
