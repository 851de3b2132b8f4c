//! Command-line tasks of the buyers binary beside serving, one file each:
//! the CSV import of a trade office's buyers, seeding the demo buyers
//! through a running service, and the FindBuyers benchmark at registry
//! scale.

pub mod bench_find_buyers;
pub mod import_buyers;
pub mod seed_buyers;

use onestop_platform::config::ServerSettings;

use crate::startup::DEFAULT_PORT;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    #[command(flatten)]
    Platform(onestop_platform::cli::AdminCommand),
    /// Import a trade office's buyers from a CSV file (header row: ref,
    /// company_name, country, city, time_zone, hs_codes, languages,
    /// annual_import_usd, contact_name, contact_title, contact_email,
    /// contact_phone, website; lists separated by spaces or ';'). Good rows
    /// are stored as UNVERIFIED, bad rows are reported by line; rows whose
    /// ref the office already has are skipped, so a re-run adds nothing.
    ImportBuyers(import_buyers::ImportArgs),
    /// Register and verify the demo buyers (or those in --file) with the
    /// running service at ONESTOP_BUYERS_URL; seeding again changes nothing.
    SeedBuyers(seed_buyers::SeedBuyersArgs),
    /// Load synthetic buyers into a scratch database created beside
    /// DATABASE_URL, serve them, and print FindBuyers latency percentiles
    /// against a GetBuyer baseline measured in the same run.
    BenchFindBuyers(bench_find_buyers::BenchArgs),
}

pub async fn run(command: Command, settings: ServerSettings) -> anyhow::Result<()> {
    match command {
        Command::Platform(command) => {
            onestop_platform::cli::run(command, &settings, DEFAULT_PORT).await
        }
        Command::ImportBuyers(args) => import_buyers::run(args, settings).await,
        Command::SeedBuyers(args) => {
            let seeded = seed_buyers::run(&settings, &args).await?;
            println!("{seeded} buyers registered and verified (or already there)");
            Ok(())
        }
        Command::BenchFindBuyers(args) => bench_find_buyers::run(args, settings).await,
    }
}

fn database_url(settings: &ServerSettings) -> anyhow::Result<String> {
    settings
        .database_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is required"))
}
