//! Care along the growth ladder: a stage change opens the follow-on needs
//! the README's rule table prescribes, once per change, on the company's
//! open case (or a case of their own), in the transaction of the change;
//! and mentoring moves the company's advisor to the new stage's cadence.

use onestop_contracts::common::v1::{GrowthStage, NeedCategory};
use onestop_contracts::intake::v1 as pb;
use onestop_contracts::mentoring::v1 as mentoring_pb;
use onestop_contracts::mentoring::v1::get_assignment_request::Lookup;
use prost_types::FieldMask;

use crate::common::{Intake, exporter, registration_number, usd};
use crate::wired::Wired;

/// The company's exports over the last year changed to `export_cents`.
fn exports(company_id: &str, export_cents: i64, key: &str) -> pb::UpdateCompanyRequest {
    pb::UpdateCompanyRequest {
        idempotency_key: key.into(),
        company_id: company_id.into(),
        profile: Some(pb::CompanyProfile {
            export_revenue: Some(usd(export_cents)),
            ..Default::default()
        }),
        update_mask: Some(FieldMask {
            paths: vec!["export_revenue".into()],
        }),
    }
}

async fn cases_of(intake: &Intake, company_id: &str) -> Vec<pb::Case> {
    intake
        .admin()
        .list_cases(pb::ListCasesRequest {
            company_id: company_id.into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .cases
}

/// Categories of the needs the ladder opened, over all the company's cases.
async fn by_rule(intake: &Intake, company_id: &str) -> Vec<i32> {
    cases_of(intake, company_id)
        .await
        .iter()
        .flat_map(|case| case.needs.iter())
        .filter(|need| need.added_by_rule && need.detail.starts_with("Follow-on"))
        .map(|need| need.category)
        .collect()
}

#[tokio::test]
async fn first_export_to_promising_opens_diversification_and_finance_once() {
    let intake = Intake::start().await;
    let (company, case) = intake
        .kotra_case(
            exporter(&registration_number(401), 5_000_000, false),
            vec![pb::NeedRequest {
                category: NeedCategory::Certification as i32,
                ..Default::default()
            }],
        )
        .await;
    assert_eq!(company.stage, GrowthStage::FirstExport as i32);

    let grown = exports(&company.company_id, 50_000_000, "exports-2026");
    let moved = intake
        .kotra()
        .update_company(grown.clone())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(moved.stage, GrowthStage::Promising as i32);
    let cases = cases_of(&intake, &company.company_id).await;
    assert_eq!(cases.len(), 1, "the follow-ons join the open case");
    assert_eq!(cases[0].case_id, case.case_id);
    assert_eq!(
        by_rule(&intake, &company.company_id).await,
        vec![
            NeedCategory::MarketDiversification as i32,
            NeedCategory::ExportFinance as i32
        ]
    );
    let follow_on = cases[0].needs.last().unwrap();
    assert_eq!(
        follow_on.hs_codes,
        vec!["330420".to_owned(), "330499".to_owned()]
    );

    // The same request again, a diagnosis at the same stage, and a change
    // that moves no stage open nothing.
    intake.kotra().update_company(grown).await.unwrap();
    intake
        .kotra()
        .diagnose_readiness(pb::DiagnoseReadinessRequest {
            company_id: company.company_id.clone(),
            answers: Some(pb::ReadinessAnswers {
                export_revenue: Some(usd(60_000_000)),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap();
    intake
        .kotra()
        .update_company(exports(&company.company_id, 70_000_000, "exports-2026-q2"))
        .await
        .unwrap();
    assert_eq!(by_rule(&intake, &company.company_id).await.len(), 2);

    // A step down prescribes diversification and the advisor: the first is
    // open already; the advisor need OpenCase added is cancelled first, so
    // the advisor's help to recover opens anew.
    let opening_advisor = case
        .needs
        .iter()
        .find(|need| need.category == NeedCategory::Mentoring as i32)
        .expect("OpenCase added an advisor for the first-time exporter");
    intake
        .kotra()
        .cancel_need(pb::CancelNeedRequest {
            case_id: case.case_id.clone(),
            need_id: opening_advisor.need_id.clone(),
            reason: "the company postponed mentoring".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    let fell = intake
        .kotra()
        .diagnose_readiness(pb::DiagnoseReadinessRequest {
            company_id: company.company_id.clone(),
            answers: Some(pb::ReadinessAnswers {
                export_revenue: Some(usd(2_000_000)),
                ..Default::default()
            }),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(fell.stage, GrowthStage::FirstExport as i32);
    let opened = by_rule(&intake, &company.company_id).await;
    assert_eq!(opened.len(), 3, "{opened:?}");
    assert_eq!(opened[2], NeedCategory::Mentoring as i32);
}

#[tokio::test]
async fn a_small_merchants_first_export_opens_care_with_its_advisor_on_a_case_of_its_own() {
    let intake = Intake::start().await;
    let company = intake.register(&registration_number(402), 0, true).await;
    assert!(cases_of(&intake, &company.company_id).await.is_empty());
    intake
        .kotra()
        .update_company(exports(&company.company_id, 1_500_000, ""))
        .await
        .unwrap();
    let cases = cases_of(&intake, &company.company_id).await;
    assert_eq!(cases.len(), 1, "a case opened for the follow-on care");
    let needs = &cases[0].needs;
    assert_eq!(needs.len(), 1);
    assert_eq!(needs[0].category, NeedCategory::Mentoring as i32);
    assert!(needs[0].added_by_rule);
    assert!(needs[0].detail.contains("care after the first export"));
}

/// The assignment `lookup` finds, if any.
async fn assignment(wired: &Wired, lookup: Lookup) -> Option<mentoring_pb::Assignment> {
    wired
        .mentoring
        .admin()
        .get_assignment(mentoring_pb::GetAssignmentRequest {
            lookup: Some(lookup),
        })
        .await
        .ok()
        .map(|found| found.into_inner())
}

/// A first exporter registered by KOTRA, with the advisor mentoring
/// assigned it on a mentoring need; returns the company and its assignment.
async fn advised_company(wired: &Wired, number: u32) -> (pb::Company, mentoring_pb::Assignment) {
    let (company, _) = wired
        .intake
        .kotra_case(
            exporter(&registration_number(number), 5_000_000, false),
            vec![pb::NeedRequest {
                category: NeedCategory::Mentoring as i32,
                target_markets: vec!["US".into()],
                ..Default::default()
            }],
        )
        .await;
    let active = || assignment(wired, Lookup::CompanyId(company.company_id.clone()));
    wired
        .until("mentoring assigns the advisor", || async {
            active().await.is_some()
        })
        .await;
    let assigned = active().await.unwrap();
    assert_eq!(assigned.contact_interval_days, 30);
    (company, assigned)
}

/// The company's exports grow into PROMISING; waits until the assignment
/// `lookup` finds follows PROMISING's 61-day cadence.
async fn promote(wired: &Wired, company: &pb::Company, lookup: Lookup) {
    wired
        .intake
        .kotra()
        .update_company(exports(&company.company_id, 50_000_000, ""))
        .await
        .unwrap();
    wired
        .until(
            "the assignment follows PROMISING's 61-day cadence",
            || async {
                assignment(wired, lookup.clone()).await.is_some_and(|a| {
                    a.contact_interval_days == 61 && a.stage == GrowthStage::Promising as i32
                })
            },
        )
        .await;
}

#[tokio::test]
async fn the_advisor_follows_the_new_stages_cadence() {
    let wired = Wired::start().await;
    let (company, _) = advised_company(&wired, 403).await;
    promote(
        &wired,
        &company,
        Lookup::CompanyId(company.company_id.clone()),
    )
    .await;
}

/// An advisor leaving hands the company over; until a successor is found
/// the outgoing assignment (HANDOVER) is the company's only one, and a
/// stage change moves it too, so the advisor still with the company and
/// the successor to come read the new stage's cadence.
#[tokio::test]
async fn an_assignment_in_handover_follows_the_new_stages_cadence_too() {
    let wired = Wired::start().await;
    let (company, _) = advised_company(&wired, 404).await;
    // The only advisor leaves: nobody can take the company over yet.
    let handovers = wired
        .mentoring
        .admin()
        .deactivate_advisor(mentoring_pb::DeactivateAdvisorRequest {
            advisor_id: wired.advisor_id.clone(),
            handover_days: 30,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .handovers;
    assert_eq!(handovers.len(), 1);
    let outgoing = handovers[0].outgoing_assignment_id.clone();
    let handing_over = || async {
        assignment(&wired, Lookup::AssignmentId(outgoing.clone()))
            .await
            .expect("the outgoing assignment")
    };
    let before = handing_over().await;
    assert_eq!(
        before.status,
        mentoring_pb::AssignmentStatus::Handover as i32
    );
    assert_eq!(before.contact_interval_days, 30);

    promote(&wired, &company, Lookup::AssignmentId(outgoing.clone())).await;
    assert_eq!(
        handing_over().await.status,
        mentoring_pb::AssignmentStatus::Handover as i32,
        "moving the cadence leaves the handover as it is"
    );
    let changes: Vec<mentoring_pb::AssignmentCadenceChanged> = wired
        .mentoring
        .event_payloads(onestop_contracts::event_types::MentoringEvent::CadenceChanged)
        .await;
    assert_eq!(
        changes
            .iter()
            .map(|c| (c.assignment_id.as_str(), c.contact_interval_days))
            .collect::<Vec<_>>(),
        [(outgoing.as_str(), 61)]
    );
}
