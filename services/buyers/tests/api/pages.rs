use std::collections::HashSet;

use chrono::{Duration, TimeZone, Utc};
use onestop_buyers::sweeper::sweep_once;
use onestop_contracts::buyers::v1 as pb;
use tonic::{Code, Status};

use crate::common::{Buyers, buyer_profile, violations};
use crate::followups::{import, lead};
use crate::matches::{advance, proposed, record_deal};

/// Each list called with `page_token`: (the RPC, what it answered).
async fn with_token(buyers: &Buyers, page_token: &str) -> Vec<(&'static str, Result<(), Status>)> {
    let mut client = buyers.admin();
    let mut answers = Vec::new();
    macro_rules! call {
        ($($rpc:ident($request:ident)),+) => {$(
            let request = pb::$request {
                page_token: page_token.to_owned(),
                ..Default::default()
            };
            answers.push((stringify!($rpc), client.$rpc(request).await.map(drop)));
        )+};
    }
    call!(
        list_buyers(ListBuyersRequest),
        list_matches(ListMatchesRequest),
        list_reactivation_leads(ListReactivationLeadsRequest),
        list_unconfirmed_deals(ListUnconfirmedDealsRequest),
        list_due_follow_ups(ListDueFollowUpsRequest)
    );
    answers
}

/// Every list refuses a token it did not hand out, rather than quietly
/// starting again at the first page.
#[tokio::test]
async fn every_list_refuses_a_page_token_it_did_not_hand_out() {
    let buyers = Buyers::start().await;
    for office in ["a", "b"] {
        buyers
            .register(office, buyer_profile(office, "US", &["330499"], &["en"]))
            .await;
    }
    // "garbage" is not base64 of anything; the other decodes to a token
    // whose key is no id.
    for token in ["garbage", "djE6bm90LWEtdXVpZA"] {
        for (rpc, answer) in with_token(&buyers, token).await {
            let status = answer.expect_err(rpc);
            assert_eq!(status.code(), Code::InvalidArgument, "{rpc} {token}");
            assert_eq!(violations(&status), ["page_token"], "{rpc} {token}");
        }
    }

    // A genuine token of a list keyed by id means nothing to the lists
    // keyed by time.
    let by_id = buyers
        .admin()
        .list_buyers(pb::ListBuyersRequest {
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .next_page_token;
    for (rpc, answer) in with_token(&buyers, &by_id).await {
        match rpc {
            "list_unconfirmed_deals" | "list_due_follow_ups" => {
                assert_eq!(violations(&answer.expect_err(rpc)), ["page_token"], "{rpc}")
            }
            _ => answer.expect(rpc),
        }
    }

    let status = buyers
        .admin()
        .list_buyers(pb::ListBuyersRequest {
            page_size: -1,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["page_size"]);
}

/// The ids on each page of `rpc`, two to a page, following the tokens to
/// the end.
macro_rules! pages {
    ($client:expr, $rpc:ident($request:ident).$items:ident, |$item:ident| $id:expr) => {{
        let mut client = $client;
        let mut pages: Vec<Vec<String>> = Vec::new();
        let mut page_token = String::new();
        loop {
            let request = pb::$request {
                page_size: 2,
                page_token,
                ..Default::default()
            };
            let page = client.$rpc(request).await.unwrap().into_inner();
            pages.push(page.$items.into_iter().map(|$item| $id).collect());
            if page.next_page_token.is_empty() {
                break pages;
            }
            assert!(pages.len() < 10, "the pages never end");
            page_token = page.next_page_token;
        }
    }};
}

/// The size of each page, and how many different ids they hold.
fn sizes_and_distinct(pages: &[Vec<String>]) -> (Vec<usize>, usize) {
    let all: HashSet<&String> = pages.iter().flatten().collect();
    (pages.iter().map(Vec::len).collect(), all.len())
}

#[tokio::test]
async fn lists_continue_where_their_tokens_say() {
    let buyers = Buyers::start().await;
    buyers.company_on_file("company-f").await;
    let matches = proposed(&buyers).await;
    for m in &matches {
        for step in [
            pb::MatchStatus::Introduced,
            pb::MatchStatus::MeetingScheduled,
            pb::MatchStatus::Negotiating,
        ] {
            advance(&buyers, &m.match_id, step, pb::NoDealReason::Unspecified)
                .await
                .unwrap();
        }
        record_deal(&buyers, &m.match_id).await.unwrap();
    }

    let listed = pages!(
        buyers.admin(),
        list_buyers(ListBuyersRequest).buyers,
        |buyer| buyer.buyer_id
    );
    assert_eq!(sizes_and_distinct(&listed), (vec![2, 1], 3));

    // Deals page on (recorded at, id).
    let deals = pages!(
        buyers.admin(),
        list_unconfirmed_deals(ListUnconfirmedDealsRequest).deals,
        |deal| deal.deal_id
    );
    assert_eq!(sizes_and_distinct(&deals), (vec![2, 1], 3));

    // Due checkpoints page on (due at, lead, kind).
    let show = Utc.with_ymd_and_hms(2026, 1, 10, 0, 0, 0).unwrap();
    buyers.clock.set(show + Duration::days(1));
    buyers
        .service()
        .import_trade_show_leads(import(
            show,
            ["One", "Two", "Three", "Four", "Five"]
                .iter()
                .map(|name| lead(name, "US"))
                .collect(),
        ))
        .await
        .unwrap();
    assert_eq!(
        sweep_once(&buyers.pool, show + Duration::days(8))
            .await
            .unwrap(),
        5
    );
    let due = pages!(
        buyers.service(),
        list_due_follow_ups(ListDueFollowUpsRequest).due,
        |due| due.lead.unwrap().lead_id
    );
    assert_eq!(sizes_and_distinct(&due), (vec![2, 2, 1], 5));
}
