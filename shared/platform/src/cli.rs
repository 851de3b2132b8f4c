//! Commands every service binary has besides serving.

use std::net::SocketAddr;
use std::time::Duration;

use crate::auth::Role;
use crate::config::{ServerSettings, parse_duration};
use crate::feeds::WatchFeedsArgs;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Print a bearer token signed with ONESTOP_AUTH_SECRET.
    IssueToken(IssueTokenArgs),
    /// Ask a running service over grpc.health.v1 whether it is serving;
    /// exits 0 when it is (for container healthchecks).
    Probe(ProbeArgs),
    /// Print the events of several services' feeds merged, live, as JSON
    /// lines, resuming from a cursor file: a reference dashboard consumer.
    WatchFeeds(WatchFeedsArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ProbeArgs {
    /// Address to probe [default: 127.0.0.1 and the port of ONESTOP_LISTEN].
    #[arg(long)]
    pub addr: Option<SocketAddr>,
    /// Health service name; the event feed's flips with the database like
    /// the service's own.
    #[arg(long, default_value = "onestop.events.v1.EventFeedService")]
    pub service: String,
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    pub timeout: Duration,
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

/// Runs `command`; `default_port` is the service's well-known port.
pub async fn run(
    command: AdminCommand,
    settings: &ServerSettings,
    default_port: u16,
) -> anyhow::Result<()> {
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
        AdminCommand::Probe(args) => {
            let addr = args.addr.unwrap_or_else(|| {
                SocketAddr::from(([127, 0, 0, 1], settings.listen_addr(default_port).port()))
            });
            probe(addr, &args.service, args.timeout).await
        }
        AdminCommand::WatchFeeds(args) => crate::feeds::watch(args, settings).await,
    }
}

async fn probe(addr: SocketAddr, service: &str, timeout: Duration) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let check = async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
            .connect()
            .await?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest {
                service: service.to_owned(),
            })
            .await?;
        anyhow::Ok(response.into_inner().status())
    };
    match tokio::time::timeout(timeout, check).await {
        Ok(Ok(ServingStatus::Serving)) => Ok(()),
        Ok(Ok(status)) => anyhow::bail!("{addr} {service}: {}", status.as_str_name()),
        Ok(Err(error)) => anyhow::bail!("{addr}: {error}"),
        Err(_) => anyhow::bail!("{addr}: no answer within {timeout:?}"),
    }
}
