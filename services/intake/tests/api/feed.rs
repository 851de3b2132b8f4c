use std::time::Duration;

use onestop_contracts::event_types::IntakeEvent;
use onestop_contracts::events::v1::{Event, WatchRequest, WatchResponse};
use onestop_contracts::intake::v1 as pb;
use onestop_platform::events::{self, NewEvent};
use onestop_test_support::{Bearer, events_until_quiet, next_event};
use tonic::Code;
use tonic::metadata::MetadataValue;

use crate::common::{Intake, error_reason, profile, registration_number, violations};

type Stream = tonic::Streaming<WatchResponse>;

async fn next(stream: &mut Stream) -> Event {
    next_event(stream, Duration::from_secs(10))
        .await
        .expect("an event arrives")
}

/// True when no event arrives for a while (feed status messages may).
async fn quiet(stream: &mut Stream) -> bool {
    next_event(stream, Duration::from_millis(300))
        .await
        .is_none()
}

async fn watch(intake: &Intake, request: WatchRequest) -> Stream {
    intake.feed().watch(request).await.unwrap().into_inner()
}

#[tokio::test]
async fn watch_replays_in_order_and_resumes_from_a_mid_cursor() {
    let intake = Intake::start().await;
    for seed in 0..5 {
        intake
            .register_by(
                Bearer::service(),
                &registration_number(500 + seed),
                0,
                false,
            )
            .await;
    }
    let all = intake.events_after(0).await;
    assert_eq!(all.len(), 5);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    assert!(
        all.iter()
            .all(|e| e.source == "intake" && e.occurred_at.is_some())
    );

    let rest = intake.events_after(all[1].id).await;
    assert_eq!(
        rest.iter().map(|e| e.id).collect::<Vec<_>>(),
        all[2..].iter().map(|e| e.id).collect::<Vec<_>>()
    );
    // Nothing more arrives after the rest.
    let mut stream = watch(
        &intake,
        WatchRequest {
            after: all[4].id,
            ..Default::default()
        },
    )
    .await;
    assert!(quiet(&mut stream).await);
}

#[tokio::test]
async fn a_watcher_started_before_a_write_receives_it_live() {
    let intake = Intake::start().await;
    intake
        .register_by(Bearer::service(), &registration_number(510), 0, false)
        .await;
    let mut stream = watch(
        &intake,
        WatchRequest {
            from_latest: true,
            ..Default::default()
        },
    )
    .await;
    let company = intake
        .register_by(Bearer::service(), &registration_number(511), 0, false)
        .await;
    let event = next(&mut stream).await;
    assert_eq!(event.r#type, IntakeEvent::CompanyRegistered.name());
    assert_eq!(event.aggregate_id, company.company_id);
}

#[tokio::test]
async fn filters_select_types_families_and_aggregates() {
    let intake = Intake::start().await;
    let company = intake
        .register_by(Bearer::service(), &registration_number(520), 0, false)
        .await;
    let other = intake
        .register_by(Bearer::service(), &registration_number(521), 0, false)
        .await;
    intake
        .admin()
        .open_case(pb::OpenCaseRequest {
            idempotency_key: String::new(),
            company_id: company.company_id.clone(),
            needs: vec![pb::NeedRequest {
                category: onestop_contracts::common::v1::NeedCategory::ExportFinance as i32,
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    // case.opened + need.opened for finance + need.opened for the added MENTORING need

    let mut needs = watch(
        &intake,
        WatchRequest {
            types: vec![IntakeEvent::NeedOpened.name().into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        next(&mut needs).await.r#type,
        IntakeEvent::NeedOpened.name()
    );
    assert_eq!(
        next(&mut needs).await.r#type,
        IntakeEvent::NeedOpened.name()
    );

    let mut family = watch(
        &intake,
        WatchRequest {
            types: vec!["company.*".into()],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(next(&mut family).await.aggregate_id, company.company_id);
    assert_eq!(next(&mut family).await.aggregate_id, other.company_id);
    assert!(quiet(&mut family).await);

    let mut one = watch(
        &intake,
        WatchRequest {
            aggregate_type: "company".into(),
            aggregate_id: other.company_id.clone(),
            ..Default::default()
        },
    )
    .await;
    assert_eq!(
        next(&mut one).await.r#type,
        IntakeEvent::CompanyRegistered.name()
    );
    assert!(quiet(&mut one).await);

    let status = intake
        .feed()
        .watch(WatchRequest {
            after: -1,
            types: vec!["Company Registered".into()],
            aggregate_id: "x".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec!["after", "aggregate_type", "types[0]"]
    );
}

/// Transactions that draw event ids in one order and commit in another are
/// the classic way a cursor skips an event. Writers here commit after
/// random delays while a watcher streams; it must see every committed
/// event exactly once, in id order.
#[tokio::test]
async fn concurrent_writers_never_make_a_watcher_skip() {
    let intake = Intake::start().await;
    let mut stream = watch(&intake, WatchRequest::default()).await;

    let mut writers = Vec::new();
    for writer in 0..6u32 {
        let mut client = intake.service();
        writers.push(tokio::spawn(async move {
            for i in 0..10 {
                client
                    .register_company(pb::RegisterCompanyRequest {
                        idempotency_key: String::new(),
                        profile: Some(profile(&registration_number(600 + writer * 100 + i))),
                        ..Default::default()
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for writer in 0..4u64 {
        let pool = intake.pool.clone();
        writers.push(tokio::spawn(async move {
            for i in 0..10u64 {
                let mut tx = pool.begin().await.unwrap();
                events::append(
                    &mut tx,
                    NewEvent::new(
                        IntakeEvent::CompanyUpdated,
                        writer * 100 + i,
                        &pb::CompanyUpdated::default(),
                    ),
                )
                .await
                .unwrap();
                // Hold the transaction open after drawing the id.
                tokio::time::sleep(Duration::from_millis((writer * 7 + i * 3) % 25)).await;
                if i % 5 == 4 {
                    tx.rollback().await.unwrap();
                } else {
                    tx.commit().await.unwrap();
                }
            }
        }));
    }
    for writer in writers {
        writer.await.unwrap();
    }
    let committed: Vec<i64> = sqlx::query_scalar("SELECT id FROM event_log ORDER BY id")
        .fetch_all(&intake.pool)
        .await
        .unwrap();
    assert_eq!(committed.len(), 60 + 32);
    let mut received = Vec::new();
    while received.len() < committed.len() {
        received.push(next(&mut stream).await.id);
    }
    assert_eq!(received, committed);
}

#[tokio::test]
async fn a_cursor_older_than_retention_is_told_not_skipped() {
    let intake = Intake::start().await;
    for seed in 0..3 {
        intake
            .register_by(
                Bearer::service(),
                &registration_number(700 + seed),
                0,
                false,
            )
            .await;
    }
    let first = intake.events_after(0).await[0].id;
    let removed = events::prune(&intake.pool, Duration::ZERO, Duration::from_secs(86_400))
        .await
        .unwrap();
    assert_eq!(removed, 3);
    let status = intake
        .feed()
        .watch(WatchRequest {
            after: first,
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::OutOfRange);
    assert_eq!(error_reason(&status), "CURSOR_EXPIRED");

    // From the start of what is retained still works.
    let company = intake
        .register_by(Bearer::service(), &registration_number(703), 0, false)
        .await;
    let mut stream = watch(&intake, WatchRequest::default()).await;
    assert_eq!(next(&mut stream).await.aggregate_id, company.company_id);
}

#[tokio::test]
async fn events_carry_the_trace_context_of_their_request() {
    let intake = Intake::start().await;
    let trace_id = "4bf92f3577b34da6a3ce929d0e0e4736";
    let mut request = tonic::Request::new(pb::RegisterCompanyRequest {
        idempotency_key: String::new(),
        profile: Some(profile(&registration_number(710))),
        ..Default::default()
    });
    request.metadata_mut().insert(
        "traceparent",
        MetadataValue::try_from(format!("00-{trace_id}-00f067aa0ba902b7-01")).unwrap(),
    );
    intake.kotra().register_company(request).await.unwrap();
    let events = intake.events_after(0).await;
    let traceparent = &events[0].traceparent;
    assert!(
        traceparent.starts_with(&format!("00-{trace_id}-")),
        "{traceparent:?}"
    );
    // The event names the intake span, not the caller's.
    assert!(!traceparent.contains("00f067aa0ba902b7"));
}

/// A caller inside a trace passes it on through `propagate_trace`; the
/// server continues it and stamps it on the events it writes.
#[tokio::test]
async fn outgoing_calls_carry_the_callers_trace() {
    use onestop_contracts::intake::v1::intake_service_client::IntakeServiceClient;
    use onestop_platform::telemetry::{current_trace_context, propagate_trace};
    use tracing::Instrument;

    let intake = Intake::start().await;
    let mut bearer = onestop_test_support::Bearer::role(onestop_platform::Role::Service, None);
    let mut client = IntakeServiceClient::with_interceptor(
        onestop_test_support::channel(intake.addr),
        move |request| tonic::service::Interceptor::call(&mut bearer, propagate_trace(request)?),
    );
    let span = tracing::info_span!("caller");
    let caller_trace = async {
        client
            .register_company(pb::RegisterCompanyRequest {
                idempotency_key: String::new(),
                profile: Some(profile(&registration_number(720))),
                ..Default::default()
            })
            .await
            .unwrap();
        current_trace_context().0
    }
    .instrument(span)
    .await;
    let trace_id = caller_trace
        .split('-')
        .nth(1)
        .expect("the caller has a trace");
    let events = intake.events_after(0).await;
    assert!(
        events[0].traceparent.contains(trace_id),
        "{} vs {caller_trace}",
        events[0].traceparent
    );
}

/// A partner's intake feed tells it which companies it starts or stops
/// working with, and nothing of another partner's.
#[tokio::test]
async fn a_partner_hears_of_the_companies_it_works_with_and_no_others() {
    let intake = Intake::start().await;
    let kotras = intake.register(&registration_number(61), 0, false).await;
    intake
        .register_by(Bearer::agency("sbc"), &registration_number(62), 0, false)
        .await;
    let events = events_until_quiet(intake.client(Bearer::agency("kotra")), 0).await;
    let changes: Vec<pb::CompanyPartnerChanged> = events
        .iter()
        .map(|event| {
            assert_eq!(event.r#type, "company.partner_changed");
            event.payload.as_ref().unwrap().to_msg().unwrap()
        })
        .collect();
    assert_eq!(
        changes,
        [pb::CompanyPartnerChanged {
            company_id: kotras.company_id.clone(),
            role: pb::PartnerRole::Agency as i32,
            tenant: "kotra".into(),
            active: true,
        }]
    );
    // The registration itself names KOTRA's staff as actor on KOTRA's copy.
    let actor = events[0].actor.clone().unwrap();
    assert_eq!(
        (actor.role.as_str(), actor.tenant.as_str()),
        ("agency", "kotra")
    );
}

/// Opens a case for the company as an admin, with one buyer-discovery and
/// one export-finance need.
async fn admin_opens_case(intake: &Intake, company_id: &str) -> pb::Case {
    let need = |category: onestop_contracts::common::v1::NeedCategory| pb::NeedRequest {
        category: category as i32,
        target_markets: vec!["VN".into()],
        ..Default::default()
    };
    intake
        .admin()
        .open_case(pb::OpenCaseRequest {
            company_id: company_id.into(),
            needs: vec![
                need(onestop_contracts::common::v1::NeedCategory::BuyerDiscovery),
                need(onestop_contracts::common::v1::NeedCategory::ExportFinance),
            ],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
}

/// The case (or company) an intake event is about, from its payload.
fn case_or_company(event: &Event) -> String {
    let payload = event.payload.as_ref().unwrap();
    match event.r#type.as_str() {
        "company.partner_changed" => {
            payload
                .to_msg::<pb::CompanyPartnerChanged>()
                .unwrap()
                .company_id
        }
        "case.opened" => payload.to_msg::<pb::CaseOpened>().unwrap().case_id,
        "need.opened" => {
            payload
                .to_msg::<pb::NeedOpened>()
                .unwrap()
                .hand_off
                .unwrap()
                .case_id
        }
        "need.status_changed" => payload.to_msg::<pb::NeedStatusChanged>().unwrap().case_id,
        "case.closed" => payload.to_msg::<pb::CaseClosed>().unwrap().case_id,
        other => panic!("a partner's intake feed carries no {other}"),
    }
}

/// An agency granted on a company follows that company's cases on its
/// scoped feed (opened, needs opened and finished, closed), and nothing of
/// a company it does not work with; once the grant is revoked, the
/// company's new cases no longer reach it.
#[tokio::test]
async fn a_granted_agency_follows_its_companys_cases_and_no_others() {
    let intake = Intake::start().await;
    let served = intake
        .register_by(Bearer::service(), &registration_number(63), 0, false)
        .await;
    // KOTRA registers (and so works with) the other company.
    let other = intake.register(&registration_number(64), 0, false).await;
    let sbc_grant = pb::GrantPartnerRequest {
        company_id: served.company_id.clone(),
        role: pb::PartnerRole::Agency as i32,
        tenant: "sbc".into(),
    };
    intake
        .admin()
        .grant_partner(sbc_grant.clone())
        .await
        .unwrap();
    let served_case = admin_opens_case(&intake, &served.company_id).await;
    let other_case = admin_opens_case(&intake, &other.company_id).await;
    intake
        .api(Bearer::agency("sbc"))
        .close_case(pb::CloseCaseRequest {
            case_id: served_case.case_id.clone(),
            outcome_summary: "Financing arranged elsewhere".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    admin_opens_case(&intake, &other.company_id).await;

    let sbc = events_until_quiet(intake.client(Bearer::agency("sbc")), 0).await;
    let types: Vec<&str> = sbc.iter().map(|e| e.r#type.as_str()).collect();
    let needs = served_case.needs.len();
    assert!(needs >= 2, "{needs}");
    let mut expected = vec!["company.partner_changed", "case.opened"];
    expected.extend(std::iter::repeat_n("need.opened", needs));
    expected.extend(std::iter::repeat_n("need.status_changed", needs));
    expected.push("case.closed");
    assert_eq!(types, expected);
    for event in &sbc {
        let about = case_or_company(event);
        assert!(
            about == served_case.case_id || about == served.company_id,
            "{} about {about}",
            event.r#type
        );
    }

    // KOTRA's feed holds the other company's two cases, nothing of SBC's.
    let kotra = events_until_quiet(intake.client(Bearer::agency("kotra")), 0).await;
    let kotras_cases: Vec<String> = kotra
        .iter()
        .filter(|e| e.r#type == "case.opened")
        .map(case_or_company)
        .collect();
    assert_eq!(kotras_cases.len(), 2);
    assert_eq!(kotras_cases[0], other_case.case_id);
    assert!(
        kotra
            .iter()
            .map(case_or_company)
            .all(|about| about != served_case.case_id && about != served.company_id)
    );

    // Revoked: the company's next case is no longer on SBC's feed.
    let pb::GrantPartnerRequest {
        company_id,
        role,
        tenant,
    } = sbc_grant;
    intake
        .admin()
        .revoke_partner(pb::RevokePartnerRequest {
            company_id,
            role,
            tenant,
        })
        .await
        .unwrap();
    let after = sbc.last().unwrap().id;
    admin_opens_case(&intake, &served.company_id).await;
    let later = events_until_quiet(intake.client(Bearer::agency("sbc")), after).await;
    let later_types: Vec<&str> = later.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(later_types, ["company.partner_changed"]);
}
