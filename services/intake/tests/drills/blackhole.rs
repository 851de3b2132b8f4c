//! Intake's connection to an owner blackholed (open, but nothing gets
//! through either way, not even a close: a lost node, a NAT dropping the
//! flow) while the owner's feed moves on: intake notices the silence by
//! its HTTP/2 keepalive and, once the path is back, follows the feed again
//! with nothing skipped and nothing applied twice.

use std::time::{Duration, Instant};

use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::event_types::ReferralEvent;
use onestop_contracts::referral::v1 as referral_pb;
use onestop_test_support::{Bearer, ReferralClient, Suite, TcpProxy, TestDb};

use crate::support::{self, all_delivered, figure, full, intake_client, ms, open_case, spawn};

const DRILL: &str = "blackholed feed";
const CASES: u32 = 5;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blackholed_feed_is_noticed_and_followed_again_without_a_gap() {
    let _alone = support::one_at_a_time().await;
    // The product pings every 20s and gives up after 10s more; 2s + 2s
    // runs the same keepalive path in a fraction of the time.
    let (interval, timeout) = if full() {
        (Duration::from_secs(20), Duration::from_secs(10))
    } else {
        (Duration::from_secs(2), Duration::from_secs(2))
    };
    let keepalive = [
        (
            "ONESTOP_KEEPALIVE_INTERVAL",
            format!("{}ms", interval.as_millis()),
        ),
        (
            "ONESTOP_KEEPALIVE_TIMEOUT",
            format!("{}ms", timeout.as_millis()),
        ),
    ];
    let referral_env: Vec<(&str, &str)> = keepalive
        .iter()
        .map(|(k, v)| (*k, v.as_str()))
        .chain([support::SMALL_POOL])
        .collect();
    let suite = Suite::start(
        env!("CARGO_BIN_EXE_onestop-intake"),
        &["referral"],
        &referral_env,
    )
    .await;
    suite.seed_directory().await;
    let proxy = TcpProxy::start(suite.addr("referral")).await;
    let db = TestDb::new().await;
    let mut env = vec![
        ("DATABASE_URL", db.url.clone()),
        ("ONESTOP_REFERRAL_URL", format!("http://{}", proxy.addr())),
        ("ONESTOP_HANDOFF_MAX_BACKOFF", "500ms".into()),
        // The follower says at debug level when its stream breaks.
        ("RUST_LOG", "info,onestop_platform::follow=debug".into()),
    ];
    env.extend(keepalive.iter().cloned());
    let intake = spawn("intake", &env).await;
    let mut client = intake_client(intake.addr);

    let mut cases = Vec::new();
    for i in 0..CASES {
        cases.push(open_case(&mut client, 5_000_000 + i, NeedCategory::ExportFinance).await);
    }
    assert!(
        all_delivered(&mut client, &cases, Duration::from_secs(30))
            .await
            .is_some(),
        "the referral needs are delivered before the drill"
    );
    let referral_db = sqlx::PgPool::connect(suite.database_url("referral"))
        .await
        .expect("referral database");
    let intake_db = db.pool().await;
    let caught_up = || async {
        let head: i64 = sqlx::query_scalar(
            "SELECT COALESCE(max(id), 0) FROM event_log WHERE event_type LIKE 'referral.%'",
        )
        .fetch_one(&referral_db)
        .await
        .expect("feed head");
        let cursor: Option<i64> =
            sqlx::query_scalar("SELECT last_event_id FROM followed_feed WHERE source = 'referral'")
                .fetch_optional(&intake_db)
                .await
                .expect("cursor");
        cursor == Some(head)
    };
    assert!(
        onestop_test_support::eventually(Duration::from_secs(30), caught_up).await,
        "intake follows the referral feed before the drill"
    );

    let logged_before = intake.output().len();
    let blackholed = Instant::now();
    proxy.blackhole();
    // The feed moves on while intake cannot hear it: each referral's
    // agency accepts it.
    let accept_all = async {
        let mut admin: ReferralClient = suite.client("referral", Bearer::admin());
        let mut client = client.clone();
        for (case_id, need_id) in &cases {
            let referral_id = support::need(&mut client, case_id, need_id)
                .await
                .owner_record_id;
            let referral = admin
                .get_referral(referral_pb::GetReferralRequest {
                    referral_id: referral_id.clone(),
                })
                .await
                .expect("referral reads")
                .into_inner();
            let agency = referral.legs.last().expect("routed").agency_id.clone();
            suite
                .client::<ReferralClient>("referral", Bearer::agency(&agency))
                .accept_referral(referral_pb::AcceptReferralRequest {
                    referral_id,
                    ..Default::default()
                })
                .await
                .expect("the agency accepts");
        }
    };
    let notice = wait_for_line(
        &intake,
        logged_before,
        "feed following interrupted",
        interval + timeout + Duration::from_secs(15),
    );
    let ((), noticed) = tokio::join!(accept_all, notice);
    proxy.restore();
    let restored = Instant::now();
    let resumed = onestop_test_support::eventually(Duration::from_secs(60), caught_up).await;
    let resumed_at = Instant::now();

    let figures = figure(
        DRILL,
        format!(
            "keepalive {interval:?} + {timeout:?}: the follower noticed the silent feed {:?} ms \
             after it went silent; once the path was back it had applied every missed event \
             {:?} ms later",
            noticed.map(|at| ms(blackholed, at)),
            resumed.then(|| ms(restored, resumed_at)),
        ),
    );
    assert!(
        noticed.is_some_and(|at| at - blackholed <= interval + timeout + Duration::from_secs(3)),
        "the silent feed went unnoticed past the keepalive: {figures}"
    );
    assert!(
        noticed.is_some_and(|at| at - blackholed <= Duration::from_secs(33)),
        "noticed past 30 s: {figures}"
    );
    assert!(resumed, "intake did not catch up with the feed: {figures}");
    for (case_id, _) in &cases {
        let lines: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM case_timeline WHERE case_id::text = $1 AND kind = $2",
        )
        .bind(case_id)
        .bind(ReferralEvent::Accepted.name())
        .fetch_one(&intake_db)
        .await
        .expect("timeline");
        assert_eq!(
            lines, 1,
            "case {case_id}: the acceptance made while blackholed is on the timeline once; {figures}"
        );
    }
    referral_db.close().await;
    intake_db.close().await;
    suite.stop().await;
}

/// When a line containing `text` appeared after the first `skip` lines of
/// `process`'s log, polling for up to `within`.
async fn wait_for_line(
    process: &onestop_test_support::ServiceProcess,
    skip: usize,
    text: &str,
    within: Duration,
) -> Option<Instant> {
    let deadline = Instant::now() + within;
    loop {
        if process
            .output()
            .iter()
            .skip(skip)
            .any(|line| line.contains(text))
        {
            return Some(Instant::now());
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
