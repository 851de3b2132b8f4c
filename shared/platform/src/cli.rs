//! Commands every service binary has besides serving.

use std::time::Duration;

use crate::auth::Role;
use crate::config::{ServerSettings, parse_duration};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Print a bearer token signed with ONESTOP_AUTH_SECRET.
    IssueToken(IssueTokenArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct IssueTokenArgs {
    /// agency, advisor, trade_office, dashboard, service or admin.
    #[arg(long)]
    pub role: Role,
    /// The agency, advisor or overseas office id the token acts for
    /// (required for agency, advisor and trade_office; refused otherwise).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Who holds the token, for audit (a handle, not a personal name).
    #[arg(long, default_value = "operator")]
    pub subject: String,
    /// Lifetime, e.g. 12h or 30d.
    #[arg(long, default_value = "30d", value_parser = parse_duration)]
    pub ttl: Duration,
}

impl clap::ValueEnum for Role {
    fn value_variants<'a>() -> &'a [Self] {
        &Role::ALL
    }
    fn to_possible_value(&self) -> Option<clap::builder::PossibleValue> {
        Some(clap::builder::PossibleValue::new(self.as_str()))
    }
}

pub fn run(command: AdminCommand, settings: &ServerSettings) -> anyhow::Result<()> {
    match command {
        AdminCommand::IssueToken(args) => {
            let keys = settings.token_keys();
            if keys.is_dev_secret() {
                eprintln!(
                    "note: ONESTOP_AUTH_SECRET is unset; this token is signed with the development secret"
                );
            }
            let token = keys.issue(&args.subject, args.role, args.tenant.as_deref(), args.ttl)?;
            println!("{token}");
            Ok(())
        }
    }
}
