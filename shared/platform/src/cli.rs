//! Commands every service binary has besides serving.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use chrono::{DateTime, Utc};

use crate::auth::{DEV_SERVICES, KeyDirectory, KeyOwner, Revocation, RevocationList, Role};
use crate::config::{ServerSettings, parse_positive_duration};
use crate::feeds::WatchFeedsArgs;

#[derive(Debug, Clone, clap::Subcommand)]
pub enum AdminCommand {
    /// Print a bearer token signed with the issuer key (ONESTOP_ISSUER_KEY).
    IssueToken(IssueTokenArgs),
    /// Generate, rotate and retire signing keys; revoke a partner's tokens.
    #[command(subcommand)]
    Keys(KeysCommand),
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
    /// Health service name: `readiness` follows the database, `liveness`
    /// only whether the process answers.
    #[arg(long, default_value = crate::server::READINESS)]
    pub service: String,
    #[arg(long, default_value = "3s", value_parser = parse_positive_duration)]
    pub timeout: Duration,
    /// The name the listener's certificate must carry when it serves TLS
    /// (the certificates `keys generate --tls` writes carry `localhost`).
    #[arg(long, default_value = "localhost")]
    pub server_name: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct IssueTokenArgs {
    /// agency, advisor, trade_office, dashboard or admin (services sign
    /// their own tokens with their own keys).
    #[arg(long)]
    pub role: Role,
    /// The agency, advisor or overseas office id the token acts for
    /// (required for agency, advisor and trade_office; refused otherwise).
    #[arg(long)]
    pub tenant: Option<String>,
    /// Who holds the token, for audit (a handle, not a personal name).
    #[arg(long, default_value = "operator")]
    pub subject: String,
    /// Lifetime, e.g. 15m, 12h or 30d (at most 30d).
    #[arg(long, default_value = "1h", value_parser = parse_positive_duration)]
    pub ttl: Duration,
}

#[derive(Debug, Clone, clap::Subcommand)]
pub enum KeysCommand {
    /// Write a new issuer key, one key per service and the public key set
    /// into DIR: DIR/public/jwks.json (every service), DIR/operator/
    /// issuer.key.pem (operators only), DIR/<service>/service.key.pem.
    Generate(GenerateKeysArgs),
    /// Start a rollover: a new key for the issuer or one service replaces
    /// its key file and joins the key set beside the old one.
    Rotate(RotateKeyArgs),
    /// End a rollover: drop a key from the key set; what it signed is
    /// refused once the services reload.
    Retire(RetireKeyArgs),
    /// Refuse a partner's tokens issued up to now (or --before), on every
    /// replica within ONESTOP_KEYS_RELOAD.
    Revoke(RevokeArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct GenerateKeysArgs {
    /// The key directory to write.
    #[arg(long)]
    pub out: PathBuf,
    /// The services to make keys for (repeat) [default: every service].
    #[arg(long = "service")]
    pub services: Vec<String>,
    /// Do nothing when DIR already holds a key set (for a job that runs on
    /// every start, like compose's).
    #[arg(long)]
    pub keep_existing: bool,
    /// Also write a private CA and a certificate per service (and one for
    /// the operator's commands): DIR/public/ca.pem, DIR/<service>/tls.pem.
    #[arg(long)]
    pub tls: bool,
    /// Another name every certificate carries (repeat).
    #[arg(long = "tls-name")]
    pub tls_names: Vec<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RotateKeyArgs {
    /// The key directory `keys generate` wrote.
    #[arg(long)]
    pub dir: PathBuf,
    /// Rotate the issuer key.
    #[arg(long, conflicts_with = "service", required_unless_present = "service")]
    pub issuer: bool,
    /// Rotate this service's key.
    #[arg(long)]
    pub service: Option<String>,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RetireKeyArgs {
    #[arg(long)]
    pub dir: PathBuf,
    /// The key id (kid) to drop.
    #[arg(long)]
    pub kid: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct RevokeArgs {
    /// The revocation list file the services read (ONESTOP_REVOCATIONS).
    #[arg(long)]
    pub list: PathBuf,
    /// The agency, advisor or office whose tokens to revoke.
    #[arg(long, required_unless_present = "subject")]
    pub tenant: Option<String>,
    /// Only tokens of this holder (subject).
    #[arg(long)]
    pub subject: Option<String>,
    /// Only tokens of this role.
    #[arg(long)]
    pub role: Option<Role>,
    /// Revoke tokens issued up to this instant (RFC 3339) [default: now].
    #[arg(long, value_parser = parse_instant)]
    pub before: Option<DateTime<Utc>>,
}

fn parse_instant(text: &str) -> Result<DateTime<Utc>, String> {
    DateTime::parse_from_rfc3339(text)
        .map(|at| at.with_timezone(&Utc))
        .map_err(|error| format!("{text:?} is not an RFC 3339 instant: {error}"))
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
            let issuer = settings.auth.issuer()?;
            let token = issuer.issue(&args.subject, args.role, args.tenant.as_deref(), args.ttl)?;
            println!("{token}");
            Ok(())
        }
        AdminCommand::Keys(command) => keys(command),
        AdminCommand::Probe(args) => {
            let addr = args.addr.unwrap_or_else(|| {
                SocketAddr::from(([127, 0, 0, 1], settings.listen_addr(default_port).port()))
            });
            let (url, tls) = if settings.tls.serves_tls() {
                (
                    format!("https://{addr}"),
                    settings.tls.probe_client(&args.server_name)?,
                )
            } else {
                (format!("http://{addr}"), Default::default())
            };
            probe(&url, &tls, &args.service, args.timeout).await
        }
        AdminCommand::WatchFeeds(args) => crate::feeds::watch(args, settings).await,
    }
}

fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::Generate(args) => {
            let services: Vec<String> = if args.services.is_empty() {
                DEV_SERVICES.iter().map(|s| (*s).to_owned()).collect()
            } else {
                args.services
            };
            let directory = KeyDirectory::new(&args.out);
            if args.keep_existing && directory.exists() {
                println!("{} exists; keys kept", directory.jwks_path().display());
            } else {
                for (owner, kid) in directory.generate(&services)? {
                    println!("{owner}: {kid}");
                }
                println!("public key set: {}", directory.jwks_path().display());
            }
            if args.tls {
                if crate::tls::generate_certificates(&args.out, &services, &args.tls_names)? {
                    println!("certificates: {}", args.out.join("public/ca.pem").display());
                } else {
                    println!("certificates exist; kept");
                }
            }
            Ok(())
        }
        KeysCommand::Rotate(args) => {
            let owner = match args.service {
                Some(service) => KeyOwner::Service(service),
                None => KeyOwner::Issuer,
            };
            let (old, new) = KeyDirectory::new(&args.dir).rotate(&owner)?;
            println!("{owner}: new key {new}");
            if let Some(old) = old {
                println!(
                    "the old key {old} stays trusted until `keys retire --kid {old}`; \
                     retire it once the tokens it signed have expired"
                );
            }
            Ok(())
        }
        KeysCommand::Retire(args) => {
            let owner = KeyDirectory::new(&args.dir).retire(&args.kid)?;
            println!("retired {} of {owner}", args.kid);
            Ok(())
        }
        KeysCommand::Revoke(args) => {
            let mut list = RevocationList::read(&args.list)?;
            let entry = Revocation {
                tenant: args.tenant,
                subject: args.subject,
                role: args.role,
                issued_before: args.before.unwrap_or_else(Utc::now),
            };
            println!(
                "revoking tokens issued up to {}",
                entry.issued_before.to_rfc3339()
            );
            list.revoked.push(entry);
            list.write(&args.list)
        }
    }
}

async fn probe(
    url: &str,
    tls: &crate::tls::ClientTls,
    service: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};
    let addr = url;
    let check = async {
        let channel = tls.endpoint(url)?.connect().await?;
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
        Ok(Err(error)) => anyhow::bail!("{addr}: {error:#}"),
        Err(_) => anyhow::bail!("{addr}: no answer within {timeout:?}"),
    }
}

/// Parses a service binary's command line and environment. `--help` also
/// lists the variables telemetry reads; a refused setting names the
/// environment variable it may have come from beside the flag, and ends
/// the process with status 2.
pub fn parse<T: clap::Parser>() -> T {
    // Settings are global so they may stand before or after a subcommand.
    let mut command = T::command()
        .after_help(crate::telemetry::ENVIRONMENT_HELP)
        .mut_args(|arg| {
            if arg.get_long().is_some() {
                arg.global(true)
            } else {
                arg
            }
        });
    let parsed = command
        .try_get_matches_from_mut(std::env::args_os())
        .and_then(|mut matches| T::from_arg_matches_mut(&mut matches));
    match parsed {
        Ok(cli) => cli,
        Err(error) => {
            let error = error.with_cmd(&command);
            if !error.use_stderr() {
                error.exit();
            }
            let rendered = error.render().to_string();
            eprintln!("{}", one_line(&name_the_variable(&command, &rendered)));
            std::process::exit(2);
        }
    }
}

/// Rewrites clap's "for '--flag <FLAG>'" into "for ENV_VAR (--flag)" when
/// the flag has a variable: most settings come from the environment.
fn name_the_variable(command: &clap::Command, rendered: &str) -> String {
    command
        .get_arguments()
        .filter_map(|arg| Some((arg.get_long()?, arg.get_env()?.to_str()?)))
        .find_map(|(long, env)| {
            let start = rendered.find(&format!("'--{long} <"))?;
            let end = start + rendered[start..].find(">'")? + 2;
            Some(format!(
                "{}{env} (--{long}){}",
                &rendered[..start],
                &rendered[end..]
            ))
        })
        .unwrap_or_else(|| rendered.to_owned())
}

/// clap's message without the usage and "try --help" paragraphs, on one line.
fn one_line(rendered: &str) -> String {
    let message = rendered.split("\n\n").next().unwrap_or(rendered);
    let mut line = message
        .lines()
        .map(str::trim)
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    line.push_str(" (see --help)");
    line
}

/// The process status for `main`'s result: a failure is one line on
/// stderr, its causes joined, never a backtrace (RUST_BACKTRACE is set on
/// many machines and would bury the reason).
pub fn exit_code(result: anyhow::Result<()>) -> std::process::ExitCode {
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
