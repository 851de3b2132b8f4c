//! An owner hung (SIGSTOP: its connections stay open, nothing answers)
//! while needs wait for it: another owner's new need is delivered at once,
//! and once the hung owner resumes every need waiting for it is delivered
//! exactly once.

use std::time::{Duration, Instant};

use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::event_types::IntakeEvent;
use onestop_test_support::{Bearer, IntakeClient, Suite};

use crate::support::{self, all_delivered, figure, ms, open_case};

const DRILL: &str = "hung owner";
/// Needs waiting for the hung owner.
const PENDING: u32 = 12;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_owner_delays_no_other_owner_and_gets_each_need_once() {
    let _alone = support::one_at_a_time().await;
    let mut suite = Suite::start(
        env!("CARGO_BIN_EXE_onestop-intake"),
        &["mentoring", "referral", "intake"],
        &[support::SMALL_POOL],
    )
    .await;
    suite.seed_directory().await;
    let mut intake: IntakeClient = suite.client("intake", Bearer::agency("kotra"));

    // Both owners reached once, so their connections are open when one
    // hangs; how long a mentoring need takes with nothing hung is the
    // baseline.
    let warm = vec![
        open_case(&mut intake, 2_000_000, NeedCategory::ExportFinance).await,
        open_case(&mut intake, 2_000_001, NeedCategory::Mentoring).await,
    ];
    assert!(
        all_delivered(&mut intake, &warm, Duration::from_secs(30))
            .await
            .is_some(),
        "both owners take a need before the drill"
    );
    let baseline_opened = Instant::now();
    let baseline = vec![open_case(&mut intake, 2_000_002, NeedCategory::Mentoring).await];
    let baseline_delivered = all_delivered(&mut intake, &baseline, Duration::from_secs(30))
        .await
        .map(|at| ms(baseline_opened, at));

    suite.process("referral").signal("STOP");
    let mut pending = Vec::new();
    for i in 0..PENDING {
        pending.push(open_case(&mut intake, 2_000_100 + i, NeedCategory::ExportFinance).await);
    }
    let opened = Instant::now();
    let other = vec![open_case(&mut intake, 2_000_200, NeedCategory::Mentoring).await];
    let other_delivered = all_delivered(&mut intake, &other, Duration::from_secs(10)).await;
    let mut undelivered = 0;
    for (case_id, need_id) in &pending {
        if !support::is_delivered(&support::need(&mut intake, case_id, need_id).await) {
            undelivered += 1;
        }
    }

    suite.process("referral").signal("CONT");
    let resumed = Instant::now();
    let caught_up = all_delivered(&mut intake, &pending, Duration::from_secs(60)).await;
    let figures = figure(
        DRILL,
        format!(
            "with {undelivered} needs waiting for the hung owner, another owner's new need was \
             delivered {:?} ms after it was opened (with nothing hung: {baseline_delivered:?} ms); \
             after SIGCONT all {PENDING} were delivered within {:?} ms",
            other_delivered.map(|at| ms(opened, at)),
            caught_up.map(|at| ms(resumed, at)),
        ),
    );
    assert!(
        undelivered >= 10,
        "needs really waited for the hung owner: {figures}"
    );
    assert!(
        other_delivered.is_some_and(|at| at - opened <= Duration::from_secs(2)),
        "another owner's need waited behind the hung one: {figures}"
    );
    assert!(caught_up.is_some(), "needs stayed undelivered: {figures}");

    // Exactly once: one record at the owner, one acknowledgement, one
    // timeline line per need.
    let referral = sqlx::PgPool::connect(suite.database_url("referral"))
        .await
        .expect("referral database");
    let own = sqlx::PgPool::connect(suite.database_url("intake"))
        .await
        .expect("intake database");
    for (case_id, need_id) in pending.iter().chain(&warm[..1]) {
        let records: i64 = sqlx::query_scalar("SELECT count(*) FROM referral WHERE need_id = $1")
            .bind(need_id)
            .fetch_one(&referral)
            .await
            .expect("referrals");
        let acknowledged: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM event_log WHERE event_type = $1 AND aggregate_id = $2
               AND position(convert_to($3, 'UTF8') IN payload) > 0",
        )
        .bind(IntakeEvent::NeedDelivered.name())
        .bind(case_id)
        .bind(need_id)
        .fetch_one(&own)
        .await
        .expect("delivery events");
        let lines: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM case_timeline WHERE need_id::text = $1 AND kind = $2",
        )
        .bind(need_id)
        .bind(IntakeEvent::NeedDelivered.name())
        .fetch_one(&own)
        .await
        .expect("timeline lines");
        assert_eq!(
            (records, acknowledged, lines),
            (1, 1, 1),
            "need {need_id}: referrals, need.delivered events, timeline lines; {figures}"
        );
    }
    referral.close().await;
    own.close().await;
    suite.stop().await;
}
