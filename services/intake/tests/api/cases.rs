use onestop_contracts::common::v1::{NeedCategory, NeedOwner};
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::intake::v1::NeedOpened;
use onestop_test_support::all_pages;
use prost::Message;
use tonic::Code;

use crate::common::{Intake, registration_number, violations};

fn need(category: NeedCategory) -> pb::NeedRequest {
    pb::NeedRequest {
        category: category as i32,
        detail: format!("{category:?} for our cushion compact"),
        target_markets: vec!["VN".into(), "TH".into()],
        hs_codes: vec!["3304".into()],
        ..Default::default()
    }
}

async fn open(intake: &Intake, company_id: &str, needs: Vec<pb::NeedRequest>) -> pb::Case {
    intake
        .kotra()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: String::new(),
            company_id: company_id.into(),
            needs,
        })
        .await
        .unwrap()
        .into_inner()
}

async fn read(intake: &Intake, case_id: &str) -> pb::Case {
    intake
        .kotra()
        .get_case(pb::GetCaseRequest {
            case_id: case_id.into(),
        })
        .await
        .unwrap()
        .into_inner()
}

const ALL: [NeedCategory; 12] = [
    NeedCategory::BuyerDiscovery,
    NeedCategory::ExportFinance,
    NeedCategory::Certification,
    NeedCategory::Marketing,
    NeedCategory::Interpretation,
    NeedCategory::Logistics,
    NeedCategory::MarketDiversification,
    NeedCategory::TradeShowFollowUp,
    NeedCategory::SampleTestMarketing,
    NeedCategory::Training,
    NeedCategory::LegalIp,
    NeedCategory::Mentoring,
];

fn expected_owner(category: NeedCategory) -> NeedOwner {
    use NeedCategory::*;
    match category {
        Mentoring => NeedOwner::Mentoring,
        BuyerDiscovery | SampleTestMarketing | TradeShowFollowUp | MarketDiversification => {
            NeedOwner::Buyers
        }
        _ => NeedOwner::Referral,
    }
}

/// A case with one need of every category, for a PROMISING company that
/// is not a small merchant, so nothing is added by rule.
async fn open_every_category(intake: &Intake, seed: u32) -> (pb::Company, pb::Case) {
    let company = intake
        .register(&registration_number(seed), 50_000_000, false)
        .await;
    let case = open(
        intake,
        &company.company_id,
        ALL.iter().map(|c| need(*c)).collect(),
    )
    .await;
    (company, case)
}

#[tokio::test]
async fn every_category_is_routed_to_its_owner() {
    let intake = Intake::start().await;
    let (company, case) = open_every_category(&intake, 200).await;
    assert_eq!(case.needs.len(), ALL.len());
    for (need, category) in case.needs.iter().zip(ALL) {
        assert_eq!(need.category, category as i32);
        assert_eq!(need.owner, expected_owner(category) as i32, "{category:?}");
        assert_eq!(need.status, pb::NeedStatus::Open as i32);
        assert_eq!(need.delivery, pb::DeliveryState::Pending as i32);
        assert!(!need.added_by_rule);
    }
    let mut ids: Vec<&str> = case.needs.iter().map(|n| n.need_id.as_str()).collect();
    ids.sort();
    ids.dedup();
    assert_eq!(ids.len(), ALL.len());

    // need.opened carries the hand-off: the need and a company snapshot
    // without personal data.
    let events = intake.events_after(0).await;
    let hand_offs: Vec<NeedOpened> = events
        .iter()
        .filter(|e| e.r#type == IntakeEvent::NeedOpened.name())
        .map(|e| NeedOpened::decode(e.payload.as_ref().unwrap().value.as_slice()).unwrap())
        .collect();
    assert_eq!(hand_offs.len(), ALL.len());
    for (opened, need) in hand_offs.iter().zip(&case.needs) {
        let hand_off = opened.hand_off.as_ref().unwrap();
        assert_eq!(hand_off.need_id, need.need_id);
        assert_eq!(hand_off.owner, need.owner);
        assert_eq!(hand_off.case_id, case.case_id);
        let snapshot = hand_off.company.as_ref().unwrap();
        assert_eq!(snapshot.company_id, company.company_id);
        assert_eq!(snapshot.hs_codes, vec!["330420", "330499"]);
    }
    assert!(
        events
            .iter()
            .any(|e| e.r#type == IntakeEvent::CaseOpened.name())
    );
    let raw: Vec<u8> = events
        .iter()
        .flat_map(|e| e.payload.as_ref().unwrap().value.clone())
        .collect();
    assert!(!String::from_utf8_lossy(&raw).contains("hanbit-cosmetics.kr"));

    let timeline = intake
        .kotra()
        .get_case_timeline(pb::GetCaseTimelineRequest {
            case_id: case.case_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(timeline.entries.len(), ALL.len() + 1);
    assert_eq!(timeline.entries[0].kind, IntakeEvent::CaseOpened.name());
    assert!(
        timeline.entries[1..]
            .iter()
            .all(|e| e.kind == IntakeEvent::NeedOpened.name() && e.service == "intake")
    );
}

#[tokio::test]
async fn early_companies_and_small_merchants_get_a_mentoring_need() {
    let intake = Intake::start().await;
    let finance = || vec![need(NeedCategory::ExportFinance)];
    for (seed, cents, small, added) in [
        (201, 0, false, true),           // DOMESTIC
        (202, 9_999_999, false, true),   // FIRST_EXPORT
        (203, 10_000_000, false, false), // PROMISING
        (204, 600_000_000, true, true),  // STRONG small merchant
    ] {
        let company = intake
            .register(&registration_number(seed), cents, small)
            .await;
        let case = open(&intake, &company.company_id, finance()).await;
        let mentoring: Vec<&pb::Need> = case
            .needs
            .iter()
            .filter(|n| n.category == NeedCategory::Mentoring as i32)
            .collect();
        assert_eq!(mentoring.len(), usize::from(added), "seed {seed}");
        if added {
            assert!(mentoring[0].added_by_rule);
            assert_eq!(mentoring[0].owner, NeedOwner::Mentoring as i32);
            // A second case while that need is open adds no second one.
            let again = open(&intake, &company.company_id, finance()).await;
            assert_eq!(again.needs.len(), 1);
        }
    }
    // Asked for explicitly: kept as asked, nothing added.
    let company = intake.register(&registration_number(205), 0, true).await;
    let case = open(
        &intake,
        &company.company_id,
        vec![need(NeedCategory::Mentoring)],
    )
    .await;
    assert_eq!(case.needs.len(), 1);
    assert!(!case.needs[0].added_by_rule);
}

/// Cases opened at once for one early company add one mentoring need
/// between them, and each answer is the case as GetCase then reads it.
#[tokio::test]
async fn cases_opened_at_once_for_one_company_add_one_mentoring_need() {
    let intake = Intake::start().await;
    let company = intake.register(&registration_number(206), 0, false).await;
    let opened = futures_util::future::join_all((0..8).map(|_| {
        open(
            &intake,
            &company.company_id,
            vec![need(NeedCategory::ExportFinance)],
        )
    }))
    .await;
    let by_rule: Vec<&pb::Need> = opened
        .iter()
        .flat_map(|case| &case.needs)
        .filter(|need| need.added_by_rule)
        .collect();
    assert_eq!(by_rule.len(), 1, "one advisor need for the company");
    assert_eq!(by_rule[0].category, NeedCategory::Mentoring as i32);
    for case in &opened {
        assert_eq!(&read(&intake, &case.case_id).await, case);
    }
}

#[tokio::test]
async fn opening_a_case_does_not_wait_for_a_partner_being_recorded_for_the_company() {
    let intake = Intake::start().await;
    let company = intake.register(&registration_number(207), 0, false).await;
    // A feed follower's transaction recording a partner for the company,
    // still open: its row references the company's.
    let mut recording = intake.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO company_partner (company_id, role, tenant, source, state)
         VALUES ($1, 'AGENCY', 'sbc', 'REFERRAL', 'ACTIVE')",
    )
    .bind(uuid::Uuid::parse_str(&company.company_id).unwrap())
    .execute(&mut *recording)
    .await
    .unwrap();
    let opened = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        open(
            &intake,
            &company.company_id,
            vec![need(NeedCategory::ExportFinance)],
        ),
    )
    .await
    .expect("the case opens while the partner's transaction is still open");
    assert_eq!(opened.company_id, company.company_id);
    recording.rollback().await.unwrap();
}

#[tokio::test]
async fn bad_needs_are_refused_and_nothing_is_stored() {
    let intake = Intake::start().await;
    let company = intake.register(&registration_number(206), 0, false).await;
    let events_before = intake.count("event_log").await;
    let status = intake
        .kotra()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: String::new(),
            company_id: company.company_id.clone(),
            needs: vec![
                pb::NeedRequest {
                    category: 0,
                    ..Default::default()
                },
                pb::NeedRequest {
                    category: NeedCategory::Logistics as i32,
                    detail: String::new(),
                    target_markets: vec!["Vietnam".into()],
                    hs_codes: vec!["33049".into()],
                    ..Default::default()
                },
            ],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec![
            "needs[0].category",
            "needs[1].hs_codes[0]",
            "needs[1].target_markets[0]"
        ]
    );
    let empty = intake
        .kotra()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: String::new(),
            company_id: "not-a-uuid".into(),
            needs: vec![],
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&empty), vec!["company_id", "needs"]);
    let unknown = intake
        .kotra()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: String::new(),
            company_id: uuid::Uuid::now_v7().to_string(),
            needs: vec![need(NeedCategory::Training)],
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
    assert_eq!(intake.count("support_case").await, 0);
    assert_eq!(intake.count("need").await, 0);
    assert_eq!(intake.count("event_log").await, events_before);
}

#[tokio::test]
async fn open_case_is_idempotent_and_cases_list_by_page() {
    let intake = Intake::start().await;
    let company = intake
        .register(&registration_number(207), 50_000_000, false)
        .await;
    let request = pb::OpenCaseRequest {
        idempotency_key: "case-1".into(),
        company_id: company.company_id.clone(),
        needs: vec![need(NeedCategory::Certification)],
    };
    let first = intake
        .kotra()
        .open_case(request.clone())
        .await
        .unwrap()
        .into_inner();
    let retry = intake
        .kotra()
        .open_case(request)
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, retry);
    for _ in 0..4 {
        open(
            &intake,
            &company.company_id,
            vec![need(NeedCategory::Training)],
        )
        .await;
    }
    assert_eq!(intake.count("support_case").await, 5);

    let seen = all_pages(|page_token| {
        let mut client = intake.kotra();
        let company_id = company.company_id.clone();
        async move {
            let page = client
                .list_cases(pb::ListCasesRequest {
                    page_size: 2,
                    page_token,
                    company_id,
                    status: pb::CaseStatus::Open as i32,
                })
                .await
                .unwrap()
                .into_inner();
            assert!(page.cases.len() <= 2);
            let ids = page.cases.into_iter().map(|c| c.case_id).collect();
            (ids, page.next_page_token)
        }
    })
    .await;
    assert_eq!(seen.len(), 5);
    assert_eq!(seen[0], first.case_id);
}

#[tokio::test]
async fn the_timeline_pages_oldest_first() {
    let intake = Intake::start().await;
    let (_, case) = open_every_category(&intake, 208).await;
    let page = |page_size: i32, page_token: String| {
        let mut client = intake.kotra();
        let case_id = case.case_id.clone();
        async move {
            client
                .get_case_timeline(pb::GetCaseTimelineRequest {
                    case_id,
                    page_size,
                    page_token,
                })
                .await
        }
    };
    let whole = page(0, String::new()).await.unwrap().into_inner();
    assert_eq!(whole.entries.len(), ALL.len() + 1);
    assert!(whole.next_page_token.is_empty());

    let mut pages = 0;
    let paged = all_pages(|token| {
        pages += 1;
        let next = page(5, token);
        async move {
            let next = next.await.unwrap().into_inner();
            assert!(next.entries.len() <= 5);
            (next.entries, next.next_page_token)
        }
    })
    .await;
    assert_eq!(pages, 3);
    assert_eq!(paged, whole.entries);
    assert_eq!(paged[0].kind, IntakeEvent::CaseOpened.name());
    assert!(
        paged
            .windows(2)
            .all(|w| w[0].at.unwrap().seconds <= w[1].at.unwrap().seconds)
    );

    let forged = page(5, "not-a-token".into()).await.unwrap_err();
    assert_eq!(violations(&forged), vec!["page_token"]);
    let unknown = intake
        .kotra()
        .get_case_timeline(pb::GetCaseTimelineRequest {
            case_id: uuid::Uuid::now_v7().to_string(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(unknown.code(), Code::NotFound);
}

#[tokio::test]
async fn control_characters_and_oversized_lists_in_a_need_are_refused_by_field() {
    let intake = Intake::start().await;
    let company = intake.register(&registration_number(207), 0, false).await;
    let cases_before = intake.count("support_case").await;
    let mut with_nul = need(NeedCategory::Logistics);
    with_nul.detail = "pallets\0 of cushion compact".into();
    let mut with_escape = need(NeedCategory::Marketing);
    with_escape.detail = "launch \u{1b}[31m".into();
    let mut too_many = need(NeedCategory::Certification);
    too_many.hs_codes = vec!["3304".into(); 51];
    let mut lines = need(NeedCategory::Training);
    lines.detail = "two lines\n\tand an indent".into();
    let status = intake
        .kotra()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: String::new(),
            company_id: company.company_id.clone(),
            needs: vec![with_nul, with_escape, too_many, lines.clone()],
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec!["needs[0].detail", "needs[1].detail", "needs[2].hs_codes"]
    );
    assert_eq!(intake.count("support_case").await, cases_before);

    let case = open(&intake, &company.company_id, vec![lines]).await;
    assert_eq!(case.needs[0].detail, "two lines\n\tand an indent");
}

/// A buyer's finding that `certification` is missing, for the sample test
/// need `need_id`, applied as intake's follower of the buyers feed does.
async fn certification_gap(intake: &Intake, case: &pb::Case, need_id: &str, certification: &str) {
    use onestop_contracts::buyers::v1::SampleCertificationGap;
    use onestop_contracts::event_types::BuyersEvent;
    use onestop_contracts::events::v1::Event;
    use onestop_platform::follow::FeedHandler;

    let event = Event {
        id: 1,
        r#type: BuyersEvent::SampleCertificationGap.name().to_owned(),
        payload: Some(
            prost_types::Any::from_msg(&SampleCertificationGap {
                need_id: need_id.to_owned(),
                case_id: case.case_id.clone(),
                company_id: case.company_id.clone(),
                certification: certification.to_owned(),
                hs_code: "330499".into(),
                country: "DE".into(),
                ..Default::default()
            })
            .expect("encodes"),
        ),
        ..Default::default()
    };
    let mut tx = intake.pool.begin().await.expect("a transaction");
    onestop_intake::follow::OwnerFeed::new(onestop_domain::NeedOwner::Buyers)
        .apply(&mut tx, &event)
        .await
        .expect("applies");
    tx.commit().await.expect("commits");
}

async fn open_certification_needs(intake: &Intake, case_id: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT detail FROM need WHERE case_id = $1::uuid AND category = 'CERTIFICATION'
            AND status NOT IN ('DONE', 'CANCELLED') ORDER BY position",
    )
    .bind(case_id)
    .fetch_all(&intake.pool)
    .await
    .expect("needs")
}

#[tokio::test]
async fn a_ce_gap_opens_its_own_need_beside_any_open_certification_need() {
    let intake = Intake::start().await;
    let company = intake.register(&registration_number(208), 0, false).await;
    let mut certification = need(NeedCategory::Certification);
    certification.detail = "Certification for the EU launch".into();
    let case = open(
        &intake,
        &company.company_id,
        vec![need(NeedCategory::SampleTestMarketing), certification],
    )
    .await;
    let sample_need = case
        .needs
        .iter()
        .find(|n| n.category == NeedCategory::SampleTestMarketing as i32)
        .expect("a sample test need")
        .need_id
        .clone();

    certification_gap(&intake, &case, &sample_need, "CE").await;
    let open_needs = open_certification_needs(&intake, &case.case_id).await;
    assert_eq!(open_needs.len(), 2, "{open_needs:?}");
    assert!(
        open_needs[1].starts_with("CE certification"),
        "{open_needs:?}"
    );

    // The same gap again, spelled loosely, opens nothing more; another does.
    certification_gap(&intake, &case, &sample_need, " ce ").await;
    assert_eq!(
        open_certification_needs(&intake, &case.case_id).await.len(),
        2
    );
    certification_gap(&intake, &case, &sample_need, "C").await;
    assert_eq!(
        open_certification_needs(&intake, &case.case_id).await.len(),
        3
    );
}

#[tokio::test]
async fn a_case_shows_its_first_fifty_needs_and_lists_the_rest_by_page() {
    let intake = Intake::start().await;
    let company = intake
        .register(&registration_number(209), 50_000_000, false)
        .await;
    // 20 needs a request, so 70 needs in four: more than a case shows.
    let batch = || vec![need(NeedCategory::Training); 20];
    let case = open(&intake, &company.company_id, batch()).await;
    assert!(case.next_needs_page_token.is_empty(), "20 needs all shown");
    let mut last = case.clone();
    for size in [20, 20, 10] {
        last = intake
            .kotra()
            .add_needs(pb::AddNeedsRequest {
                case_id: case.case_id.clone(),
                needs: batch().into_iter().take(size).collect(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
    }
    assert_eq!(last.needs.len(), 50, "AddNeeds answers with the first 50");
    assert!(!last.next_needs_page_token.is_empty());

    let got = read(&intake, &case.case_id).await;
    assert_eq!(got.needs, last.needs);
    assert_eq!(got.needs[..20], case.needs[..]);
    let listed = intake
        .kotra()
        .list_cases(pb::ListCasesRequest {
            company_id: company.company_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.cases, vec![got.clone()]);

    let list =
        |bearer_client: onestop_test_support::IntakeClient, page_size: i32, page_token: String| {
            let mut client = bearer_client;
            let case_id = case.case_id.clone();
            async move {
                client
                    .list_case_needs(pb::ListCaseNeedsRequest {
                        case_id,
                        page_size,
                        page_token,
                    })
                    .await
            }
        };
    // The case's token continues right after the shown needs.
    let rest = list(intake.kotra(), 0, got.next_needs_page_token.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(rest.needs.len(), 20);
    assert!(rest.next_page_token.is_empty());

    let mut pages = 0;
    let every = all_pages(|token| {
        pages += 1;
        let next = list(intake.kotra(), 30, token);
        async move {
            let next = next.await.unwrap().into_inner();
            assert!(next.needs.len() <= 30);
            (next.needs, next.next_page_token)
        }
    })
    .await;
    assert_eq!(pages, 3);
    assert_eq!(every.len(), 70);
    assert_eq!(every[..50], got.needs[..]);
    assert_eq!(every[50..], rest.needs[..]);
    let mut ids: Vec<_> = every.iter().map(|n| n.need_id.clone()).collect();
    ids.dedup();
    assert_eq!(ids.len(), 70, "every need once");

    // Dashboards read needs without their free text.
    let dashboard = list(intake.dashboard(), 0, String::new())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(dashboard.needs.len(), 50);
    assert!(dashboard.needs.iter().all(|n| n.detail.is_empty()));

    let forged = list(intake.kotra(), 5, "not-a-token".into())
        .await
        .unwrap_err();
    assert_eq!(violations(&forged), vec!["page_token"]);
    let negative = list(intake.kotra(), -1, String::new()).await.unwrap_err();
    assert_eq!(violations(&negative), vec!["page_size"]);
    let outsider = list(intake.server.agency("semas"), 0, String::new())
        .await
        .unwrap_err();
    assert_eq!(outsider.code(), Code::NotFound);
}
