//! One harness for every service: its real server on a loopback port 0
//! over a fresh database, generated clients with any role's token, and
//! reads of the stored rows and events for assertions.

use std::future::Future;
use std::marker::PhantomData;
use std::net::SocketAddr;

use onestop_contracts::event_types::EventType;
use onestop_contracts::events::v1::{Event, WatchRequest, watch_response};
use onestop_platform::config::ServerSettings;
use onestop_platform::server::{Application, CancellationToken};
use sqlx::PgPool;
use tokio::task::JoinHandle;
use tokio_stream::StreamExt;

use crate::{Bearer, Connect, FeedClient, TestDb, channel};

/// A service's server running in this process for one test; `C` is the
/// client of the service's own API, which the role shortcuts return.
pub struct TestServer<C> {
    pub addr: SocketAddr,
    /// A pool of the test's own on the service's database, for assertions.
    pub pool: PgPool,
    pub database_url: String,
    pub shutdown: CancellationToken,
    serving: Option<JoinHandle<anyhow::Result<()>>>,
    /// Declared last: the database outlives the server and the pool.
    db: TestDb,
    client: PhantomData<fn() -> C>,
}

impl<C: Connect> TestServer<C> {
    /// Starts the application `build` makes from test settings (loopback
    /// port 0, a quick health probe) over a fresh database.
    pub async fn start<A, F, Fut>(build: F) -> Self
    where
        A: Application,
        F: FnOnce(ServerSettings) -> Fut,
        Fut: Future<Output = anyhow::Result<A>>,
    {
        Self::start_on(TestDb::new().await, build).await
    }

    /// As [`TestServer::start`], over `db` (e.g. to restart a service on the
    /// database an earlier run left behind).
    pub async fn start_on<A, F, Fut>(db: TestDb, build: F) -> Self
    where
        A: Application,
        F: FnOnce(ServerSettings) -> Fut,
        Fut: Future<Output = anyhow::Result<A>>,
    {
        Self::try_start_on(db, build)
            .await
            .expect("the service builds over its test database")
    }

    /// As [`TestServer::start`], handing back why the service refused to
    /// start (with its causes) instead of panicking.
    pub async fn try_start<A, F, Fut>(build: F) -> Result<Self, String>
    where
        A: Application,
        F: FnOnce(ServerSettings) -> Fut,
        Fut: Future<Output = anyhow::Result<A>>,
    {
        Self::try_start_on(TestDb::new().await, build).await
    }

    async fn try_start_on<A, F, Fut>(db: TestDb, build: F) -> Result<Self, String>
    where
        A: Application,
        F: FnOnce(ServerSettings) -> Fut,
        Fut: Future<Output = anyhow::Result<A>>,
    {
        onestop_platform::telemetry::init_for_tests();
        let app = build(crate::settings(&db.url))
            .await
            .map_err(|error| format!("{error:#}"))?;
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        let serving = tokio::spawn(app.run_until_stopped());
        let pool = db.pool().await;
        Ok(Self {
            addr,
            pool,
            database_url: db.url.clone(),
            shutdown,
            serving: Some(serving),
            db,
            client: PhantomData,
        })
    }

    /// Any generated client calling this server with `bearer`'s token.
    pub fn client<K: Connect>(&self, bearer: Bearer) -> K {
        K::connect(channel(self.addr), bearer)
    }

    /// The service's own API with `bearer`'s token.
    pub fn api(&self, bearer: Bearer) -> C {
        self.client(bearer)
    }

    pub fn admin(&self) -> C {
        self.api(Bearer::admin())
    }

    pub fn dashboard(&self) -> C {
        self.api(Bearer::dashboard())
    }

    /// Another OneStop service calling (intake's hand-offs, say).
    pub fn service(&self) -> C {
        self.api(Bearer::service())
    }

    pub fn agency(&self, agency_id: &str) -> C {
        self.api(Bearer::agency(agency_id))
    }

    pub fn advisor(&self, advisor_id: &str) -> C {
        self.api(Bearer::advisor(advisor_id))
    }

    pub fn trade_office(&self, office_id: &str) -> C {
        self.api(Bearer::trade_office(office_id))
    }

    /// The event feed, read with a dashboard token.
    pub fn feed(&self) -> FeedClient {
        self.client(Bearer::dashboard())
    }

    /// Stops the server, waits for it to drain, and hands back its
    /// database so a test can start the service again on it.
    pub async fn stop(mut self) -> TestDb {
        self.shutdown.cancel();
        if let Some(serving) = self.serving.take() {
            let _ = serving.await;
        }
        self.pool.close().await;
        // Moving the database out of a Drop type: swap in a placeholder
        // that drops nothing.
        std::mem::replace(&mut self.db, TestDb::detached())
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .unwrap_or_else(|error| panic!("count {table}: {error}"))
    }

    /// Event types on the log, oldest first.
    pub async fn event_types(&self) -> Vec<String> {
        sqlx::query_scalar("SELECT event_type FROM event_log ORDER BY id")
            .fetch_all(&self.pool)
            .await
            .expect("event types")
    }

    pub async fn count_events<E: EventType>(&self, event_type: E) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM event_log WHERE event_type = $1")
            .bind(event_type.name())
            .fetch_one(&self.pool)
            .await
            .expect("count events")
    }

    /// Payloads of every event of `event_type`, oldest first.
    pub async fn event_payloads<M: prost::Message + Default, E: EventType>(
        &self,
        event_type: E,
    ) -> Vec<M> {
        let payloads: Vec<Vec<u8>> =
            sqlx::query_scalar("SELECT payload FROM event_log WHERE event_type = $1 ORDER BY id")
                .bind(event_type.name())
                .fetch_all(&self.pool)
                .await
                .expect("event payloads");
        payloads
            .iter()
            .map(|bytes| M::decode(bytes.as_slice()).expect("payload decodes"))
            .collect()
    }

    /// Every event on the feed after `after`, read through Watch, which is
    /// dropped once it has caught up with what is stored.
    pub async fn events_after(&self, after: i64) -> Vec<Event> {
        let total: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log WHERE id > $1")
            .bind(after)
            .fetch_one(&self.pool)
            .await
            .expect("count events");
        let mut stream = self
            .feed()
            .watch(WatchRequest {
                after,
                ..Default::default()
            })
            .await
            .expect("watch")
            .into_inner();
        let mut events = Vec::new();
        while (events.len() as i64) < total {
            let message = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next())
                .await
                .expect("the feed delivers stored events")
                .expect("stream open")
                .expect("event");
            if let Some(watch_response::Item::Event(event)) = message.item {
                events.push(event);
            }
        }
        events
    }
}

impl<C> Drop for TestServer<C> {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

impl<C> std::fmt::Debug for TestServer<C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TestServer")
            .field("addr", &self.addr)
            .finish()
    }
}
