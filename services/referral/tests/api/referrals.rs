use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::referral::v1::{self as pb, ReferralStatus};
use tonic::Code;

use crate::common::{
    Referral, create_request, current_program, error_reason, program, start_time, status,
    violations,
};

#[tokio::test]
async fn a_need_is_routed_to_the_best_eligible_program_with_its_reasons() {
    let referral = Referral::start().await;
    referral.three_lenders(5).await;
    let created = referral.create("need-1").await;
    assert_eq!(status(&created), ReferralStatus::Sent);
    assert_eq!(created.need_id, "need-1");
    assert_eq!(created.case_id, "case-of-need-1");
    assert_eq!(created.legs.len(), 1);
    let leg = &created.legs[0];
    assert_eq!(leg.program_id, "alpha.loans");
    assert_eq!(leg.agency_id, "alpha");
    assert_eq!(leg.leg_number, 1);
    assert_eq!(leg.status, pb::LegStatus::Sent as i32);
    let routing = leg.routing.as_ref().unwrap();
    assert_eq!(routing.rank, 1);
    assert_eq!(routing.passed_rules.len(), 2);
    // Stamped by the service's clock; the SLA runs from there.
    let sent = leg.sent_at.as_ref().unwrap().seconds;
    assert_eq!(sent, start_time().timestamp());
    assert_eq!(leg.sla_due_at.as_ref().unwrap().seconds, sent + 48 * 3600);

    // Readable, and the events say what happened with the ids intake maps.
    let read = referral.get(&created.referral_id).await;
    assert_eq!(read, created);
    let events = referral.referral_events().await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["referral.created", "referral.routed"]);
    for (_, payload) in &events {
        assert_eq!(payload.need_id, "need-1");
        assert_eq!(payload.case_id, "case-of-need-1");
        assert_eq!(payload.referral_id, created.referral_id);
    }
}

#[tokio::test]
async fn the_preferred_program_goes_first_when_it_fits_and_is_explained_when_not() {
    let referral = Referral::start().await;
    referral.three_lenders(5).await;
    let mut request = create_request("need-pref", NeedCategory::ExportFinance);
    request.preferred_program_id = "gamma.loans".into();
    let created = referral.create_with(request).await;
    assert_eq!(current_program(&created), "gamma.loans");
    assert!(created.legs[0].preferred);
    assert!(created.preferred_program_evaluation.is_none());

    // Preferred but ineligible (too many staff): routing picks as usual and
    // says why it was passed over.
    let mut strict = program("gamma.small-loans", "gamma", NeedCategory::ExportFinance);
    strict.eligibility.as_mut().unwrap().max_employees = 5;
    referral.add_program(strict).await;
    let mut request = create_request("need-pref-2", NeedCategory::ExportFinance);
    request.preferred_program_id = "gamma.small-loans".into();
    let created = referral.create_with(request).await;
    assert_eq!(current_program(&created), "alpha.loans");
    assert!(!created.legs[0].preferred);
    let why = created.preferred_program_evaluation.unwrap();
    assert!(!why.eligible);
    assert_eq!(
        why.failed_rules[0].rule,
        pb::EligibilityRule::MaxEmployees as i32
    );

    // A program of other categories is passed over with that reason.
    referral
        .add_program(program("gamma.trainers", "gamma", NeedCategory::Training))
        .await;
    let mut request = create_request("need-pref-4", NeedCategory::ExportFinance);
    request.preferred_program_id = "gamma.trainers".into();
    let created = referral.create_with(request).await;
    assert_eq!(current_program(&created), "alpha.loans");
    let why = created.preferred_program_evaluation.unwrap();
    assert_eq!(why.failed_rules.len(), 1);
    assert_eq!(
        why.failed_rules[0].rule,
        pb::EligibilityRule::Category as i32
    );
    assert_eq!(why.failed_rules[0].required, "category in [TRAINING]");
    assert_eq!(why.failed_rules[0].actual, "EXPORT_FINANCE");

    // An unknown preferred program is bad input.
    let mut request = create_request("need-pref-3", NeedCategory::ExportFinance);
    request.preferred_program_id = "nobody.nothing".into();
    let status = referral
        .service()
        .create_referral(request)
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["preferred_program_id"]);
}

#[tokio::test]
async fn full_programs_are_skipped_and_waitlists_come_after_open_slots() {
    let referral = Referral::start().await;
    referral.three_lenders(1).await;
    // Fill alpha's only slot.
    let first = referral.create("need-a").await;
    referral
        .agency("alpha")
        .accept_referral(pb::AcceptReferralRequest {
            referral_id: first.referral_id.clone(),
            ..Default::default()
        })
        .await
        .unwrap();
    let second = referral.create("need-b").await;
    assert_eq!(
        current_program(&second),
        "beta.loans",
        "full alpha is skipped"
    );

    // Alpha keeps a waitlist now: it is still routed to, but only after
    // every program with an open slot.
    let mut alpha = program("alpha.loans", "alpha", NeedCategory::ExportFinance);
    alpha.eligibility = Some(pb::Eligibility {
        stages: vec![1, 2],
        max_employees: 300,
        ..Default::default()
    });
    alpha.capacity = Some(pb::ProgramCapacity {
        total_slots: 1,
        availability: pb::Availability::Waitlist as i32,
        ..Default::default()
    });
    referral.add_program(alpha).await;
    let third = referral.create("need-c").await;
    assert_eq!(current_program(&third), "beta.loans");
    let recommended = referral
        .service()
        .recommend_programs(pb::RecommendProgramsRequest {
            category: NeedCategory::ExportFinance as i32,
            company: Some(crate::common::company()),
        })
        .await
        .unwrap()
        .into_inner();
    let alpha = recommended
        .eligible
        .iter()
        .find(|e| e.program.as_ref().unwrap().program_id == "alpha.loans")
        .unwrap();
    assert!(alpha.can_take, "a waitlist can take referrals");
    assert_eq!(
        alpha
            .program
            .as_ref()
            .unwrap()
            .capacity
            .as_ref()
            .unwrap()
            .open_slots,
        0
    );
}

#[tokio::test]
async fn a_need_nothing_fits_is_recorded_unroutable_with_reasons_and_an_event() {
    let referral = Referral::start().await;
    referral.add_agency("sbc").await;
    let mut big_only = program("sbc.big", "sbc", NeedCategory::ExportFinance);
    big_only.eligibility.as_mut().unwrap().stages = vec![4];
    referral.add_program(big_only).await;
    let mut closed = program("sbc.closed", "sbc", NeedCategory::ExportFinance);
    closed.capacity.as_mut().unwrap().availability = pb::Availability::No as i32;
    referral.add_program(closed).await;

    let created = referral.create("need-x").await;
    assert_eq!(status(&created), ReferralStatus::Unroutable);
    assert!(created.legs.is_empty());
    let reasons: Vec<(&str, bool, bool)> = created
        .unroutable_reasons
        .iter()
        .map(|e| {
            (
                e.program.as_ref().unwrap().program_id.as_str(),
                e.eligible,
                e.can_take,
            )
        })
        .collect();
    assert_eq!(
        reasons,
        [("sbc.closed", true, false), ("sbc.big", false, true)]
    );
    let events = referral.referral_events().await;
    let types: Vec<&str> = events.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(types, ["referral.created", "referral.unroutable"]);
    assert_eq!(events[1].1.need_id, "need-x");

    // A category no program serves: unroutable with no reasons.
    let none = referral
        .create_with(create_request("need-y", NeedCategory::LegalIp))
        .await;
    assert_eq!(status(&none), ReferralStatus::Unroutable);
    assert!(none.unroutable_reasons.is_empty());
    assert_eq!(referral.count("referral").await, 2);
}

#[tokio::test]
async fn concurrent_duplicate_hand_offs_create_exactly_one_referral() {
    let referral = Referral::start().await;
    referral.three_lenders(5).await;
    let calls = (0..8).map(|_| {
        let mut client = referral.service();
        async move {
            client
                .create_referral(create_request("need-dup", NeedCategory::ExportFinance))
                .await
                .map(|r| r.into_inner())
        }
    });
    let results = futures_join(calls).await;
    let first = results[0].as_ref().expect("created").clone();
    for result in &results {
        assert_eq!(result.as_ref().expect("same answer"), &first);
    }
    assert_eq!(referral.count("referral").await, 1);
    assert_eq!(referral.count("referral_leg").await, 1);
    let created: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_log WHERE event_type = 'referral.created'")
            .fetch_one(&referral.pool)
            .await
            .unwrap();
    assert_eq!(created, 1);

    // A later redelivery returns the first result too; the same need id
    // for something else is refused.
    let again = referral.create("need-dup").await;
    assert_eq!(again, first);
    let mut refreshed = create_request("need-dup", NeedCategory::ExportFinance);
    refreshed.company.as_mut().unwrap().employees = 30;
    assert_eq!(referral.create_with(refreshed).await, first);
    let mut other = create_request("need-dup", NeedCategory::ExportFinance);
    other.case_id = "another-case".into();
    let status = referral.service().create_referral(other).await.unwrap_err();
    assert_eq!(status.code(), Code::FailedPrecondition);
    assert_eq!(error_reason(&status), "IDEMPOTENCY_KEY_REUSED");
}

async fn futures_join<F, T>(futures: impl Iterator<Item = F>) -> Vec<T>
where
    F: std::future::Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::new();
    for handle in handles {
        out.push(handle.await.unwrap());
    }
    out
}

#[tokio::test]
async fn bad_hand_offs_get_field_violations_and_store_nothing() {
    let referral = Referral::start().await;
    referral.three_lenders(5).await;
    let mut request = create_request("", NeedCategory::ExportFinance);
    request.case_id.clear();
    request.category = 77;
    request.target_markets = vec!["XX".into()];
    request.hs_codes = vec!["3".into()];
    let company = request.company.as_mut().unwrap();
    company.company_id.clear();
    company.business_registration_number = "1248100997".into();
    let status = referral
        .service()
        .create_referral(request)
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        [
            "case_id",
            "category",
            "company.business_registration_number",
            "company.company_id",
            "hs_codes[0]",
            "need_id",
            "target_markets[0]",
        ]
    );
    let mut no_company = create_request("need-z", NeedCategory::ExportFinance);
    no_company.company = None;
    let status = referral
        .service()
        .create_referral(no_company)
        .await
        .unwrap_err();
    assert_eq!(violations(&status), ["company"]);
    assert_eq!(referral.count("referral").await, 0);
    assert_eq!(referral.count("idempotency_key").await, 0);
    assert!(referral.referral_events().await.is_empty());

    // Only the referrer hands needs over.
    for mut client in [referral.agency("alpha"), referral.dashboard()] {
        let status = client
            .create_referral(create_request("need-q", NeedCategory::ExportFinance))
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied);
    }
}
