//! Requests and complaints on a case: raised, escalated, answered, listed
//! by the agency that must answer, overdue once per due date, and never
//! reaching another agency or the feed's payloads.

use chrono::{Duration, Utc};
use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::intake::v1 as pb;
use onestop_test_support::{Bearer, IntakeClient, events_until_quiet};
use tonic::Code;

use crate::common::{Intake, error_reason, registration_number, timeline_kinds, violations};

const SUMMARY: &str = "The CEO asks why the export voucher was refused; call Kim at 010-1234-5678";

/// KOTRA's company with an open case; returns (company id, case id).
async fn company_with_case(intake: &Intake, seed: u32) -> (String, String) {
    let company = intake
        .register(&registration_number(seed), 50_000_000, false)
        .await;
    let case = intake
        .kotra()
        .open_case(pb::OpenCaseRequest {
            company_id: company.company_id.clone(),
            needs: vec![pb::NeedRequest {
                category: NeedCategory::Training as i32,
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .expect("case opens")
        .into_inner();
    (company.company_id, case.case_id)
}

fn complaint(case_id: &str, agency: &str) -> pb::RaiseRequestRequest {
    pb::RaiseRequestRequest {
        case_id: case_id.to_owned(),
        kind: pb::CaseRequestKind::Complaint as i32,
        raised_by: pb::CaseRequestRaiser::Ceo as i32,
        channel: pb::CaseRequestChannel::FieldVisit as i32,
        answering_agency_id: agency.to_owned(),
        summary: SUMMARY.into(),
        ..Default::default()
    }
}

async fn raise(client: &mut IntakeClient, request: pb::RaiseRequestRequest) -> pb::CaseRequest {
    client
        .raise_request(request)
        .await
        .expect("request raised")
        .into_inner()
}

async fn listed(client: &mut IntakeClient, request: pb::ListRequestsRequest) -> Vec<String> {
    client
        .list_requests(request)
        .await
        .expect("lists")
        .into_inner()
        .requests
        .into_iter()
        .map(|r| r.request_id)
        .collect()
}

fn answer(request_id: &str, text: &str) -> pb::AnswerRequestRequest {
    pb::AnswerRequestRequest {
        request_id: request_id.to_owned(),
        answer: text.into(),
        ..Default::default()
    }
}

fn escalate(request_id: &str, to: &str) -> pb::EscalateRequestRequest {
    pb::EscalateRequestRequest {
        request_id: request_id.to_owned(),
        to_agency_id: to.to_owned(),
        reason: "no answer from the desk".into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_complaint_is_raised_listed_by_its_agency_and_answered_once() {
    let intake = Intake::start().await;
    let (company_id, case_id) = company_with_case(&intake, 1).await;
    let raised = raise(&mut intake.kotra(), complaint(&case_id, "kotra")).await;
    assert_eq!(raised.state, pb::CaseRequestState::Open as i32);
    assert_eq!(raised.company_id, company_id);
    assert_eq!(raised.recorded_by, "agency:kotra");
    assert_eq!(raised.summary, SUMMARY);
    let due = onestop_platform::time::from_timestamp(raised.due_at.as_ref().unwrap()).unwrap();
    let fortnight = Utc::now() + Duration::days(14);
    assert!((due - fortnight).num_minutes().abs() < 5, "due in 14 days");

    // KOTRA lists its open ones; SBC neither sees nor answers KOTRA's.
    let mut kotra = intake.kotra();
    assert_eq!(
        listed(&mut kotra, pb::ListRequestsRequest::default()).await,
        vec![raised.request_id.clone()]
    );
    let mut sbc = intake.agency("sbc");
    assert!(
        listed(&mut sbc, pb::ListRequestsRequest::default())
            .await
            .is_empty()
    );
    assert!(
        listed(
            &mut sbc,
            pb::ListRequestsRequest {
                company_id: company_id.clone(),
                ..Default::default()
            }
        )
        .await
        .is_empty()
    );
    let refused = sbc
        .answer_request(answer(&raised.request_id, "done"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    let refused = sbc
        .escalate_request(escalate(&raised.request_id, "sbc"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);
    let refused = intake
        .advisor("a-stranger")
        .answer_request(answer(&raised.request_id, "done"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::PermissionDenied);

    let answered = kotra
        .answer_request(answer(
            &raised.request_id,
            "Refused for a missing document; resent",
        ))
        .await
        .expect("kotra answers")
        .into_inner();
    assert_eq!(answered.state, pb::CaseRequestState::Answered as i32);
    assert!(answered.answered_at.is_some());
    let again = kotra
        .answer_request(answer(&raised.request_id, "again"))
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&again), "REQUEST_ANSWERED");
    let escalated = kotra
        .escalate_request(escalate(&raised.request_id, ""))
        .await
        .unwrap_err();
    assert_eq!(escalated.code(), Code::FailedPrecondition);

    // Open ones by default; answered ones on request.
    assert!(
        listed(&mut kotra, pb::ListRequestsRequest::default())
            .await
            .is_empty()
    );
    assert_eq!(
        listed(
            &mut kotra,
            pb::ListRequestsRequest {
                state: pb::CaseRequestState::Answered as i32,
                ..Default::default()
            }
        )
        .await,
        vec![raised.request_id.clone()]
    );

    let kinds = timeline_kinds(intake.admin(), &case_id).await;
    assert!(kinds.contains(&"request.raised".to_owned()));
    assert!(kinds.contains(&"request.answered".to_owned()));
    assert_eq!(intake.count_events(IntakeEvent::RequestRaised).await, 1);
    assert_eq!(intake.count_events(IntakeEvent::RequestAnswered).await, 1);
    // People's words stay off the feed and the timeline.
    let leaked: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM event_log
          WHERE position(convert_to('010-1234-5678', 'UTF8') in payload) > 0
             OR position(convert_to('missing document', 'UTF8') in payload) > 0",
    )
    .fetch_one(&intake.pool)
    .await
    .unwrap();
    assert_eq!(leaked, 0);
    let on_timeline: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM case_timeline WHERE summary LIKE '%010-1234%' OR summary LIKE '%document%'",
    )
    .fetch_one(&intake.pool)
    .await
    .unwrap();
    assert_eq!(on_timeline, 0);
    // The answering agency's feed carries them.
    let partners: Vec<Vec<String>> = sqlx::query_scalar(
        "SELECT partners FROM event_log WHERE event_type LIKE 'request.%' ORDER BY id",
    )
    .fetch_all(&intake.pool)
    .await
    .unwrap();
    assert_eq!(partners.len(), 2);
    assert!(
        partners
            .iter()
            .all(|named| named.contains(&"agency:kotra".to_owned()))
    );
}

#[tokio::test]
async fn bad_requests_name_each_field_and_store_nothing() {
    let intake = Intake::start().await;
    let (_, case_id) = company_with_case(&intake, 2).await;
    let status = intake
        .kotra()
        .raise_request(pb::RaiseRequestRequest {
            case_id: case_id.clone(),
            summary: "x".repeat(2001),
            due_in_days: 91,
            answering_agency_id: "kotra\u{7}".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    let mut fields = violations(&status);
    fields.sort();
    assert_eq!(
        fields,
        vec![
            "answering_agency_id",
            "channel",
            "due_in_days",
            "kind",
            "raised_by",
            "summary"
        ]
    );
    let status = intake
        .kotra()
        .raise_request(complaint(&case_id, "nowhere"))
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(violations(&status), vec!["answering_agency_id"]);
    let status = intake
        .kotra()
        .raise_request(pb::RaiseRequestRequest {
            case_id: "not-an-id".into(),
            ..complaint(&case_id, "kotra")
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status), vec!["case_id"]);
    assert_eq!(intake.count("case_request").await, 0);
    assert_eq!(intake.count_events(IntakeEvent::RequestRaised).await, 0);

    let raised = raise(&mut intake.kotra(), complaint(&case_id, "kotra")).await;
    let status = intake
        .kotra()
        .answer_request(answer(&raised.request_id, "  "))
        .await
        .unwrap_err();
    assert_eq!(violations(&status), vec!["answer"]);
    let status = intake
        .kotra()
        .escalate_request(pb::EscalateRequestRequest {
            reason: String::new(),
            ..escalate(&raised.request_id, "nowhere")
        })
        .await
        .unwrap_err();
    assert_eq!(violations(&status), vec!["reason"]);
    let status = intake
        .kotra()
        .escalate_request(escalate(&raised.request_id, "nowhere"))
        .await
        .unwrap_err();
    assert_eq!(violations(&status), vec!["to_agency_id"]);
    let status = intake
        .kotra()
        .list_requests(pb::ListRequestsRequest {
            state: 42,
            company_id: "nope".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    let mut fields = violations(&status);
    fields.sort();
    assert_eq!(fields, vec!["company_id", "state"]);
    assert_eq!(intake.count_events(IntakeEvent::RequestEscalated).await, 0);
    assert_eq!(intake.count_events(IntakeEvent::RequestAnswered).await, 0);
}

#[tokio::test]
async fn an_escalation_passes_the_request_on_a_bounded_number_of_times() {
    let intake = Intake::start().await;
    let (company_id, case_id) = company_with_case(&intake, 7).await;
    let raised = raise(&mut intake.kotra(), complaint(&case_id, "sbc")).await;
    let mut sbc = intake.agency("sbc");
    let mut semas = intake.agency("semas");
    assert_eq!(
        listed(&mut sbc, pb::ListRequestsRequest::default()).await,
        vec![raised.request_id.clone()]
    );

    // SBC passes it to SEMAS, with a new due date.
    let escalated = sbc
        .escalate_request(pb::EscalateRequestRequest {
            due_in_days: 3,
            ..escalate(&raised.request_id, "semas")
        })
        .await
        .expect("sbc escalates")
        .into_inner();
    assert_eq!(escalated.state, pb::CaseRequestState::Escalated as i32);
    assert_eq!(escalated.answering_agency_id, "semas");
    assert_eq!(escalated.escalation_level, 1);
    assert_eq!(escalated.escalation_reason, "no answer from the desk");
    assert!(
        listed(&mut sbc, pb::ListRequestsRequest::default())
            .await
            .is_empty()
    );
    assert_eq!(
        listed(&mut semas, pb::ListRequestsRequest::default()).await,
        vec![raised.request_id.clone()]
    );
    let refused = sbc
        .answer_request(answer(&raised.request_id, "done"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::NotFound);

    // KOTRA, the company's partner, pushes it up twice more at SEMAS; a
    // fourth time is refused.
    let mut kotra = intake.kotra();
    for level in 2..=3 {
        let up = kotra
            .escalate_request(escalate(&raised.request_id, ""))
            .await
            .expect("escalates a level up")
            .into_inner();
        assert_eq!(up.escalation_level, level);
        assert_eq!(up.answering_agency_id, "semas");
    }
    let limit = kotra
        .escalate_request(escalate(&raised.request_id, ""))
        .await
        .unwrap_err();
    assert_eq!(limit.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&limit), "ESCALATION_LIMIT");
    // KOTRA lists the company's requests as its partner.
    assert_eq!(
        listed(
            &mut kotra,
            pb::ListRequestsRequest {
                company_id: company_id.clone(),
                ..Default::default()
            }
        )
        .await,
        vec![raised.request_id.clone()]
    );

    let answered = semas
        .answer_request(answer(&raised.request_id, "handled"))
        .await
        .expect("semas answers")
        .into_inner();
    assert_eq!(answered.state, pb::CaseRequestState::Answered as i32);
    assert_eq!(intake.count_events(IntakeEvent::RequestEscalated).await, 3);
    let partners: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(partners) FROM event_log WHERE event_type = 'request.escalated'
          ORDER BY id LIMIT 2",
    )
    .fetch_all(&intake.pool)
    .await
    .unwrap();
    assert!(partners.contains(&"agency:sbc".to_owned()));
    assert!(partners.contains(&"agency:semas".to_owned()));

    // Each agency's own Watch carries the moves that concern it, and a
    // stranger's nothing.
    let watched = |agency: &'static str| {
        let feed = intake.client(Bearer::agency(agency));
        async move {
            events_until_quiet(feed, 0)
                .await
                .into_iter()
                .map(|event| event.r#type)
                .filter(|kind| kind.starts_with("request."))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(
        watched("sbc").await,
        vec!["request.raised", "request.escalated"]
    );
    assert_eq!(
        watched("semas").await,
        vec![
            "request.escalated",
            "request.escalated",
            "request.escalated",
            "request.answered"
        ]
    );
    assert!(watched("kintex").await.is_empty());
}

#[tokio::test]
async fn a_retry_returns_the_first_request_and_a_closed_case_takes_none() {
    let intake = Intake::start().await;
    let (_, case_id) = company_with_case(&intake, 8).await;
    let keyed = pb::RaiseRequestRequest {
        idempotency_key: "visit-2026-11-30".into(),
        ..complaint(&case_id, "kotra")
    };
    let first = raise(&mut intake.kotra(), keyed.clone()).await;
    let again = raise(&mut intake.kotra(), keyed).await;
    assert_eq!(first.request_id, again.request_id);
    assert_eq!(intake.count("case_request").await, 1);
    assert_eq!(intake.count_events(IntakeEvent::RequestRaised).await, 1);

    intake
        .kotra()
        .close_case(pb::CloseCaseRequest {
            case_id: case_id.clone(),
            outcome_summary: "support finished".into(),
            ..Default::default()
        })
        .await
        .expect("case closes");
    let refused = intake
        .kotra()
        .raise_request(complaint(&case_id, "kotra"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&refused), "CASE_CLOSED");
    // An open request does not hold a case open, nor does closing the
    // case answer it: it stays for the agency to answer.
    let mut kotra = intake.kotra();
    assert_eq!(
        listed(&mut kotra, pb::ListRequestsRequest::default()).await,
        vec![first.request_id]
    );
    // A partner that does not work with the company raises nothing on it.
    let hidden = intake
        .agency("sbc")
        .raise_request(complaint(&case_id, "kotra"))
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), Code::NotFound);
    let denied = intake
        .api(Bearer::dashboard())
        .raise_request(complaint(&case_id, "kotra"))
        .await
        .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn an_unanswered_request_past_its_due_date_is_overdue_once_per_due_date() {
    let intake = Intake::start().await;
    let (_, case_id) = company_with_case(&intake, 9).await;
    let late = raise(
        &mut intake.kotra(),
        pb::RaiseRequestRequest {
            due_in_days: 1,
            ..complaint(&case_id, "sbc")
        },
    )
    .await;
    let answered = raise(
        &mut intake.kotra(),
        pb::RaiseRequestRequest {
            due_in_days: 1,
            ..complaint(&case_id, "kotra")
        },
    )
    .await;
    intake
        .kotra()
        .answer_request(answer(&answered.request_id, "answered on the spot"))
        .await
        .unwrap();

    let now = Utc::now();
    let sweep = |at| onestop_intake::requests::raise_overdue(&intake.pool, at);
    assert_eq!(sweep(now).await.unwrap(), 0, "not due yet");
    assert_eq!(sweep(now + Duration::days(2)).await.unwrap(), 1);
    assert_eq!(sweep(now + Duration::days(3)).await.unwrap(), 0, "once");
    let overdue: Vec<pb::CaseRequestOverdue> =
        intake.event_payloads(IntakeEvent::RequestOverdue).await;
    assert_eq!(overdue.len(), 1);
    assert_eq!(overdue[0].request_id, late.request_id);
    assert_eq!(overdue[0].answering_agency_id, "sbc");
    assert!(
        timeline_kinds(intake.admin(), &case_id)
            .await
            .contains(&"request.overdue".to_owned())
    );
    let listed_late = intake
        .agency("sbc")
        .list_requests(pb::ListRequestsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .requests;
    assert!(listed_late[0].overdue_at.is_some());

    // An escalation sets a new due date, which may pass again.
    intake
        .agency("sbc")
        .escalate_request(pb::EscalateRequestRequest {
            due_in_days: 1,
            ..escalate(&late.request_id, "kotra")
        })
        .await
        .unwrap();
    assert_eq!(sweep(now + Duration::days(3)).await.unwrap(), 1);
    assert_eq!(intake.count_events(IntakeEvent::RequestOverdue).await, 2);
}

#[tokio::test]
async fn erasure_removes_the_words_of_the_companys_requests() {
    let intake = Intake::start().await;
    let (company_id, case_id) = company_with_case(&intake, 10).await;
    let raised = raise(&mut intake.kotra(), complaint(&case_id, "kotra")).await;
    intake
        .kotra()
        .escalate_request(escalate(&raised.request_id, ""))
        .await
        .unwrap();
    let erased = intake
        .admin()
        .erase_personal_data(pb::ErasePersonalDataRequest {
            company_id: company_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    let intake_part = erased
        .services
        .iter()
        .find(|s| s.service == "intake")
        .unwrap();
    assert!(
        intake_part
            .erased
            .iter()
            .any(|count| count.kind == "request_texts" && count.count == 1)
    );
    let after = intake
        .kotra()
        .list_requests(pb::ListRequestsRequest {
            company_id,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .requests;
    assert_eq!(after.len(), 1);
    assert!(after[0].summary.is_empty());
    assert!(after[0].escalation_reason.is_empty());
}

#[tokio::test]
async fn an_overdue_request_reaches_the_companys_advisor_and_no_other() {
    use onestop_contracts::mentoring::v1 as mentoring;
    let wired = crate::wired::Wired::start().await;
    let (company, case) = crate::owners::company_with_case(&wired, 11).await;
    let assignment = wired.assignment_of(&company.company_id).await;
    assert_eq!(assignment.advisor_id, wired.advisor_id);
    // Intake knows the advisor, so the overdue event names it.
    let advisor_key = format!("advisor:{}", wired.advisor_id);
    wired
        .until("intake knows the company's advisor", || async {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM company_partner
                                 WHERE company_id = $1::uuid AND role = 'advisor' AND state <> 'ENDED')",
            )
            .bind(&company.company_id)
            .fetch_one(&wired.intake.pool)
            .await
            .unwrap()
        })
        .await;
    let raised = raise(
        &mut wired.intake.kotra(),
        pb::RaiseRequestRequest {
            due_in_days: 1,
            ..complaint(&case.case_id, "sbc")
        },
    )
    .await;
    let raised_for: Vec<String> = sqlx::query_scalar(
        "SELECT unnest(partners) FROM event_log WHERE event_type = 'request.raised'",
    )
    .fetch_all(&wired.intake.pool)
    .await
    .unwrap();
    assert!(raised_for.contains(&"agency:sbc".to_owned()));
    assert!(raised_for.contains(&advisor_key));
    let swept =
        onestop_intake::requests::raise_overdue(&wired.intake.pool, Utc::now() + Duration::days(2))
            .await
            .unwrap();
    assert_eq!(swept, 1);

    let overdue_of = |bearer: Bearer| {
        let mut client: onestop_test_support::MentoringClient = wired.mentoring.api(bearer);
        async move {
            client
                .list_overdue_contacts(mentoring::ListOverdueContactsRequest::default())
                .await
                .expect("lists")
                .into_inner()
                .overdue_requests
        }
    };
    wired
        .until("the advisor's list shows the overdue request", || async {
            overdue_of(Bearer::advisor(&wired.advisor_id))
                .await
                .iter()
                .any(|r| r.request_id == raised.request_id)
        })
        .await;
    let listed = overdue_of(Bearer::advisor(&wired.advisor_id)).await;
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].answering_agency_id, "sbc");
    assert_eq!(listed[0].kind, "COMPLAINT");
    assert_eq!(listed[0].company_id, company.company_id);
    assert_eq!(listed[0].assignment_id, assignment.assignment_id);
    assert!(listed[0].days_overdue <= 1);
    let stranger = uuid::Uuid::now_v7().to_string();
    assert!(overdue_of(Bearer::advisor(&stranger)).await.is_empty());
    assert_eq!(overdue_of(Bearer::admin()).await.len(), 1);

    // Answered, it leaves the list.
    wired
        .intake
        .agency("sbc")
        .answer_request(answer(&raised.request_id, "voucher re-issued"))
        .await
        .expect("sbc answers");
    wired
        .until("the answered request leaves the advisor's list", || async {
            overdue_of(Bearer::advisor(&wired.advisor_id))
                .await
                .is_empty()
        })
        .await;
}

#[tokio::test]
async fn an_agency_new_to_referrals_directory_may_be_asked_once_intake_hears_of_it() {
    use onestop_contracts::referral::v1 as referral;
    let wired = crate::wired::Wired::start().await;
    let (_, case) = crate::owners::company_with_case(&wired, 12).await;
    let ask_busan = || {
        let mut kotra = wired.intake.kotra();
        let request = complaint(&case.case_id, "busan-export-center");
        async move { kotra.raise_request(request).await }
    };
    let unknown = ask_busan().await.unwrap_err();
    assert_eq!(violations(&unknown), vec!["answering_agency_id"]);
    wired
        .referral
        .admin()
        .upsert_agency(referral::UpsertAgencyRequest {
            agency: Some(referral::Agency {
                agency_id: "busan-export-center".into(),
                name_ko: "부산수출지원센터".into(),
                name_en: "Busan Export Support Center".into(),
                short_name: "Busan Export Center".into(),
                ..Default::default()
            }),
        })
        .await
        .expect("the directory takes the agency");
    wired
        .until("intake hears of the new agency", || async {
            sqlx::query_scalar::<_, bool>(
                "SELECT EXISTS (SELECT 1 FROM answering_agency WHERE agency_id = 'busan-export-center')",
            )
            .fetch_one(&wired.intake.pool)
            .await
            .unwrap()
        })
        .await;
    let raised = ask_busan()
        .await
        .expect("asked of the new agency")
        .into_inner();
    assert_eq!(raised.answering_agency_id, "busan-export-center");
}
