//! Every seeded program reachable from intake: which owner serves a
//! category is intake's data, a need that names an agency program goes to
//! referral whatever its category and lands at that program, and
//! RecommendPrograms shows a partner what fits the company.

use onestop_contracts::common::v1::{NeedCategory, NeedOwner};
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::referral::v1 as referral_pb;
use tonic::Code;

use crate::common::{Intake, exporter, registration_number, violations};
use crate::wired::Wired;

/// A need for `program_id`'s agency program.
fn need_for(category: NeedCategory, program_id: &str) -> pb::NeedRequest {
    pb::NeedRequest {
        category: category as i32,
        target_markets: vec!["US".into()],
        hs_codes: vec!["330499".into()],
        program_id: program_id.into(),
        ..Default::default()
    }
}

/// KOTRA registers a Gyeonggi company with `export_usd_cents` of exports
/// in the last year (which sets its stage) and opens a case with `needs`.
async fn case_with(
    wired: &Wired,
    seed: u32,
    export_usd_cents: i64,
    needs: Vec<pb::NeedRequest>,
) -> pb::Case {
    let mut company = exporter(&registration_number(seed), export_usd_cents, false);
    company.region = "KR-41".into();
    let (_, case) = wired.intake.kotra_case(company, needs).await;
    case
}

/// The referral of `need_id` once it reached `agency`'s inbox.
async fn in_inbox(wired: &Wired, agency: &str, need_id: &str) -> referral_pb::Referral {
    for _ in 0..200 {
        let listed = wired
            .referral
            .agency(agency)
            .list_referrals(referral_pb::ListReferralsRequest {
                need_id: need_id.into(),
                ..Default::default()
            })
            .await
            .expect("the agency lists its inbox")
            .into_inner()
            .referrals;
        if let Some(referral) = listed.into_iter().next() {
            return referral;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    panic!("need {need_id} never reached {agency}'s inbox");
}

#[tokio::test]
async fn each_program_the_buyer_categories_hid_takes_a_need_and_its_agency_accepts_it() {
    let wired = Wired::start().await;
    // A first-time exporter (USD 50k) fits four of the five; KOTRA's
    // market-diversification desk serves PROMISING companies and up.
    let first_exporter = case_with(
        &wired,
        301,
        5_000_000,
        vec![
            need_for(NeedCategory::BuyerDiscovery, "kotra.export-first-step"),
            need_for(NeedCategory::BuyerDiscovery, "sbc.buyer-matching"),
            need_for(
                NeedCategory::SampleTestMarketing,
                "kotra.sample-test-marketing",
            ),
            need_for(
                NeedCategory::TradeShowFollowUp,
                "kintex.post-show-expert-marketing",
            ),
        ],
    )
    .await;
    let promising = case_with(
        &wired,
        302,
        50_000_000,
        vec![need_for(
            NeedCategory::MarketDiversification,
            "kotra.market-diversification",
        )],
    )
    .await;
    let chosen: Vec<(&pb::Need, &str)> = first_exporter
        .needs
        .iter()
        .chain(promising.needs.iter())
        .filter(|need| !need.program_id.is_empty())
        .map(|need| {
            let agency = need.program_id.split('.').next().unwrap();
            (need, agency)
        })
        .collect();
    assert_eq!(chosen.len(), 5, "every named program is kept on its need");
    for (need, agency) in chosen {
        assert_eq!(
            need.owner,
            NeedOwner::Referral as i32,
            "{} goes to referral",
            need.program_id
        );
        let referral = in_inbox(&wired, agency, &need.need_id).await;
        let leg = referral.legs.last().expect("a leg");
        assert_eq!(
            leg.program_id, need.program_id,
            "routed to the program named"
        );
        assert!(leg.preferred);
        let accepted = wired
            .referral
            .agency(agency)
            .accept_referral(referral_pb::AcceptReferralRequest {
                referral_id: referral.referral_id.clone(),
                idempotency_key: format!("accept-{}", need.need_id),
                ..Default::default()
            })
            .await
            .unwrap_or_else(|status| panic!("{agency} accepts {}: {status:?}", need.program_id))
            .into_inner();
        assert_eq!(
            accepted.status,
            referral_pb::ReferralStatus::Accepted as i32
        );
    }
    // Intake follows: each need is in progress at its program.
    for case in [&first_exporter, &promising] {
        wired
            .until("every chosen program's need is in progress", || async {
                let now = wired
                    .intake
                    .kotra()
                    .get_case(pb::GetCaseRequest {
                        case_id: case.case_id.clone(),
                    })
                    .await
                    .unwrap()
                    .into_inner();
                now.needs
                    .iter()
                    .filter(|n| !n.program_id.is_empty())
                    .all(|n| n.status == pb::NeedStatus::InProgress as i32)
            })
            .await;
    }
}

#[tokio::test]
async fn which_owner_serves_a_category_is_data() {
    let intake = Intake::start().await;
    let company = intake
        .register(&registration_number(303), 50_000_000, false)
        .await;
    let intake = &intake;
    let open = |category: NeedCategory| {
        let company_id = company.company_id.clone();
        async move {
            intake
                .kotra()
                .open_case(pb::OpenCaseRequest {
                    company_id,
                    needs: vec![need_for(category, "")],
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
                .needs[0]
                .owner
        }
    };
    assert_eq!(
        open(NeedCategory::SampleTestMarketing).await,
        NeedOwner::Buyers as i32
    );
    sqlx::query(
        "UPDATE category_owner SET owner = 'REFERRAL' WHERE category = 'SAMPLE_TEST_MARKETING'",
    )
    .execute(&intake.pool)
    .await
    .unwrap();
    assert_eq!(
        open(NeedCategory::SampleTestMarketing).await,
        NeedOwner::Referral as i32,
        "the next need follows the table"
    );
    assert_eq!(
        open(NeedCategory::BuyerDiscovery).await,
        NeedOwner::Buyers as i32
    );
}

#[tokio::test]
async fn a_malformed_program_id_is_refused_with_nothing_stored() {
    let intake = Intake::start().await;
    let company = intake
        .register(&registration_number(304), 5_000_000, false)
        .await;
    let refused = intake
        .kotra()
        .open_case(pb::OpenCaseRequest {
            company_id: company.company_id.clone(),
            needs: vec![
                need_for(NeedCategory::BuyerDiscovery, "sbc.buyer-matching"),
                need_for(NeedCategory::BuyerDiscovery, "sbc buyer matching\u{0}"),
            ],
            ..Default::default()
        })
        .await
        .expect_err("refused");
    assert_eq!(refused.code(), Code::InvalidArgument);
    assert_eq!(violations(&refused), vec!["needs[1].program_id".to_owned()]);
    let cases = intake
        .admin()
        .list_cases(pb::ListCasesRequest {
            company_id: company.company_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .cases;
    assert!(cases.is_empty());
}

#[tokio::test]
async fn recommend_programs_asks_referral_for_the_company_and_needs_it_configured() {
    let wired = Wired::start().await;
    let case = case_with(
        &wired,
        305,
        5_000_000,
        vec![need_for(NeedCategory::Training, "")],
    )
    .await;
    let recommended = wired
        .intake
        .kotra()
        .recommend_programs(pb::RecommendProgramsRequest {
            company_id: case.company_id.clone(),
            category: NeedCategory::BuyerDiscovery as i32,
        })
        .await
        .expect("recommends")
        .into_inner();
    let eligible: Vec<String> = recommended
        .eligible
        .iter()
        .filter_map(|e| e.program.as_ref().map(|p| p.program_id.clone()))
        .collect();
    for program in [
        "kotra.export-first-step",
        "sbc.buyer-matching",
        "kotra.branch-office-service",
    ] {
        assert!(
            eligible.contains(&program.to_owned()),
            "{program} fits a first-time exporter: {eligible:?}"
        );
    }
    assert!(
        recommended
            .ineligible
            .iter()
            .all(|e| !e.failed_rules.is_empty())
    );
    // A partner that does not work with the company learns nothing.
    let hidden = wired
        .intake
        .agency("semas")
        .recommend_programs(pb::RecommendProgramsRequest {
            company_id: case.company_id.clone(),
            category: NeedCategory::BuyerDiscovery as i32,
        })
        .await
        .expect_err("not SEMAS's company");
    assert_eq!(hidden.code(), Code::NotFound);
    let bad = wired
        .intake
        .kotra()
        .recommend_programs(pb::RecommendProgramsRequest {
            company_id: case.company_id.clone(),
            category: 0,
        })
        .await
        .expect_err("no category");
    assert_eq!(bad.code(), Code::InvalidArgument);

    let alone = Intake::start().await;
    let company = alone
        .register(&registration_number(306), 5_000_000, false)
        .await;
    let unavailable = alone
        .kotra()
        .recommend_programs(pb::RecommendProgramsRequest {
            company_id: company.company_id,
            category: NeedCategory::BuyerDiscovery as i32,
        })
        .await
        .expect_err("no directory configured");
    assert_eq!(unavailable.code(), Code::Unavailable, "{unavailable:?}");
}

/// `need_id`'s `need.delivered`, if `agency`'s intake feed carries it.
async fn delivery_heard_by(
    wired: &Wired,
    agency: &'static str,
    need_id: &str,
) -> Option<pb::NeedDelivered> {
    onestop_test_support::events_until_quiet(
        wired
            .intake
            .client(onestop_test_support::Bearer::agency(agency)),
        0,
    )
    .await
    .into_iter()
    .filter(|e| e.r#type == "need.delivered")
    .filter_map(|e| e.payload?.to_msg::<pb::NeedDelivered>().ok())
    .find(|d| d.need_id == need_id)
}

/// The agency whose program the need went to hears of the hand-off on
/// intake's feed (`need.delivered` names it), although it did not work
/// with the company when the case was opened; so does the agency that
/// opened the case, as every partner of the company does.
#[tokio::test]
async fn the_agency_a_need_went_to_hears_of_its_delivery() {
    let wired = Wired::start().await;
    let case = case_with(
        &wired,
        307,
        5_000_000,
        vec![need_for(NeedCategory::BuyerDiscovery, "sbc.buyer-matching")],
    )
    .await;
    let need = case
        .needs
        .iter()
        .find(|n| !n.program_id.is_empty())
        .expect("the program's need");
    in_inbox(&wired, "sbc", &need.need_id).await;
    let delivered = |agency| delivery_heard_by(&wired, agency, &need.need_id);
    wired
        .until("SBC's intake feed carries the delivery", || async {
            delivered("sbc").await.is_some()
        })
        .await;
    assert_eq!(
        delivered("sbc").await.unwrap().owner,
        NeedOwner::Referral as i32
    );
    let heard_by_kotra = delivered("kotra").await.expect("KOTRA opened the case");
    assert_eq!(heard_by_kotra.owner, NeedOwner::Referral as i32);
}
