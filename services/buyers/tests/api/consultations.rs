use chrono::{DateTime, TimeZone, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::event_types::BuyersEvent;
use onestop_platform::time::{from_timestamp, to_timestamp};
use tonic::Code;

use crate::common::{Buyers, all_at_once, buyer_profile, error_reason};
use crate::matches::search_request;

fn utc(y: i32, m: u32, d: u32, h: u32, min: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(y, m, d, h, min, 0).unwrap()
}

/// An INTRODUCED match with a buyer in `zone`.
async fn introduced(buyers: &Buyers, zone: &str) -> pb::Match {
    let mut profile = buyer_profile("Zone buyer", "US", &["330499"], &["en"]);
    profile.time_zone = zone.into();
    buyers.verified("kbc", profile, 80).await;
    let m = buyers
        .service()
        .open_buyer_search(search_request("need-c", "company-c", 1))
        .await
        .unwrap()
        .into_inner()
        .matches
        .remove(0);
    buyers
        .trade_office("kbc")
        .advance_match(pb::AdvanceMatchRequest {
            match_id: m.match_id.clone(),
            to_status: pb::MatchStatus::Introduced as i32,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

async fn slots(
    buyers: &Buyers,
    match_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    desk: bool,
) -> Vec<pb::ConsultationSlot> {
    slots_answer(buyers, match_id, from, to, desk).await.slots
}

async fn slots_answer(
    buyers: &Buyers,
    match_id: &str,
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    desk: bool,
) -> pb::ListConsultationSlotsResponse {
    buyers
        .trade_office("kbc")
        .list_consultation_slots(pb::ListConsultationSlotsRequest {
            match_id: match_id.into(),
            from: Some(to_timestamp(from)),
            to: Some(to_timestamp(to)),
            overseas_desk: desk,
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn new_york_slots_follow_the_march_daylight_saving_change_against_seoul() {
    let buyers = Buyers::start().await;
    buyers.clock.set(utc(2026, 2, 1, 0, 0));
    let m = introduced(&buyers, "America/New_York").await;
    // New York and Seoul business hours never overlap: only the desk helps,
    // and the empty answer says so.
    let week = (utc(2026, 3, 2, 0, 0), utc(2026, 3, 14, 0, 0));
    let without_desk = slots_answer(&buyers, &m.match_id, week.0, week.1, false).await;
    assert!(without_desk.slots.is_empty());
    assert_eq!(
        without_desk.no_slots_reason,
        pb::NoSlotsReason::NoSharedHours as i32
    );
    assert!(
        without_desk.hint.contains("overseas_desk") && without_desk.hint.contains("180 slots"),
        "the hint says what to do: {}",
        without_desk.hint
    );
    // A weekend holds no business hours at all, desk or not.
    let weekend = (utc(2026, 3, 7, 0, 0), utc(2026, 3, 9, 0, 0));
    let closed = slots_answer(&buyers, &m.match_id, weekend.0, weekend.1, true).await;
    assert_eq!(
        closed.no_slots_reason,
        pb::NoSlotsReason::NoBusinessHours as i32
    );
    assert!(closed.hint.contains("America/New_York"), "{}", closed.hint);

    let answer = slots_answer(&buyers, &m.match_id, week.0, week.1, true).await;
    assert_eq!(
        answer.no_slots_reason,
        pb::NoSlotsReason::Unspecified as i32
    );
    assert!(answer.hint.is_empty());
    let found = answer.slots;
    // Ten weekdays of 09:00-18:00 New York time, 18 slots each.
    assert_eq!(found.len(), 10 * 18);
    assert!(found.iter().all(|s| s.overseas_desk));
    let first = &found[0];
    assert_eq!(first.buyer_local_start, "2026-03-02T09:00:00-05:00");
    assert_eq!(first.seoul_local_start, "2026-03-02T23:00:00+09:00");
    assert_eq!(
        from_timestamp(first.start_time.as_ref().unwrap()),
        Some(utc(2026, 3, 2, 14, 0))
    );
    // After the change (Sunday 8 March) the same local 09:00 is an hour earlier in UTC.
    let after = found
        .iter()
        .find(|s| s.buyer_local_start.starts_with("2026-03-09"))
        .unwrap();
    assert_eq!(after.buyer_local_start, "2026-03-09T09:00:00-04:00");
    assert_eq!(after.seoul_local_start, "2026-03-09T22:00:00+09:00");
    assert_eq!(
        from_timestamp(after.start_time.as_ref().unwrap()),
        Some(utc(2026, 3, 9, 13, 0))
    );
    let last_friday = found.last().unwrap();
    assert_eq!(last_friday.buyer_local_start, "2026-03-13T17:30:00-04:00");
}

#[tokio::test]
async fn slots_lie_inside_both_business_hours_unless_the_desk_covers_seoul() {
    let buyers = Buyers::start().await;
    buyers.clock.set(utc(2026, 2, 1, 0, 0));
    let m = introduced(&buyers, "Asia/Ho_Chi_Minh").await;
    let day = (utc(2026, 3, 3, 0, 0), utc(2026, 3, 4, 0, 0));
    let both = slots(&buyers, &m.match_id, day.0, day.1, false).await;
    // Ho Chi Minh 09:00-16:00 overlaps Seoul 11:00-18:00.
    assert_eq!(both.len(), 14);
    assert_eq!(both[0].buyer_local_start, "2026-03-03T09:00:00+07:00");
    assert_eq!(both[0].seoul_local_start, "2026-03-03T11:00:00+09:00");
    assert!(both.iter().all(|s| !s.overseas_desk));
    let with_desk = slots(&buyers, &m.match_id, day.0, day.1, true).await;
    assert_eq!(with_desk.len(), 18);
    assert_eq!(with_desk.iter().filter(|s| s.overseas_desk).count(), 4);
}

#[tokio::test]
async fn concurrent_double_booking_is_refused_and_times_are_stored_in_utc() {
    let buyers = Buyers::start().await;
    buyers.clock.set(utc(2026, 2, 1, 0, 0));
    let m = introduced(&buyers, "America/New_York").await;
    let start = utc(2026, 3, 10, 13, 0);
    let calls = (0..8).map(|i| {
        let mut client = buyers.trade_office("kbc");
        let match_id = m.match_id.clone();
        async move {
            client
                .book_consultation(pb::BookConsultationRequest {
                    idempotency_key: format!("book-{i}"),
                    match_id,
                    start_time: Some(to_timestamp(start)),
                    interpreter_language: "en".into(),
                    overseas_desk: true,
                })
                .await
                .map(|r| r.into_inner())
        }
    });
    let results = all_at_once(calls).await;
    let booked: Vec<&pb::Consultation> = results.iter().filter_map(|r| r.as_ref().ok()).collect();
    assert_eq!(booked.len(), 1);
    for refused in results.iter().filter_map(|r| r.as_ref().err()) {
        assert_eq!(refused.code(), Code::AlreadyExists);
        assert_eq!(error_reason(refused), "SLOT_TAKEN");
    }
    // The one slot of a half-hour range, booked: the empty list says why.
    let taken = slots_answer(
        &buyers,
        &m.match_id,
        start,
        start + chrono::Duration::minutes(30),
        true,
    )
    .await;
    assert!(taken.slots.is_empty());
    assert_eq!(taken.no_slots_reason, pb::NoSlotsReason::AllBooked as i32);
    let slot = booked[0].slot.clone().unwrap();
    assert_eq!(slot.buyer_local_start, "2026-03-10T09:00:00-04:00");
    assert_eq!(slot.seoul_local_start, "2026-03-10T22:00:00+09:00");
    assert_eq!(buyers.count("consultation").await, 1);
    let stored: DateTime<Utc> = sqlx::query_scalar("SELECT start_at FROM consultation")
        .fetch_one(&buyers.pool)
        .await
        .unwrap();
    assert_eq!(stored, start);
    assert_eq!(
        buyers.count_events(BuyersEvent::ConsultationBooked).await,
        1
    );

    // Booking moved the match on, and the slot is no longer offered.
    let after = buyers
        .trade_office("kbc")
        .get_match(pb::GetMatchRequest {
            match_id: m.match_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(after.status, pb::MatchStatus::MeetingScheduled as i32);
    let free = slots(
        &buyers,
        &m.match_id,
        utc(2026, 3, 10, 0, 0),
        utc(2026, 3, 11, 0, 0),
        true,
    )
    .await;
    assert_eq!(free.len(), 17);
    assert!(
        free.iter()
            .all(|s| from_timestamp(s.start_time.as_ref().unwrap()) != Some(start))
    );

    // Off the grid, or a night slot without the desk: bad input.
    for (at, desk) in [
        (utc(2026, 3, 10, 13, 10), true),
        (utc(2026, 3, 10, 14, 0), false),
    ] {
        let status = buyers
            .trade_office("kbc")
            .book_consultation(pb::BookConsultationRequest {
                match_id: m.match_id.clone(),
                start_time: Some(to_timestamp(at)),
                overseas_desk: desk,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
    assert_eq!(buyers.count("consultation").await, 1);

    // A range longer than a month, or reversed, is refused.
    for (from, to) in [
        (utc(2026, 3, 1, 0, 0), utc(2026, 4, 15, 0, 0)),
        (utc(2026, 3, 2, 0, 0), utc(2026, 3, 1, 0, 0)),
    ] {
        let status = buyers
            .trade_office("kbc")
            .list_consultation_slots(pb::ListConsultationSlotsRequest {
                match_id: m.match_id.clone(),
                from: Some(to_timestamp(from)),
                to: Some(to_timestamp(to)),
                overseas_desk: true,
            })
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
    }
}
