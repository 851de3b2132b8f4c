//! The personal-data canary: a company registered with canary contacts and
//! canary free text goes through the whole flow across the four real
//! binaries; then no canary may be found on any feed, in any dashboard
//! read, in any service's log or in any span, while an admin still reads
//! the contacts and the receiving agency the detail.

use std::time::Duration;

use onestop_contracts::buyers::v1 as buyers_pb;
use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::events::v1::{WatchRequest, watch_response};
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::mentoring::v1 as mentoring_pb;
use onestop_contracts::referral::v1 as referral_pb;
use onestop_test_support::{
    Bearer, BuyersClient, FeedClient, IntakeClient, MentoringClient, ReferralClient, eventually,
};

use crate::flow::{need, register_advisor};
use crate::support;
use onestop_test_support::{OWNERS, Suite};

const NAME: &str = "Canaryname Qzx";
const EMAIL: &str = "canary.qzx@example.invalid";
const PHONE: &str = "+82 10-7070-7070";
const DETAIL: &str = "Canarytext qzx: call the owner's daughter";
const NOTE: &str = "Canarynote qzx from the program officer";

/// Every canary value, as it would appear in any text.
const CANARIES: [&str; 5] = [
    "Canaryname",
    "canary.qzx",
    "7070-7070",
    "Canarytext",
    "Canarynote",
];

fn leaks(text: &str) -> Vec<&'static str> {
    CANARIES
        .into_iter()
        .filter(|canary| text.contains(canary))
        .collect()
}

/// Every event on `service`'s feed, through Watch as a dashboard reads it.
async fn feed(suite: &Suite, service: &str) -> Vec<String> {
    let mut client: FeedClient = suite.client(service, Bearer::dashboard());
    let mut stream = client
        .watch(WatchRequest::default())
        .await
        .expect("watch")
        .into_inner();
    let mut head = None;
    let mut events = Vec::new();
    while let Ok(Ok(Some(message))) =
        tokio::time::timeout(Duration::from_secs(3), stream.message()).await
    {
        match message.item {
            Some(watch_response::Item::Status(status)) => {
                head.get_or_insert(status.head);
            }
            Some(watch_response::Item::Event(event)) => {
                let id = event.id;
                // The payload bytes hold strings as they are: search them
                // raw, and the rest of the event as text.
                let payload = event
                    .payload
                    .as_ref()
                    .map(|p| String::from_utf8_lossy(&p.value).into_owned())
                    .unwrap_or_default();
                events.push(format!("{event:?} {payload}"));
                if Some(id) >= head {
                    break;
                }
            }
            None => {}
        }
    }
    events
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_personal_data_reaches_feeds_dashboards_logs_or_spans() {
    // Debug logs too: personal data must not hide there either.
    let (suite, receiver) = support::start_traced(&[]).await;
    suite.seed_directory().await;
    let advisor_id = register_advisor(&suite).await;
    suite.vetted_buyers("kotra-new-york", "canary", 2).await;

    let mut kotra: IntakeClient = suite.client("intake", Bearer::agency("kotra"));
    let company = kotra
        .register_company(pb::RegisterCompanyRequest {
            profile: Some(pb::CompanyProfile {
                business_registration_number: "124-81-00998".into(),
                name_ko: "한빛화장품".into(),
                name_en: "Hanbit Cosmetics".into(),
                region: "KR-26".into(),
                industry_ksic: "20423".into(),
                hs_codes: vec!["330499".into()],
                employees: 24,
                annual_revenue: Some(onestop_contracts::common::v1::Money {
                    currency_code: "KRW".into(),
                    amount_minor: 3_200_000_000,
                }),
                export_revenue: Some(onestop_contracts::common::v1::Money {
                    currency_code: "USD".into(),
                    amount_minor: 0,
                }),
                languages: vec!["ko".into(), "en".into()],
                contacts: vec![pb::Contact {
                    name: NAME.into(),
                    title: "Owner".into(),
                    email: EMAIL.into(),
                    phone: PHONE.into(),
                }],
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .expect("registers")
        .into_inner();
    let case = kotra
        .open_case(pb::OpenCaseRequest {
            company_id: company.company_id.clone(),
            needs: vec![
                need(NeedCategory::BuyerDiscovery, DETAIL),
                need(NeedCategory::ExportFinance, DETAIL),
                need(NeedCategory::Mentoring, DETAIL),
            ],
            ..Default::default()
        })
        .await
        .expect("case opens")
        .into_inner();

    // The owners do their part and write free text of their own.
    let finance = case
        .needs
        .iter()
        .find(|n| n.category == NeedCategory::ExportFinance as i32)
        .unwrap()
        .need_id
        .clone();
    let mut referral_admin: ReferralClient = suite.client("referral", Bearer::admin());
    let mut referral_id = String::new();
    for _ in 0..300 {
        let listed = referral_admin
            .list_referrals(referral_pb::ListReferralsRequest {
                need_id: finance.clone(),
                ..Default::default()
            })
            .await
            .map(|r| r.into_inner().referrals)
            .unwrap_or_default();
        if let Some(referral) = listed.first() {
            referral_id = referral.referral_id.clone();
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(!referral_id.is_empty(), "the finance need reaches referral");
    let referral = referral_admin
        .get_referral(referral_pb::GetReferralRequest {
            referral_id: referral_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        referral.detail, DETAIL,
        "the receiving side reads the detail"
    );
    let agency = referral.legs.last().unwrap().agency_id.clone();
    let mut receiving: ReferralClient = suite.client("referral", Bearer::agency(&agency));
    receiving
        .accept_referral(referral_pb::AcceptReferralRequest {
            referral_id: referral_id.clone(),
            note: NOTE.into(),
            ..Default::default()
        })
        .await
        .expect("the agency accepts with a note");
    let mut mentoring_admin: MentoringClient = suite.client("mentoring", Bearer::admin());
    let assignment = {
        let mut found = None;
        for _ in 0..300 {
            if let Ok(assignment) = mentoring_admin
                .get_assignment(mentoring_pb::GetAssignmentRequest {
                    lookup: Some(mentoring_pb::get_assignment_request::Lookup::CompanyId(
                        company.company_id.clone(),
                    )),
                })
                .await
            {
                found = Some(assignment.into_inner());
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        found.expect("the company gets its advisor")
    };
    let mut advisor: MentoringClient = suite.client("mentoring", Bearer::advisor(&advisor_id));
    advisor
        .log_session(mentoring_pb::LogSessionRequest {
            assignment_id: assignment.assignment_id.clone(),
            held_at: assignment.started_at,
            channel: mentoring_pb::SessionChannel::Video as i32,
            minutes: 30,
            topics: vec![NOTE.into()],
            ..Default::default()
        })
        .await
        .expect("session logged");

    // Intake has heard everything the owners did.
    let mut admin: IntakeClient = suite.client("intake", Bearer::admin());
    assert!(
        eventually(Duration::from_secs(30), || {
            let mut admin = admin.clone();
            let case_id = case.case_id.clone();
            async move {
                admin
                    .get_case_timeline(pb::GetCaseTimelineRequest {
                        case_id,
                        page_size: 500,
                        ..Default::default()
                    })
                    .await
                    .map(|t| {
                        t.into_inner()
                            .entries
                            .iter()
                            .any(|e| e.kind == "referral.accepted")
                    })
                    .unwrap_or(false)
            }
        })
        .await,
        "the acceptance reaches the timeline"
    );
    // The canary is really in the system: an admin reads the contacts.
    let seen_by_admin = admin
        .get_company(pb::GetCompanyRequest {
            company_id: company.company_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        seen_by_admin.profile.as_ref().unwrap().contacts[0].email,
        EMAIL
    );

    let mut found: Vec<String> = Vec::new();
    let mut check = |place: &str, text: &str| {
        let leaked = leaks(text);
        if !leaked.is_empty() {
            found.push(format!("{place}: {leaked:?}"));
        }
    };
    // Every feed.
    for service in ["intake", "mentoring", "buyers", "referral"] {
        let events = feed(&suite, service).await;
        assert!(!events.is_empty(), "{service}'s feed has the flow's events");
        for event in events {
            check(&format!("{service}'s feed"), &event);
        }
    }
    // Every dashboard read of the company, its case and what the owners
    // hold about it.
    let mut dashboard: IntakeClient = suite.client("intake", Bearer::dashboard());
    // What a response shows, as text.
    macro_rules! shown {
        ($call:expr) => {
            format!("{:?}", $call.await.unwrap().into_inner())
        };
    }
    let reads = [
        shown!(dashboard.get_company(pb::GetCompanyRequest {
            company_id: company.company_id.clone()
        })),
        shown!(dashboard.list_companies(pb::ListCompaniesRequest::default())),
        shown!(dashboard.get_case(pb::GetCaseRequest {
            case_id: case.case_id.clone()
        })),
        shown!(dashboard.list_cases(pb::ListCasesRequest::default())),
        shown!(dashboard.get_case_timeline(pb::GetCaseTimelineRequest {
            case_id: case.case_id.clone(),
            page_size: 500,
            ..Default::default()
        })),
        shown!(
            suite
                .client::<ReferralClient>("referral", Bearer::dashboard())
                .get_referral(referral_pb::GetReferralRequest {
                    referral_id: referral_id.clone()
                })
        ),
        shown!(
            suite
                .client::<ReferralClient>("referral", Bearer::dashboard())
                .list_referrals(referral_pb::ListReferralsRequest::default())
        ),
        shown!(
            suite
                .client::<MentoringClient>("mentoring", Bearer::dashboard())
                .list_sessions(mentoring_pb::ListSessionsRequest::default())
        ),
        shown!(
            suite
                .client::<BuyersClient>("buyers", Bearer::dashboard())
                .list_matches(buyers_pb::ListMatchesRequest::default())
        ),
    ];
    for read in &reads {
        check("a dashboard read", read);
    }
    // Every span exported so far, once the exporters have flushed.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let spans = receiver.spans();
    assert!(!spans.is_empty(), "the services export spans");
    for span in &spans {
        check(
            &format!("span {} of {}", span.name, span.service),
            &span.text,
        );
    }
    // Every service's log.
    for service in OWNERS.into_iter().chain(["intake"]) {
        let log = suite.output(service);
        assert!(!log.is_empty(), "{service} logged its work");
        for line in log {
            check(&format!("{service}'s log"), &line);
        }
    }
    // The search finds what is there: an admin's read shows the canary.
    assert_eq!(leaks(&format!("{seen_by_admin:?}")).len(), 3);
    suite.stop().await;
    assert!(
        found.is_empty(),
        "personal data where it must not be:\n{}",
        found.join("\n")
    );
}
