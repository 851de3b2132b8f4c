//! Every list pages by keyset through the one page-token codec: a token it
//! did not hand out is INVALID_ARGUMENT (never a silent restart at page
//! one), and paging through a list yields exactly the one-page listing.

use chrono::Duration;
use onestop_contracts::mentoring::v1 as pb;
use onestop_mentoring::sweeper;
use onestop_test_support::all_pages;
use tonic::Code;

use crate::common::{
    Mentoring, company, kintex_program, mask, need_for, plain_advisor, violations,
};

/// One page of a list as the dashboard reads it: (page_size, page_token)
/// to the page's items and next_page_token.
macro_rules! lister {
    ($mentoring:expr, $rpc:ident($request:ident { $($field:ident: $value:expr),* }) -> $items:ident) => {
        |page_size: i32, page_token: String| {
            let mut dashboard = $mentoring.dashboard();
            // Some requests have no fields beyond the page and the filters given.
            #[allow(clippy::needless_update)]
            let request = pb::$request {
                page_size,
                page_token,
                $($field: $value,)*
                ..Default::default()
            };
            async move {
                let page = dashboard.$rpc(request).await?.into_inner();
                Ok::<_, tonic::Status>((page.$items, page.next_page_token))
            }
        }
    };
}

/// A list read in pages of two, and read whole.
async fn paged_and_whole<T, F, Fut>(mut list: F) -> (Vec<T>, Vec<T>)
where
    F: FnMut(i32, String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let paged = all_pages(|page_token| {
        let page = list(2, page_token);
        async move { page.await.expect("page") }
    })
    .await;
    let (whole, next_page_token) = list(0, String::new()).await.expect("whole list");
    assert!(next_page_token.is_empty(), "one page holds it all");
    (paged, whole)
}

/// The list refuses `token` as a bad page_token and nothing else.
async fn assert_refused<T, F, Fut>(mut list: F, token: &str)
where
    F: FnMut(i32, String) -> Fut,
    Fut: std::future::Future<Output = Result<(Vec<T>, String), tonic::Status>>,
{
    let status = list(0, token.to_owned())
        .await
        .err()
        .unwrap_or_else(|| panic!("{token} was taken as a page token"));
    assert_eq!(status.code(), Code::InvalidArgument, "{token}");
    assert_eq!(violations(&status), ["page_token"], "{token}");
}

#[tokio::test]
async fn every_list_refuses_a_page_token_it_did_not_hand_out() {
    let mentoring = Mentoring::start().await;
    mentoring.register(plain_advisor()).await;
    mentoring.register(plain_advisor()).await;
    let company_id = mentoring.assign_new_company().await.company_id;
    let (_, advisors_token) =
        lister!(mentoring, list_advisors(ListAdvisorsRequest {}) -> advisors)(1, String::new())
            .await
            .unwrap();
    assert!(!advisors_token.is_empty());
    let m = &mentoring;
    // Not a token; a well-formed token whose key ("not-a-key") fits no
    // list here; a real token of another list.
    for token in ["garbage", "djE6bm90LWEta2V5", &advisors_token] {
        assert_refused(
            lister!(m, list_sessions(ListSessionsRequest {}) -> sessions),
            token,
        )
        .await;
        assert_refused(
            lister!(m, list_overdue_contacts(ListOverdueContactsRequest {}) -> contacts),
            token,
        )
        .await;
        assert_refused(
            lister!(m, list_waitlist(ListWaitlistRequest {}) -> entries),
            token,
        )
        .await;
        assert_refused(
            lister!(m, list_fee_charges(ListFeeChargesRequest {}) -> charges),
            token,
        )
        .await;
        let history = lister!(m, get_advisor_history(GetAdvisorHistoryRequest {
            company_id: company_id.clone()
        }) -> assignments);
        assert_refused(history, token).await;
    }
    for token in ["garbage", "djE6bm90LWEta2V5"] {
        assert_refused(
            lister!(m, list_advisors(ListAdvisorsRequest {}) -> advisors),
            token,
        )
        .await;
    }
}

#[tokio::test]
async fn the_waitlist_overdue_contacts_and_fees_page_without_gaps_or_repeats() {
    let mentoring = Mentoring::start().await;
    let mut kintex = plain_advisor();
    kintex.capacity = 2;
    kintex.program = Some(kintex_program());
    let advisor = mentoring.register(kintex).await;
    for _ in 0..6 {
        mentoring.request(need_for(&company())).await;
        mentoring.clock.advance(Duration::hours(1));
    }
    // Two more slots, a day apart: two filled entries and two waiting.
    for capacity in [3, 4] {
        mentoring.clock.advance(Duration::days(1));
        mentoring
            .admin()
            .update_advisor(pb::UpdateAdvisorRequest {
                idempotency_key: String::new(),
                advisor_id: advisor.advisor_id.clone(),
                profile: Some(pb::AdvisorProfile {
                    capacity,
                    ..Default::default()
                }),
                update_mask: mask(&["capacity"]),
            })
            .await
            .unwrap();
    }
    let (paged, whole) =
        paged_and_whole(lister!(mentoring, list_waitlist(ListWaitlistRequest {}) -> entries)).await;
    assert_eq!(paged, whole);
    let statuses: Vec<i32> = whole.iter().map(|e| e.status).collect();
    let (waiting, filled) = (
        pb::WaitlistStatus::Waiting as i32,
        pb::WaitlistStatus::Filled as i32,
    );
    assert_eq!(statuses, [waiting, waiting, filled, filled]);
    assert_eq!(whole[0].position, 1);
    assert_eq!(whole[1].position, 2);
    let seconds = |at: &Option<prost_types::Timestamp>| at.unwrap().seconds;
    assert!(
        seconds(&whole[2].filled_at) > seconds(&whole[3].filled_at),
        "newest filled first"
    );

    // Forty days on, every assignment is overdue; a month of fees later,
    // each has two months charged.
    let now = mentoring.clock.advance(Duration::days(40));
    let overdue =
        lister!(mentoring, list_overdue_contacts(ListOverdueContactsRequest {}) -> contacts);
    let (paged, whole) = paged_and_whole(overdue).await;
    assert_eq!(paged, whole);
    assert_eq!(whole.len(), 4);
    assert!(
        whole
            .windows(2)
            .all(|w| seconds(&w[0].due_at) <= seconds(&w[1].due_at)),
        "most overdue first"
    );

    sweeper::accrue_fees(&mentoring.pool, now).await.unwrap();
    let (paged, whole) =
        paged_and_whole(lister!(mentoring, list_fee_charges(ListFeeChargesRequest {}) -> charges))
            .await;
    assert_eq!(paged, whole);
    assert_eq!(whole.len(), 8);
    assert!(
        whole.windows(2).all(|w| w[0].month >= w[1].month),
        "newest month first"
    );
}
