use onestop_buyers::admin::import_buyers::{Progress, import_file};
use onestop_contracts::event_types::BuyersEvent;

use crate::common::Buyers;

#[tokio::test]
async fn csv_import_reports_bad_rows_by_line_and_column_and_a_rerun_adds_nothing() {
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
         ,No Ref,US,Boston,America/Nowhere,330499,en,100,,,,,\n\
         NY-4,Empire Cosmetics,US,Buffalo,America/New_York,\"330499,330410\",\"en,es\",\"1,200,000\",Kim,,kim.example.com,,\n\
         NY-5,Empire Cosmetics,US,Buffalo,America/New_York,\"330499,330410\",\"en,es\",\"1,200,000\",Kim,,kim@example.com,,\n\
         NY-1,Atlantic Beauty Again,US,New York,America/New_York,330499,en,250000,,,,,\n",
    )
    .unwrap();
    let report = import_file(&buyers.pool, &file, "kbc-newyork", Progress::Quiet)
        .await
        .unwrap();
    assert_eq!(report.created, 3, "{report:?}");
    let lines: Vec<u64> = report.rejected.iter().map(|(line, _)| *line).collect();
    assert_eq!(lines, vec![3, 5, 6, 8], "{report:?}");
    let reason = |line: u64| {
        report
            .rejected
            .iter()
            .find(|(at, _)| *at == line)
            .map(|(_, reason)| reason.as_str())
            .unwrap_or_default()
    };
    assert!(reason(3).contains("column country:"), "{report:?}");
    assert!(
        reason(3).contains("column annual_import_usd:"),
        "{report:?}"
    );
    assert!(reason(5).contains("column ref:"), "{report:?}");
    assert!(reason(5).contains("column time_zone:"), "{report:?}");
    assert!(reason(6).contains("column contact_email:"), "{report:?}");
    assert!(!reason(6).contains("contacts["), "{report:?}");
    assert!(
        reason(8).contains("column ref: duplicates line 2"),
        "{report:?}"
    );
    assert_eq!(buyers.count("buyer").await, 3);
    assert_eq!(buyers.count_events(BuyersEvent::BuyerRegistered).await, 3);

    let rerun = import_file(&buyers.pool, &file, "kbc-newyork", Progress::Quiet)
        .await
        .unwrap();
    assert_eq!((rerun.created, rerun.already_present), (0, 3));
    assert_eq!(buyers.count("buyer").await, 3);
    assert_eq!(buyers.count_events(BuyersEvent::BuyerRegistered).await, 3);
    for (reference, expected) in [("NY-3", ["3304", "330410"]), ("NY-5", ["330499", "330410"])] {
        let codes: Vec<String> =
            sqlx::query_scalar("SELECT unnest(hs_codes) FROM buyer WHERE external_ref = $1")
                .bind(reference)
                .fetch_all(&buyers.pool)
                .await
                .unwrap();
        assert_eq!(codes, expected);
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Runs `import-buyers` on `csv` against `database_url`.
async fn import_command(
    database_url: &str,
    csv: &str,
    office_args: &[&str],
) -> std::process::Output {
    let dir = std::env::temp_dir().join(format!(
        "buyers-import-cli-{}",
        uuid::Uuid::new_v4().simple()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("buyers.csv");
    std::fs::write(&file, csv).unwrap();
    let output = tokio::process::Command::new(env!("CARGO_BIN_EXE_onestop-buyers"))
        .arg("import-buyers")
        .arg("--file")
        .arg(&file)
        .args(office_args)
        .env("DATABASE_URL", database_url)
        .env("RUST_LOG", "warn")
        .env("RUST_BACKTRACE", "1")
        .output()
        .await
        .expect("import-buyers runs");
    std::fs::remove_dir_all(dir).ok();
    output
}

#[tokio::test]
async fn import_buyers_refuses_a_wrong_header_an_unknown_office_and_fails_on_rejected_rows() {
    let buyers = Buyers::start().await;
    let url = buyers.database_url.clone();
    const HEADER: &str = "ref,company_name,country,city,time_zone,hs_codes,languages\n";
    let good = format!("{HEADER}LA-1,Pacific Glow,US,Los Angeles,America/Los_Angeles,330499,en\n");
    let stderr =
        |output: &std::process::Output| String::from_utf8_lossy(&output.stderr).into_owned();

    let unknown = import_command(&url, &good, &["--trade-office", "kbc-losangeles"]).await;
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("--new-office"),
        "{}",
        stderr(&unknown)
    );
    assert_eq!(buyers.count("buyer").await, 0);

    let first = import_command(
        &url,
        &good,
        &["--trade-office", "kbc-losangeles", "--new-office"],
    )
    .await;
    assert!(first.status.success(), "{}", stderr(&first));
    assert_eq!(buyers.count("buyer").await, 1);

    let wrong_header = import_command(
        &url,
        "reference,name,country\nLA-2,Sunset Trading,US\n",
        &["--trade-office", "kbc-losangeles"],
    )
    .await;
    assert!(!wrong_header.status.success());
    let said = stderr(&wrong_header);
    assert!(
        said.contains("no column ref, company_name")
            && said.contains("unknown column reference, name"),
        "{said}"
    );
    assert_eq!(said.lines().count(), 1, "{said}");

    let with_a_bad_row =
        format!("{HEADER}LA-3,Sunset Trading,USA,Los Angeles,America/Los_Angeles,330499,en\n");
    let rejected =
        import_command(&url, &with_a_bad_row, &["--trade-office", "kbc-losangeles"]).await;
    assert!(!rejected.status.success());
    let report = String::from_utf8_lossy(&rejected.stdout);
    assert!(report.contains("line 2: column country:"), "{report}");
    assert!(
        stderr(&rejected).contains("1 rows rejected"),
        "{}",
        stderr(&rejected)
    );
    assert_eq!(buyers.count("buyer").await, 1);
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
            .env("ONESTOP_DEV_MODE", "true")
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
