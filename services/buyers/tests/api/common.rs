use std::sync::Arc;

use chrono::Utc;
use onestop_buyers::startup::Application;
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::common::v1::CompanySnapshot;
pub use onestop_test_support::fixtures::usd;
use onestop_test_support::{BuyersClient, ManualClock, TestServer, fixtures};
pub use onestop_test_support::{all_at_once, error_reason, violations};

/// A running buyers server on port 0 over its own fresh database, on a
/// manual clock that starts now.
pub struct Buyers {
    pub server: TestServer<BuyersClient>,
    pub clock: ManualClock,
}

impl std::ops::Deref for Buyers {
    type Target = TestServer<BuyersClient>;
    fn deref(&self) -> &Self::Target {
        &self.server
    }
}

impl Buyers {
    pub async fn start() -> Self {
        Self::start_at(Utc::now()).await
    }

    /// On a manual clock that starts at `now`: the service's own sweeper
    /// reads its clock as it starts, so a test that sweeps by hand at other
    /// times starts the clock where its own sweeps cannot be overtaken.
    pub async fn start_at(now: chrono::DateTime<Utc>) -> Self {
        let clock = ManualClock::at(now);
        let app_clock = Arc::new(clock.clone());
        let server =
            TestServer::start(|settings| Application::build_with_clock(settings, app_clock)).await;
        Self { server, clock }
    }

    /// Puts `company_id` on file here as intake's feed would (a partner
    /// works with it), so records may be filed under it.
    pub async fn company_on_file(&self, company_id: &str) {
        let mut conn = self.pool.acquire().await.expect("connection");
        onestop_platform::company_feed::record_partner(
            &mut conn,
            company_id,
            onestop_platform::Role::Advisor,
            "advisor-on-file",
            true,
        )
        .await
        .expect("partner recorded");
    }

    /// Registers a buyer for `office` and returns it.
    pub async fn register(&self, office: &str, profile: pb::BuyerProfile) -> pb::Buyer {
        self.trade_office(office)
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
        self.trade_office(office)
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

/// The shared company fixture as `id`, selling `hs_codes` in `languages`.
pub fn company(id: &str, hs_codes: &[&str], languages: &[&str]) -> CompanySnapshot {
    CompanySnapshot {
        company_id: id.into(),
        hs_codes: hs_codes.iter().map(|c| c.to_string()).collect(),
        languages: languages.iter().map(|c| c.to_string()).collect(),
        ..fixtures::company_snapshot()
    }
}
