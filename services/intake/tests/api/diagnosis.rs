use onestop_contracts::common::v1::GrowthStage;
use onestop_contracts::event_types::IntakeEvent;
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
        .kotra()
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
        .kotra()
        .get_company(pb::GetCompanyRequest {
            company_id: company.company_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(company.stage, GrowthStage::Strong as i32);
    assert_eq!(company.assessment_version, 6);
    assert_eq!(company.readiness_score, 75);

    // Newest first, a page at a time.
    let list = |page_token: String| {
        let mut client = intake.kotra();
        let company_id = company.company_id.clone();
        async move {
            client
                .list_assessments(pb::ListAssessmentsRequest {
                    company_id,
                    page_size: 4,
                    page_token,
                })
                .await
        }
    };
    let first = list(String::new()).await.unwrap().into_inner();
    assert!(!first.next_page_token.is_empty());
    let second = list(first.next_page_token.clone())
        .await
        .unwrap()
        .into_inner();
    assert!(second.next_page_token.is_empty());
    let versions: Vec<u32> = first
        .assessments
        .iter()
        .chain(&second.assessments)
        .map(|a| a.version)
        .collect();
    assert_eq!(versions, vec![6, 5, 4, 3, 2, 1]);
    let forged = list("v1:6".into()).await.unwrap_err();
    assert_eq!(violations(&forged), vec!["page_token"]);

    assert_eq!(intake.count_events(IntakeEvent::CompanyAssessed).await, 6);
    // DOMESTIC (registration) -> DOMESTIC, FIRST_EXPORT, FIRST_EXPORT, PROMISING, PROMISING, STRONG
    assert_eq!(
        intake.count_events(IntakeEvent::CompanyStageChanged).await,
        3
    );
}

#[tokio::test]
async fn a_diagnosis_needs_answers_and_a_known_company() {
    let intake = Intake::start().await;
    let company = intake.register(&registration_number(101), 0, false).await;
    let status = intake
        .kotra()
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
        .kotra()
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
