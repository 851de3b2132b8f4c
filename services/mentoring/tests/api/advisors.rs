use onestop_contracts::event_types::MentoringEvent;
use onestop_contracts::mentoring::v1 as pb;
use tonic::Code;
use uuid::Uuid;

use onestop_test_support::{all_pages, violation_description};

use crate::common::{Mentoring, kintex_program, mask, plain_advisor, violations};

#[tokio::test]
async fn an_admin_registers_an_advisor_and_the_event_carries_no_contact() {
    let mentoring = Mentoring::start().await;
    let mut profile = plain_advisor();
    profile.program = Some(kintex_program());
    let advisor = mentoring.register(profile.clone()).await;
    assert_eq!(advisor.status, pb::AdvisorStatus::Active as i32);
    assert_eq!(advisor.active_companies, 0);
    assert_eq!(advisor.profile.as_ref().unwrap(), &profile);

    let events: Vec<pb::AdvisorRegistered> = mentoring
        .event_payloads(MentoringEvent::AdvisorRegistered)
        .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].advisor_id, advisor.advisor_id);
    assert_eq!(events[0].program_id, "kintex.retired-expert-marketing");
    let raw: Vec<u8> = sqlx::query_scalar("SELECT payload FROM event_log")
        .fetch_one(&mentoring.pool)
        .await
        .unwrap();
    assert!(!String::from_utf8_lossy(&raw).contains("minho.park"));
}

#[tokio::test]
async fn bad_profiles_get_field_violations_and_store_nothing() {
    let mentoring = Mentoring::start().await;
    let mut profile = plain_advisor();
    profile.kind = 0;
    profile.languages = vec!["xx".into()];
    profile.markets = vec!["us".into()];
    profile.region = "KR-99".into();
    profile.capacity = 0;
    profile.hs_chapters = vec!["3304".into()];
    let status = mentoring
        .admin()
        .register_advisor(pb::RegisterAdvisorRequest {
            idempotency_key: String::new(),
            profile: Some(profile),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec![
            "profile.capacity",
            "profile.hs_chapters[0]",
            "profile.kind",
            "profile.languages[0]",
            "profile.markets[0]",
            "profile.region",
        ]
    );
    assert_eq!(mentoring.count("advisor").await, 0);
    assert_eq!(mentoring.count("event_log").await, 0);
}

#[tokio::test]
async fn only_admins_register_and_advisors_read_only_themselves() {
    let mentoring = Mentoring::start().await;
    let status = mentoring
        .service()
        .register_advisor(pb::RegisterAdvisorRequest {
            idempotency_key: String::new(),
            profile: Some(plain_advisor()),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::PermissionDenied);

    let park = mentoring.register(plain_advisor()).await;
    let lee = mentoring.register(plain_advisor()).await;
    let own = mentoring
        .advisor(&park.advisor_id)
        .get_advisor(pb::GetAdvisorRequest {
            advisor_id: park.advisor_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert!(own.profile.unwrap().contact.is_some());
    let other = mentoring
        .advisor(&park.advisor_id)
        .get_advisor(pb::GetAdvisorRequest {
            advisor_id: lee.advisor_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::NotFound);

    // Dashboards see the pool without anyone's contact details.
    let listed = mentoring
        .dashboard()
        .list_advisors(pb::ListAdvisorsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(listed.advisors.len(), 2);
    assert!(
        listed
            .advisors
            .iter()
            .all(|a| a.profile.as_ref().unwrap().contact.is_none())
    );
}

#[tokio::test]
async fn updates_replace_masked_fields_and_lists_filter_and_page() {
    let mentoring = Mentoring::start().await;
    let first = mentoring.register(plain_advisor()).await;
    let mut vietnam = plain_advisor();
    vietnam.markets = vec!["VN".into()];
    vietnam.languages = vec!["ko".into(), "vi".into()];
    mentoring.register(vietnam).await;
    mentoring.register(plain_advisor()).await;

    let updated = mentoring
        .advisor(&first.advisor_id)
        .update_advisor(pb::UpdateAdvisorRequest {
            idempotency_key: String::new(),
            advisor_id: first.advisor_id.clone(),
            profile: Some(pb::AdvisorProfile {
                capacity: 9,
                ..Default::default()
            }),
            update_mask: mask(&["capacity"]),
        })
        .await
        .unwrap()
        .into_inner();
    let profile = updated.profile.unwrap();
    assert_eq!(profile.capacity, 9);
    assert_eq!(profile.markets, vec!["JP"]);
    let events: Vec<pb::AdvisorUpdated> = mentoring
        .event_payloads(MentoringEvent::AdvisorUpdated)
        .await;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].advisor_id, first.advisor_id);
    assert_eq!(
        (events[0].capacity, events[0].changed_fields.clone()),
        (9, vec!["capacity".to_owned()])
    );
    assert_eq!(events[0].markets, vec!["JP"]);

    let speakers = mentoring
        .admin()
        .list_advisors(pb::ListAdvisorsRequest {
            language: "vi".into(),
            market: "VN".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(speakers.advisors.len(), 1);

    let seen = all_pages(|page_token| {
        let mut admin = mentoring.admin();
        async move {
            let page = admin
                .list_advisors(pb::ListAdvisorsRequest {
                    page_size: 2,
                    page_token,
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner();
            let ids: Vec<String> = page.advisors.into_iter().map(|a| a.advisor_id).collect();
            (ids, page.next_page_token)
        }
    })
    .await;
    assert_eq!(seen.len(), 3);

    let missing = mentoring
        .admin()
        .get_advisor(pb::GetAdvisorRequest {
            advisor_id: Uuid::new_v4().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(missing.code(), Code::NotFound);
}

#[tokio::test]
async fn an_update_names_its_fields_in_a_mask_or_changes_nothing() {
    let mentoring = Mentoring::start().await;
    let advisor = mentoring.register(plain_advisor()).await;
    let update = |update_mask| pb::UpdateAdvisorRequest {
        idempotency_key: String::new(),
        advisor_id: advisor.advisor_id.clone(),
        profile: Some(pb::AdvisorProfile {
            capacity: 9,
            ..plain_advisor()
        }),
        update_mask,
    };
    // No mask is not "replace everything".
    for missing in [None, mask(&[])] {
        let status = mentoring
            .admin()
            .update_advisor(update(missing))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_eq!(violations(&status), vec!["update_mask"]);
    }
    let status = mentoring
        .admin()
        .update_advisor(update(mask(&["capacity", "colour", "kind"])))
        .await
        .unwrap_err();
    assert_eq!(
        violations(&status),
        vec!["update_mask.paths[1]", "update_mask.paths[2]"]
    );
    let unknown = violation_description(&status, "update_mask.paths[1]").unwrap();
    assert!(unknown.contains("colour"), "{unknown}");

    let unchanged = mentoring
        .admin()
        .get_advisor(pb::GetAdvisorRequest {
            advisor_id: advisor.advisor_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(unchanged, advisor);
    assert_eq!(
        mentoring.event_types().await,
        [MentoringEvent::AdvisorRegistered.name()]
    );
}

#[tokio::test]
async fn a_registration_retry_returns_the_first_advisor() {
    let mentoring = Mentoring::start().await;
    let request = pb::RegisterAdvisorRequest {
        idempotency_key: "kintex-2026-001".into(),
        profile: Some(plain_advisor()),
    };
    let first = mentoring
        .admin()
        .register_advisor(request.clone())
        .await
        .unwrap()
        .into_inner();
    let retry = mentoring
        .admin()
        .register_advisor(request.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(first, retry);
    assert_eq!(mentoring.count("advisor").await, 1);

    let mut changed = request;
    changed.profile.as_mut().unwrap().capacity = 2;
    let status = mentoring
        .admin()
        .register_advisor(changed)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(
        crate::common::error_reason(&status),
        "IDEMPOTENCY_KEY_REUSED"
    );
    assert_eq!(
        mentoring
            .count_events(MentoringEvent::AdvisorRegistered)
            .await,
        1
    );
}

#[tokio::test]
async fn each_role_reaches_only_what_it_may() {
    let mentoring = Mentoring::start().await;
    let advisor = mentoring.register(plain_advisor()).await;
    let dashboard = mentoring.dashboard();
    let own = mentoring.advisor(&advisor.advisor_id);

    let deactivate = pb::DeactivateAdvisorRequest {
        advisor_id: advisor.advisor_id.clone(),
        ..Default::default()
    };
    let mut denied = Vec::new();
    for mut client in [dashboard.clone(), own.clone()] {
        denied.push(
            client
                .deactivate_advisor(deactivate.clone())
                .await
                .map(|_| ()),
        );
    }
    denied.extend([
        own.clone()
            .list_waitlist(pb::ListWaitlistRequest::default())
            .await
            .map(|_| ()),
        own.clone()
            .list_fee_charges(pb::ListFeeChargesRequest::default())
            .await
            .map(|_| ()),
        own.clone()
            .list_advisors(pb::ListAdvisorsRequest::default())
            .await
            .map(|_| ()),
        dashboard
            .clone()
            .log_session(pb::LogSessionRequest::default())
            .await
            .map(|_| ()),
    ]);
    for (i, result) in denied.into_iter().enumerate() {
        assert_eq!(
            result.unwrap_err().code(),
            Code::PermissionDenied,
            "call {i}"
        );
    }
    assert_eq!(
        mentoring.get_advisor_status(&advisor.advisor_id).await,
        pb::AdvisorStatus::Active as i32
    );
}

#[tokio::test]
async fn code_lists_over_their_bound_are_refused_by_length_alone() {
    let mentoring = Mentoring::start().await;
    let mut profile = plain_advisor();
    // 51 codes, none of them valid: refused by the count, so no entry is
    // read (and named).
    profile.markets = vec!["??".into(); 51];
    profile.languages = vec!["??".into(); 51];
    profile.industries_ksic = vec!["?".into(); 51];
    profile.hs_chapters = vec!["?".into(); 51];
    let status = mentoring
        .admin()
        .register_advisor(pb::RegisterAdvisorRequest {
            idempotency_key: String::new(),
            profile: Some(profile),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec![
            "profile.hs_chapters",
            "profile.industries_ksic",
            "profile.languages",
            "profile.markets",
        ]
    );
    assert_eq!(
        violation_description(&status, "profile.markets").as_deref(),
        Some("at most 50 entries")
    );
    assert_eq!(mentoring.count("advisor").await, 0);
    assert_eq!(mentoring.count("event_log").await, 0);
}
