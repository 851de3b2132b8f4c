//! One trace per intake request, carried through the outbox into every
//! owner's spans.

use std::time::Duration;

use onestop_contracts::common::v1::{Money, NeedCategory};
use onestop_contracts::intake::v1 as pb;
use onestop_test_support::{Bearer, IntakeClient, eventually};

use crate::support;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_open_case_is_one_trace_across_all_four_services() {
    let (suite, receiver) = support::start_traced(&[]).await;
    let mut intake: IntakeClient = suite.client("intake", Bearer::agency("kotra"));
    let company = intake
        .register_company(pb::RegisterCompanyRequest {
            idempotency_key: String::new(),
            network_consent: None,
            profile: Some(pb::CompanyProfile {
                business_registration_number: "107-86-14075".into(),
                name_ko: "바다식품".into(),
                name_en: "Bada Foods".into(),
                region: "KR-48".into(),
                industry_ksic: "10219".into(),
                hs_codes: vec!["030741".into()],
                employees: 12,
                annual_revenue: Some(Money {
                    currency_code: "KRW".into(),
                    amount_minor: 900_000_000,
                }),
                export_revenue: Some(Money {
                    currency_code: "USD".into(),
                    amount_minor: 0,
                }),
                languages: vec!["ko".into()],
                ..Default::default()
            }),
        })
        .await
        .expect("company registers")
        .into_inner();
    // Traces start at intake's OpenCase; its spans carry the trace id.
    let opened = intake
        .open_case(pb::OpenCaseRequest {
            idempotency_key: String::new(),
            company_id: company.company_id,
            needs: vec![
                pb::NeedRequest {
                    category: NeedCategory::BuyerDiscovery as i32,
                    detail: "Importers of dried squid".into(),
                    target_markets: vec!["JP".into()],
                    hs_codes: vec!["030741".into()],
                    ..Default::default()
                },
                pb::NeedRequest {
                    category: NeedCategory::ExportFinance as i32,
                    detail: "Pre-shipment finance".into(),
                    target_markets: vec![],
                    hs_codes: vec![],
                    ..Default::default()
                },
            ],
        })
        .await
        .expect("case opens")
        .into_inner();
    assert_eq!(
        opened.needs.len(),
        3,
        "MENTORING is added for a domestic company"
    );

    let services = [
        "onestop-intake",
        "onestop-mentoring",
        "onestop-buyers",
        "onestop-referral",
    ];
    let shared_trace = || {
        let spans = receiver.spans();
        spans
            .iter()
            .filter(|s| s.service == "onestop-intake" && s.name.contains("OpenCase"))
            .map(|s| s.trace_id.clone())
            .find(|trace| {
                services.iter().all(|service| {
                    spans
                        .iter()
                        .any(|s| &s.service == service && &s.trace_id == trace)
                })
            })
    };
    let found = eventually(Duration::from_secs(30), || async {
        shared_trace().is_some()
    })
    .await;
    if !found {
        let spans = receiver.spans();
        let summary: Vec<String> = spans
            .iter()
            .map(|s| {
                format!(
                    "{} {} {:02x?}",
                    s.service,
                    s.name,
                    &s.trace_id[..4.min(s.trace_id.len())]
                )
            })
            .collect();
        panic!("no trace spans all four services; received: {summary:#?}");
    }
    suite.stop().await;
}
