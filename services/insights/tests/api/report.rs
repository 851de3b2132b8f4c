//! The CSV report of a period, streamed in chunks.

use onestop_contracts::insights::v1 as pb;

use crate::common::{Feeds, Insights, filter, this_month};
use crate::projections::settled;
use crate::scenario;

#[tokio::test]
async fn the_report_holds_every_figure_of_the_period_as_csv_rows() {
    let feeds = Feeds::start().await;
    let insights = Insights::start(feeds.settings()).await;
    scenario::month(&feeds).await;
    insights.once(filter(), settled).await;

    let mut stream = insights
        .dashboard()
        .export_report(pb::ExportReportRequest {
            filter: Some(filter()),
        })
        .await
        .unwrap()
        .into_inner();
    let mut chunks = Vec::new();
    while let Some(chunk) = stream.message().await.unwrap() {
        chunks.push(chunk);
    }
    let month = this_month().start_month;
    assert_eq!(chunks[0].content_type, "text/csv; charset=utf-8");
    assert_eq!(chunks[0].file_name, format!("onestop-insights-{month}.csv"));
    assert!(chunks[1..].iter().all(|c| c.file_name.is_empty()));
    let csv = String::from_utf8(chunks.iter().flat_map(|c| c.chunk.clone()).collect()).unwrap();
    let rows: Vec<&str> = csv.lines().collect();
    assert_eq!(rows[0], "section,group,metric,value");
    for expected in [
        format!("period,,start_month,{month}"),
        "buyer_vetting,all,verified,2".into(),
        "buyer_vetting,all,verified_target,1000".into(),
        "buyer_vetting,trade_office=kotra-tokyo,rejected,1".into(),
        "consultations,all,companies,1".into(),
        "cases,province=KR-26;stage=FIRST_EXPORT,closed,1".into(),
        "needs,owner=REFERRAL;status=DONE,needs,1".into(),
        "referral_funnel,agency=sbc,completed,1".into(),
        "referral_funnel,agency=sbc;program=sbc.export-financing,accepted,1".into(),
        "advisors,all,waitlist,1".into(),
        "deals,market=US,confirmed_value_unconverted_CHF,500000".into(),
        "deals,all,confirmed_value_usd_cents,73000000".into(),
        "fees,currency=KRW,charged_minor,100000".into(),
    ] {
        assert!(
            rows.contains(&expected.as_str()),
            "{expected} not in\n{csv}"
        );
    }
    assert!(rows.iter().all(|row| row.split(',').count() == 4), "{csv}");
}
