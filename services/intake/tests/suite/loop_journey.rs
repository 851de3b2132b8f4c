//! The one-stop loop over the real binaries: needs that name each of the
//! five programs the buyer categories used to hide reach that program and
//! its agency accepts them; a deal the company confirms through intake finishes its
//! need; a stage change opens the ladder's follow-on needs once; a field
//! visit's complaint and request are answered by the agencies asked, each
//! seeing only its own.

use onestop_contracts::buyers::v1 as buyers_pb;
use onestop_contracts::common::v1::{Money, NeedCategory, NeedOwner};
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::referral::v1 as referral_pb;
use onestop_test_support::{Bearer, BuyersClient, IntakeClient, ReferralClient};
use prost_types::FieldMask;

use crate::support::{self, case, case_becomes, company_with_case, first_listed, status_of};

const OFFICE: &str = "kotra-new-york";

fn usd(cents: i64) -> Option<Money> {
    Some(Money {
        currency_code: "USD".into(),
        amount_minor: cents,
    })
}

fn need(category: NeedCategory, program_id: &str) -> pb::NeedRequest {
    pb::NeedRequest {
        category: category as i32,
        target_markets: vec!["US".into()],
        hs_codes: vec!["330499".into()],
        program_id: program_id.into(),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn programs_reached_a_deal_confirmed_by_the_company_and_care_along_the_ladder() {
    let suite = support::start(&[]).await;
    suite.seed_directory().await;
    suite.vetted_buyers(OFFICE, "loop", 2).await;
    let intake: IntakeClient = suite.client("intake", Bearer::agency("kotra"));

    // A Gyeonggi first-time exporter (USD 50k a year).
    let profile = pb::CompanyProfile {
        business_registration_number: "107-86-14075".into(),
        name_ko: "경기뷰티".into(),
        name_en: "Gyeonggi Beauty Co., Ltd.".into(),
        region: "KR-41".into(),
        industry_ksic: "20423".into(),
        hs_codes: vec!["330499".into()],
        employees: 18,
        export_revenue: usd(5_000_000),
        languages: vec!["ko".into(), "en".into()],
        ..Default::default()
    };
    let needs = vec![
        need(NeedCategory::BuyerDiscovery, ""),
        need(NeedCategory::BuyerDiscovery, "sbc.buyer-matching"),
        need(
            NeedCategory::TradeShowFollowUp,
            "kintex.post-show-expert-marketing",
        ),
        need(NeedCategory::BuyerDiscovery, "kotra.export-first-step"),
        need(
            NeedCategory::SampleTestMarketing,
            "kotra.sample-test-marketing",
        ),
    ];
    let (company, opened) = company_with_case(&intake, "loop", profile, needs).await;
    let case_id = opened.case_id.clone();
    let discovery = opened.needs[0].clone();
    assert_eq!(discovery.owner, NeedOwner::Buyers as i32);

    // SBC, KINTEX and KOTRA each find the need that named their program
    // and accept it with their own token.
    for need in &opened.needs[1..5] {
        accepted_by_its_agency(&suite, need).await;
    }

    // The New York office closes a deal with the buyer proposed for the
    // discovery need; KOTRA confirms it for the company through intake.
    let office: BuyersClient = suite.client("buyers", Bearer::trade_office(OFFICE));
    let proposed = first_listed(|| async {
        office
            .clone()
            .list_matches(buyers_pb::ListMatchesRequest {
                need_id: discovery.need_id.clone(),
                ..Default::default()
            })
            .await
            .expect("matches list")
            .into_inner()
            .matches
    })
    .await
    .expect("buyers proposes a buyer");
    for step in [
        buyers_pb::MatchStatus::Introduced,
        buyers_pb::MatchStatus::MeetingScheduled,
        buyers_pb::MatchStatus::Negotiating,
    ] {
        office
            .clone()
            .advance_match(buyers_pb::AdvanceMatchRequest {
                match_id: proposed.match_id.clone(),
                to_status: step as i32,
                ..Default::default()
            })
            .await
            .expect("the office moves the match on");
    }
    let deal = office
        .clone()
        .record_deal(buyers_pb::RecordDealRequest {
            match_id: proposed.match_id.clone(),
            deal_type: buyers_pb::DealType::Order as i32,
            value: usd(2_000_000),
            ..Default::default()
        })
        .await
        .expect("the office records the deal")
        .into_inner();
    let confirmed = intake
        .clone()
        .confirm_deal(pb::ConfirmDealRequest {
            idempotency_key: "loop-confirm".into(),
            company_id: company.company_id.clone(),
            deal_id: deal.deal_id.clone(),
        })
        .await
        .expect("KOTRA confirms the deal for the company")
        .into_inner();
    assert!(confirmed.confirmed);
    assert!(
        case_becomes(&intake, &case_id, |case| {
            status_of(case, &discovery.need_id) == pb::NeedStatus::Done as i32
        })
        .await,
        "the confirmed deal finishes the discovery need"
    );

    // Exports pass USD 100k: PROMISING. The same update sent twice opens
    // market diversification and export finance once, on the open case.
    for _ in 0..2 {
        intake
            .clone()
            .update_company(pb::UpdateCompanyRequest {
                idempotency_key: "loop-exports-2027".into(),
                company_id: company.company_id.clone(),
                profile: Some(pb::CompanyProfile {
                    export_revenue: usd(30_000_000),
                    ..Default::default()
                }),
                update_mask: Some(FieldMask {
                    paths: vec!["export_revenue".into()],
                }),
            })
            .await
            .expect("exports updated");
    }
    let follow_ons: Vec<i32> = case(&intake, &case_id)
        .await
        .needs
        .iter()
        .filter(|n| n.added_by_rule && n.detail.starts_with("Follow-on"))
        .map(|n| n.category)
        .collect();
    assert_eq!(
        follow_ons,
        vec![
            NeedCategory::MarketDiversification as i32,
            NeedCategory::ExportFinance as i32
        ]
    );

    // PROMISING now, the company fits KOTRA's market-diversification desk:
    // a need naming it reaches it.
    let added = intake
        .clone()
        .add_needs(pb::AddNeedsRequest {
            idempotency_key: "loop-add-desk".into(),
            case_id: case_id.clone(),
            needs: vec![need(
                NeedCategory::MarketDiversification,
                "kotra.market-diversification",
            )],
        })
        .await
        .expect("need added")
        .into_inner();
    accepted_by_its_agency(&suite, added.needs.last().unwrap()).await;
    requests_answered_by_the_agency_asked(&suite, &case_id).await;
    suite.stop().await;
}

/// In a CEO field visit the company complains to SBC and asks KOTRA for
/// something; each agency lists and answers only its own, and both land on
/// the case's timeline.
async fn requests_answered_by_the_agency_asked(suite: &support::Suite, case_id: &str) {
    let mut kotra: IntakeClient = suite.client("intake", Bearer::agency("kotra"));
    let mut sbc: IntakeClient = suite.client("intake", Bearer::agency("sbc"));
    let raise = |agency: &str, kind: pb::CaseRequestKind| pb::RaiseRequestRequest {
        idempotency_key: format!("loop-visit-{agency}"),
        case_id: case_id.to_owned(),
        kind: kind as i32,
        raised_by: pb::CaseRequestRaiser::Ceo as i32,
        channel: pb::CaseRequestChannel::FieldVisit as i32,
        answering_agency_id: agency.into(),
        summary: "asked on the spot during the CEO's field visit".into(),
        due_in_days: 7,
    };
    let complaint = kotra
        .raise_request(raise("sbc", pb::CaseRequestKind::Complaint))
        .await
        .expect("complaint raised")
        .into_inner();
    let request = kotra
        .raise_request(raise("kotra", pb::CaseRequestKind::Request))
        .await
        .expect("request raised")
        .into_inner();
    let open_for = |client: &mut IntakeClient| {
        let mut client = client.clone();
        async move {
            client
                .list_requests(pb::ListRequestsRequest::default())
                .await
                .expect("requests list")
                .into_inner()
                .requests
                .into_iter()
                .map(|r| r.request_id)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(open_for(&mut sbc).await, vec![complaint.request_id.clone()]);
    assert_eq!(open_for(&mut kotra).await, vec![request.request_id.clone()]);
    let refused = sbc
        .answer_request(pb::AnswerRequestRequest {
            request_id: request.request_id.clone(),
            answer: "not ours".into(),
            ..Default::default()
        })
        .await
        .expect_err("SBC cannot answer KOTRA's request");
    assert_eq!(refused.code(), tonic::Code::NotFound);
    for (client, asked) in [(&mut sbc, &complaint), (&mut kotra, &request)] {
        let answered = client
            .answer_request(pb::AnswerRequestRequest {
                idempotency_key: format!("loop-answer-{}", asked.request_id),
                request_id: asked.request_id.clone(),
                answer: "answered on the spot".into(),
            })
            .await
            .expect("the agency asked answers")
            .into_inner();
        assert_eq!(answered.state, pb::CaseRequestState::Answered as i32);
    }
    let kinds: Vec<String> = kotra
        .get_case_timeline(pb::GetCaseTimelineRequest {
            case_id: case_id.to_owned(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .expect("timeline")
        .into_inner()
        .entries
        .into_iter()
        .map(|entry| entry.kind)
        .collect();
    for kind in ["request.raised", "request.answered"] {
        assert_eq!(kinds.iter().filter(|k| *k == kind).count(), 2, "{kind}");
    }
}

/// The agency of the program `need` named finds it in its inbox, routed
/// to that program, and accepts it with its own token.
async fn accepted_by_its_agency(suite: &support::Suite, need: &pb::Need) {
    assert_eq!(need.owner, NeedOwner::Referral as i32);
    let agency = need.program_id.split('.').next().unwrap_or_default();
    let mut inbox: ReferralClient = suite.client("referral", Bearer::agency(agency));
    let referral = first_listed(|| async {
        inbox
            .clone()
            .list_referrals(referral_pb::ListReferralsRequest {
                need_id: need.need_id.clone(),
                ..Default::default()
            })
            .await
            .expect("the inbox lists")
            .into_inner()
            .referrals
    })
    .await
    .unwrap_or_else(|| panic!("{agency} receives its referral"));
    assert_eq!(referral.legs.last().unwrap().program_id, need.program_id);
    inbox
        .accept_referral(referral_pb::AcceptReferralRequest {
            idempotency_key: format!("loop-accept-{}", need.need_id),
            referral_id: referral.referral_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap_or_else(|status| panic!("{agency} accepts {}: {status:?}", need.program_id));
}
