use onestop_contracts::common::v1::{GrowthStage, NeedCategory};
use onestop_contracts::referral::v1::{self as pb, EligibilityRule};
use tonic::Code;

use crate::common::{Referral, company, krw, program, violations};

/// One TRAINING program per kind of rule, each of which the default
/// company (domestic, Busan, 24 staff, 3.2bn KRW, KSIC 20423, not a small
/// merchant) fails; one it fits; one open to all; one inactive.
async fn rule_per_program(referral: &Referral) {
    referral.add_agency("acad").await;
    let with = |id: &str, eligibility: pb::Eligibility| {
        let mut p = program(id, "acad", NeedCategory::Training);
        p.eligibility = Some(eligibility);
        p
    };
    let programs = [
        with(
            "acad.stage",
            pb::Eligibility {
                stages: vec![GrowthStage::Promising as i32, GrowthStage::Strong as i32],
                ..Default::default()
            },
        ),
        with(
            "acad.region",
            pb::Eligibility {
                regions: vec!["KR-11".into()],
                ..Default::default()
            },
        ),
        with(
            "acad.employees",
            pb::Eligibility {
                max_employees: 10,
                ..Default::default()
            },
        ),
        with(
            "acad.revenue",
            pb::Eligibility {
                max_annual_revenue: Some(krw(1_000_000_000)),
                ..Default::default()
            },
        ),
        with(
            "acad.small",
            pb::Eligibility {
                small_merchants_only: true,
                ..Default::default()
            },
        ),
        with(
            "acad.industry",
            pb::Eligibility {
                industries_ksic: vec!["10".into()],
                ..Default::default()
            },
        ),
        with(
            "acad.fit",
            pb::Eligibility {
                stages: vec![GrowthStage::Domestic as i32],
                regions: vec!["KR-26".into()],
                max_employees: 50,
                max_annual_revenue: Some(krw(5_000_000_000)),
                industries_ksic: vec!["204".into()],
                ..Default::default()
            },
        ),
        with("acad.open", pb::Eligibility::default()),
    ];
    for p in programs {
        referral.add_program(p).await;
    }
    let mut inactive = program("acad.closed", "acad", NeedCategory::Training);
    inactive.status = pb::ProgramStatus::Inactive as i32;
    referral.add_program(inactive).await;
    // Serves another category: never evaluated for TRAINING.
    referral
        .add_program(program("acad.loans", "acad", NeedCategory::ExportFinance))
        .await;
}

async fn recommend(
    referral: &Referral,
    company: onestop_contracts::common::v1::CompanySnapshot,
) -> pb::RecommendProgramsResponse {
    referral
        .service()
        .recommend_programs(pb::RecommendProgramsRequest {
            category: NeedCategory::Training as i32,
            company: Some(company),
        })
        .await
        .unwrap()
        .into_inner()
}

fn id(evaluation: &pb::ProgramEvaluation) -> &str {
    &evaluation.program.as_ref().unwrap().program_id
}

fn failed(evaluation: &pb::ProgramEvaluation) -> Vec<EligibilityRule> {
    evaluation
        .failed_rules
        .iter()
        .map(|c| EligibilityRule::try_from(c.rule).unwrap())
        .collect()
}

#[tokio::test]
async fn each_kind_of_rule_explains_why_not() {
    let referral = Referral::start().await;
    rule_per_program(&referral).await;
    let response = recommend(&referral, company()).await;

    let eligible: Vec<&str> = response.eligible.iter().map(id).collect();
    assert_eq!(
        eligible,
        ["acad.fit", "acad.open"],
        "the specific fit ranks first"
    );
    assert_eq!(
        response.eligible.iter().map(|e| e.rank).collect::<Vec<_>>(),
        [1, 2]
    );
    assert!(response.eligible[0].score > response.eligible[1].score);
    let fit = &response.eligible[0];
    assert_eq!(fit.passed_rules.len(), 5);
    assert!(fit.failed_rules.is_empty() && fit.can_take);
    let region = fit
        .passed_rules
        .iter()
        .find(|c| c.rule == EligibilityRule::Region as i32)
        .unwrap();
    assert_eq!(region.required, "region in [KR-26]");
    assert_eq!(region.actual, "KR-26");

    let why_not: Vec<(&str, Vec<EligibilityRule>)> = response
        .ineligible
        .iter()
        .map(|e| (id(e), failed(e)))
        .collect();
    assert_eq!(
        why_not,
        [
            ("acad.employees", vec![EligibilityRule::MaxEmployees]),
            ("acad.industry", vec![EligibilityRule::Industry]),
            ("acad.region", vec![EligibilityRule::Region]),
            ("acad.revenue", vec![EligibilityRule::MaxAnnualRevenue]),
            ("acad.small", vec![EligibilityRule::SmallMerchant]),
            ("acad.stage", vec![EligibilityRule::Stage]),
        ]
    );
    let stage = &response
        .ineligible
        .iter()
        .find(|e| id(e) == "acad.stage")
        .unwrap()
        .failed_rules[0];
    assert_eq!(stage.required, "stage in [PROMISING, STRONG]");
    assert_eq!(stage.actual, "DOMESTIC");
    assert!(
        response
            .ineligible
            .iter()
            .all(|e| e.rank == 0 && e.score == 0.0)
    );

    // A company the other way round passes every single-rule program and
    // fails the fit on stage, region and industry.
    let mut other = company();
    other.stage = GrowthStage::Promising as i32;
    other.region = "KR-11".into();
    other.employees = 5;
    other.annual_revenue = Some(krw(500_000_000));
    other.small_merchant = true;
    other.industry_ksic = "10712".into();
    let response = recommend(&referral, other).await;
    let mut eligible: Vec<&str> = response.eligible.iter().map(id).collect();
    eligible.sort();
    assert_eq!(
        eligible,
        [
            "acad.employees",
            "acad.industry",
            "acad.open",
            "acad.region",
            "acad.revenue",
            "acad.small",
            "acad.stage",
        ]
    );
    assert_eq!(response.ineligible.len(), 1);
    assert_eq!(
        failed(&response.ineligible[0]),
        [
            EligibilityRule::Stage,
            EligibilityRule::Region,
            EligibilityRule::Industry
        ]
    );
}

#[tokio::test]
async fn ranking_prefers_room_and_free_programs_and_flags_what_cannot_take() {
    let referral = Referral::start().await;
    referral.add_agency("acad").await;
    let mut paid = program("acad.paid", "acad", NeedCategory::Training);
    paid.monthly_fee = Some(krw(100_000));
    let free = program("acad.free", "acad", NeedCategory::Training);
    let mut closed = program("acad.no-intake", "acad", NeedCategory::Training);
    closed.capacity.as_mut().unwrap().availability = pb::Availability::No as i32;
    for p in [paid, free, closed] {
        referral.add_program(p).await;
    }
    let response = recommend(&referral, company()).await;
    let order: Vec<&str> = response.eligible.iter().map(id).collect();
    assert_eq!(order[0], "acad.free");
    assert!(order.contains(&"acad.paid"));
    let no_intake = response
        .eligible
        .iter()
        .find(|e| id(e) == "acad.no-intake")
        .unwrap();
    assert!(!no_intake.can_take);
}

#[tokio::test]
async fn recommend_validates_the_company() {
    let referral = Referral::start().await;
    let mut bad = company();
    bad.region = "Busan".into();
    bad.stage = 0;
    bad.industry_ksic = "A1".into();
    bad.annual_revenue = Some(krw(-5));
    let status = referral
        .service()
        .recommend_programs(pb::RecommendProgramsRequest {
            category: 0,
            company: Some(bad),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        [
            "category",
            "company.annual_revenue",
            "company.industry_ksic",
            "company.region",
            "company.stage",
        ]
    );
}
