//! Events in, indicators out: the figures a month of activity gives,
//! replayed safely, resumed after a restart, shared by replicas, and
//! rebuilt when a feed's database is recreated.

use std::sync::Arc;

use chrono::Utc;
use onestop_contracts::common::v1::{GrowthStage, NeedOwner};
use onestop_contracts::insights::v1 as pb;
use onestop_insights::startup::Application;
use onestop_platform::server::Application as _;
use onestop_test_support::{ManualClock, TestServer};

use crate::common::{Feeds, Insights, filter, verified};
use crate::scenario::{self, verified_buyer};

/// Every referral leg, completed deal and case move of the scenario is in.
pub fn settled(indicators: &pb::Indicators) -> bool {
    let funnel = |agency: &str| {
        indicators
            .referral_funnel
            .iter()
            .find(|a| a.agency_id == agency)
            .and_then(|a| a.total)
            .unwrap_or_default()
    };
    let deals = indicators.deals.clone().unwrap_or_default();
    let cases = indicators.cases.clone().unwrap_or_default();
    let advisors = indicators.advisors.clone().unwrap_or_default();
    let fees = indicators.fees.clone().unwrap_or_default();
    funnel("sbc").completed == 1
        && funnel("kotra").declined == 1
        && deals.confirmed == 3
        && cases.closed == 1
        && cases.opened == 2
        && advisors.overdue_contacts == 1
        && fees.charges == 1
}

fn progress(count: u64, target: u64) -> Option<pb::TargetProgress> {
    Some(pb::TargetProgress { count, target })
}

/// The figures without the parts that move by themselves (time, feed
/// positions, the ticker).
pub fn figures(indicators: &pb::Indicators) -> pb::Indicators {
    pb::Indicators {
        computed_at: None,
        feeds: Vec::new(),
        recent_events: Vec::new(),
        ..indicators.clone()
    }
}

#[tokio::test]
async fn a_month_of_events_gives_its_indicators() {
    let feeds = Feeds::start().await;
    let insights = Insights::start(feeds.settings()).await;
    scenario::month(&feeds).await;
    let indicators = insights.once(filter(), settled).await;

    let vetting = indicators.buyer_vetting.clone().unwrap();
    assert_eq!(vetting.verified, progress(2, 1000));
    assert_eq!(vetting.rejected, 1);
    let offices: Vec<(String, Option<pb::TargetProgress>, u64)> = vetting
        .trade_offices
        .iter()
        .map(|o| (o.trade_office_id.clone(), o.verified, o.rejected))
        .collect();
    assert_eq!(
        offices,
        [
            ("kotra-new-york".to_owned(), progress(1, 500), 0),
            ("kotra-tokyo".to_owned(), progress(1, 500), 1),
        ],
        "the buyer verified twice counts once"
    );

    let consultations = indicators.consultations.unwrap();
    assert_eq!(consultations.booked, 2);
    assert_eq!(consultations.companies, progress(1, 1500));
    assert_eq!(consultations.buyers, progress(2, 5000));

    let cases = indicators.cases.clone().unwrap();
    assert_eq!((cases.opened, cases.closed, cases.all_delivered), (2, 1, 1));
    assert!(cases.median_time_to_all_delivered.is_some());
    let groups: Vec<(String, i32, u64, u64)> = cases
        .groups
        .iter()
        .map(|g| (g.province.clone(), g.stage, g.opened, g.closed))
        .collect();
    assert_eq!(
        groups,
        [
            ("KR-11".to_owned(), GrowthStage::Domestic as i32, 1, 0),
            ("KR-26".to_owned(), GrowthStage::FirstExport as i32, 1, 1),
        ]
    );
    let needs: Vec<(i32, String, u64)> = cases
        .needs
        .iter()
        .map(|n| (n.owner, n.status.clone(), n.needs))
        .collect();
    assert_eq!(
        needs,
        [
            (NeedOwner::Buyers as i32, "OPEN".to_owned(), 1),
            (NeedOwner::Referral as i32, "CANCELLED".to_owned(), 1),
            (NeedOwner::Referral as i32, "DONE".to_owned(), 1),
        ]
    );
    let week_total: u64 = cases.weeks.iter().map(|w| w.opened).sum();
    assert_eq!(week_total, 2, "{:?}", cases.weeks);
    assert!(cases.weeks.len() >= 4);

    let sbc = indicators
        .referral_funnel
        .iter()
        .find(|a| a.agency_id == "sbc")
        .unwrap();
    let total = sbc.total.unwrap();
    assert_eq!(
        (
            total.sent,
            total.accepted,
            total.completed,
            total.declined,
            total.waiting
        ),
        (1, 1, 1, 0, 0)
    );
    assert!(total.median_time_to_accept.is_some());
    assert_eq!(sbc.programs.len(), 1);
    assert_eq!(sbc.programs[0].program_id, "sbc.export-financing");
    let kotra = indicators
        .referral_funnel
        .iter()
        .find(|a| a.agency_id == "kotra")
        .unwrap();
    assert_eq!(kotra.total.unwrap().accepted, 0);
    assert!(kotra.total.unwrap().median_time_to_accept.is_none());

    let advisors = indicators.advisors.clone().unwrap();
    let kinds: Vec<(String, u64, u64, u64)> = advisors
        .kinds
        .iter()
        .map(|k| (k.kind.clone(), k.advisors, k.capacity, k.active_companies))
        .collect();
    assert_eq!(
        kinds,
        [
            ("HOME_DOCTOR".to_owned(), 1, 2, 1),
            ("RETIRED_EXPERT".to_owned(), 1, 1, 0),
        ]
    );
    assert_eq!((advisors.waitlist, advisors.overdue_contacts), (1, 1));

    let deals = indicators.deals.clone().unwrap();
    assert_eq!((deals.recorded, deals.confirmed), (3, 3));
    // USD 10,000.00 plus KRW 1,000,000,000 at the default 0.00072.
    assert_eq!(deals.confirmed_value_usd_cents, 1_000_000 + 72_000_000);
    let japan = &deals.markets[0];
    assert_eq!(
        (japan.market.as_str(), japan.confirmed_value_usd_cents),
        ("JP", 72_000_000)
    );
    let us = &deals.markets[1];
    assert_eq!(
        (
            us.market.as_str(),
            us.confirmed,
            us.confirmed_value_usd_cents
        ),
        ("US", 2, 1_000_000)
    );
    assert_eq!(us.unconverted.len(), 1);
    assert_eq!(
        (
            us.unconverted[0].currency_code.as_str(),
            us.unconverted[0].amount_minor
        ),
        ("CHF", 500_000)
    );

    let fees = indicators.fees.clone().unwrap();
    assert_eq!(fees.charged.len(), 1);
    assert_eq!(
        (
            fees.charged[0].currency_code.as_str(),
            fees.charged[0].amount_minor
        ),
        ("KRW", 100_000)
    );

    assert!(indicators.recent_events.len() >= 20);
    assert!(
        indicators
            .recent_events
            .windows(2)
            .all(|pair| pair[0].occurred_at.map(|t| (t.seconds, t.nanos))
                >= pair[1].occurred_at.map(|t| (t.seconds, t.nanos))),
        "newest first"
    );
    assert_eq!(indicators.feeds.len(), 4);
    assert!(
        indicators
            .feeds
            .iter()
            .all(|f| f.applied > 0 && f.applied <= f.head && !f.epoch.is_empty())
    );
}

#[tokio::test]
async fn a_province_filter_keeps_the_companies_and_advisors_there() {
    let feeds = Feeds::start().await;
    let insights = Insights::start(feeds.settings()).await;
    scenario::month(&feeds).await;
    insights.once(filter(), settled).await;

    let seoul = insights
        .indicators(pb::IndicatorFilter {
            province: "KR-11".into(),
            ..filter()
        })
        .await;
    assert_eq!(seoul.province, "KR-11");
    let cases = seoul.cases.unwrap();
    assert_eq!((cases.opened, cases.closed), (1, 0));
    assert_eq!(seoul.consultations.unwrap().booked, 0);
    assert!(
        seoul.referral_funnel.is_empty(),
        "the referrals are Busan's"
    );
    assert_eq!(seoul.deals.unwrap().recorded, 0);
    let advisors = seoul.advisors.unwrap();
    assert_eq!(advisors.kinds.len(), 1);
    assert_eq!(advisors.kinds[0].kind, "RETIRED_EXPERT");
    assert_eq!((advisors.waitlist, advisors.overdue_contacts), (1, 0));
    // Buyers are vetted overseas: not by province.
    assert_eq!(seoul.buyer_vetting.unwrap().verified.unwrap().count, 2);
}

#[tokio::test]
async fn a_restart_resumes_after_the_last_applied_event_and_counts_nothing_twice() {
    let feeds = Feeds::start().await;
    let insights = Insights::start(feeds.settings()).await;
    scenario::month(&feeds).await;
    let before = insights.once(filter(), settled).await;
    let db = insights.server.stop().await;

    // While insights is down, New York verifies another buyer.
    verified_buyer(&feeds, "kotra-new-york", "US").await;

    let insights = Insights::start_on(db, feeds.settings()).await;
    let after = insights.once(filter(), |i| verified(i) == 3).await;
    insights.caught_up("buyers", &feeds.buyers).await;
    let mut expected = figures(&before);
    let vetting = expected.buyer_vetting.as_mut().unwrap();
    vetting.verified = progress(3, 1000);
    vetting.trade_offices[0].verified = progress(2, 500);
    assert_eq!(figures(&after), expected);
    let decisions: i64 = sqlx::query_scalar("SELECT count(*) FROM vetting_decision")
        .fetch_one(&insights.pool)
        .await
        .unwrap();
    assert_eq!(decisions, 5);
}

#[tokio::test]
async fn two_replicas_apply_every_event_once() {
    let feeds = Feeds::start().await;
    let first = Insights::start(feeds.settings()).await;
    // A second replica on the same database, following the same feeds.
    let second = Application::build_with(
        onestop_test_support::settings(&first.database_url),
        feeds.settings(),
        Arc::new(ManualClock::at(Utc::now())),
    )
    .await
    .unwrap();
    let second_shutdown = second.shutdown_token();
    let second_addr = second.local_addr();
    let second_run = tokio::spawn(second.run_until_stopped());

    scenario::month(&feeds).await;
    let together = first.once(filter(), settled).await;
    for (source, feed) in [
        ("intake", &feeds.intake),
        ("mentoring", &feeds.mentoring),
        ("buyers", &feeds.buyers),
    ] {
        first.caught_up(source, feed).await;
    }
    let second_view = onestop_test_support::channel(second_addr);
    let mut second_client =
        onestop_contracts::insights::v1::insights_service_client::InsightsServiceClient::with_interceptor(
            second_view,
            onestop_test_support::Bearer::dashboard(),
        );
    let from_second = second_client
        .get_indicators(pb::GetIndicatorsRequest {
            filter: Some(filter()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(figures(&together), figures(&from_second));
    let ticker: i64 = sqlx::query_scalar("SELECT count(*) FROM ticker WHERE source = 'buyers'")
        .fetch_one(&first.pool)
        .await
        .unwrap();
    let buyers_events: i64 = sqlx::query_scalar("SELECT count(*) FROM event_log")
        .fetch_one(&feeds.buyers.pool)
        .await
        .unwrap();
    assert_eq!(ticker, buyers_events);
    second_shutdown.cancel();
    let _ = second_run.await;
}

#[tokio::test]
async fn a_feed_whose_database_was_recreated_is_read_again_from_its_start() {
    // The buyers feed on a fixed port, so it can come back at the same
    // address over a recreated database.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let fixed = |mut settings: onestop_platform::config::ServerSettings| {
        settings.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], port)));
        onestop_referral::startup::Application::build(settings)
    };
    let mut feeds = Feeds::start().await;
    feeds.buyers = TestServer::start(fixed).await;
    let insights = Insights::start(feeds.settings()).await;
    verified_buyer(&feeds, "kotra-new-york", "US").await;
    verified_buyer(&feeds, "kotra-tokyo", "JP").await;
    insights.once(filter(), |i| verified(i) == 2).await;

    // Restored from a backup that predates everything: a new epoch, and
    // only Tokyo's buyer, vetted again.
    let old = feeds.buyers.stop().await;
    drop(old);
    feeds.buyers = TestServer::start(fixed).await;
    verified_buyer(&feeds, "kotra-tokyo", "JP").await;

    let rebuilt = insights
        .once(filter(), |i| {
            let vetting = i.buyer_vetting.clone().unwrap_or_default();
            vetting.verified.unwrap_or_default().count == 1 && vetting.trade_offices.len() == 1
        })
        .await;
    assert_eq!(
        rebuilt.buyer_vetting.unwrap().trade_offices[0].trade_office_id,
        "kotra-tokyo"
    );
    let epoch: String = sqlx::query_scalar("SELECT epoch FROM feed_cursor WHERE source = 'buyers'")
        .fetch_one(&insights.pool)
        .await
        .unwrap();
    let feed_epoch: sqlx::types::Uuid = sqlx::query_scalar("SELECT epoch FROM event_log_horizon")
        .fetch_one(&feeds.buyers.pool)
        .await
        .unwrap();
    assert_eq!(epoch, feed_epoch.to_string());
}
