use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::event_types::BuyersEvent;
use tonic::Code;

use crate::common::{Buyers, buyer_profile, error_reason, violations};

fn ratings(price: u32, quality: u32, packaging: u32, labelling: u32) -> Option<pb::SampleRatings> {
    Some(pb::SampleRatings {
        price,
        quality,
        packaging,
        labelling,
    })
}

async fn feedback(
    buyers: &Buyers,
    test: &str,
    buyer: &str,
    r: Option<pb::SampleRatings>,
    gaps: &[&str],
    would_order: bool,
) -> Result<pb::SampleFeedback, tonic::Status> {
    buyers
        .trade_office("kbc")
        .record_sample_feedback(pb::RecordSampleFeedbackRequest {
            sample_test_id: test.into(),
            buyer_id: buyer.into(),
            ratings: r,
            certification_gaps: gaps.iter().map(|g| g.to_string()).collect(),
            would_order,
            ..Default::default()
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn sample_feedback_aggregates_and_certification_gaps_raise_events() {
    let buyers = Buyers::start().await;
    let us = buyers
        .verified(
            "kbc",
            buyer_profile("US buyer", "US", &["330499"], &["en"]),
            80,
        )
        .await;
    let ae = buyers
        .verified(
            "kbc",
            buyer_profile("Gulf buyer", "AE", &["330499"], &["ar"]),
            70,
        )
        .await;
    let de = buyers
        .verified(
            "kbc",
            buyer_profile("EU buyer", "DE", &["3304"], &["de"]),
            60,
        )
        .await;
    let unverified = buyers
        .register(
            "kbc",
            buyer_profile("New buyer", "FR", &["330499"], &["fr"]),
        )
        .await;

    let start = |ids: Vec<String>| {
        let mut client = buyers.admin();
        async move {
            client
                .start_sample_test(pb::StartSampleTestRequest {
                    company_id: "company-s".into(),
                    product_name: "Green tea toner".into(),
                    hs_code: "330499".into(),
                    buyer_ids: ids,
                    need_id: "need-s".into(),
                    case_id: "case-s".into(),
                    ..Default::default()
                })
                .await
        }
    };
    let refused = start(vec![us.clone(), unverified.buyer_id.clone()])
        .await
        .unwrap_err();
    assert_eq!(violations(&refused), vec!["buyer_ids[1]"]);
    assert_eq!(buyers.count("sample_test").await, 0);

    let test = start(vec![us.clone(), ae.clone(), de.clone()])
        .await
        .unwrap()
        .into_inner();
    assert_eq!(test.status, pb::SampleTestStatus::Collecting as i32);
    assert_eq!(buyers.count_events(BuyersEvent::SampleStarted).await, 1);
    let id = test.sample_test_id.clone();

    feedback(&buyers, &id, &us, ratings(4, 5, 3, 2), &["FDA"], true)
        .await
        .unwrap();
    feedback(
        &buyers,
        &id,
        &ae,
        ratings(2, 4, 4, 3),
        &["halal", "FDA"],
        false,
    )
    .await
    .unwrap();
    let again = feedback(&buyers, &id, &us, ratings(1, 1, 1, 1), &[], false)
        .await
        .unwrap_err();
    assert_eq!(again.code(), Code::AlreadyExists);
    assert_eq!(error_reason(&again), "FEEDBACK_EXISTS");
    let outsider = feedback(
        &buyers,
        &id,
        &unverified.buyer_id,
        ratings(3, 3, 3, 3),
        &[],
        false,
    )
    .await
    .unwrap_err();
    assert_eq!(outsider.code(), Code::InvalidArgument);
    let bad = feedback(&buyers, &id, &de, ratings(0, 6, 3, 3), &["F D A!"], false)
        .await
        .unwrap_err();
    assert_eq!(
        violations(&bad),
        vec!["certification_gaps[0]", "ratings.price", "ratings.quality"]
    );

    let report = buyers
        .service()
        .get_sample_test_report(pb::GetSampleTestReportRequest {
            sample_test_id: id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(report.buyers_sent, 3);
    assert_eq!(report.responses, 2);
    let averages = report.averages.unwrap();
    assert_eq!(averages.price, 3.0);
    assert_eq!(averages.quality, 4.5);
    assert_eq!(averages.packaging, 3.5);
    assert_eq!(averages.labelling, 2.5);
    assert_eq!(report.would_order_count, 1);
    assert_eq!(report.certification_gaps.len(), 2);
    assert_eq!(report.certification_gaps[0].certification, "FDA");
    assert_eq!(report.certification_gaps[0].buyer_count, 2);
    assert_eq!(report.certification_gaps[0].countries, vec!["AE", "US"]);
    assert_eq!(report.certification_gaps[1].certification, "HALAL");
    assert_eq!(
        report.test.unwrap().status,
        pb::SampleTestStatus::Collecting as i32
    );

    let gaps: Vec<pb::SampleCertificationGap> = buyers
        .event_payloads(BuyersEvent::SampleCertificationGap)
        .await;
    assert_eq!(gaps.len(), 3);
    assert!(gaps.iter().all(|g| g.company_id == "company-s"
        && g.hs_code == "330499"
        && g.need_id == "need-s"
        && g.case_id == "case-s"));
    let named: Vec<(String, String)> = gaps
        .iter()
        .map(|g| (g.certification.clone(), g.country.clone()))
        .collect();
    assert!(named.contains(&("HALAL".into(), "AE".into())));
    assert_eq!(buyers.count_events(BuyersEvent::SampleFeedback).await, 2);

    feedback(&buyers, &id, &de, ratings(3, 3, 3, 3), &[], true)
        .await
        .unwrap();
    let done = buyers
        .service()
        .get_sample_test_report(pb::GetSampleTestReportRequest { sample_test_id: id })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        done.test.unwrap().status,
        pb::SampleTestStatus::Completed as i32
    );
}
