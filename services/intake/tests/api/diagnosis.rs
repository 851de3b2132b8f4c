use onestop_contracts::common::v1::GrowthStage;
use onestop_contracts::intake::v1 as pb;
use tonic::Code;

use crate::common::{Intake, registration_number, usd, violations};

fn answers(export_cents: i64) -> pb::ReadinessAnswers {
    pb::ReadinessAnswers {
        foreign_language_catalog: true,
        foreign_language_website: false,
        certifications: vec!["CE".into()],
        dedicated_trade_staff: true,
        trade_show_experience: false,
        export_plan: true,
        export_revenue: Some(usd(export_cents)),
    }
}

async fn diagnose(intake: &Intake, company_id: &str, export_cents: i64) -> pb::Assessment {
    intake
        .agency()
        .diagnose_readiness(pb::DiagnoseReadinessRequest {
            idempotency_key: String::new(),
            company_id: company_id.into(),
            answers: Some(answers(export_cents)),
        })
        .await
        .unwrap()
        .into_inner()
}

#[tokio::test]
async fn stage_follows_exports_at_every_boundary() {
    let intake = Intake::start().await;
    let company = intake.register(&registration_number(100), 0, false).await;
    let cases = [
        (0, GrowthStage::Domestic),
        (1, GrowthStage::FirstExport),
        (9_999_999, GrowthStage::FirstExport),
        (10_000_000, GrowthStage::Promising),
        (499_999_999, GrowthStage::Promising),
        (500_000_000, GrowthStage::Strong),
    ];
    for (version, (cents, stage)) in cases.iter().enumerate() {
        let assessment = diagnose(&intake, &company.company_id, *cents).await;
        assert_eq!(assessment.stage, *stage as i32, "USD cents {cents}");
        assert_eq!(assessment.version, version as u32 + 1);
        // catalog 15 + certification 15 + staff 15 + plan 10 + in-house English 10 (+ track record 10)
        let expected = if *cents > 0 { 75 } else { 65 };
        assert_eq!(assessment.score, expected);
        assert!(!assessment.rationale.is_empty());
        assert_eq!(assessment.breakdown.len(), 8);
    }

    let company = intake
        .agency()
        .get_company(pb::GetCompanyRequest {
            company_id: company.company_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(company.stage, GrowthStage::Strong as i32);
    assert_eq!(company.assessment_version, 6);
    assert_eq!(company.readiness_score, 75);

    let history = intake
        .agency()
        .list_assessments(pb::ListAssessmentsRequest {
            company_id: company.company_id.clone(),
        })
        .await
        .unwrap()
        .into_inner()
        .assessments;
    assert_eq!(
        history.iter().map(|a| a.version).collect::<Vec<_>>(),
        vec![6, 5, 4, 3, 2, 1]
    );

    let events = intake.events_after(0).await;
    let types: Vec<&str> = events.iter().map(|e| e.r#type.as_str()).collect();
    assert_eq!(
        types.iter().filter(|t| **t == "company.assessed").count(),
        6
    );
    // DOMESTIC (registration) -> DOMESTIC, FIRST_EXPORT, FIRST_EXPORT, PROMISING, PROMISING, STRONG
    assert_eq!(
        types
            .iter()
            .filter(|t| **t == "company.stage_changed")
            .count(),
        3
    );
}

#[tokio::test]
async fn a_diagnosis_needs_answers_and_a_known_company() {
    let intake = Intake::start().await;
    let company = intake.register(&registration_number(101), 0, false).await;
    let status = intake
        .agency()
        .diagnose_readiness(pb::DiagnoseReadinessRequest {
            idempotency_key: String::new(),
            company_id: company.company_id.clone(),
            answers: Some(pb::ReadinessAnswers {
                certifications: vec![String::new()],
                ..Default::default()
            }),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        vec!["answers.certifications[0]", "answers.export_revenue"]
    );

    let status = intake
        .agency()
        .diagnose_readiness(pb::DiagnoseReadinessRequest {
            idempotency_key: String::new(),
            company_id: uuid::Uuid::now_v7().to_string(),
            answers: Some(answers(0)),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::NotFound);
    assert_eq!(intake.count("assessment").await, 0);
}
