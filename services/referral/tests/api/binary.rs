use onestop_contracts::common::v1::NeedCategory;
use onestop_contracts::referral::v1 as pb;
use onestop_contracts::referral::v1::referral_service_client::ReferralServiceClient;
use onestop_platform::Role;
use onestop_test_support::{Bearer, ServiceProcess, TestDb, channel};

use crate::common::create_request;

const BINARY: &str = env!("CARGO_BIN_EXE_onestop-referral");

async fn seed_directory(db: &TestDb) -> String {
    let output = tokio::process::Command::new(BINARY)
        .arg("seed-directory")
        .env("DATABASE_URL", &db.url)
        .env("RUST_LOG", "warn")
        .output()
        .await
        .expect("binary runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout).unwrap()
}

#[tokio::test]
async fn the_seed_command_loads_once_and_the_served_directory_routes_by_agency_id() {
    let db = TestDb::new().await;
    let first = seed_directory(&db).await;
    assert!(first.contains("5 agencies (5 new or changed)"), "{first}");
    let second = seed_directory(&db).await;
    assert!(second.contains("(0 new or changed)"), "{second}");
    assert!(!second.contains("programs (1"), "{second}");

    let service = ServiceProcess::spawn(BINARY, &[("DATABASE_URL", db.url.as_str())]).await;
    let client = |role: Role, tenant: Option<&str>| {
        ReferralServiceClient::with_interceptor(channel(service.addr), Bearer::role(role, tenant))
    };
    let mut intake = client(Role::Service, None);
    let finance = intake
        .create_referral(create_request("need-finance", NeedCategory::ExportFinance))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(finance.legs[0].program_id, "sbc.export-financing");
    let marketing = intake
        .create_referral(create_request("need-marketing", NeedCategory::Marketing))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(marketing.legs[0].agency_id, "kotra");
    let certification = intake
        .create_referral(create_request("need-cert", NeedCategory::Certification))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(
        certification.legs[0].program_id,
        "export-centers.kr-26.export-support"
    );

    // SBC's token sees and accepts its referral; KOTRA's does not see it.
    let mut sbc = client(Role::Agency, Some("sbc"));
    let inbox = sbc
        .list_referrals(pb::ListReferralsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(inbox.referrals.len(), 1);
    sbc.accept_referral(pb::AcceptReferralRequest {
        referral_id: finance.referral_id.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    let hidden = client(Role::Agency, Some("kotra"))
        .get_referral(pb::GetReferralRequest {
            referral_id: finance.referral_id,
        })
        .await
        .unwrap_err();
    assert_eq!(hidden.code(), tonic::Code::NotFound);
    service.terminate();
}
