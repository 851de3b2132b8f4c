//! The services intake hands needs to and follows: mentoring, buyers and
//! referral, each reached at its `ONESTOP_*_URL`.

use std::time::Duration;

use onestop_domain::NeedOwner;
use onestop_platform::client::{ServiceCredentials, lazy_channel};
use onestop_platform::server::ServiceHost;
use tonic::transport::Channel;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct UpstreamSettings {
    /// gRPC URL of the mentoring service. Unset, MENTORING needs wait
    /// undelivered until it is configured.
    #[arg(long, env = "ONESTOP_MENTORING_URL")]
    pub mentoring_url: Option<String>,

    /// gRPC URL of the buyer discovery service.
    #[arg(long, env = "ONESTOP_BUYERS_URL")]
    pub buyers_url: Option<String>,

    /// gRPC URL of the agency referral service.
    #[arg(long, env = "ONESTOP_REFERRAL_URL")]
    pub referral_url: Option<String>,

    /// Longest wait between two delivery attempts to an owner that keeps
    /// failing (the wait doubles from half a second up to this).
    #[arg(long, env = "ONESTOP_HANDOFF_MAX_BACKOFF", default_value = "30s", value_parser = onestop_platform::config::parse_positive_duration)]
    pub handoff_max_backoff: Duration,

    /// How many buyers each buyer-discovery need asks for.
    #[arg(long, env = "ONESTOP_BUYERS_PER_NEED", default_value_t = 5)]
    pub buyers_per_need: u32,

    #[command(flatten)]
    pub webhooks: crate::webhooks::WebhookSettings,
}

/// Connected (lazily) upstreams plus the credentials intake calls them with.
#[derive(Clone)]
pub struct Upstreams {
    pub mentoring: Option<Channel>,
    pub buyers: Option<Channel>,
    pub referral: Option<Channel>,
    pub credentials: ServiceCredentials,
    pub max_backoff: Duration,
    pub buyers_per_need: u32,
    /// How long a claimed need is the claiming relay's: well past a call's
    /// deadline, so it runs out only when that relay died mid-call.
    pub lease: Duration,
    pub webhooks: crate::webhooks::WebhookSettings,
}

impl Upstreams {
    /// Channels to the configured owners (TLS for `https://` URLs) and
    /// intake's own service key, which signs every hand-off and feed watch
    /// (required: ONESTOP_SERVICE_KEY, or development mode).
    pub fn connect(settings: &UpstreamSettings, host: &ServiceHost) -> anyhow::Result<Self> {
        let timeout = host.settings().request_timeout;
        let keepalive = host.settings().keepalive;
        let channel = |url: &Option<String>| {
            url.as_deref()
                .filter(|url| !url.is_empty())
                .map(|url| lazy_channel(url, timeout, host.client_tls(), &keepalive))
                .transpose()
        };
        Ok(Self {
            mentoring: channel(&settings.mentoring_url)?,
            buyers: channel(&settings.buyers_url)?,
            referral: channel(&settings.referral_url)?,
            credentials: host.service_credentials()?,
            max_backoff: settings.handoff_max_backoff,
            buyers_per_need: settings.buyers_per_need.clamp(1, 50),
            lease: timeout.saturating_mul(2) + Duration::from_secs(10),
            webhooks: settings.webhooks.clone(),
        })
    }

    pub fn channel(&self, owner: NeedOwner) -> Option<&Channel> {
        match owner {
            NeedOwner::Mentoring => self.mentoring.as_ref(),
            NeedOwner::Buyers => self.buyers.as_ref(),
            NeedOwner::Referral => self.referral.as_ref(),
        }
    }

    /// Owners intake can deliver to and follow.
    pub fn configured_owners(&self) -> Vec<NeedOwner> {
        [NeedOwner::Mentoring, NeedOwner::Buyers, NeedOwner::Referral]
            .into_iter()
            .filter(|owner| self.channel(*owner).is_some())
            .collect()
    }
}
