//! Builds the intake server: bind first, then database, then serve with the
//! hand-off relay, the owners' feed followers and the webhook dispatcher
//! beside it (each records intake itself as the actor of what it changes).

use onestop_contracts::intake::v1::intake_service_server::IntakeServiceServer;
use onestop_domain::NeedOwner;
use onestop_platform::config::ServerSettings;
use onestop_platform::events::OwnFeed;
use onestop_platform::server::CancellationToken;
use onestop_platform::server::ServiceHost;
use onestop_platform::time::SystemClock;
use sqlx::PgPool;
use std::sync::Arc;
use tokio::sync::Notify;

use crate::follow::Follower;
use crate::grpc::{Downstreams, IntakeApi, WebhookRegistry};
use crate::handoff::Relay;
use crate::upstreams::{UpstreamSettings, Upstreams};
use crate::webhooks::dispatch::{Dispatcher, Feed, Source};

pub const SERVICE_NAME: &str = "intake";
pub const DEFAULT_PORT: u16 = 50051;

/// The supervised loop delivering `owner`'s needs.
fn relay_name(owner: NeedOwner) -> &'static str {
    match owner {
        NeedOwner::Mentoring => "relay-mentoring",
        NeedOwner::Buyers => "relay-buyers",
        NeedOwner::Referral => "relay-referral",
    }
}

/// The feeds webhooks deliver from: intake's own, read in-process, and
/// each configured owner's.
fn webhook_sources(own: OwnFeed, upstreams: &Upstreams) -> Vec<Source> {
    let mut sources = vec![Source {
        name: SERVICE_NAME,
        feed: Feed::Own(own),
    }];
    for owner in upstreams.configured_owners() {
        if let Some(channel) = upstreams.channel(owner) {
            sources.push(Source {
                name: crate::domain::owner_events::feed_name(owner),
                feed: Feed::Remote(channel.clone()),
            });
        }
    }
    sources
}

pub struct Application {
    host: ServiceHost,
    upstreams: Upstreams,
}

impl Application {
    /// Binds the listen address (port 0 picks a free one), connects to the
    /// database and applies migrations.
    pub async fn build(settings: ServerSettings) -> anyhow::Result<Self> {
        Self::build_with_upstreams(settings, UpstreamSettings::default()).await
    }

    /// As [`Application::build`], handing needs to and following the
    /// owners `upstreams` names.
    pub async fn build_with_upstreams(
        settings: ServerSettings,
        upstreams: UpstreamSettings,
    ) -> anyhow::Result<Self> {
        let host = ServiceHost::start(
            SERVICE_NAME,
            DEFAULT_PORT,
            settings,
            sqlx::migrate!("./migrations"),
        )
        .await?;
        let upstreams = Upstreams::connect(&upstreams, &host)?;
        Ok(Self { host, upstreams })
    }

    pub fn pool(&self) -> PgPool {
        self.host.pool().clone()
    }
}

impl onestop_platform::server::Application for Application {
    fn local_addr(&self) -> std::net::SocketAddr {
        self.host.local_addr()
    }

    /// Cancel to shut the server, the relay and the followers down
    /// gracefully.
    fn shutdown_token(&self) -> CancellationToken {
        self.host.shutdown_token()
    }

    async fn run_until_stopped(self) -> anyhow::Result<()> {
        let pool = self.host.pool().clone();
        let supervisor = self.host.supervisor();
        let relay = Arc::new(Relay::new(
            pool.clone(),
            self.upstreams.clone(),
            Arc::new(SystemClock),
        ));
        for owner in relay.owners() {
            let relay = relay.clone();
            supervisor.spawn(relay_name(owner), move |beat| {
                onestop_platform::audit::as_service(SERVICE_NAME, relay.clone().run(owner, beat))
            });
        }
        crate::requests::spawn(pool.clone(), Arc::new(SystemClock), supervisor);
        for (name, follower) in Follower::for_upstreams(&pool, &self.upstreams) {
            follower.spawn(name, supervisor);
        }
        let changed = Arc::new(Notify::new());
        let dispatcher = Arc::new(Dispatcher::new(
            pool.clone(),
            webhook_sources(self.host.own_feed(), &self.upstreams),
            self.upstreams.credentials.clone(),
            self.upstreams.webhooks.clone(),
            changed.clone(),
        ));
        supervisor.spawn("webhook-dispatcher", move |beat| {
            dispatcher.clone().run(beat)
        });
        let webhooks = WebhookRegistry {
            changed,
            secret_overlap: self.upstreams.webhooks.webhook_secret_overlap,
        };
        let max_message = self.host.settings().max_message_bytes;
        let downstreams = Downstreams {
            referral: self.upstreams.referral.clone(),
            buyers: self.upstreams.buyers.clone(),
            credentials: self.upstreams.credentials.clone(),
        };
        let api = IntakeServiceServer::new(IntakeApi::new(
            self.host.pool().clone(),
            downstreams,
            webhooks,
        ))
        .max_decoding_message_size(max_message)
        .max_encoding_message_size(max_message);
        self.host.serve(api).await
    }
}
