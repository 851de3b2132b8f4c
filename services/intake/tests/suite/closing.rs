//! A case that runs its course over the real binaries: six needs across
//! the three owners, three cancelled (each owner closes its record), the
//! others done by their owners' own events, and the case CLOSED by itself.

use onestop_contracts::buyers::v1 as buyers_pb;
use onestop_contracts::common::v1::{Money, NeedCategory};
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::mentoring::v1 as mentoring_pb;
use onestop_contracts::referral::v1 as referral_pb;
use onestop_test_support::{
    Bearer, BuyersClient, IntakeClient, MentoringClient, ReferralClient, eventually,
};

use crate::flow::{need, register_advisor};
use crate::support::{
    self, WITHIN, all_delivered, case, case_becomes, company_with_case, hanbit, need_of, status_of,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_case_closes_by_itself_once_every_owner_is_done_or_told_to_stop() {
    let suite = support::start(&[]).await;
    suite.seed_directory().await;
    register_advisor(&suite).await;
    let buyer_ids = suite.vetted_buyers("kotra-new-york", "closing", 3).await;
    let intake: IntakeClient = suite.client("intake", Bearer::agency("kotra"));

    let needs = vec![
        need(NeedCategory::Mentoring, "A long-term export advisor"),
        need(
            NeedCategory::BuyerDiscovery,
            "Importers of cushion compacts",
        ),
        need(NeedCategory::SampleTestMarketing, "Samples to US buyers"),
        need(NeedCategory::ExportFinance, "Working capital"),
        need(
            NeedCategory::MarketDiversification,
            "Markets beyond Vietnam",
        ),
        need(NeedCategory::Certification, "CE marking"),
    ];
    let (company, opened) = company_with_case(&intake, "closing", hanbit(450_000_000), needs).await;
    let case_id = opened.case_id.clone();
    assert_eq!(opened.needs.len(), 6, "nothing added by rule");
    assert!(
        case_becomes(&intake, &case_id, all_delivered).await,
        "every need reaches its owner"
    );
    let delivered = case(&intake, &case_id).await;
    let need_id = |category| {
        need_of(&delivered, category)
            .map(|n| n.need_id.clone())
            .expect("the case has the need")
    };
    let mentoring_need = need_id(NeedCategory::Mentoring);
    let buyers_need = need_id(NeedCategory::BuyerDiscovery);
    let sample_need = need_id(NeedCategory::SampleTestMarketing);
    let finance_need = need_id(NeedCategory::ExportFinance);
    let markets_need = need_id(NeedCategory::MarketDiversification);
    let certification_need = need_id(NeedCategory::Certification);

    // The company found buyers itself, picked its markets and got its
    // certificate elsewhere: those needs are cancelled and each owner
    // closes its record.
    for (key, cancelled) in [
        ("closing-cancel-buyers", &buyers_need),
        ("closing-cancel-markets", &markets_need),
        ("closing-cancel-certification", &certification_need),
    ] {
        intake
            .clone()
            .cancel_need(pb::CancelNeedRequest {
                idempotency_key: key.into(),
                case_id: case_id.clone(),
                need_id: cancelled.clone(),
                reason: "Kim Jiwoo arranged it herself".into(),
            })
            .await
            .expect("need cancelled");
    }
    let referral_admin: ReferralClient = suite.client("referral", Bearer::admin());
    assert!(
        eventually(WITHIN, || async {
            let referrals = referral_admin
                .clone()
                .list_referrals(referral_pb::ListReferralsRequest {
                    need_id: certification_need.clone(),
                    ..Default::default()
                })
                .await
                .expect("referrals list")
                .into_inner()
                .referrals;
            referrals
                .first()
                .is_some_and(|r| r.status == referral_pb::ReferralStatus::Cancelled as i32)
        })
        .await,
        "the cancelled need's referral is cancelled"
    );
    let buyers_admin: BuyersClient = suite.client("buyers", Bearer::admin());
    assert!(
        eventually(WITHIN, || async {
            let matches = buyers_admin
                .clone()
                .list_matches(buyers_pb::ListMatchesRequest {
                    company_id: company.company_id.clone(),
                    ..Default::default()
                })
                .await
                .expect("matches list")
                .into_inner()
                .matches;
            let of_search: Vec<_> = matches
                .iter()
                .filter(|m| m.need_id == buyers_need)
                .collect();
            !of_search.is_empty()
                && of_search
                    .iter()
                    .all(|m| m.status == buyers_pb::MatchStatus::ClosedNoDeal as i32)
        })
        .await,
        "the cancelled need's buyer search closes its matches"
    );

    // Mentoring: the advisor's first session meets the need.
    let mut mentoring: MentoringClient = suite.client("mentoring", Bearer::admin());
    let by_company = mentoring_pb::GetAssignmentRequest {
        lookup: Some(mentoring_pb::get_assignment_request::Lookup::CompanyId(
            company.company_id.clone(),
        )),
    };
    assert!(
        eventually(WITHIN, || async {
            mentoring
                .clone()
                .get_assignment(by_company.clone())
                .await
                .is_ok()
        })
        .await,
        "the advisor is assigned"
    );
    let assignment = mentoring
        .get_assignment(by_company)
        .await
        .expect("assignment reads")
        .into_inner();
    mentoring
        .log_session(mentoring_pb::LogSessionRequest {
            idempotency_key: "closing-session".into(),
            assignment_id: assignment.assignment_id.clone(),
            held_at: assignment.started_at,
            channel: mentoring_pb::SessionChannel::Video as i32,
            minutes: 45,
            ..Default::default()
        })
        .await
        .expect("session logged");

    // Buyers: both buyers answer the sample test; the report is complete.
    let mut buyers: BuyersClient = suite.client("buyers", Bearer::service());
    let sample = buyers
        .start_sample_test(buyers_pb::StartSampleTestRequest {
            idempotency_key: "closing-sample".into(),
            company_id: company.company_id.clone(),
            product_name: "Cushion compact SPF50".into(),
            hs_code: "330499".into(),
            buyer_ids: buyer_ids[..2].to_vec(),
            need_id: sample_need.clone(),
            case_id: case_id.clone(),
        })
        .await
        .expect("sample test starts")
        .into_inner();
    for (i, buyer_id) in buyer_ids[..2].iter().enumerate() {
        buyers
            .record_sample_feedback(buyers_pb::RecordSampleFeedbackRequest {
                idempotency_key: format!("closing-feedback-{i}"),
                sample_test_id: sample.sample_test_id.clone(),
                buyer_id: buyer_id.clone(),
                ratings: Some(buyers_pb::SampleRatings {
                    price: 4,
                    quality: 5,
                    packaging: 4,
                    labelling: 4,
                }),
                would_order: true,
                ..Default::default()
            })
            .await
            .expect("feedback recorded");
    }

    // Referral: SBC accepts, starts and completes the financing.
    let referral_id = delivered
        .needs
        .iter()
        .find(|n| n.need_id == finance_need)
        .map(|n| n.owner_record_id.clone())
        .expect("referral id");
    let mut sbc: ReferralClient = suite.client("referral", Bearer::agency("sbc"));
    sbc.accept_referral(referral_pb::AcceptReferralRequest {
        referral_id: referral_id.clone(),
        ..Default::default()
    })
    .await
    .expect("SBC accepts");
    sbc.start_referral(referral_pb::StartReferralRequest {
        referral_id: referral_id.clone(),
        ..Default::default()
    })
    .await
    .expect("SBC starts");
    sbc.complete_referral(referral_pb::CompleteReferralRequest {
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
    .expect("SBC completes");

    // The case closes by itself, every need finished.
    assert!(
        case_becomes(&intake, &case_id, |case| case.status
            == pb::CaseStatus::Closed as i32)
        .await,
        "the case closes by itself: {:?}",
        case(&intake, &case_id).await
    );
    let closed = case(&intake, &case_id).await;
    assert_eq!(closed.close_cause, pb::CaseCloseCause::NeedsFinished as i32);
    for cancelled in [&buyers_need, &markets_need, &certification_need] {
        assert_eq!(
            status_of(&closed, cancelled),
            pb::NeedStatus::Cancelled as i32,
            "need {cancelled}"
        );
    }
    for done in [&mentoring_need, &sample_need, &finance_need] {
        assert_eq!(
            status_of(&closed, done),
            pb::NeedStatus::Done as i32,
            "need {done}"
        );
    }
    // The advisor stays with the company after the case.
    let still = mentoring
        .get_assignment(mentoring_pb::GetAssignmentRequest {
            lookup: Some(mentoring_pb::get_assignment_request::Lookup::AssignmentId(
                assignment.assignment_id.clone(),
            )),
        })
        .await
        .expect("assignment reads")
        .into_inner();
    assert_eq!(still.status, mentoring_pb::AssignmentStatus::Active as i32);
    suite.stop().await;
}
