//! Server assembly, in one place for every service: the listener is bound
//! first (tests pass port 0 and read the address back), then the database is
//! connected and migrated; `serve` adds health, reflection and the event
//! feed beside the service's own API, wraps them in the shared layers, and
//! drains gracefully on shutdown within a bound.

use std::convert::Infallible;
use std::net::SocketAddr;

use onestop_contracts::audit::v1::audit_service_server::AuditServiceServer;
use onestop_contracts::events::v1::event_feed_service_server::EventFeedServiceServer;
use sqlx::PgPool;
use sqlx::migrate::Migrator;
use tokio::net::TcpListener;
use tokio_stream::StreamExt;
use tokio_stream::wrappers::TcpListenerStream;
pub use tokio_util::sync::CancellationToken;
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::service::Routes;
use tonic_health::ServingStatus;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

use crate::audit::AuditService;
use crate::auth::TokenVerifier;
use crate::client::ServiceCredentials;
use crate::config::ServerSettings;
use crate::db;
use crate::events::{self, EventFeedService, OwnFeed, PartnerTrim, Wakeups};
use crate::layers::RpcLayers;
use crate::supervise::Supervisor;
use crate::telemetry::LogFormat;
use crate::tls::ClientTls;
use crate::watchers::WatchLimitLayer;

/// The health name that answers whether the process works: SERVING from
/// the moment the server answers (after migrations) until it exits, whatever
/// the database does. Liveness and startup probes ask it.
pub const LIVENESS: &str = "liveness";
/// The health name that answers whether the replica can serve: it follows
/// the database like the overall ("") status. Readiness probes ask it.
pub const READINESS: &str = "readiness";

/// How often retention pruning runs.
const PRUNE_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

/// What every service's `startup::Application` offers, so one test harness
/// and one `main` shape serve them all.
pub trait Application: Sized + Send + 'static {
    /// The address the server bound (port 0 resolved).
    fn local_addr(&self) -> SocketAddr;
    /// Cancelling it shuts the server and its background work down.
    fn shutdown_token(&self) -> CancellationToken;
    /// Serves until the shutdown token is cancelled and in-flight calls drained.
    fn run_until_stopped(self) -> impl std::future::Future<Output = anyhow::Result<()>> + Send;
}

/// A service's server between startup and serving.
pub struct ServiceHost {
    name: &'static str,
    settings: ServerSettings,
    listener: TcpListener,
    local_addr: SocketAddr,
    pool: PgPool,
    shutdown: CancellationToken,
    credentials: Credentials,
    health: Health,
    supervisor: Supervisor,
    watchers: WatchLimitLayer,
    wakeups: Wakeups,
    feed: EventFeedService,
}

/// The gRPC health service and the handle that sets its statuses.
struct Health {
    reporter: HealthReporter,
    service: HealthServer<HealthService>,
}

/// Who may call the service, and how it speaks TLS.
struct Credentials {
    verifier: TokenVerifier,
    server_tls: Option<tonic::transport::ServerTlsConfig>,
    client_tls: ClientTls,
}

impl ServiceHost {
    /// Binds the listen address, connects to the database (waiting for it
    /// for a while) and applies migrations.
    pub async fn start(
        name: &'static str,
        default_port: u16,
        settings: ServerSettings,
        migrations: Migrator,
    ) -> anyhow::Result<Self> {
        let database_url = settings
            .database_url
            .clone()
            .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is required"))?;
        let listen = settings.listen_addr(default_port);
        let listener = TcpListener::bind(listen)
            .await
            .map_err(|error| anyhow::anyhow!("cannot listen on {listen}: {error}"))?;
        let local_addr = listener.local_addr()?;
        // Keys and certificates before the database: a service without
        // them refuses to start at once, with the reason.
        let client_tls = settings.tls.client()?;
        let credentials = Credentials {
            verifier: TokenVerifier::load(&settings.auth, &client_tls).await?,
            server_tls: settings.tls.server_config()?,
            client_tls,
        };
        let pool = connect_answering_health(
            &listener,
            credentials.server_tls.clone(),
            &database_url,
            settings.db_max_connections,
            settings.statement_timeout,
        )
        .await?;
        db::migrate(&pool, migrations).await?;
        let reporter = HealthReporter::new();
        let service = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
        let shutdown = CancellationToken::new();
        let supervisor = Supervisor::new(name, reporter.clone(), shutdown.clone());
        let watchers =
            WatchLimitLayer::new(settings.max_watchers, settings.max_watchers_per_caller);
        let wakeups = Wakeups::default();
        let feed = EventFeedService::new(pool.clone(), name, wakeups.clone(), shutdown.clone());
        Ok(Self {
            name,
            settings,
            listener,
            local_addr,
            pool,
            shutdown,
            credentials,
            health: Health { reporter, service },
            supervisor,
            watchers,
            wakeups,
            feed,
        })
    }

    /// The service's rule for what of its events a partner watching its
    /// feed may read (see [`crate::events::Partner`]).
    pub fn trim_for_partners(&mut self, trim: PartnerTrim) {
        self.feed = self.feed.clone().with_partner_trim(trim);
    }

    /// The service's own feed, read in-process as the service itself
    /// reads it over its listener: no certificate has to name the loopback
    /// address. Take it after [`ServiceHost::trim_for_partners`].
    pub fn own_feed(&self) -> OwnFeed {
        OwnFeed::new(self.feed.clone(), self.watchers.clone(), self.name)
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn pool(&self) -> &PgPool {
        &self.pool
    }

    pub fn settings(&self) -> &ServerSettings {
        &self.settings
    }

    /// What this service's clients trust and present over TLS.
    pub fn client_tls(&self) -> &ClientTls {
        &self.credentials.client_tls
    }

    /// The token checks this service's API runs, for a second listener
    /// (insights' dashboard port) that must accept exactly the same callers.
    pub fn token_verifier(&self) -> TokenVerifier {
        self.credentials.verifier.clone()
    }

    /// This service's own signing key, for the calls it makes: refused
    /// (with the setting to fix) when none is configured.
    pub fn service_credentials(&self) -> anyhow::Result<ServiceCredentials> {
        Ok(ServiceCredentials::new(
            self.settings.auth.service_issuer(self.name)?,
        ))
    }

    /// Cancelling it starts a graceful shutdown; background tasks of the
    /// service should stop on it too.
    pub fn shutdown_token(&self) -> CancellationToken {
        self.shutdown.clone()
    }

    /// The caps on open Watch streams, for a second listener (insights'
    /// dashboard port) that must count against the same ones.
    pub fn watch_limit(&self) -> WatchLimitLayer {
        self.watchers.clone()
    }

    /// Runs the service's background loops, restarted after failures and
    /// reported in health under their own names.
    pub fn supervisor(&self) -> &Supervisor {
        &self.supervisor
    }

    /// Serves `api` (the service's generated server) with health,
    /// reflection and the event feed until the shutdown token is cancelled,
    /// then drains in-flight calls for at most the configured grace period.
    pub async fn serve<S>(self, api: S) -> anyhow::Result<()>
    where
        S: tower::Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let Self {
            name,
            settings,
            listener,
            local_addr,
            pool,
            shutdown,
            credentials,
            health,
            supervisor,
            watchers,
            wakeups,
            feed: feed_service,
        } = self;
        credentials.verifier.spawn_reloader(&supervisor);

        let Health {
            reporter: health_reporter,
            service: health_service,
        } = health;
        let health_names = vec![
            READINESS,
            S::NAME,
            EventFeedServiceServer::<EventFeedService>::NAME,
        ];
        db::set_status(&health_reporter, &health_names, ServingStatus::NotServing).await;
        health_reporter
            .set_service_status(LIVENESS, ServingStatus::Serving)
            .await;
        db::spawn_health_monitor(
            pool.clone(),
            health_reporter.clone(),
            health_names.clone(),
            settings.health_interval,
            shutdown.clone(),
        );

        let served = [
            S::NAME,
            EventFeedServiceServer::<EventFeedService>::NAME,
            AuditServiceServer::<AuditService>::NAME,
        ];
        let reflection_v1 = reflection(&served).build_v1()?;
        let reflection_v1alpha = reflection(&served).build_v1alpha()?;

        wakeups.spawn_listener(pool.clone(), &supervisor);
        feed_service.spawn_tailer(&supervisor);
        let feed = EventFeedServiceServer::new(feed_service)
            .max_decoding_message_size(settings.max_message_bytes)
            .max_encoding_message_size(settings.max_message_bytes);

        spawn_pruning(pool.clone(), &settings, &supervisor);

        let audit = AuditServiceServer::new(AuditService::new(pool.clone()))
            .max_encoding_message_size(settings.max_message_bytes);

        let routes = Routes::new(api)
            .add_service(feed)
            .add_service(audit)
            .add_service(health_service)
            .add_service(reflection_v1)
            .add_service(reflection_v1alpha);

        let layers = RpcLayers::new(name, settings.max_in_flight, credentials.verifier, watchers);

        let incoming = TcpListenerStream::new(listener).map(|stream| {
            if let Ok(stream) = &stream {
                let _ = stream.set_nodelay(true);
            }
            stream
        });

        let tls = match (
            &credentials.server_tls,
            settings.tls.tls_client_ca.is_some(),
        ) {
            (None, _) => "off",
            (Some(_), false) => "on",
            (Some(_), true) => "mutual",
        };
        tracing::info!(service = name, addr = %local_addr, tls, "listening");
        {
            let reporter = health_reporter.clone();
            let names = health_names.clone();
            let token = shutdown.clone();
            tokio::spawn(async move {
                token.cancelled().await;
                db::set_status(&reporter, &names, ServingStatus::NotServing).await;
            });
        }

        let mut builder = settings
            .keepalive
            .server(tonic::transport::Server::builder());
        if let Some(config) = credentials.server_tls {
            builder = builder.tls_config(config)?;
        }
        let server = builder
            .timeout(settings.request_timeout)
            .layer(layers)
            .add_routes(routes)
            .serve_with_incoming_shutdown(incoming, shutdown.clone().cancelled_owned());
        tokio::pin!(server);
        // Biased towards the shutdown arm: an idle server finishes the moment
        // it is cancelled, and the drain line must still be written.
        tokio::select! {
            biased;
            _ = shutdown.cancelled() => {
                tracing::info!(
                    grace_ms = settings.shutdown_grace.as_millis() as u64,
                    "draining"
                );
                tokio::select! {
                    result = &mut server => result?,
                    _ = tokio::time::sleep(settings.shutdown_grace) => {
                        tracing::warn!("drain bound reached; closing remaining connections");
                    }
                }
            }
            result = &mut server => result?,
        }
        tracing::info!(service = name, "stopped");
        Ok(())
    }
}

/// Reflection that lists only what this port serves: the contracts hold
/// every service's descriptors, and listing another service's API would
/// send `grpcurl` users to a bare UNIMPLEMENTED.
fn reflection(served: &[&'static str]) -> tonic_reflection::server::Builder<'static> {
    [
        "grpc.health.v1.Health",
        "grpc.reflection.v1.ServerReflection",
        "grpc.reflection.v1alpha.ServerReflection",
    ]
    .iter()
    .chain(served)
    .fold(
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(onestop_contracts::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET),
        |builder, name| builder.with_service_name(*name),
    )
}

/// Waits for the database while answering health checks NOT_SERVING on
/// the bound listener, so probes get an answer rather than a timeout; the
/// interim server stops once the database answers.
async fn connect_answering_health(
    listener: &TcpListener,
    server_tls: Option<tonic::transport::ServerTlsConfig>,
    database_url: &str,
    max_connections: u32,
    statement_timeout: std::time::Duration,
) -> anyhow::Result<PgPool> {
    let (reporter, health) = tonic_health::server::health_reporter();
    // Not ready while the database is awaited; liveness is left unknown, so
    // a startup probe (which asks it) keeps waiting for the migrations.
    let names = [EventFeedServiceServer::<EventFeedService>::NAME, READINESS];
    db::set_status(&reporter, &names, ServingStatus::NotServing).await;
    let connected = CancellationToken::new();
    let incoming = futures_util::stream::unfold(listener, |listener| async move {
        Some((listener.accept().await.map(|(stream, _)| stream), listener))
    });
    let mut builder = tonic::transport::Server::builder();
    if let Some(config) = server_tls {
        builder = builder.tls_config(config)?;
    }
    let interim = builder
        .add_service(health)
        .serve_with_incoming_shutdown(incoming, connected.clone().cancelled_owned());
    let connecting = async {
        let pool = db::connect_patiently(database_url, max_connections, statement_timeout).await;
        connected.cancel();
        pool
    };
    let (served, pool) = tokio::join!(
        // A health Watch held open must not keep startup waiting.
        async {
            tokio::select! {
                served = interim => served.map_err(anyhow::Error::from),
                _ = async {
                    connected.cancelled().await;
                    tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                } => Ok(()),
            }
        },
        connecting
    );
    if let Err(error) = served {
        tracing::warn!(error = %error, "interim health server ended");
    }
    pool
}

fn spawn_pruning(pool: PgPool, settings: &ServerSettings, supervisor: &Supervisor) {
    let retention = settings.event_retention;
    let idempotency_retention = settings.idempotency_retention;
    supervisor.every("pruner", PRUNE_EVERY, move || {
        let pool = pool.clone();
        async move {
            let removed = events::prune(&pool, retention, idempotency_retention).await?;
            if removed > 0 {
                tracing::info!(removed, "pruned events past retention");
            }
            Ok(())
        }
    });
}

/// A service binary's life: telemetry under the name `onestop-{service}`
/// first, so that building the application is traced and logged, then the
/// application `build` makes, served until SIGTERM or Ctrl-C and drained.
pub async fn run<A: Application>(
    service: &str,
    log_format: LogFormat,
    build: impl std::future::Future<Output = anyhow::Result<A>>,
) -> anyhow::Result<()> {
    let _telemetry = crate::telemetry::init(&format!("onestop-{service}"), log_format)?;
    let app = build.await?;
    cancel_on_signal(app.shutdown_token());
    app.run_until_stopped().await
}

/// Cancels `token` on SIGTERM or Ctrl-C.
pub fn cancel_on_signal(token: CancellationToken) {
    tokio::spawn(async move {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut terminate =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
                    .expect("SIGTERM handler installs");
            tokio::select! {
                _ = ctrl_c => {}
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutdown signal received");
        token.cancel();
    });
}
