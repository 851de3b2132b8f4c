use chrono::{DateTime, Duration, Months, TimeZone, Utc};
use onestop_buyers::sweeper::sweep_once;
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::event_types::BuyersEvent;
use onestop_platform::time::to_timestamp;
use tonic::Code;

use crate::common::{Buyers, all_at_once, violations};

pub fn lead(name: &str, country: &str) -> pb::LeadProfile {
    pb::LeadProfile {
        buyer_company_name: name.into(),
        country: country.into(),
        city: "Las Vegas".into(),
        contacts: vec![pb::Contact {
            name: "Sam Ortega".into(),
            email: "sam@example-buyer.com".into(),
            ..Default::default()
        }],
        hs_codes: vec!["3304".into()],
        ..Default::default()
    }
}

pub fn import(
    show_date: DateTime<Utc>,
    leads: Vec<pb::LeadProfile>,
) -> pb::ImportTradeShowLeadsRequest {
    pb::ImportTradeShowLeadsRequest {
        company_id: "company-f".into(),
        show_name: "Cosmoprof North America".into(),
        show_country: "US".into(),
        show_city: "Las Vegas".into(),
        show_date: Some(to_timestamp(show_date)),
        leads,
        ..Default::default()
    }
}

async fn due(buyers: &Buyers) -> Vec<pb::LeadCheckpoint> {
    buyers
        .service()
        .list_due_follow_ups(pb::ListDueFollowUpsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .due
}

async fn follow_up(buyers: &Buyers, lead_id: &str, outcome: pb::FollowUpOutcome) -> pb::Lead {
    buyers
        .service()
        .record_follow_up(pb::RecordFollowUpRequest {
            lead_id: lead_id.into(),
            outcome: outcome as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn leads_get_checkpoints_and_a_rerun_imports_nothing_twice() {
    let buyers = Buyers::start().await;
    buyers.company_on_file("company-f").await;
    let show = Utc.with_ymd_and_hms(2026, 7, 15, 0, 0, 0).unwrap();
    buyers.clock.set(show + Duration::days(1));
    let first = buyers
        .service()
        .import_trade_show_leads(import(
            show,
            vec![lead("Glow Inc", "US"), lead("Maple Beauty", "CA")],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((first.created, first.already_present), (2, 0));
    let due_dates: Vec<_> = first.leads[0]
        .checkpoints
        .iter()
        .map(|c| c.due_at.unwrap())
        .collect();
    assert_eq!(
        due_dates,
        vec![
            to_timestamp(show + Duration::days(7)),
            to_timestamp(show.checked_add_months(Months::new(3)).unwrap()),
            to_timestamp(show.checked_add_months(Months::new(6)).unwrap()),
        ]
    );
    let again = buyers
        .service()
        .import_trade_show_leads(import(
            show,
            vec![lead("Glow Inc", "US"), lead("New Face", "MX")],
        ))
        .await
        .unwrap()
        .into_inner();
    assert_eq!((again.created, again.already_present), (1, 1));
    assert_eq!(again.trade_show_id, first.trade_show_id);
    assert_eq!(again.leads[0].lead_id, first.leads[0].lead_id);
    assert_eq!(buyers.count("lead").await, 3);

    let status = buyers
        .service()
        .import_trade_show_leads(import(show, vec![lead("Fine", "US"), lead("", "ZZ")]))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec!["leads[1].buyer_company_name", "leads[1].country"]
    );
    assert_eq!(buyers.count("lead").await, 3);
}

#[tokio::test]
async fn checkpoints_fall_due_with_the_clock_and_silent_leads_go_to_reactivation() {
    let show = Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap();
    let buyers = Buyers::start_at(show + Duration::days(1)).await;
    buyers.company_on_file("company-f").await;
    let imported = buyers
        .service()
        .import_trade_show_leads(import(
            show,
            vec![lead("Active", "US"), lead("Silent", "CA")],
        ))
        .await
        .unwrap()
        .into_inner();
    let (active, silent) = (
        imported.leads[0].lead_id.clone(),
        imported.leads[1].lead_id.clone(),
    );

    assert_eq!(
        sweep_once(&buyers.pool, show + Duration::days(6))
            .await
            .unwrap(),
        0
    );
    assert!(due(&buyers).await.is_empty());

    let week = show + Duration::days(8);
    assert_eq!(sweep_once(&buyers.pool, week).await.unwrap(), 2);
    assert_eq!(sweep_once(&buyers.pool, week).await.unwrap(), 0);
    let listed = due(&buyers).await;
    assert_eq!(listed.len(), 2);
    assert_eq!(
        listed[0].checkpoint.as_ref().unwrap().kind,
        pb::CheckpointKind::OneWeek as i32
    );
    let raised: Vec<pb::FollowUpDue> = buyers.event_payloads(BuyersEvent::FollowUpDue).await;
    assert_eq!(raised.len(), 2);

    buyers.clock.set(week);
    let after = follow_up(&buyers, &active, pb::FollowUpOutcome::InTouch).await;
    assert_eq!(
        after.checkpoints[0].status,
        pb::CheckpointStatus::Done as i32
    );
    assert_eq!(after.best_outcome, pb::FollowUpOutcome::InTouch as i32);
    assert_eq!(due(&buyers).await.len(), 1);

    // Two sweepers racing at the three-month mark raise each checkpoint once.
    let quarter = show.checked_add_months(Months::new(3)).unwrap() + Duration::hours(1);
    let (a, b) = tokio::join!(
        sweep_once(&buyers.pool, quarter),
        sweep_once(&buyers.pool, quarter)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 2);
    assert_eq!(buyers.count_events(BuyersEvent::FollowUpDue).await, 4);
    let silent_now = buyers
        .service()
        .list_due_follow_ups(pb::ListDueFollowUpsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(silent_now.due.len(), 2);

    // At six months: the lead with progress is due, the silent one reactivated.
    let half = show.checked_add_months(Months::new(6)).unwrap() + Duration::hours(1);
    let (a, b) = tokio::join!(
        sweep_once(&buyers.pool, half),
        sweep_once(&buyers.pool, half)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 2);
    let reactivated: Vec<pb::LeadReactivation> =
        buyers.event_payloads(BuyersEvent::LeadReactivation).await;
    assert_eq!(reactivated.len(), 1);
    assert_eq!(reactivated[0].lead_id, silent);
    assert_eq!(buyers.count_events(BuyersEvent::FollowUpDue).await, 5);
    let list = buyers
        .service()
        .list_reactivation_leads(pb::ListReactivationLeadsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.leads.len(), 1);
    assert_eq!(list.leads[0].lead_id, silent);
    assert_eq!(list.leads[0].status, pb::LeadStatus::Reactivation as i32);
    assert_eq!(
        sweep_once(&buyers.pool, half + Duration::days(30))
            .await
            .unwrap(),
        0
    );

    buyers.clock.set(half);
    let converted = follow_up(&buyers, &active, pb::FollowUpOutcome::Agreement).await;
    assert_eq!(converted.status, pb::LeadStatus::Converted as i32);
    assert!(
        converted
            .checkpoints
            .iter()
            .all(|c| c.status != pb::CheckpointStatus::Due as i32
                && c.status != pb::CheckpointStatus::Upcoming as i32)
    );
}

#[tokio::test]
async fn a_show_date_past_the_calendar_is_refused_and_the_server_goes_on() {
    let buyers = Buyers::start().await;
    buyers.company_on_file("company-f").await;
    for seconds in [
        DateTime::<Utc>::MAX_UTC.timestamp(),
        DateTime::<Utc>::MIN_UTC.timestamp(),
        253_402_300_800, // 10000-01-01
    ] {
        let mut request = import(Utc::now(), vec![lead("Glow Inc", "US")]);
        request.show_date = Some(prost_types::Timestamp { seconds, nanos: 0 });
        let status = buyers
            .service()
            .import_trade_show_leads(request)
            .await
            .unwrap_err();
        assert_eq!(
            status.code(),
            Code::InvalidArgument,
            "{seconds}: {status:?}"
        );
        assert_eq!(violations(&status), vec!["show_date"]);
    }
    assert_eq!(buyers.count("lead").await, 0);
    let imported = buyers
        .service()
        .import_trade_show_leads(import(Utc::now(), vec![lead("Glow Inc", "US")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(imported.created, 1);
}

#[tokio::test]
async fn the_sweeper_interval_is_a_setting() {
    const BINARY: &str = env!("CARGO_BIN_EXE_onestop-buyers");
    let db = onestop_test_support::TestDb::new().await;
    let service = onestop_test_support::ServiceProcess::spawn(
        BINARY,
        &[
            ("DATABASE_URL", db.url.as_str()),
            ("ONESTOP_SWEEP_INTERVAL", "250ms"),
        ],
    )
    .await;
    let (status, lines) = service
        .terminate_and_collect(std::time::Duration::from_secs(10))
        .await;
    assert!(status.success());
    assert!(
        lines
            .iter()
            .any(|line| line.contains("follow-up sweeper started") && line.contains("every_ms=250")),
        "{lines:#?}"
    );
    let refused = tokio::process::Command::new(BINARY)
        .env("DATABASE_URL", db.url.as_str())
        .env("ONESTOP_SWEEP_INTERVAL", "0s")
        .output()
        .await
        .expect("runs");
    assert_eq!(refused.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&refused.stderr).contains("ONESTOP_SWEEP_INTERVAL"));
}

/// Service and admin callers reach every company, so an id that names no
/// company buyers knows (none on intake's feed, no need handed over) is
/// refused rather than filed; a hand-off from intake puts it on file.
#[tokio::test]
async fn leads_for_a_company_buyers_does_not_know_are_refused() {
    let buyers = Buyers::start().await;
    let show = Utc::now() - Duration::days(3);
    let mut request = import(show, vec![lead("Glow Inc", "US")]);
    request.company_id = "company-nowhere".into();
    for status in [
        buyers
            .service()
            .import_trade_show_leads(request.clone())
            .await
            .unwrap_err(),
        buyers
            .admin()
            .import_trade_show_leads(request.clone())
            .await
            .unwrap_err(),
    ] {
        assert_eq!(status.code(), Code::NotFound, "{status:?}");
        assert!(status.message().contains("company-nowhere"));
    }
    assert_eq!(buyers.count("trade_show").await, 0);
    assert_eq!(buyers.count("lead").await, 0);

    buyers
        .service()
        .open_buyer_search(crate::matches::search_request(
            "need-nowhere",
            "company-nowhere",
            1,
        ))
        .await
        .expect("intake hands a need over");
    let imported = buyers
        .service()
        .import_trade_show_leads(request)
        .await
        .expect("the company is on file now")
        .into_inner();
    assert_eq!(imported.created, 1);
}

/// Intake hands `need` of `category` for company-f over, as a search.
async fn hand_over(buyers: &Buyers, need: &str, category: NeedCategory) -> pb::BuyerSearch {
    let mut request = crate::matches::search_request(need, "company-f", 1);
    request.category = category as i32;
    buyers
        .service()
        .open_buyer_search(request)
        .await
        .expect("intake hands the need over")
        .into_inner()
}

/// company-f's leads met at `show` on `date`, imported for `need`.
async fn import_for(
    buyers: &Buyers,
    need: &str,
    show: &str,
    date: DateTime<Utc>,
    names: &[&str],
) -> Vec<String> {
    let mut request = import(date, names.iter().map(|n| lead(n, "US")).collect());
    request.show_name = show.into();
    request.need_id = need.into();
    request.case_id = format!("case-of-{need}");
    buyers
        .service()
        .import_trade_show_leads(request)
        .await
        .expect("leads imported")
        .into_inner()
        .leads
        .into_iter()
        .map(|lead| lead.lead_id)
        .collect()
}

async fn completed(buyers: &Buyers) -> Vec<pb::TradeShowFollowUpCompleted> {
    buyers.event_payloads(BuyersEvent::FollowUpCompleted).await
}

/// A trade-show follow-up need is done when every lead imported for it,
/// over all its shows, converted or was followed up at every checkpoint:
/// the follow-up that moves the last open lead raises the event, once,
/// and a retry of it raises nothing more. A need with a lead still open,
/// and a buyer-discovery need whose leads all finished, raise nothing.
#[tokio::test]
async fn a_trade_show_need_is_done_once_each_of_its_leads_converted_or_was_followed_up_to_the_end()
{
    let buyers = Buyers::start().await;
    let show = Utc::now() - Duration::days(10);
    let search = hand_over(&buyers, "need-t", NeedCategory::TradeShowFollowUp).await;
    hand_over(&buyers, "need-u", NeedCategory::TradeShowFollowUp).await;
    hand_over(&buyers, "need-b", NeedCategory::BuyerDiscovery).await;
    let first = import_for(&buyers, "need-t", "Cosmoprof", show, &["Glow", "Maple"]).await;
    let second = import_for(&buyers, "need-t", "Beautyworld", show, &["New Face"]).await;
    let other = import_for(&buyers, "need-u", "Canton Fair", show, &["Still Open"]).await;
    let discovery = import_for(&buyers, "need-b", "K-Beauty Expo", show, &["Found"]).await;

    follow_up(&buyers, &first[0], pb::FollowUpOutcome::Agreement).await;
    follow_up(&buyers, &second[0], pb::FollowUpOutcome::Agreement).await;
    follow_up(&buyers, &other[0], pb::FollowUpOutcome::InTouch).await;
    follow_up(&buyers, &discovery[0], pb::FollowUpOutcome::Agreement).await;
    // One converted lead does not finish the cadence owed to the others.
    follow_up(&buyers, &first[1], pb::FollowUpOutcome::NoContact).await;
    follow_up(&buyers, &first[1], pb::FollowUpOutcome::InTouch).await;
    assert!(completed(&buyers).await.is_empty());

    let last = pb::RecordFollowUpRequest {
        idempotency_key: "last-checkpoint".into(),
        lead_id: first[1].clone(),
        outcome: pb::FollowUpOutcome::NoContact as i32,
        ..Default::default()
    };
    let finished = buyers
        .service()
        .record_follow_up(last.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(finished.status, pb::LeadStatus::CadenceCompleted as i32);
    let retried = buyers
        .service()
        .record_follow_up(last)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(retried, finished);
    assert_eq!(
        completed(&buyers).await,
        [pb::TradeShowFollowUpCompleted {
            search_id: search.search_id.clone(),
            need_id: "need-t".into(),
            case_id: "case-of-need-t".into(),
            company_id: "company-f".into(),
            trade_shows: 2,
            leads: 3,
            converted: 2,
            cadence_completed: 1,
            reactivation: 0,
        }]
    );

    // A lead imported for the need afterwards does not raise it again.
    let late = import_for(&buyers, "need-t", "Cosmoprof", show, &["Late"]).await;
    follow_up(&buyers, &late[0], pb::FollowUpOutcome::Agreement).await;
    assert_eq!(completed(&buyers).await.len(), 1);
}

/// The moves of a need's last open leads take turns: two converted at the
/// same moment raise the need's event once (never twice, never not at
/// all), and so do two sweepers putting a need's silent leads on the
/// reactivation list at once.
#[tokio::test]
async fn the_last_leads_of_a_need_finished_at_once_raise_its_event_once() {
    let buyers = Buyers::start().await;
    let show = Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap();
    buyers.clock.set(show + Duration::days(1));
    hand_over(&buyers, "need-c", NeedCategory::TradeShowFollowUp).await;
    hand_over(&buyers, "need-r", NeedCategory::TradeShowFollowUp).await;
    let converting = import_for(&buyers, "need-c", "Cosmoprof", show, &["A", "B", "C"]).await;
    import_for(&buyers, "need-r", "Canton Fair", show, &["Quiet", "Mute"]).await;

    let converted = all_at_once(converting.iter().map(|lead| {
        let mut client = buyers.service();
        let lead_id = lead.clone();
        async move {
            client
                .record_follow_up(pb::RecordFollowUpRequest {
                    lead_id,
                    outcome: pb::FollowUpOutcome::Agreement as i32,
                    ..Default::default()
                })
                .await
        }
    }))
    .await;
    assert!(converted.iter().all(Result::is_ok), "{converted:?}");
    let done = completed(&buyers).await;
    assert_eq!(done.len(), 1, "{done:?}");
    assert_eq!((done[0].need_id.as_str(), done[0].converted), ("need-c", 3));

    let half = show.checked_add_months(Months::new(6)).unwrap() + Duration::hours(1);
    let (a, b) = tokio::join!(
        sweep_once(&buyers.pool, half),
        sweep_once(&buyers.pool, half)
    );
    a.unwrap();
    b.unwrap();
    assert_eq!(buyers.count_events(BuyersEvent::LeadReactivation).await, 2);
    let done = completed(&buyers).await;
    assert_eq!(done.len(), 2, "{done:?}");
    assert_eq!(
        (
            done[1].need_id.as_str(),
            done[1].reactivation,
            done[1].leads
        ),
        ("need-r", 2, 2)
    );
    assert_eq!(sweep_once(&buyers.pool, half).await.unwrap(), 0);
    assert_eq!(completed(&buyers).await.len(), 2);
}
