//! Settings every service reads from its environment (12-factor); each is
//! also a flag, and `--help` lists them with their env names and defaults.

use std::net::SocketAddr;
use std::time::Duration;

use crate::auth::AuthSettings;
use crate::telemetry::LogFormat;
use crate::tls::TlsSettings;

#[derive(Debug, Clone, clap::Args)]
pub struct ServerSettings {
    /// Postgres URL of this service's own database.
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,

    /// Address to listen on [default: 0.0.0.0:<service port>].
    #[arg(long, env = "ONESTOP_LISTEN")]
    pub listen: Option<SocketAddr>,

    /// Key sets, service and issuer keys, revocations, OIDC providers.
    #[command(flatten)]
    pub auth: AuthSettings,

    /// TLS for the listener and for this process's clients.
    #[command(flatten)]
    pub tls: TlsSettings,

    /// Longest a unary call may run before it is cancelled.
    #[arg(long, env = "ONESTOP_REQUEST_TIMEOUT", default_value = "30s", value_parser = parse_positive_duration)]
    pub request_timeout: Duration,

    /// Calls in flight across all connections before new ones are refused
    /// with RESOURCE_EXHAUSTED.
    #[arg(long, env = "ONESTOP_MAX_IN_FLIGHT", default_value_t = 256)]
    pub max_in_flight: usize,

    /// Watch streams open at once on this replica (event feed, live
    /// indicators) before new ones are refused with RESOURCE_EXHAUSTED;
    /// counted apart from the in-flight limit.
    #[arg(long, env = "ONESTOP_MAX_WATCHERS", default_value_t = 1024)]
    pub max_watchers: usize,

    /// Watch streams one caller (role, tenant and subject) may hold open on
    /// this replica at once.
    #[arg(long, env = "ONESTOP_MAX_WATCHERS_PER_CALLER", default_value_t = 32)]
    pub max_watchers_per_caller: usize,

    /// Largest request or response message, in bytes.
    #[arg(long, env = "ONESTOP_MAX_MESSAGE_BYTES", default_value_t = 4 * 1024 * 1024)]
    pub max_message_bytes: usize,

    /// After SIGTERM, how long in-flight calls may finish before the
    /// process exits anyway. Open Watch streams are ended at once.
    #[arg(long, env = "ONESTOP_SHUTDOWN_GRACE", default_value = "10s", value_parser = parse_duration)]
    pub shutdown_grace: Duration,

    /// HTTP/2 keepalive on every connection this process serves or makes.
    #[command(flatten)]
    pub keepalive: Keepalive,

    /// How often the database is probed for the health status.
    #[arg(long, env = "ONESTOP_HEALTH_INTERVAL", default_value = "2s", value_parser = parse_positive_duration)]
    pub health_interval: Duration,

    /// Connections in this replica's database pool.
    #[arg(long, env = "ONESTOP_DB_MAX_CONNECTIONS", default_value_t = 10)]
    pub db_max_connections: u32,

    /// Longest one SQL statement may run before Postgres cancels it; 0
    /// means no limit. Migrations run without it.
    #[arg(long, env = "ONESTOP_STATEMENT_TIMEOUT", default_value = "10s", value_parser = parse_duration)]
    pub statement_timeout: Duration,

    /// How long events stay on the feed; older cursors get OUT_OF_RANGE.
    #[arg(long, env = "ONESTOP_EVENT_RETENTION", default_value = "90d", value_parser = parse_positive_duration)]
    pub event_retention: Duration,

    /// How log lines are written: text, or json for one JSON object per line.
    #[arg(long, env = "ONESTOP_LOG_FORMAT", default_value = "text", value_parser = LogFormat::parse)]
    pub log_format: LogFormat,

    /// How long idempotency keys are remembered.
    #[arg(long, env = "ONESTOP_IDEMPOTENCY_RETENTION", default_value = "30d", value_parser = parse_positive_duration)]
    pub idempotency_retention: Duration,
}

/// HTTP/2 PINGs on every connection, served and made, so that a peer lost
/// without a word (a node gone, a NAT dropping the flow) is noticed within
/// `interval + timeout` instead of never: a feed watch on such a connection
/// would otherwise wait forever.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct Keepalive {
    /// How often a PING goes out on every HTTP/2 connection, idle or not.
    #[arg(
        long = "keepalive-interval",
        env = "ONESTOP_KEEPALIVE_INTERVAL",
        default_value = "20s",
        value_parser = parse_duration
    )]
    pub interval: Duration,

    /// How long a PING may go unanswered before the connection is closed.
    #[arg(
        long = "keepalive-timeout",
        env = "ONESTOP_KEEPALIVE_TIMEOUT",
        default_value = "10s",
        value_parser = parse_duration
    )]
    pub timeout: Duration,
}

impl Default for Keepalive {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(20),
            timeout: Duration::from_secs(10),
        }
    }
}

impl Keepalive {
    /// A server that pings its clients.
    pub fn server(&self, builder: tonic::transport::Server) -> tonic::transport::Server {
        builder
            .http2_keepalive_interval(Some(self.interval))
            .http2_keepalive_timeout(Some(self.timeout))
            .tcp_keepalive(Some(self.interval))
    }

    /// A client that pings its server, also while no call is open.
    pub fn endpoint(&self, endpoint: tonic::transport::Endpoint) -> tonic::transport::Endpoint {
        endpoint
            .http2_keep_alive_interval(self.interval)
            .keep_alive_timeout(self.timeout)
            .keep_alive_while_idle(true)
            .tcp_keepalive(Some(self.interval))
    }
}

impl ServerSettings {
    /// Settings for a test or embedded run: defaults, the given database,
    /// an ephemeral port on loopback.
    pub fn for_database(database_url: impl Into<String>) -> Self {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Defaults {
            #[command(flatten)]
            settings: ServerSettings,
        }
        let mut settings = Defaults::parse_from(["defaults"]).settings;
        settings.database_url = Some(database_url.into());
        settings.listen = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
        settings
    }

    /// A channel to another service for a command run from this process's
    /// settings (seeding, watching feeds): its TLS and keepalive.
    pub fn channel(
        &self,
        url: &str,
        call_timeout: Duration,
    ) -> anyhow::Result<tonic::transport::Channel> {
        crate::client::lazy_channel(url, call_timeout, &self.tls.client()?, &self.keepalive)
    }

    pub fn listen_addr(&self, default_port: u16) -> SocketAddr {
        self.listen
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], default_port)))
    }
}

/// As [`parse_duration`], refusing zero: an interval, timeout or lifetime
/// of zero would make every call fail or every loop spin.
pub fn parse_positive_duration(text: &str) -> Result<Duration, String> {
    let duration = parse_duration(text)?;
    if duration.is_zero() {
        return Err(format!("{:?} must be above zero", text.trim()));
    }
    Ok(duration)
}

/// Parses "250ms", "30s", "5m", "12h", "90d" (a bare number is seconds).
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: u64 = number
        .parse()
        .map_err(|_| format!("{text:?} is not a duration like 30s, 500ms, 5m, 12h or 90d"))?;
    let seconds = |unit: u64| {
        number
            .checked_mul(unit)
            .map(Duration::from_secs)
            .ok_or_else(|| format!("{text:?} is too long a duration"))
    };
    match unit {
        "ms" => Ok(Duration::from_millis(number)),
        "" | "s" => seconds(1),
        "m" => seconds(60),
        "h" => seconds(3600),
        "d" => seconds(86_400),
        other => Err(format!(
            "unknown duration unit {other:?}; use ms, s, m, h or d"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("250ms"), Ok(Duration::from_millis(250)));
        assert_eq!(parse_duration("30"), Ok(Duration::from_secs(30)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("90d"), Ok(Duration::from_secs(90 * 86_400)));
        assert!(parse_duration("soon").is_err());
        assert!(parse_duration("3w").is_err());
        assert!(parse_duration("99999999999999999d").is_err());
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_positive_duration("0ms").is_err());
        assert_eq!(parse_positive_duration("1ms"), Ok(Duration::from_millis(1)));
    }

    #[test]
    fn defaults_parse() {
        let settings = ServerSettings::for_database("postgres://x/y");
        assert_eq!(settings.request_timeout, Duration::from_secs(30));
        assert_eq!(settings.statement_timeout, Duration::from_secs(10));
        assert_eq!(settings.listen_addr(50051).ip().to_string(), "127.0.0.1");
        assert_eq!(settings.keepalive, Keepalive::default());
        assert_eq!(settings.keepalive.interval, Duration::from_secs(20));
        assert_eq!(settings.keepalive.timeout, Duration::from_secs(10));
    }

    #[test]
    fn keepalive_settings_parse() {
        use clap::Parser;
        #[derive(clap::Parser)]
        struct Cli {
            #[command(flatten)]
            settings: ServerSettings,
        }
        let settings = Cli::parse_from([
            "cli",
            "--keepalive-interval",
            "5s",
            "--keepalive-timeout",
            "1500ms",
        ])
        .settings;
        assert_eq!(settings.keepalive.interval, Duration::from_secs(5));
        assert_eq!(settings.keepalive.timeout, Duration::from_millis(1500));
        assert!(Cli::try_parse_from(["cli", "--keepalive-interval", "soon"]).is_err());
    }
}
