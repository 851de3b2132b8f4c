//! Events in, indicators out, through the real services: a case opened at
//! intake and handed to its three owners, buyers vetted, a referral
//! accepted; then insights killed mid-stream and restarted on its database,
//! counting nothing twice and missing nothing.

use std::sync::Mutex;
use std::time::Duration;

use onestop_contracts::common::v1::{Money, NeedCategory, NeedOwner};
use onestop_contracts::insights::v1 as pb;
use onestop_contracts::intake::v1 as intake;
use onestop_contracts::referral::v1 as referral;
use onestop_insights::domain::filter::Months;
use onestop_test_support::{
    Bearer, InsightsClient, IntakeClient, ReferralClient, Suite, eventually,
};

async fn indicators(suite: &Suite) -> pb::Indicators {
    suite
        .client::<InsightsClient>("insights", Bearer::dashboard())
        .get_indicators(pb::GetIndicatorsRequest {
            filter: Some(pb::IndicatorFilter {
                period: Some(Months::current(chrono::Utc::now()).to_proto()),
                ..Default::default()
            }),
        })
        .await
        .expect("indicators")
        .into_inner()
}

/// The indicators once `settled` holds (within 30 s).
async fn once(suite: &Suite, settled: impl Fn(&pb::Indicators) -> bool) -> pb::Indicators {
    let latest = Mutex::new(None);
    let done = eventually(Duration::from_secs(30), || async {
        let now = indicators(suite).await;
        let ok = settled(&now);
        *latest.lock().unwrap() = Some(now);
        ok
    })
    .await;
    let latest = latest.into_inner().unwrap().expect("read once");
    assert!(done, "indicators never settled: {latest:#?}");
    latest
}

fn verified(i: &pb::Indicators) -> u64 {
    i.buyer_vetting
        .clone()
        .unwrap_or_default()
        .verified
        .unwrap_or_default()
        .count
}

fn sbc(i: &pb::Indicators) -> pb::Funnel {
    i.referral_funnel
        .iter()
        .find(|agency| agency.agency_id == "sbc")
        .and_then(|agency| agency.total)
        .unwrap_or_default()
}

/// Needs of the period by owner, each with its status.
fn needs(i: &pb::Indicators) -> Vec<(i32, String, u64)> {
    let mut needs: Vec<_> = i
        .cases
        .clone()
        .unwrap_or_default()
        .needs
        .iter()
        .map(|n| (n.owner, n.status.clone(), n.needs))
        .collect();
    needs.sort();
    needs
}

fn delivered_to_every_owner(i: &pb::Indicators) -> bool {
    let needs = needs(i);
    needs.len() == 3
        && needs
            .iter()
            .all(|(_, status, count)| status != "OPEN" && *count == 1)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_indicators_follow_the_real_services_through_a_crash() {
    let mut suite = Suite::start(
        env!("CARGO_BIN_EXE_onestop-insights"),
        &["mentoring", "buyers", "referral", "intake", "insights"],
        &[],
    )
    .await;
    suite.seed_directory().await;
    suite.vetted_buyers("kotra-new-york", "insights", 2).await;

    let mut intake: IntakeClient = suite.client("intake", Bearer::agency("kotra"));
    let company = intake
        .register_company(intake::RegisterCompanyRequest {
            idempotency_key: "insights-company".into(),
            profile: Some(intake::CompanyProfile {
                business_registration_number: "107-86-14075".into(),
                name_ko: "해솔식품".into(),
                name_en: "Haesol Foods".into(),
                region: "KR-26".into(),
                industry_ksic: "10799".into(),
                hs_codes: vec!["330499".into()],
                employees: 40,
                annual_revenue: Some(Money {
                    currency_code: "KRW".into(),
                    amount_minor: 5_000_000_000,
                }),
                languages: vec!["ko".into(), "en".into()],
                ..Default::default()
            }),
            network_consent: None,
        })
        .await
        .expect("company registers")
        .into_inner();
    let need = |category: NeedCategory| intake::NeedRequest {
        category: category as i32,
        target_markets: vec!["US".into()],
        hs_codes: vec!["330499".into()],
        ..Default::default()
    };
    intake
        .open_case(intake::OpenCaseRequest {
            idempotency_key: "insights-case".into(),
            company_id: company.company_id,
            needs: vec![
                need(NeedCategory::ExportFinance),
                need(NeedCategory::Mentoring),
                need(NeedCategory::BuyerDiscovery),
            ],
        })
        .await
        .expect("case opens");

    // Handed to referral (SBC's financing), mentoring (no advisor yet: the
    // waitlist) and buyers; the buyers were verified by New York.
    let before = once(&suite, |i| {
        delivered_to_every_owner(i)
            && verified(i) == 2
            && sbc(i).sent == 1
            && i.advisors.clone().unwrap_or_default().waitlist == 1
    })
    .await;
    let cases = before.cases.clone().unwrap();
    assert_eq!(cases.opened, 1);
    assert_eq!(cases.groups.len(), 1);
    assert_eq!(cases.groups[0].province, "KR-26");
    let owners: Vec<i32> = needs(&before).iter().map(|n| n.0).collect();
    assert_eq!(
        owners,
        [
            NeedOwner::Mentoring as i32,
            NeedOwner::Buyers as i32,
            NeedOwner::Referral as i32
        ]
    );

    // SBC accepts its referral.
    let mut sbc_client: ReferralClient = suite.client("referral", Bearer::agency("sbc"));
    let inbox = sbc_client
        .list_referrals(referral::ListReferralsRequest::default())
        .await
        .unwrap()
        .into_inner();
    sbc_client
        .accept_referral(referral::AcceptReferralRequest {
            idempotency_key: "insights-accept".into(),
            referral_id: inbox.referrals[0].referral_id.clone(),
            ..Default::default()
        })
        .await
        .expect("SBC accepts");
    // Referral's feed counts the acceptance; intake's, a moment later, the
    // referral need moving to IN_PROGRESS. Both, before the crash.
    let accepted = once(&suite, |i| {
        sbc(i).accepted == 1
            && needs(i).contains(&(NeedOwner::Referral as i32, "IN_PROGRESS".into(), 1))
    })
    .await;
    assert!(sbc(&accepted).median_time_to_accept.is_some());

    // Insights crashes; New York verifies another buyer meanwhile; insights
    // comes back on its database and catches up.
    let addr = suite.kill("insights").await;
    suite.vetted_buyers("kotra-new-york", "while-down", 1).await;
    suite.restart("insights", addr).await;
    let after = once(&suite, |i| verified(i) == 3).await;
    assert_eq!(needs(&after), needs(&accepted), "nothing counted twice");
    assert_eq!(after.cases, accepted.cases);
    assert_eq!(after.referral_funnel, accepted.referral_funnel);
    assert_eq!(after.advisors, accepted.advisors);
    assert_eq!(after.buyer_vetting.unwrap().trade_offices.len(), 1);

    let pool = sqlx::PgPool::connect(suite.database_url("insights"))
        .await
        .unwrap();
    let decisions: i64 = sqlx::query_scalar("SELECT count(*) FROM vetting_decision")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(decisions, 3, "each vetting applied once");
    pool.close().await;
    suite.stop().await;
}
