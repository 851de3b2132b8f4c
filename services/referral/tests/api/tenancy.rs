use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::referral::v1::{self as pb, ReferralStatus};
use tonic::Code;

use crate::common::{Client, Referral, create_request, program};
use crate::lifecycle::{ALL_MOVES, Move, make};

async fn inbox(client: &mut Client, request: pb::ListReferralsRequest) -> Vec<String> {
    client
        .list_referrals(request)
        .await
        .unwrap()
        .into_inner()
        .referrals
        .into_iter()
        .map(|r| r.need_id)
        .collect()
}

/// Alpha and beta each run one MARKETING program for a different stage,
/// so a domestic company's needs go to alpha and a promising one's to beta.
async fn two_agencies(referral: &Referral) {
    referral.add_agency("alpha").await;
    referral.add_agency("beta").await;
    let mut a = program("alpha.listing", "alpha", NeedCategory::Marketing);
    a.eligibility.as_mut().unwrap().stages = vec![1];
    let mut b = program("beta.listing", "beta", NeedCategory::Marketing);
    b.eligibility.as_mut().unwrap().stages = vec![3];
    referral.add_program(a).await;
    referral.add_program(b).await;
}

async fn create_for(referral: &Referral, need: &str, stage: i32) -> pb::Referral {
    let mut request = create_request(need, NeedCategory::Marketing);
    request.company.as_mut().unwrap().stage = stage;
    referral.create_with(request).await
}

#[tokio::test]
async fn an_agency_cannot_read_or_act_on_another_agencys_referral_through_any_rpc() {
    let referral = Referral::start().await;
    two_agencies(&referral).await;
    let alphas = create_for(&referral, "need-alpha", 1).await;
    let betas = create_for(&referral, "need-beta", 3).await;
    assert_eq!(alphas.legs[0].agency_id, "alpha");
    assert_eq!(betas.legs[0].agency_id, "beta");

    let mut beta = referral.agency("beta");
    let error = beta
        .get_referral(pb::GetReferralRequest {
            referral_id: alphas.referral_id.clone(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
    assert!(!error.message().contains("alpha"));
    for action in ALL_MOVES {
        let error = make(&mut beta, action, &alphas.referral_id)
            .await
            .unwrap_err();
        let expected = if action == Move::Cancel {
            // Agencies never cancel, whoever's referral it is.
            Code::PermissionDenied
        } else {
            Code::NotFound
        };
        assert_eq!(error.code(), expected, "{action:?}");
    }
    // Asking for alpha's inbox with a beta token still lists beta's only.
    assert_eq!(
        inbox(
            &mut beta,
            pb::ListReferralsRequest {
                agency_id: "alpha".into(),
                ..Default::default()
            }
        )
        .await,
        ["need-beta"]
    );
    assert_eq!(
        inbox(
            &mut beta,
            pb::ListReferralsRequest {
                need_id: "need-alpha".into(),
                ..Default::default()
            }
        )
        .await,
        Vec::<String>::new()
    );
    // Nothing changed for alpha.
    assert_eq!(referral.get(&alphas.referral_id).await, alphas);

    // The dashboard reads everything, and filters by agency.
    let mut dashboard = referral.dashboard();
    assert_eq!(
        inbox(&mut dashboard, pb::ListReferralsRequest::default()).await,
        ["need-beta", "need-alpha"]
    );
    assert_eq!(
        inbox(
            &mut dashboard,
            pb::ListReferralsRequest {
                agency_id: "alpha".into(),
                ..Default::default()
            }
        )
        .await,
        ["need-alpha"]
    );
    // Advisors and trade offices have no business with referrals.
    for role in [
        onestop_platform::Role::Advisor,
        onestop_platform::Role::TradeOffice,
    ] {
        let error = referral
            .api(onestop_test_support::Bearer::role(role, Some("someone")))
            .get_referral(pb::GetReferralRequest {
                referral_id: alphas.referral_id.clone(),
            })
            .await
            .unwrap_err();
        assert_eq!(error.code(), Code::PermissionDenied);
    }
    // An unknown id is as absent as another agency's.
    let error = beta
        .get_referral(pb::GetReferralRequest {
            referral_id: uuid_like(),
        })
        .await
        .unwrap_err();
    assert_eq!(error.code(), Code::NotFound);
}

fn uuid_like() -> String {
    "0190f0a8-0000-7000-8000-0000000000ff".into()
}

#[tokio::test]
async fn the_inbox_filters_by_status_and_pages_with_a_cursor() {
    let referral = Referral::start().await;
    two_agencies(&referral).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        ids.push(
            create_for(&referral, &format!("need-{n}"), 1)
                .await
                .referral_id,
        );
    }
    create_for(&referral, "need-beta", 3).await;
    let mut alpha = referral.agency("alpha");
    for id in &ids[..2] {
        make(&mut alpha, Move::Accept, id).await.unwrap();
    }
    let sent = inbox(
        &mut alpha,
        pb::ListReferralsRequest {
            statuses: vec![ReferralStatus::Sent as i32],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(sent, ["need-4", "need-3", "need-2"]);
    let accepted = inbox(
        &mut alpha,
        pb::ListReferralsRequest {
            statuses: vec![ReferralStatus::Accepted as i32],
            ..Default::default()
        },
    )
    .await;
    assert_eq!(accepted, ["need-1", "need-0"]);

    let mut pages = Vec::new();
    let mut token = String::new();
    loop {
        let page = alpha
            .list_referrals(pb::ListReferralsRequest {
                page_size: 2,
                page_token: token.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        pages.push(
            page.referrals
                .iter()
                .map(|r| r.need_id.clone())
                .collect::<Vec<_>>(),
        );
        token = page.next_page_token;
        if token.is_empty() {
            break;
        }
    }
    assert_eq!(
        pages,
        [
            vec!["need-4", "need-3"],
            vec!["need-2", "need-1"],
            vec!["need-0"]
        ]
    );

    let error = alpha
        .list_referrals(pb::ListReferralsRequest {
            statuses: vec![42],
            page_size: 0,
            page_token: "garbage".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(
        crate::common::violations(&error),
        ["page_token", "statuses[0]"]
    );
}

#[tokio::test]
async fn after_a_reroute_each_agency_sees_only_its_own_leg() {
    let referral = Referral::start().await;
    two_agencies(&referral).await;
    // Beta's program now takes domestic companies too, ranked below alpha's.
    let mut b = program("beta.listing", "beta", NeedCategory::Marketing);
    b.monthly_fee = Some(crate::common::krw(100_000));
    referral.add_program(b).await;
    let sent = create_for(&referral, "need-x", 1).await;
    assert_eq!(sent.legs[0].agency_id, "alpha");
    make(
        &mut referral.agency("alpha"),
        Move::Decline,
        &sent.referral_id,
    )
    .await
    .unwrap();

    let mut alpha = referral.agency("alpha");
    let seen_by_alpha = alpha
        .get_referral(pb::GetReferralRequest {
            referral_id: sent.referral_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen_by_alpha.legs.len(), 1);
    assert_eq!(seen_by_alpha.legs[0].agency_id, "alpha");
    let mut beta = referral.agency("beta");
    let seen_by_beta = beta
        .get_referral(pb::GetReferralRequest {
            referral_id: sent.referral_id.clone(),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(seen_by_beta.legs.len(), 1);
    assert_eq!(seen_by_beta.legs[0].leg_number, 2);

    // Alpha's inbox drops it unless asked for what was re-routed away.
    assert!(
        inbox(&mut alpha, pb::ListReferralsRequest::default())
            .await
            .is_empty()
    );
    assert_eq!(
        inbox(
            &mut alpha,
            pb::ListReferralsRequest {
                include_rerouted_away: true,
                ..Default::default()
            }
        )
        .await,
        ["need-x"]
    );
    assert_eq!(
        inbox(&mut beta, pb::ListReferralsRequest::default()).await,
        ["need-x"]
    );
    make(&mut beta, Move::Accept, &sent.referral_id)
        .await
        .unwrap();
    assert_eq!(referral.get(&sent.referral_id).await.legs.len(), 2);
}

#[tokio::test]
async fn dashboards_read_referrals_without_free_text() {
    let referral = Referral::start().await;
    two_agencies(&referral).await;
    let created = create_for(&referral, "need-text", 1).await;
    assert!(!created.detail.is_empty(), "the hand-off carries a detail");
    let read = |mut client: Client| {
        let id = created.referral_id.clone();
        async move {
            client
                .get_referral(pb::GetReferralRequest { referral_id: id })
                .await
                .unwrap()
                .into_inner()
        }
    };
    assert!(read(referral.dashboard()).await.detail.is_empty());
    assert_eq!(read(referral.admin()).await.detail, created.detail);
    let listed = referral
        .dashboard()
        .list_referrals(pb::ListReferralsRequest::default())
        .await
        .unwrap()
        .into_inner()
        .referrals;
    assert!(listed.iter().all(|r| r.detail.is_empty()));
}
