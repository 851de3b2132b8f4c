use std::sync::Arc;

use chrono::Utc;
use onestop_buyers::startup::Application;
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::buyers::v1::buyer_service_client::BuyerServiceClient;
use onestop_contracts::common::v1::{CompanySnapshot, Money};
use onestop_platform::Role;
use onestop_platform::server::CancellationToken;
use onestop_test_support::{Bearer, ManualClock, TestDb, channel};
pub use onestop_test_support::{error_reason, violations};
use prost::Message;
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

pub type Client = BuyerServiceClient<InterceptedService<Channel, Bearer>>;

/// A running buyers server on port 0 over its own fresh database.
pub struct Buyers {
    pub pool: PgPool,
    pub clock: ManualClock,
    shutdown: CancellationToken,
    pub addr: std::net::SocketAddr,
    _db: TestDb,
}

impl Buyers {
    pub async fn start() -> Self {
        onestop_platform::telemetry::init_for_tests();
        let db = TestDb::new().await;
        let clock = ManualClock::at(Utc::now());
        let app = Application::build_with_clock(
            onestop_test_support::settings(&db.url),
            Arc::new(clock.clone()),
        )
        .await
        .expect("buyers builds");
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        tokio::spawn(app.run_until_stopped());
        let pool = db.pool().await;
        Self {
            pool,
            clock,
            shutdown,
            addr,
            _db: db,
        }
    }

    pub fn client(&self, bearer: Bearer) -> Client {
        BuyerServiceClient::with_interceptor(channel(self.addr), bearer)
    }

    pub fn office(&self, office: &str) -> Client {
        self.client(Bearer::role(Role::TradeOffice, Some(office)))
    }

    pub fn admin(&self) -> Client {
        self.client(Bearer::admin())
    }

    pub fn service(&self) -> Client {
        self.client(Bearer::role(Role::Service, None))
    }

    pub async fn count(&self, table: &str) -> i64 {
        sqlx::query_scalar(&format!("SELECT count(*) FROM {table}"))
            .fetch_one(&self.pool)
            .await
            .expect("count")
    }

    pub async fn events(&self, event_type: &str) -> Vec<Vec<u8>> {
        sqlx::query_scalar("SELECT payload FROM event_log WHERE event_type = $1 ORDER BY id")
            .bind(event_type)
            .fetch_all(&self.pool)
            .await
            .expect("events")
    }

    pub async fn event_payloads<M: Message + Default>(&self, event_type: &str) -> Vec<M> {
        self.events(event_type)
            .await
            .iter()
            .map(|bytes| M::decode(bytes.as_slice()).expect("payload decodes"))
            .collect()
    }

    /// Registers a buyer for `office` and returns it.
    pub async fn register(&self, office: &str, profile: pb::BuyerProfile) -> pb::Buyer {
        self.office(office)
            .register_buyer(pb::RegisterBuyerRequest {
                profile: Some(profile),
                ..Default::default()
            })
            .await
            .expect("registers")
            .into_inner()
    }

    pub async fn vet(
        &self,
        office: &str,
        buyer_id: &str,
        status: pb::VettingStatus,
        score: u32,
    ) -> pb::Buyer {
        self.office(office)
            .vet_buyer(pb::VetBuyerRequest {
                buyer_id: buyer_id.into(),
                status: status as i32,
                criteria_met: vec![pb::VettingCriterion::RegistryChecked as i32],
                quality_score: score,
                ..Default::default()
            })
            .await
            .expect("vets")
            .into_inner()
    }

    /// Registers and verifies a buyer; returns its id.
    pub async fn verified(&self, office: &str, profile: pb::BuyerProfile, score: u32) -> String {
        let buyer = self.register(office, profile).await;
        self.vet(office, &buyer.buyer_id, pb::VettingStatus::Verified, score)
            .await;
        buyer.buyer_id
    }
}

impl Drop for Buyers {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

pub fn usd(cents: i64) -> Money {
    Money {
        currency_code: "USD".into(),
        amount_minor: cents,
    }
}

pub fn buyer_profile(
    name: &str,
    country: &str,
    hs_codes: &[&str],
    languages: &[&str],
) -> pb::BuyerProfile {
    pb::BuyerProfile {
        company_name: name.into(),
        country: country.into(),
        city: "Springfield".into(),
        time_zone: "America/New_York".into(),
        hs_codes: hs_codes.iter().map(|c| c.to_string()).collect(),
        industries_ksic: vec![],
        annual_import_volume: Some(usd(25_000_000)),
        languages: languages.iter().map(|c| c.to_string()).collect(),
        contacts: vec![pb::Contact {
            name: "Dana Whitfield".into(),
            title: "Purchasing lead".into(),
            email: "dana@example-importer.com".into(),
            phone: "+1 212 555 0100".into(),
        }],
        external_ref: String::new(),
        website: String::new(),
    }
}

pub fn company(id: &str, hs_codes: &[&str], languages: &[&str]) -> CompanySnapshot {
    CompanySnapshot {
        company_id: id.into(),
        name_en: "Hanbit Cosmetics".into(),
        hs_codes: hs_codes.iter().map(|c| c.to_string()).collect(),
        languages: languages.iter().map(|c| c.to_string()).collect(),
        ..Default::default()
    }
}
