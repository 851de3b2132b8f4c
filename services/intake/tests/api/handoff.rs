//! Needs reach their owner through the outbox, and the owner's events come
//! back onto the case: against the real referral server, in process.

use std::time::Duration;

use onestop_contracts::common::v1::{Money, NeedCategory};
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::referral::v1 as referral_pb;
use onestop_contracts::referral::v1::referral_service_client::ReferralServiceClient;
use onestop_intake::upstreams::UpstreamSettings;
use onestop_platform::Role;
use onestop_platform::server::CancellationToken;
use onestop_test_support::{Bearer, TcpProxy, TestDb, channel, eventually};
use sqlx::PgPool;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::Channel;

use crate::common::{Intake, registration_number};

type ReferralClient = ReferralServiceClient<InterceptedService<Channel, Bearer>>;

/// The referral service with the built-in agency directory loaded.
struct Referral {
    addr: std::net::SocketAddr,
    pool: PgPool,
    shutdown: CancellationToken,
    _db: TestDb,
}

impl Referral {
    async fn start() -> Self {
        let db = TestDb::new().await;
        let app =
            onestop_referral::startup::Application::build(onestop_test_support::settings(&db.url))
                .await
                .expect("referral builds");
        let pool = db.pool().await;
        onestop_referral::seed::load(&pool, onestop_referral::seed::BUILT_IN)
            .await
            .expect("directory loads");
        let addr = app.local_addr();
        let shutdown = app.shutdown_token();
        tokio::spawn(app.run_until_stopped());
        Self {
            addr,
            pool,
            shutdown,
            _db: db,
        }
    }

    fn client(&self, bearer: Bearer) -> ReferralClient {
        ReferralServiceClient::with_interceptor(channel(self.addr), bearer)
    }

    async fn referrals_for(&self, need_id: &str) -> i64 {
        sqlx::query_scalar("SELECT count(*) FROM referral WHERE need_id::text = $1")
            .bind(need_id)
            .fetch_one(&self.pool)
            .await
            .expect("count referrals")
    }
}

impl Drop for Referral {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

fn wired_to(referral_url: String) -> UpstreamSettings {
    UpstreamSettings {
        referral_url: Some(referral_url),
        handoff_max_backoff: Duration::from_millis(200),
        buyers_per_need: 5,
        ..Default::default()
    }
}

/// Intake on a fresh database, handing referral needs to `addr`.
async fn intake_handing_to(addr: std::net::SocketAddr) -> Intake {
    Intake::start_wired(
        TestDb::new().await,
        |_| {},
        wired_to(format!("http://{addr}")),
    )
    .await
}

async fn open_finance_case(intake: &Intake, seed: u32) -> (pb::Case, pb::Need) {
    let company = intake.register(&registration_number(seed), 0, false).await;
    let case = intake
        .agency()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: String::new(),
            company_id: company.company_id,
            needs: vec![pb::NeedRequest {
                category: NeedCategory::ExportFinance as i32,
                detail: "Working capital for a first order to Vietnam".into(),
                target_markets: vec!["VN".into()],
                hs_codes: vec!["330499".into()],
            }],
        })
        .await
        .expect("case opens")
        .into_inner();
    let finance = case
        .needs
        .iter()
        .find(|n| n.category == NeedCategory::ExportFinance as i32)
        .expect("finance need")
        .clone();
    (case, finance)
}

async fn need(intake: &Intake, case_id: &str, need_id: &str) -> pb::Need {
    intake
        .admin()
        .get_case(pb::GetCaseRequest {
            case_id: case_id.into(),
        })
        .await
        .expect("case reads")
        .into_inner()
        .needs
        .into_iter()
        .find(|n| n.need_id == need_id)
        .expect("need on case")
}

/// Waits until the need is acknowledged by its owner.
async fn wait_delivered(intake: &Intake, case_id: &str, need_id: &str) -> pb::Need {
    assert!(
        eventually(Duration::from_secs(15), || async {
            need(intake, case_id, need_id).await.delivery == pb::DeliveryState::Delivered as i32
        })
        .await,
        "need {need_id} delivered"
    );
    need(intake, case_id, need_id).await
}

#[tokio::test]
async fn a_need_waits_while_its_owner_is_down_and_is_delivered_once_it_returns() {
    let referral = Referral::start().await;
    let proxy = TcpProxy::start(referral.addr).await;
    proxy.cut();
    let intake = intake_handing_to(proxy.addr()).await;
    let (case, finance) = open_finance_case(&intake, 41).await;

    assert!(
        eventually(Duration::from_secs(15), || async {
            let need = need(&intake, &case.case_id, &finance.need_id).await;
            need.delivery == pb::DeliveryState::Pending as i32
                && need.delivery_attempts >= 2
                && !need.last_delivery_error.is_empty()
                && need.next_delivery_at.is_some()
        })
        .await,
        "delivery is retried and the failure is visible on the need"
    );
    assert_eq!(referral.referrals_for(&finance.need_id).await, 0);
    // The rule-added MENTORING need has no owner configured here: it waits
    // untouched instead of burning attempts.
    let mentoring = case
        .needs
        .iter()
        .find(|n| n.category == NeedCategory::Mentoring as i32)
        .expect("mentoring need added by rule");
    let mentoring = need(&intake, &case.case_id, &mentoring.need_id).await;
    assert_eq!(mentoring.delivery_attempts, 0);

    proxy.restore();
    let delivered = wait_delivered(&intake, &case.case_id, &finance.need_id).await;
    assert!(delivered.last_delivery_error.is_empty());
    assert!(delivered.delivered_at.is_some());
    let stored = referral
        .client(Bearer::admin())
        .get_referral(referral_pb::GetReferralRequest {
            referral_id: delivered.owner_record_id.clone(),
        })
        .await
        .expect("the acknowledged referral exists")
        .into_inner();
    assert_eq!(stored.need_id, finance.need_id);
    assert_eq!(stored.case_id, case.case_id);
    assert_eq!(referral.referrals_for(&finance.need_id).await, 1);
}

#[tokio::test]
async fn a_need_sent_again_after_a_crash_before_it_was_marked_gets_the_first_record() {
    let referral = Referral::start().await;
    let intake = intake_handing_to(referral.addr).await;
    let (case, finance) = open_finance_case(&intake, 42).await;
    let first = wait_delivered(&intake, &case.case_id, &finance.need_id).await;

    // What a crash between the owner's acknowledgement and intake's commit
    // leaves behind: the owner has the referral, intake still has it pending.
    sqlx::query(
        "UPDATE need SET delivery = 'PENDING', delivered_at = NULL, owner_record_id = '' WHERE id = $1::uuid",
    )
    .bind(&finance.need_id)
    .execute(&intake.pool)
    .await
    .expect("rewind delivery");

    let second = wait_delivered(&intake, &case.case_id, &finance.need_id).await;
    assert_eq!(second.owner_record_id, first.owner_record_id);
    assert_eq!(referral.referrals_for(&finance.need_id).await, 1);
}

#[tokio::test]
async fn the_owners_events_tell_the_story_on_the_case_and_finish_the_need() {
    let referral = Referral::start().await;
    let intake = intake_handing_to(referral.addr).await;
    let (case, finance) = open_finance_case(&intake, 43).await;
    let referral_id = wait_delivered(&intake, &case.case_id, &finance.need_id)
        .await
        .owner_record_id;
    let routed = referral
        .client(Bearer::admin())
        .get_referral(referral_pb::GetReferralRequest {
            referral_id: referral_id.clone(),
        })
        .await
        .expect("referral")
        .into_inner();
    let agency = routed
        .legs
        .last()
        .expect("routed to a program")
        .agency_id
        .clone();
    let mut agency_client = referral.client(Bearer::role(Role::Agency, Some(&agency)));
    agency_client
        .accept_referral(referral_pb::AcceptReferralRequest {
            referral_id: referral_id.clone(),
            ..Default::default()
        })
        .await
        .expect("the receiving agency accepts");
    agency_client
        .start_referral(referral_pb::StartReferralRequest {
            referral_id: referral_id.clone(),
            ..Default::default()
        })
        .await
        .expect("starts");
    agency_client
        .complete_referral(referral_pb::CompleteReferralRequest {
            referral_id: referral_id.clone(),
            outcome: Some(referral_pb::ReferralOutcome {
                kind: referral_pb::OutcomeKind::FinancingApproved as i32,
                amount: Some(Money {
                    currency_code: "KRW".into(),
                    amount_minor: 50_000_000,
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("completes with an outcome");

    assert!(
        eventually(Duration::from_secs(15), || async {
            need(&intake, &case.case_id, &finance.need_id).await.status
                == pb::NeedStatus::Done as i32
        })
        .await,
        "the owner's completion finishes the need"
    );
    let timeline = intake
        .agency()
        .get_case_timeline(pb::GetCaseTimelineRequest {
            case_id: case.case_id.clone(),
        })
        .await
        .expect("timeline")
        .into_inner();
    let kinds: Vec<&str> = timeline
        .entries
        .iter()
        .filter(|e| e.need_id == finance.need_id)
        .map(|e| e.kind.as_str())
        .collect();
    for expected in [
        "need.opened",
        "need.delivered",
        "referral.routed",
        "referral.accepted",
        "referral.started",
        "referral.completed",
    ] {
        assert!(
            kinds.contains(&expected),
            "{expected} missing from {kinds:?}"
        );
    }
    let referral_lines = timeline
        .entries
        .iter()
        .filter(|e| e.service == "referral")
        .count();

    // The cursor is stored with what it applied: intake started again on
    // the same database resumes after it and repeats nothing.
    let cursor = || async {
        sqlx::query_scalar::<_, i64>(
            "SELECT last_event_id FROM feed_cursor WHERE source = 'referral'",
        )
        .fetch_one(&intake.pool)
        .await
        .expect("cursor stored")
    };
    let last_followed: i64 =
        sqlx::query_scalar("SELECT max(id) FROM event_log WHERE event_type LIKE 'referral.%'")
            .fetch_one(&referral.pool)
            .await
            .expect("referral events");
    assert_eq!(cursor().await, last_followed);
    let status_changes: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_log WHERE event_type = 'need.status_changed'",
    )
    .fetch_one(&intake.pool)
    .await
    .unwrap();
    assert!(
        status_changes >= 2,
        "ROUTED -> IN_PROGRESS -> DONE are events"
    );

    intake.shutdown.cancel();
    let restarted = onestop_intake::startup::Application::build_with_upstreams(
        onestop_test_support::settings(&intake.database_url),
        wired_to(format!("http://{}", referral.addr)),
    )
    .await
    .expect("intake restarts");
    let restarted_shutdown = restarted.shutdown_token();
    tokio::spawn(restarted.run_until_stopped());
    // Give the restarted follower time to reconnect and replay, if it were
    // going to.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let lines_after_restart: i64 =
        sqlx::query_scalar("SELECT count(*) FROM case_timeline WHERE service = 'referral'")
            .fetch_one(&intake.pool)
            .await
            .unwrap();
    restarted_shutdown.cancel();
    assert_eq!(lines_after_restart as usize, referral_lines);
    assert_eq!(cursor().await, last_followed);
}
