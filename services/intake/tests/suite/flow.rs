//! One company's case across intake, mentoring, buyers and referral.

use onestop_contracts::buyers::v1 as buyers_pb;
use onestop_contracts::common::v1::{Money, NeedCategory};
use onestop_contracts::event_types::{BuyersEvent, IntakeEvent, MentoringEvent, ReferralEvent};
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::mentoring::v1 as mentoring_pb;
use onestop_contracts::referral::v1 as referral_pb;
use onestop_test_support::{
    Bearer, BuyersClient, IntakeClient, MentoringClient, ReferralClient, all_pages, eventually,
};
use tonic::Code;

use crate::support::{
    self, Suite, WITHIN, all_delivered, case, case_becomes, hanbit, need_of, open_case,
    register_company,
};

fn money(currency: &str, amount_minor: i64) -> Option<Money> {
    Some(Money {
        currency_code: currency.into(),
        amount_minor,
    })
}

pub fn need(category: NeedCategory, detail: &str) -> pb::NeedRequest {
    pb::NeedRequest {
        category: category as i32,
        detail: detail.into(),
        target_markets: vec!["US".into(), "VN".into()],
        hs_codes: vec!["330499".into()],
        ..Default::default()
    }
}

pub async fn register_advisor(suite: &Suite) -> String {
    suite
        .client::<MentoringClient>("mentoring", Bearer::admin())
        .register_advisor(mentoring_pb::RegisterAdvisorRequest {
            idempotency_key: "advisor-park".into(),
            profile: Some(mentoring_pb::AdvisorProfile {
                kind: mentoring_pb::AdvisorKind::RetiredExpert as i32,
                contact: Some(mentoring_pb::AdvisorContact {
                    name: "Park Minsoo".into(),
                    email: "minsoo.park@kintex-experts.kr".into(),
                    phone: "+82 31-555-0190".into(),
                }),
                languages: vec!["ko".into(), "en".into()],
                industries_ksic: vec!["204".into()],
                hs_chapters: vec!["33".into()],
                markets: vec!["US".into(), "VN".into()],
                region: "KR-26".into(),
                capacity: 5,
                remote: true,
                program: Some(mentoring_pb::AdvisorProgram {
                    program_id: "kintex.post-show-expert-marketing".into(),
                    agency: "kintex".into(),
                    name: "Post-show marketing with retired experts".into(),
                    monthly_fee: money("KRW", 100_000),
                }),
            }),
        })
        .await
        .expect("advisor registers")
        .into_inner()
        .advisor_id
}

/// The whole timeline, a page at a time.
async fn timeline(intake: &IntakeClient, case_id: &str) -> Vec<pb::TimelineEntry> {
    all_pages(|page_token| {
        let mut intake = intake.clone();
        let case_id = case_id.to_owned();
        async move {
            let page = intake
                .get_case_timeline(pb::GetCaseTimelineRequest {
                    case_id,
                    page_size: 100,
                    page_token,
                })
                .await
                .expect("timeline reads")
                .into_inner();
            (page.entries, page.next_page_token)
        }
    })
    .await
}

async fn has_kind(intake: &IntakeClient, case_id: &str, kind: &str) -> bool {
    timeline(intake, case_id)
        .await
        .iter()
        .any(|e| e.kind == kind)
}

/// How many records the owner holds for `need_id`.
async fn owner_records(suite: &Suite, service: &str, table: &str, need_id: &str) -> i64 {
    let pool = sqlx::PgPool::connect(suite.database_url(service))
        .await
        .expect("owner database");
    let count = sqlx::query_scalar(&format!(
        "SELECT count(*) FROM {table} WHERE need_id::text = $1"
    ))
    .bind(need_id)
    .fetch_one(&pool)
    .await
    .expect("count owner records");
    pool.close().await;
    count
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_case_reaches_every_agency_and_survives_a_crash() {
    // Generated keys and mutual TLS everywhere: the hand-offs and feed
    // follows between the binaries run over TLS, signed with intake's key.
    let mut suite = support::start_secured(&[]).await;
    suite.seed_directory().await;
    let advisor_id = register_advisor(&suite).await;
    let buyer_ids = suite.vetted_buyers("kotra-new-york", "e2e", 3).await;
    let mut intake: IntakeClient = suite.client("intake", Bearer::agency("kotra"));

    // Register, diagnose and open one case with four needs.
    let profile = pb::CompanyProfile {
        annual_revenue: money("KRW", 3_200_000_000),
        export_countries: vec!["VN".into()],
        contacts: vec![pb::Contact {
            name: "Kim Jiwoo".into(),
            title: "Export manager".into(),
            email: "jiwoo.kim@hanbit-cosmetics.kr".into(),
            phone: "+82 51-555-0142".into(),
        }],
        ..hanbit(4_500_000)
    };
    let company = register_company(&intake, "e2e-company", profile).await;
    intake
        .diagnose_readiness(pb::DiagnoseReadinessRequest {
            idempotency_key: "e2e-diagnosis".into(),
            company_id: company.company_id.clone(),
            answers: Some(pb::ReadinessAnswers {
                foreign_language_catalog: true,
                foreign_language_website: true,
                certifications: vec![],
                dedicated_trade_staff: false,
                trade_show_experience: true,
                export_plan: true,
                export_revenue: money("USD", 4_500_000),
            }),
        })
        .await
        .expect("diagnosis");
    let needs = vec![
        need(NeedCategory::Mentoring, "A long-term export advisor"),
        need(
            NeedCategory::BuyerDiscovery,
            "Importers of cushion compacts",
        ),
        need(
            NeedCategory::ExportFinance,
            "Working capital for a first US order",
        ),
        need(NeedCategory::SampleTestMarketing, "Samples to US buyers"),
    ];
    let opened = open_case(&intake, "e2e-case", &company.company_id, needs).await;
    let case_id = opened.case_id.clone();

    // Every need reaches its owner.
    assert!(
        case_becomes(&intake, &case_id, all_delivered).await,
        "all four needs delivered: {:?}",
        case(&intake, &case_id).await.needs
    );
    let delivered = case(&intake, &case_id).await;

    // The advisor is assigned and the buyers proposed, as the timeline says.
    assert!(
        eventually(WITHIN, || async {
            has_kind(&intake, &case_id, MentoringEvent::AssignmentCreated.name()).await
                && has_kind(&intake, &case_id, BuyersEvent::MatchProposed.name()).await
        })
        .await,
        "advisor assigned and buyers proposed on the timeline"
    );
    let history = suite
        .client::<MentoringClient>("mentoring", Bearer::admin())
        .get_advisor_history(mentoring_pb::GetAdvisorHistoryRequest {
            company_id: company.company_id.clone(),
            ..Default::default()
        })
        .await
        .expect("advisor history")
        .into_inner();
    assert_eq!(history.assignments.len(), 1);
    assert_eq!(history.assignments[0].advisor_id, advisor_id);

    // The finance referral reached an SBC program: KOTRA cannot touch it,
    // SBC accepts it.
    let finance = need_of(&delivered, NeedCategory::ExportFinance).expect("finance need");
    let referral_id = finance.owner_record_id.clone();
    let kotra = suite
        .client::<ReferralClient>("referral", Bearer::agency("kotra"))
        .accept_referral(referral_pb::AcceptReferralRequest {
            referral_id: referral_id.clone(),
            ..Default::default()
        })
        .await
        .expect_err("KOTRA cannot act on SBC's referral");
    assert_eq!(kotra.code(), Code::NotFound);
    let mut sbc: ReferralClient = suite.client("referral", Bearer::agency("sbc"));
    let accepted = sbc
        .accept_referral(referral_pb::AcceptReferralRequest {
            referral_id: referral_id.clone(),
            ..Default::default()
        })
        .await
        .expect("SBC accepts its referral")
        .into_inner();
    assert_eq!(accepted.legs.last().expect("leg").agency_id, "sbc");
    assert!(
        eventually(WITHIN, || has_kind(
            &intake,
            &case_id,
            ReferralEvent::Accepted.name()
        ))
        .await,
        "acceptance on the timeline"
    );

    // Sample feedback naming a missing certification opens a CERTIFICATION
    // need on the case by itself, while the referral service is down.
    let sample_need = need_of(&delivered, NeedCategory::SampleTestMarketing)
        .expect("sample need")
        .need_id
        .clone();
    let mut buyers: BuyersClient = suite.client("buyers", Bearer::service());
    let sample = buyers
        .start_sample_test(buyers_pb::StartSampleTestRequest {
            idempotency_key: "e2e-sample".into(),
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

    let referral_addr = suite.kill("referral").await;
    buyers
        .record_sample_feedback(buyers_pb::RecordSampleFeedbackRequest {
            idempotency_key: "e2e-feedback".into(),
            sample_test_id: sample.sample_test_id.clone(),
            buyer_id: buyer_ids[0].clone(),
            ratings: Some(buyers_pb::SampleRatings {
                price: 4,
                quality: 5,
                packaging: 3,
                labelling: 2,
            }),
            certification_gaps: vec!["FDA".into()],
            would_order: true,
            comment: String::new(),
        })
        .await
        .expect("feedback recorded");
    assert!(
        case_becomes(&intake, &case_id, |case| {
            need_of(case, NeedCategory::Certification).is_some_and(|n| {
                n.delivery_attempts >= 1 && n.delivery == pb::DeliveryState::Pending as i32
            })
        })
        .await,
        "the CERTIFICATION need is opened and waits while referral is down"
    );

    suite.restart("referral", referral_addr).await;
    assert!(
        case_becomes(&intake, &case_id, |case| {
            need_of(case, NeedCategory::Certification)
                .is_some_and(|n| n.delivery == pb::DeliveryState::Delivered as i32)
        })
        .await,
        "the CERTIFICATION need is delivered once referral is back"
    );

    // Exactly one downstream record per need.
    let done = case(&intake, &case_id).await;
    assert_eq!(done.needs.len(), 5);
    for need in &done.needs {
        let (service, table) = match NeedCategory::try_from(need.category).expect("category") {
            NeedCategory::Mentoring => ("mentoring", "need_request"),
            NeedCategory::BuyerDiscovery | NeedCategory::SampleTestMarketing => {
                ("buyers", "buyer_search")
            }
            _ => ("referral", "referral"),
        };
        assert_eq!(
            owner_records(&suite, service, table, &need.need_id).await,
            1,
            "one {table} for need {}",
            need.need_id
        );
    }

    // The timeline tells the whole story across the services.
    let story = timeline(&intake, &case_id).await;
    for (service, kind) in [
        ("intake", IntakeEvent::CaseOpened.name()),
        ("intake", IntakeEvent::NeedDelivered.name()),
        ("mentoring", MentoringEvent::AssignmentCreated.name()),
        ("buyers", BuyersEvent::MatchProposed.name()),
        ("buyers", BuyersEvent::SampleStarted.name()),
        ("buyers", BuyersEvent::SampleCertificationGap.name()),
        ("referral", ReferralEvent::Routed.name()),
        ("referral", ReferralEvent::Accepted.name()),
    ] {
        assert!(
            story.iter().any(|e| e.service == service && e.kind == kind),
            "{service} {kind} missing from the timeline"
        );
    }
    suite.stop().await;
}
