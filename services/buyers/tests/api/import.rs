use onestop_buyers::admin::import_buyers::{Progress, import_file};
use onestop_contracts::event_types::BuyersEvent;

use crate::common::Buyers;

#[tokio::test]
async fn csv_import_reports_bad_rows_by_line_and_a_rerun_adds_nothing() {
    let buyers = Buyers::start().await;
    let dir = std::env::temp_dir().join(format!("buyers-import-{}", uuid_like()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("buyers.csv");
    std::fs::write(
        &file,
        "ref,company_name,country,city,time_zone,hs_codes,languages,annual_import_usd,contact_name,contact_title,contact_email,contact_phone,website\n\
         NY-1,Atlantic Beauty,US,New York,America/New_York,330499;3305,en,250000,Dana W,Buyer,dana@example.com,,\n\
         NY-2,Bad Country,USA,New York,America/New_York,330499,en,lots,,,,,\n\
         NY-3,Hudson Imports,US,Albany,America/New_York,3304 330410,en es,90000,Lee Park,,,+1 518 555 0101,\n\
         ,No Ref,US,Boston,America/Nowhere,330499,en,100,,,,,\n",
    )
    .unwrap();
    let report = import_file(&buyers.pool, &file, "kbc-newyork", Progress::Quiet)
        .await
        .unwrap();
    assert_eq!(report.created, 2);
    let lines: Vec<u64> = report.rejected.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, vec![3, 5]);
    assert!(report.rejected[0].1.contains("country"));
    assert!(report.rejected[0].1.contains("annual_import_usd"));
    assert!(report.rejected[1].1.contains("ref"));
    assert!(report.rejected[1].1.contains("time_zone"));
    assert_eq!(buyers.count("buyer").await, 2);
    assert_eq!(buyers.count_events(BuyersEvent::BuyerRegistered).await, 2);

    let rerun = import_file(&buyers.pool, &file, "kbc-newyork", Progress::Quiet)
        .await
        .unwrap();
    assert_eq!((rerun.created, rerun.already_present), (0, 2));
    assert_eq!(buyers.count("buyer").await, 2);
    assert_eq!(buyers.count_events(BuyersEvent::BuyerRegistered).await, 2);
    let codes: Vec<String> =
        sqlx::query_scalar("SELECT unnest(hs_codes) FROM buyer WHERE external_ref = 'NY-3'")
            .fetch_all(&buyers.pool)
            .await
            .unwrap();
    assert_eq!(codes, vec!["3304", "330410"]);
    std::fs::remove_dir_all(dir).ok();
}

fn uuid_like() -> String {
    format!("{}-{:?}", std::process::id(), std::thread::current().id()).replace(['(', ')'], "")
}

#[tokio::test]
async fn seeding_the_demo_buyers_twice_registers_and_verifies_each_once() {
    let buyers = crate::common::Buyers::start().await;
    let url = format!("http://{}", buyers.addr);
    for _ in 0..2 {
        let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_onestop-buyers"))
            .args(["seed-buyers", "--url", &url])
            .env("RUST_LOG", "warn")
            .output()
            .await
            .expect("seed-buyers runs");
        assert!(
            output.status.success(),
            "seed-buyers failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }
    let listed = buyers
        .admin()
        .list_buyers(onestop_contracts::buyers::v1::ListBuyersRequest {
            matchable_only: true,
            ..Default::default()
        })
        .await
        .expect("lists buyers")
        .into_inner()
        .buyers;
    assert_eq!(listed.len(), 6, "six demo buyers, each once and matchable");
}
