//! Needs reach their owner through the outbox, and the owner's events come
//! back onto the case: against the real referral server, in process.

use std::net::SocketAddr;
use std::time::Duration;

use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::event_types::{IntakeEvent, ReferralEvent};
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::referral::v1 as referral_pb;
use onestop_intake::upstreams::UpstreamSettings;
use onestop_referral::admin::seed;
use onestop_referral::startup::Application as ReferralApplication;
use onestop_test_support::{ReferralClient, TcpProxy, TestDb, TestServer, eventually};
use sqlx::PgPool;
use tonic::Code;

use crate::common::{Intake, krw, registration_number, timeline};

type Referral = TestServer<ReferralClient>;

/// The referral service with the built-in agency directory loaded, on a
/// fresh database, listening on `addr` (port 0 picks one).
async fn start_referral_at(addr: SocketAddr) -> Referral {
    let referral = TestServer::start(|mut settings| {
        settings.listen = Some(addr);
        ReferralApplication::build(settings)
    })
    .await;
    seed::load(&referral.pool, seed::BUILT_IN)
        .await
        .expect("directory loads");
    referral
}

async fn start_referral() -> Referral {
    start_referral_at(SocketAddr::from(([127, 0, 0, 1], 0))).await
}

async fn referrals_for(referral: &Referral, need_id: &str) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM referral WHERE need_id::text = $1")
        .bind(need_id)
        .fetch_one(&referral.pool)
        .await
        .expect("count referrals")
}

/// The epoch of the feed served from `pool`'s database.
async fn feed_epoch(pool: &PgPool) -> String {
    sqlx::query_scalar("SELECT epoch::text FROM event_log_horizon")
        .fetch_one(pool)
        .await
        .expect("feed epoch")
}

/// The id of the newest referral.* event on referral's feed (0 for none).
async fn last_referral_event(referral: &Referral) -> i64 {
    sqlx::query_scalar(
        "SELECT COALESCE(max(id), 0) FROM event_log WHERE event_type LIKE 'referral.%'",
    )
    .fetch_one(&referral.pool)
    .await
    .expect("referral events")
}

/// The id of the newest event of any type on referral's feed.
async fn feed_head(referral: &Referral) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM event_log")
        .fetch_one(&referral.pool)
        .await
        .expect("feed head")
}

/// Intake's stored position on referral's feed: (last event id, epoch).
async fn cursor(intake: &Intake) -> (i64, String) {
    sqlx::query_as("SELECT last_event_id, epoch FROM followed_feed WHERE source = 'referral'")
        .fetch_optional(&intake.pool)
        .await
        .expect("cursor reads")
        .unwrap_or_default()
}

/// Waits until intake has applied everything on referral's feed.
async fn wait_caught_up(intake: &Intake, referral: &Referral) {
    let epoch = feed_epoch(&referral.pool).await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            cursor(intake).await == (last_referral_event(referral).await, epoch.clone())
        })
        .await,
        "intake follows referral's feed to its head, in its epoch"
    );
}

fn wired_to(referral: SocketAddr) -> UpstreamSettings {
    UpstreamSettings {
        referral_url: Some(format!("http://{referral}")),
        handoff_max_backoff: Duration::from_millis(200),
        buyers_per_need: 5,
        ..Default::default()
    }
}

/// Intake on `db`, handing referral needs to `referral`.
async fn intake_on(db: TestDb, referral: SocketAddr) -> Intake {
    Intake::start_wired(db, |_| {}, wired_to(referral)).await
}

/// Intake handing referral needs to a real referral service and mentoring
/// needs to a "hung" mentoring, which accepts connections and never says a
/// word (for as long as the returned task runs).
async fn wired_to_hung_mentoring() -> (Intake, Referral, tokio::task::JoinHandle<()>) {
    let hung = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let hung_addr = hung.local_addr().unwrap();
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((connection, _)) = hung.accept().await {
            held.push(connection);
        }
    });
    let referral = start_referral().await;
    let intake = Intake::start_wired(
        TestDb::new().await,
        |_| {},
        UpstreamSettings {
            mentoring_url: Some(format!("http://{hung_addr}")),
            ..wired_to(referral.addr)
        },
    )
    .await;
    (intake, referral, silent)
}

/// Stops intake and starts it again on the same database.
async fn restart(intake: Intake, referral: SocketAddr) -> Intake {
    let db = intake.server.stop().await;
    intake_on(db, referral).await
}

async fn open_finance_case(intake: &Intake, seed: u32) -> (pb::Case, pb::Need) {
    let company = intake.register(&registration_number(seed), 0, false).await;
    let case = intake
        .kotra()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: String::new(),
            company_id: company.company_id,
            needs: vec![pb::NeedRequest {
                category: NeedCategory::ExportFinance as i32,
                detail: "Working capital for a first order to Vietnam".into(),
                target_markets: vec!["VN".into()],
                hs_codes: vec!["330499".into()],
                ..Default::default()
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

/// The MENTORING need intake added to `case` by rule, as stored now.
async fn mentoring_need(intake: &Intake, case: &pb::Case) -> pb::Need {
    let mentoring = case
        .needs
        .iter()
        .find(|n| n.category == NeedCategory::Mentoring as i32)
        .expect("mentoring need added by rule");
    need(intake, &case.case_id, &mentoring.need_id).await
}

/// Whether a relay holds the pending need: a claim pushes its next attempt
/// past the call's deadline (30 s), a fresh need is due at once.
fn is_claimed(need: &pb::Need) -> bool {
    let next = need
        .next_delivery_at
        .as_ref()
        .expect("a pending need has a next attempt");
    let next = std::time::UNIX_EPOCH + Duration::new(next.seconds as u64, 0);
    next > std::time::SystemTime::now() + Duration::from_secs(15)
}

/// Waits until the need is acknowledged by its owner.
async fn wait_delivered(intake: &Intake, case_id: &str, need_id: &str) -> pb::Need {
    assert!(
        reaches(intake, (case_id, need_id), pb::DeliveryState::Delivered, 15).await,
        "need {need_id} delivered"
    );
    need(intake, case_id, need_id).await
}

/// Whether the need (case id, need id) reaches `state` within `seconds`.
async fn reaches(
    intake: &Intake,
    (case_id, need_id): (&str, &str),
    state: pb::DeliveryState,
    seconds: u64,
) -> bool {
    eventually(Duration::from_secs(seconds), || async {
        need(intake, case_id, need_id).await.delivery == state as i32
    })
    .await
}

/// Timeline lines from referral's events, in the whole of intake.
async fn referral_lines(intake: &Intake) -> i64 {
    sqlx::query_scalar("SELECT count(*) FROM case_timeline WHERE service = 'referral'")
        .fetch_one(&intake.pool)
        .await
        .expect("timeline lines")
}

/// The receiving agency accepts, starts and completes the referral.
async fn complete(referral: &Referral, referral_id: &str) {
    let routed = referral
        .admin()
        .get_referral(referral_pb::GetReferralRequest {
            referral_id: referral_id.into(),
        })
        .await
        .expect("referral")
        .into_inner();
    let agency = &routed.legs.last().expect("routed to a program").agency_id;
    let mut agency = referral.agency(agency);
    agency
        .accept_referral(referral_pb::AcceptReferralRequest {
            referral_id: referral_id.into(),
            ..Default::default()
        })
        .await
        .expect("the receiving agency accepts");
    agency
        .start_referral(referral_pb::StartReferralRequest {
            referral_id: referral_id.into(),
            ..Default::default()
        })
        .await
        .expect("starts");
    agency
        .complete_referral(referral_pb::CompleteReferralRequest {
            referral_id: referral_id.into(),
            outcome: Some(referral_pb::ReferralOutcome {
                kind: referral_pb::OutcomeKind::FinancingApproved as i32,
                amount: Some(krw(50_000_000)),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("completes with an outcome");
}

/// Opens a finance case and waits until referral's owner completed it and
/// intake knows.
async fn completed_finance_need(
    intake: &Intake,
    referral: &Referral,
    seed: u32,
) -> (pb::Case, pb::Need) {
    let (case, finance) = open_finance_case(intake, seed).await;
    let referral_id = wait_delivered(intake, &case.case_id, &finance.need_id)
        .await
        .owner_record_id;
    complete(referral, &referral_id).await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            need(intake, &case.case_id, &finance.need_id).await.status
                == pb::NeedStatus::Done as i32
        })
        .await,
        "the owner's completion finishes the need"
    );
    wait_caught_up(intake, referral).await;
    (case, finance)
}

#[tokio::test]
async fn a_need_waits_while_its_owner_is_down_and_is_delivered_once_it_returns() {
    let referral = start_referral().await;
    let proxy = TcpProxy::start(referral.addr).await;
    proxy.cut();
    let intake = intake_on(TestDb::new().await, proxy.addr()).await;
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
    assert_eq!(referrals_for(&referral, &finance.need_id).await, 0);
    // The rule-added MENTORING need has no owner configured here: it waits
    // untouched instead of burning attempts.
    let mentoring = mentoring_need(&intake, &case).await;
    assert_eq!(mentoring.delivery_attempts, 0);

    proxy.restore();
    let delivered = wait_delivered(&intake, &case.case_id, &finance.need_id).await;
    assert!(delivered.last_delivery_error.is_empty());
    assert!(delivered.delivered_at.is_some());
    let stored = referral
        .admin()
        .get_referral(referral_pb::GetReferralRequest {
            referral_id: delivered.owner_record_id.clone(),
        })
        .await
        .expect("the acknowledged referral exists")
        .into_inner();
    assert_eq!(stored.need_id, finance.need_id);
    assert_eq!(stored.case_id, case.case_id);
    // What the company wrote reaches the owner, though the feed never
    // carries it.
    assert_eq!(stored.detail, finance.detail);
    assert!(!stored.detail.is_empty());
    assert_eq!(referrals_for(&referral, &finance.need_id).await, 1);
}

#[tokio::test]
async fn a_need_sent_again_after_a_crash_before_it_was_marked_gets_the_first_record() {
    let referral = start_referral().await;
    let intake = intake_on(TestDb::new().await, referral.addr).await;
    let (case, finance) = open_finance_case(&intake, 42).await;
    let first = wait_delivered(&intake, &case.case_id, &finance.need_id).await;

    // What a crash between the owner's acknowledgement and intake's commit
    // leaves behind once the claim's lease has run out: the owner has the
    // referral, intake still has it pending.
    sqlx::query(
        "UPDATE need SET delivery = 'PENDING', delivered_at = NULL, owner_record_id = '',
                next_delivery_at = now()
          WHERE id = $1::uuid",
    )
    .bind(&finance.need_id)
    .execute(&intake.pool)
    .await
    .expect("rewind delivery");

    let second = wait_delivered(&intake, &case.case_id, &finance.need_id).await;
    assert_eq!(second.owner_record_id, first.owner_record_id);
    assert_eq!(referrals_for(&referral, &finance.need_id).await, 1);
}

#[tokio::test]
async fn the_owners_events_tell_the_story_on_the_case_and_finish_the_need() {
    let referral = start_referral().await;
    let intake = intake_on(TestDb::new().await, referral.addr).await;
    let (case, finance) = completed_finance_need(&intake, &referral, 43).await;

    let story = timeline(intake.kotra(), &case.case_id).await;
    let kinds: Vec<&str> = story
        .iter()
        .filter(|e| e.need_id == finance.need_id)
        .map(|e| e.kind.as_str())
        .collect();
    let expected = [
        IntakeEvent::NeedOpened.name(),
        IntakeEvent::NeedDelivered.name(),
    ]
    .into_iter()
    .chain(
        [
            ReferralEvent::Routed,
            ReferralEvent::Accepted,
            ReferralEvent::Started,
            ReferralEvent::Completed,
        ]
        .map(ReferralEvent::name),
    );
    for expected in expected {
        assert!(
            kinds.contains(&expected),
            "{expected} missing from {kinds:?}"
        );
    }
    assert!(
        intake.count_events(IntakeEvent::NeedStatusChanged).await >= 2,
        "ROUTED -> IN_PROGRESS -> DONE are events"
    );

    // The cursor is stored with what it applied: intake started again on
    // the same database resumes after it and repeats nothing.
    let lines = referral_lines(&intake).await;
    let followed = cursor(&intake).await;
    let intake = restart(intake, referral.addr).await;
    // Give the restarted follower time to reconnect and replay, if it were
    // going to.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(referral_lines(&intake).await, lines);
    assert_eq!(cursor(&intake).await, followed);
}

/// Referral's directory with `count` agencies new to intake, named
/// `regional-desk-0`, `regional-desk-1`, ...: each an `agency.upserted` on
/// referral's feed, all committed together.
async fn load_regional_desks(referral: &Referral, count: usize) {
    let mut directory: serde_json::Value =
        serde_json::from_str(seed::BUILT_IN).expect("the built-in directory");
    let model = directory["agencies"][0].clone();
    let model_id = model["agency_id"].as_str().expect("an id").to_owned();
    let agencies: Vec<serde_json::Value> = (0..count)
        .map(|n| {
            let id = format!("regional-desk-{n}");
            let mut agency = model.clone();
            agency["agency_id"] = id.clone().into();
            for unit in agency["units"].as_array_mut().expect("units") {
                let unit_id = unit["unit_id"].as_str().expect("a unit id");
                unit["unit_id"] = unit_id.replacen(&model_id, &id, 1).into();
            }
            agency
        })
        .collect();
    directory["agencies"] = agencies.into();
    directory["programs"] = serde_json::Value::Array(Vec::new());
    seed::load(&referral.pool, &directory.to_string())
        .await
        .expect("the agencies load");
}

/// The regional desks intake remembers, in `range` of their numbers:
/// (rows, distinct transactions that wrote them).
async fn remembered_desks(intake: &Intake, range: std::ops::Range<usize>) -> (i64, i64) {
    let names: Vec<String> = range.map(|n| format!("regional-desk-{n}")).collect();
    sqlx::query_as(
        "SELECT count(*), count(DISTINCT xmin::text) FROM answering_agency
          WHERE agency_id = ANY($1)",
    )
    .bind(names)
    .fetch_one(&intake.pool)
    .await
    .expect("remembered agencies")
}

/// Events that reach intake together are applied in one transaction with
/// their cursor (the rows they write share the writing transaction); when
/// one of them cannot be applied, the events before it still are, and the
/// feed waits at that one.
#[tokio::test]
async fn an_owners_events_that_arrive_together_are_applied_together_up_to_one_that_fails() {
    const DESKS: usize = 12;
    const REFUSED: usize = 7;
    let referral = start_referral().await;
    load_regional_desks(&referral, DESKS).await;
    // Intake cannot reach referral until its database refuses one desk,
    // then reads the whole stretch at once.
    let proxy = TcpProxy::start(referral.addr).await;
    proxy.cut();
    let intake = intake_on(TestDb::new().await, proxy.addr()).await;
    sqlx::raw_sql(&format!(
        "CREATE FUNCTION refuse_desk() RETURNS trigger LANGUAGE plpgsql AS
             $$ BEGIN RAISE EXCEPTION 'refused for the test'; END $$;
         CREATE TRIGGER refuse_desk BEFORE INSERT ON answering_agency FOR EACH ROW
             WHEN (NEW.agency_id = 'regional-desk-{REFUSED}') EXECUTE FUNCTION refuse_desk();"
    ))
    .execute(&intake.pool)
    .await
    .expect("the refusing trigger");
    proxy.restore();

    assert!(
        eventually(Duration::from_secs(15), || async {
            remembered_desks(&intake, 0..DESKS).await.0 == REFUSED as i64
        })
        .await,
        "the desks before the refused one are remembered"
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        remembered_desks(&intake, 0..DESKS).await.0,
        REFUSED as i64,
        "nothing after the refused desk is applied before it"
    );

    sqlx::raw_sql("DROP TRIGGER refuse_desk ON answering_agency")
        .execute(&intake.pool)
        .await
        .expect("the trigger goes");
    assert!(
        eventually(Duration::from_secs(30), || async {
            remembered_desks(&intake, 0..DESKS).await.0 == DESKS as i64
        })
        .await,
        "every desk is remembered once the refusal is gone"
    );
    let (rows, transactions) = remembered_desks(&intake, REFUSED..DESKS).await;
    assert!(
        transactions < rows,
        "{rows} desks arrived together and were written by {transactions} transactions"
    );
}

#[tokio::test]
async fn reading_an_owners_feed_again_from_the_start_repeats_nothing() {
    let referral = start_referral().await;
    let intake = intake_on(TestDb::new().await, referral.addr).await;
    let (case, finance) = completed_finance_need(&intake, &referral, 46).await;
    let lines = referral_lines(&intake).await;
    let status_changes = intake.count_events(IntakeEvent::NeedStatusChanged).await;
    let (_, epoch) = cursor(&intake).await;

    // A cursor of another epoch: the feed refuses it (FEED_EPOCH_CHANGED)
    // and intake reads the whole feed again, every event it had applied.
    // Only going back to the start clears the forged epoch, and only
    // applying every event again brings the cursor back to the head.
    sqlx::query("UPDATE followed_feed SET epoch = gen_random_uuid()::text")
        .execute(&intake.pool)
        .await
        .expect("forge the cursor's epoch");
    let intake = restart(intake, referral.addr).await;
    wait_caught_up(&intake, &referral).await;
    assert_eq!(cursor(&intake).await.1, epoch);

    assert_eq!(referral_lines(&intake).await, lines);
    assert_eq!(
        intake.count_events(IntakeEvent::NeedStatusChanged).await,
        status_changes
    );
    let done = need(&intake, &case.case_id, &finance.need_id).await;
    assert_eq!(done.status, pb::NeedStatus::Done as i32);
}

/// Whether intake still holds the epoch its cursor was read in when the
/// owner comes back on a new database.
#[derive(Clone, Copy)]
enum StoredEpoch {
    /// The feed refuses the cursor as of another epoch.
    Kept,
    /// As a cursor stored before feeds had epochs: the feed refuses it as
    /// past its head.
    Forgotten,
}

/// The owner's database is recreated behind intake's back (the owner
/// restarts at the same address on a fresh database): intake's cursor is
/// past the new feed's head, so it reads the new feed from the start and
/// the owner's new events reach the timeline.
async fn a_recreated_owner_is_followed_from_its_start(stored: StoredEpoch, seed: u32) {
    let referral = start_referral().await;
    let addr = referral.addr;
    let intake = intake_on(TestDb::new().await, addr).await;
    let (first_case, first) = open_finance_case(&intake, seed).await;
    wait_delivered(&intake, &first_case.case_id, &first.need_id).await;
    wait_caught_up(&intake, &referral).await;
    let (before, old_epoch) = cursor(&intake).await;
    let first_story = timeline(intake.kotra(), &first_case.case_id).await;

    if let StoredEpoch::Forgotten = stored {
        sqlx::query("UPDATE followed_feed SET epoch = ''")
            .execute(&intake.pool)
            .await
            .expect("forget the epoch");
    }
    drop(referral.stop().await);
    let referral = start_referral_at(addr).await;
    let new_epoch = feed_epoch(&referral.pool).await;
    assert_ne!(new_epoch, old_epoch);
    assert!(
        before > feed_head(&referral).await,
        "the stored cursor is past the new feed's head"
    );
    assert!(
        eventually(Duration::from_secs(15), || async {
            cursor(&intake).await.0 < before
        })
        .await,
        "the follower goes back to the start of the new feed"
    );

    let (case, finance) = open_finance_case(&intake, seed + 1).await;
    wait_delivered(&intake, &case.case_id, &finance.need_id).await;
    assert!(
        eventually(Duration::from_secs(15), || async {
            timeline(intake.kotra(), &case.case_id)
                .await
                .iter()
                .any(|e| {
                    e.need_id == finance.need_id
                        && e.service == "referral"
                        && e.kind == ReferralEvent::Routed.name()
                })
        })
        .await,
        "the new owner's events reach the timeline"
    );
    wait_caught_up(&intake, &referral).await;
    assert_eq!(cursor(&intake).await.1, new_epoch);
    assert_eq!(
        timeline(intake.kotra(), &first_case.case_id).await,
        first_story
    );
}

#[tokio::test]
async fn a_follower_of_an_owner_recreated_in_a_new_epoch_reads_it_from_the_start() {
    a_recreated_owner_is_followed_from_its_start(StoredEpoch::Kept, 44).await;
}

#[tokio::test]
async fn a_follower_whose_cursor_is_past_the_owners_head_reads_it_from_the_start() {
    a_recreated_owner_is_followed_from_its_start(StoredEpoch::Forgotten, 47).await;
}

#[tokio::test]
async fn an_owner_that_never_answers_does_not_delay_another_owners_needs() {
    let (intake, _referral, _hung) = wired_to_hung_mentoring().await;

    // Each case has a MENTORING need (added by rule) for the hung owner,
    // opened first, and a finance need for referral.
    for seed in [61, 62, 63] {
        let started = std::time::Instant::now();
        let (case, finance) = open_finance_case(&intake, seed).await;
        let ids = (case.case_id.as_str(), finance.need_id.as_str());
        assert!(
            reaches(&intake, ids, pb::DeliveryState::Delivered, 2).await,
            "the finance need of case {seed} was delivered within 2 s of opening"
        );
        assert!(started.elapsed() < Duration::from_secs(4));
        let mentoring = mentoring_need(&intake, &case).await;
        assert_eq!(mentoring.delivery, pb::DeliveryState::Pending as i32);
    }
    // No row lock is held across the hung call: the need can be changed.
    // Only this database's locks: other tests' databases, made from the
    // same template, have their own "need" under the same oid.
    let locked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
          WHERE c.relname = 'need' AND l.mode = 'RowShareLock' AND l.granted
            AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())",
    )
    .fetch_one(&intake.pool)
    .await
    .unwrap();
    assert_eq!(locked, 0);
}

#[tokio::test]
async fn an_owner_is_sent_several_needs_at_once() {
    // A call to the hung mentoring lasts its whole deadline (30 s), so
    // needs sent one at a time would leave all but the first unclaimed.
    let (intake, _referral, _hung) = wired_to_hung_mentoring().await;
    let mut cases = Vec::new();
    for seed in [71, 72, 73] {
        cases.push(open_finance_case(&intake, seed).await.0);
    }
    let all_claimed = eventually(Duration::from_secs(10), || async {
        let mut claimed = 0;
        for case in &cases {
            if is_claimed(&mentoring_need(&intake, case).await) {
                claimed += 1;
            }
        }
        claimed == cases.len()
    })
    .await;
    assert!(
        all_claimed,
        "every mentoring need is in flight while the first call still hangs"
    );
}

#[tokio::test]
async fn one_case_s_needs_reach_their_owner_one_at_a_time_in_order() {
    let (intake, _referral, _hung) = wired_to_hung_mentoring().await;
    let company = intake.register(&registration_number(74), 0, false).await;
    let mentoring = |detail: &str| pb::NeedRequest {
        category: NeedCategory::Mentoring as i32,
        detail: detail.into(),
        ..Default::default()
    };
    let case = intake
        .kotra()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: String::new(),
            company_id: company.company_id,
            needs: vec![
                mentoring("An export advisor"),
                mentoring("A second opinion"),
            ],
        })
        .await
        .expect("case opens")
        .into_inner();
    let mentoring_needs: Vec<&pb::Need> = case
        .needs
        .iter()
        .filter(|n| n.category == NeedCategory::Mentoring as i32)
        .collect();
    assert_eq!(mentoring_needs.len(), 2);
    let (first, second) = (&mentoring_needs[0].need_id, &mentoring_needs[1].need_id);
    assert!(
        eventually(Duration::from_secs(10), || async {
            is_claimed(&need(&intake, &case.case_id, first).await)
        })
        .await,
        "the case's first mentoring need is sent"
    );
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert!(
        !is_claimed(&need(&intake, &case.case_id, second).await),
        "its second waits while the first call hangs, though lanes are free"
    );
}

#[tokio::test]
async fn a_need_its_owner_keeps_refusing_is_parked_with_the_reason() {
    // A referral service that trusts other keys than intake's: every
    // hand-off is refused as UNAUTHENTICATED.
    let keys = onestop_test_support::TestKeys::generate();
    let referral: Referral = TestServer::start(|mut settings| {
        keys.apply(&mut settings);
        ReferralApplication::build(settings)
    })
    .await;
    let intake = intake_on(TestDb::new().await, referral.addr).await;
    let (case, finance) = open_finance_case(&intake, 71).await;

    let ids = (case.case_id.as_str(), finance.need_id.as_str());
    assert!(
        reaches(&intake, ids, pb::DeliveryState::Parked, 15).await,
        "the refused need is parked"
    );
    let parked = need(&intake, &case.case_id, &finance.need_id).await;
    assert!(
        parked.last_delivery_error.starts_with("Unauthenticated"),
        "{}",
        parked.last_delivery_error
    );
    assert_eq!(parked.delivery_attempts, 5);
    // Parked means no longer tried.
    tokio::time::sleep(Duration::from_millis(600)).await;
    let later = need(&intake, &case.case_id, &finance.need_id).await;
    assert_eq!(later.delivery_attempts, 5);
    assert_eq!(later.delivery, pb::DeliveryState::Parked as i32);
}

#[tokio::test]
async fn an_admin_sends_a_parked_need_again_and_it_is_delivered_once() {
    // Referral's address, with nothing listening yet.
    let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let intake = intake_on(TestDb::new().await, addr).await;
    let (case, finance) = open_finance_case(&intake, 73).await;
    let ids = (case.case_id.as_str(), finance.need_id.as_str());
    // Parked as the relay parks a need refused again and again.
    sqlx::query(
        "UPDATE need SET delivery = 'PARKED', delivery_attempts = 5,
                last_delivery_error = 'Unauthenticated: unknown key' WHERE id::text = $1",
    )
    .bind(&finance.need_id)
    .execute(&intake.pool)
    .await
    .unwrap();
    let referral = start_referral_at(addr).await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        need(&intake, ids.0, ids.1).await.delivery,
        pb::DeliveryState::Parked as i32,
        "a parked need is not tried, even with its owner back"
    );

    let retry = |key: &str| pb::RetryNeedDeliveryRequest {
        idempotency_key: key.into(),
        case_id: case.case_id.clone(),
        need_id: finance.need_id.clone(),
    };
    let events_before = intake.count("event_log").await;
    // Only an admin may, and a bad id changes nothing.
    for refused in [
        intake.kotra().retry_need_delivery(retry("k")).await,
        intake
            .server
            .service()
            .retry_need_delivery(retry("k"))
            .await,
    ] {
        assert_eq!(refused.unwrap_err().code(), Code::PermissionDenied);
    }
    let bad = intake
        .admin()
        .retry_need_delivery(pb::RetryNeedDeliveryRequest {
            need_id: "not-an-id".into(),
            ..retry("k")
        })
        .await
        .unwrap_err();
    assert_eq!(crate::common::violations(&bad), vec!["need_id"]);
    let elsewhere = intake
        .admin()
        .retry_need_delivery(pb::RetryNeedDeliveryRequest {
            case_id: uuid::Uuid::now_v7().to_string(),
            ..retry("k")
        })
        .await
        .unwrap_err();
    assert_eq!(elsewhere.code(), Code::NotFound);
    assert_eq!(intake.count("event_log").await, events_before);

    let sent = intake
        .admin()
        .retry_need_delivery(retry("retry-1"))
        .await
        .expect("an admin retries a parked need")
        .into_inner();
    assert_eq!(sent.delivery, pb::DeliveryState::Pending as i32);
    assert_eq!(sent.delivery_attempts, 0);
    // The same key answers the same; the need is no longer parked for
    // another.
    let again = intake
        .admin()
        .retry_need_delivery(retry("retry-1"))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(again, sent);
    let delivered = wait_delivered(&intake, ids.0, ids.1).await;
    assert_eq!(delivered.delivery_attempts, 1, "attempts count from zero");
    assert_eq!(referrals_for(&referral, &finance.need_id).await, 1);
    let not_parked = intake
        .admin()
        .retry_need_delivery(retry("retry-2"))
        .await
        .unwrap_err();
    assert_eq!(not_parked.code(), Code::FailedPrecondition);
    assert_eq!(crate::common::error_reason(&not_parked), "NEED_NOT_PARKED");

    assert_eq!(
        intake.count_events(IntakeEvent::NeedDeliveryRetried).await,
        1
    );
    let payload: Vec<u8> =
        sqlx::query_scalar("SELECT payload FROM event_log WHERE event_type = $1")
            .bind(IntakeEvent::NeedDeliveryRetried.name())
            .fetch_one(&intake.pool)
            .await
            .unwrap();
    let retried = <pb::NeedDeliveryRetried as prost::Message>::decode(&payload[..]).unwrap();
    assert_eq!(retried.need_id, finance.need_id);
    assert_eq!(retried.parked_after_attempts, 5);
    assert!(
        timeline(intake.kotra(), ids.0)
            .await
            .iter()
            .any(|line| line.kind == IntakeEvent::NeedDeliveryRetried.name()
                && line.need_id == finance.need_id),
        "the retry is on the case's timeline"
    );
}

#[tokio::test]
async fn a_cancelled_parked_need_is_not_sent_again() {
    let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = free.local_addr().unwrap();
    drop(free);
    let intake = intake_on(TestDb::new().await, addr).await;
    let (case, finance) = open_finance_case(&intake, 74).await;
    sqlx::query("UPDATE need SET delivery = 'PARKED' WHERE id::text = $1")
        .bind(&finance.need_id)
        .execute(&intake.pool)
        .await
        .unwrap();
    intake
        .kotra()
        .cancel_need(pb::CancelNeedRequest {
            case_id: case.case_id.clone(),
            need_id: finance.need_id.clone(),
            reason: "found finance elsewhere".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let finished = intake
        .admin()
        .retry_need_delivery(pb::RetryNeedDeliveryRequest {
            idempotency_key: String::new(),
            case_id: case.case_id.clone(),
            need_id: finance.need_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(finished.code(), Code::FailedPrecondition);
    assert_eq!(crate::common::error_reason(&finished), "NEED_FINISHED");
}
