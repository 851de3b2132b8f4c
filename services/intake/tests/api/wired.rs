//! The five services in this process, wired both ways as in production:
//! intake hands needs to the owners and follows their feeds, the owners
//! follow intake's (who works with whom, erasures), insights follows all
//! four. Each on its own fresh
//! database, with the referral directory, one advisor and one verified
//! buyer loaded.

use std::net::SocketAddr;
use std::time::Duration;

use onestop_buyers::startup::Application as BuyersApplication;
use onestop_contracts::buyers::v1 as buyers_pb;
use onestop_contracts::mentoring::v1 as mentoring_pb;
use onestop_insights::startup::{Application as InsightsApplication, InsightsSettings};
use onestop_intake::upstreams::UpstreamSettings;
use onestop_mentoring::startup::{Application as MentoringApplication, MentoringSettings};
use onestop_platform::company_feed::IntakeFeedSettings;
use onestop_platform::time::SystemClock;
use onestop_referral::admin::seed;
use onestop_referral::startup::{Application as ReferralApplication, ReferralSettings};
use onestop_test_support::{
    BuyersClient, InsightsClient, MentoringClient, ReferralClient, TestDb, TestServer, eventually,
};
use tokio::net::TcpSocket;

use crate::common::Intake;

/// The overseas office whose buyer is loaded.
pub const OFFICE: &str = "kbc-newyork";

pub struct Wired {
    pub intake: Intake,
    pub mentoring: TestServer<MentoringClient>,
    pub buyers: TestServer<BuyersClient>,
    pub referral: TestServer<ReferralClient>,
    /// Insights, following the four feeds.
    pub insights: TestServer<InsightsClient>,
    /// The advisor mentoring assigns.
    pub advisor_id: String,
    /// The verified buyer buyers proposes.
    pub buyer_id: String,
}

/// A loopback address held for intake until it starts: the services must
/// know each other's addresses before any of them starts. The socket is
/// bound but not listening, so the owners' followers are refused (and try
/// again) rather than left waiting on it, and no other socket of the
/// machine, listening or connecting, can take the port meanwhile.
fn reserve_addr() -> (TcpSocket, SocketAddr) {
    let socket = TcpSocket::new_v4().expect("a socket");
    socket
        .bind(SocketAddr::from(([127, 0, 0, 1], 0)))
        .expect("a free loopback port");
    let addr = socket.local_addr().expect("its address");
    (socket, addr)
}

fn url(addr: SocketAddr) -> String {
    format!("http://{addr}")
}

impl Wired {
    pub async fn start() -> Self {
        let (reserved, intake_addr) = reserve_addr();
        let intake_feed = IntakeFeedSettings {
            intake_url: Some(url(intake_addr)),
        };
        let mentoring = {
            let intake = intake_feed.clone();
            TestServer::start(|settings| {
                MentoringApplication::build_with(
                    settings,
                    MentoringSettings {
                        intake,
                        ..Default::default()
                    },
                    std::sync::Arc::new(SystemClock),
                )
            })
            .await
        };
        let buyers = {
            let intake = intake_feed.clone();
            TestServer::start(|settings| BuyersApplication::build_following(settings, intake)).await
        };
        let referral = {
            let intake = intake_feed.clone();
            TestServer::start(|settings| {
                ReferralApplication::build_with(
                    settings,
                    ReferralSettings {
                        intake,
                        ..Default::default()
                    },
                    std::sync::Arc::new(SystemClock),
                )
            })
            .await
        };
        seed::load(&referral.pool, seed::BUILT_IN)
            .await
            .expect("directory loads");
        let upstreams = UpstreamSettings {
            mentoring_url: Some(url(mentoring.addr)),
            buyers_url: Some(url(buyers.addr)),
            referral_url: Some(url(referral.addr)),
            handoff_max_backoff: Duration::from_millis(500),
            buyers_per_need: 3,
            ..Default::default()
        };
        let db = TestDb::new().await;
        drop(reserved);
        let intake = Intake::start_wired(
            db,
            |settings| settings.listen = Some(intake_addr),
            upstreams,
        )
        .await;
        let insights = {
            let insights = InsightsSettings {
                intake_url: Some(url(intake_addr)),
                mentoring_url: Some(url(mentoring.addr)),
                buyers_url: Some(url(buyers.addr)),
                referral_url: Some(url(referral.addr)),
                http_listen: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
                ..InsightsSettings::default()
            };
            TestServer::start(|settings| {
                InsightsApplication::build_with(
                    settings,
                    insights,
                    std::sync::Arc::new(SystemClock),
                )
            })
            .await
        };
        let advisor_id = register_advisor(&mentoring).await;
        let buyer_id = register_buyer(&buyers).await;
        Self {
            intake,
            mentoring,
            buyers,
            referral,
            insights,
            advisor_id,
            buyer_id,
        }
    }

    /// The company's advisor assignment, once intake's hand-off has made it
    /// (waits at most 20 seconds).
    pub async fn assignment_of(&self, company_id: &str) -> mentoring_pb::Assignment {
        for _ in 0..200 {
            let lookup = mentoring_pb::get_assignment_request::Lookup::CompanyId(company_id.into());
            let request = mentoring_pb::GetAssignmentRequest {
                lookup: Some(lookup),
            };
            if let Ok(found) = self.mentoring.admin().get_assignment(request).await {
                return found.into_inner();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("the company gets its advisor");
    }

    /// Waits until `check` holds, for at most 20 seconds.
    pub async fn until<F, Fut>(&self, what: &str, check: F)
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = bool>,
    {
        assert!(
            eventually(Duration::from_secs(20), check).await,
            "timed out waiting until {what}"
        );
    }
}

async fn register_advisor(mentoring: &TestServer<MentoringClient>) -> String {
    mentoring
        .admin()
        .register_advisor(mentoring_pb::RegisterAdvisorRequest {
            profile: Some(mentoring_pb::AdvisorProfile {
                contact: Some(mentoring_pb::AdvisorContact {
                    name: "Park Minjun".into(),
                    email: "minjun.park@example.kr".into(),
                    phone: "+82 2-555-0199".into(),
                }),
                kind: mentoring_pb::AdvisorKind::RetiredExpert as i32,
                languages: vec!["ko".into(), "en".into()],
                industries_ksic: vec!["20".into()],
                hs_chapters: vec!["33".into()],
                markets: vec!["US".into()],
                region: "KR-26".into(),
                capacity: 10,
                remote: true,
                program: Some(mentoring_pb::AdvisorProgram {
                    program_id: "kintex.export-advisors".into(),
                    agency: "kintex".into(),
                    ..Default::default()
                }),
            }),
            ..Default::default()
        })
        .await
        .expect("advisor registers")
        .into_inner()
        .advisor_id
}

async fn register_buyer(buyers: &TestServer<BuyersClient>) -> String {
    let buyer = buyers
        .trade_office(OFFICE)
        .register_buyer(buyers_pb::RegisterBuyerRequest {
            profile: Some(buyers_pb::BuyerProfile {
                company_name: "Sunrise Beauty Supply".into(),
                country: "US".into(),
                city: "New York".into(),
                time_zone: "America/New_York".into(),
                hs_codes: vec!["330499".into()],
                industries_ksic: vec!["20423".into()],
                annual_import_volume: Some(onestop_test_support::fixtures::usd(500_000_000)),
                languages: vec!["en".into()],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("buyer registers")
        .into_inner();
    buyers
        .trade_office(OFFICE)
        .vet_buyer(buyers_pb::VetBuyerRequest {
            buyer_id: buyer.buyer_id.clone(),
            status: buyers_pb::VettingStatus::Verified as i32,
            criteria_met: vec![buyers_pb::VettingCriterion::RegistryChecked as i32],
            quality_score: 90,
            note: "met the buyer in person".into(),
            ..Default::default()
        })
        .await
        .expect("buyer vetted");
    buyer.buyer_id
}
