//! Who reads what: dashboards and admins everything, an agency its own
//! agency's figures only, nobody else anything; bad filters are refused
//! field by field.

use onestop_contracts::insights::v1 as pb;
use onestop_platform::Role;
use onestop_test_support::{Bearer, InsightsClient, violations};
use tonic::Code;

use crate::common::{Feeds, Insights, filter};
use crate::projections::settled;
use crate::scenario;

async fn get(
    insights: &Insights,
    bearer: Bearer,
    filter: pb::IndicatorFilter,
) -> Result<pb::Indicators, tonic::Status> {
    insights
        .client::<InsightsClient>(bearer)
        .get_indicators(pb::GetIndicatorsRequest {
            filter: Some(filter),
        })
        .await
        .map(|r| r.into_inner())
}

#[tokio::test]
async fn an_agency_sees_its_own_funnel_and_events_and_never_another_agencys() {
    let feeds = Feeds::start().await;
    let insights = Insights::start(feeds.settings()).await;
    scenario::month(&feeds).await;
    insights.once(filter(), settled).await;

    let sbc = get(&insights, Bearer::agency("sbc"), filter())
        .await
        .unwrap();
    assert_eq!(sbc.agency_id, "sbc");
    let agencies: Vec<&str> = sbc
        .referral_funnel
        .iter()
        .map(|a| a.agency_id.as_str())
        .collect();
    assert_eq!(agencies, ["sbc"]);
    assert_eq!(sbc.referral_funnel[0].total.unwrap().completed, 1);
    assert!(!sbc.recent_events.is_empty());
    assert!(
        sbc.recent_events.iter().all(|e| e.source == "referral"),
        "only referral-side events about its own referrals: {:?}",
        sbc.recent_events
    );
    assert!(
        sbc.recent_events
            .iter()
            .all(|e| !e.summary.contains("kotra")),
        "{:?}",
        sbc.recent_events
    );
    // Nothing beyond its agency: no cross-agency sections, no feed state.
    assert!(sbc.buyer_vetting.is_none() && sbc.cases.is_none() && sbc.deals.is_none());
    assert!(sbc.advisors.is_none() && sbc.fees.is_none() && sbc.feeds.is_empty());

    let kotra = get(&insights, Bearer::agency("kotra"), filter())
        .await
        .unwrap();
    assert!(kotra.referral_funnel.iter().all(|a| a.agency_id == "kotra"));
    assert!(
        kotra
            .recent_events
            .iter()
            .all(|e| !e.summary.starts_with("sbc.")),
        "{:?}",
        kotra.recent_events
    );

    // Asking for another agency's figures is refused outright.
    let denied = get(
        &insights,
        Bearer::agency("sbc"),
        pb::IndicatorFilter {
            agency_id: "kotra".into(),
            ..filter()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(denied.code(), Code::PermissionDenied);
    let mut watch = insights
        .client::<InsightsClient>(Bearer::agency("sbc"))
        .watch_indicators(pb::WatchIndicatorsRequest {
            filter: Some(pb::IndicatorFilter {
                agency_id: "kotra".into(),
                ..filter()
            }),
        })
        .await;
    if let Ok(stream) = &mut watch {
        let first = stream.get_mut().message().await;
        assert!(first.is_err(), "{first:?}");
    } else {
        assert_eq!(watch.unwrap_err().code(), Code::PermissionDenied);
    }

    // A dashboard may narrow to one agency, and sees every section.
    let dashboard = get(
        &insights,
        Bearer::dashboard(),
        pb::IndicatorFilter {
            agency_id: "kotra".into(),
            ..filter()
        },
    )
    .await
    .unwrap();
    assert!(
        dashboard
            .referral_funnel
            .iter()
            .all(|a| a.agency_id == "kotra")
    );
    assert!(dashboard.buyer_vetting.is_some());
    let admin = get(&insights, Bearer::admin(), filter()).await.unwrap();
    assert!(admin.referral_funnel.len() >= 2);
}

#[tokio::test]
async fn other_roles_and_anonymous_callers_are_refused() {
    let feeds = Feeds::start().await;
    let insights = Insights::start(feeds.settings()).await;
    for (role, tenant) in [
        (Role::Advisor, Some("advisor-1")),
        (Role::TradeOffice, Some("kotra-new-york")),
        (Role::Service, None),
    ] {
        let status = get(&insights, Bearer::role(role, tenant), filter())
            .await
            .unwrap_err();
        assert_eq!(status.code(), Code::PermissionDenied, "{role}");
    }
    let status = get(&insights, Bearer::anonymous(), filter())
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unauthenticated);
    let report = insights
        .client::<InsightsClient>(Bearer::role(Role::Advisor, Some("advisor-1")))
        .export_report(pb::ExportReportRequest {
            filter: Some(filter()),
        })
        .await
        .map(|_| ())
        .unwrap_err();
    assert_eq!(report.code(), Code::PermissionDenied);
}

#[tokio::test]
async fn bad_filters_are_refused_with_every_field_named() {
    let feeds = Feeds::start().await;
    let insights = Insights::start(feeds.settings()).await;
    let status = get(
        &insights,
        Bearer::dashboard(),
        pb::IndicatorFilter {
            period: Some(pb::Period {
                start_month: "2026-3".into(),
                end_month: "march".into(),
            }),
            province: "KR-99".into(),
            agency_id: "SBC!".into(),
        },
    )
    .await
    .unwrap_err();
    assert_eq!(status.code(), Code::InvalidArgument);
    assert_eq!(
        violations(&status),
        [
            "filter.agency_id",
            "filter.period.end_month",
            "filter.period.start_month",
            "filter.province"
        ]
    );
    let too_long = get(
        &insights,
        Bearer::dashboard(),
        pb::IndicatorFilter {
            period: Some(pb::Period {
                start_month: "2020-01".into(),
                end_month: "2026-01".into(),
            }),
            ..Default::default()
        },
    )
    .await
    .unwrap_err();
    assert_eq!(violations(&too_long), ["filter.period"]);
}
