//! Admin commands of the buyers binary: the CSV import of a trade office's
//! buyers, and the FindBuyers benchmark at registry scale.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::buyers::v1::buyer_service_client::BuyerServiceClient;
use onestop_contracts::common::v1::CompanySnapshot;
use onestop_platform::config::ServerSettings;
use onestop_platform::time::SystemClock;
use onestop_platform::{ApiError, Role, Violations};
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use tonic::metadata::MetadataValue;
use uuid::Uuid;

use crate::domain::buyer::BuyerProfile;
use crate::grpc::{self, Registered};
use crate::startup::{Application, SERVICE_NAME};

#[derive(Debug, Clone, clap::Subcommand)]
pub enum Command {
    #[command(flatten)]
    Platform(onestop_platform::cli::AdminCommand),
    /// Import a trade office's buyers from a CSV file (header row: ref,
    /// company_name, country, city, time_zone, hs_codes, languages,
    /// annual_import_usd, contact_name, contact_title, contact_email,
    /// contact_phone, website; lists separated by spaces or ';'). Good rows
    /// are stored as UNVERIFIED, bad rows are reported by line; rows whose
    /// ref the office already has are skipped, so a re-run adds nothing.
    ImportBuyers(ImportArgs),
    /// Register and verify the demo buyers (or those in --file) with the
    /// running service at ONESTOP_BUYERS_URL; seeding again changes nothing.
    SeedBuyers(crate::seed::SeedBuyersArgs),
    /// Load synthetic buyers into a scratch database created beside
    /// DATABASE_URL, serve them, and print FindBuyers latency percentiles
    /// against a GetBuyer baseline measured in the same run.
    BenchFindBuyers(BenchArgs),
}

#[derive(Debug, Clone, clap::Args)]
pub struct ImportArgs {
    /// The CSV file.
    #[arg(long)]
    pub file: PathBuf,
    /// The overseas office the buyers belong to.
    #[arg(long)]
    pub trade_office: String,
}

#[derive(Debug, Clone, clap::Args)]
pub struct BenchArgs {
    #[arg(long, default_value_t = 100_000)]
    pub buyers: u32,
    /// Timed calls of each kind.
    #[arg(long, default_value_t = 2_000)]
    pub queries: u32,
    /// Keep the scratch database afterwards.
    #[arg(long)]
    pub keep_database: bool,
}

pub async fn run(command: Command, settings: ServerSettings) -> anyhow::Result<()> {
    match command {
        Command::Platform(command) => {
            onestop_platform::cli::run(command, &settings, crate::startup::DEFAULT_PORT).await
        }
        Command::ImportBuyers(args) => import_buyers(args, settings).await,
        Command::SeedBuyers(args) => {
            let seeded = crate::seed::run(&settings, &args).await?;
            println!("{seeded} buyers registered and verified (or already there)");
            Ok(())
        }
        Command::BenchFindBuyers(args) => bench_find_buyers(args, settings).await,
    }
}

fn database_url(settings: &ServerSettings) -> anyhow::Result<String> {
    settings
        .database_url
        .clone()
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL is required"))
}

// ---------------------------------------------------------------- import

/// One CSV row turned into the wire profile, so the import validates
/// exactly as RegisterBuyer does.
fn row_profile(row: &csv::StringRecord, headers: &csv::StringRecord) -> pb::BuyerProfile {
    let get = |name: &str| {
        headers
            .iter()
            .position(|h| h.trim().eq_ignore_ascii_case(name))
            .and_then(|i| row.get(i))
            .unwrap_or_default()
            .trim()
            .to_owned()
    };
    let list = |name: &str| -> Vec<String> {
        get(name)
            .split([' ', ';'])
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect()
    };
    let volume = get("annual_import_usd");
    let contact = pb::Contact {
        name: get("contact_name"),
        title: get("contact_title"),
        email: get("contact_email"),
        phone: get("contact_phone"),
    };
    let has_contact =
        !(contact.name.is_empty() && contact.email.is_empty() && contact.phone.is_empty());
    pb::BuyerProfile {
        company_name: get("company_name"),
        country: get("country"),
        city: get("city"),
        time_zone: get("time_zone"),
        hs_codes: list("hs_codes"),
        industries_ksic: list("industries_ksic"),
        annual_import_volume: import_usd(&volume).map(|usd| onestop_contracts::common::v1::Money {
            currency_code: "USD".into(),
            amount_minor: usd.saturating_mul(100),
        }),
        languages: list("languages"),
        contacts: if has_contact { vec![contact] } else { vec![] },
        external_ref: get("ref"),
        website: get("website"),
    }
}

/// Whole US dollars, thousands separators allowed.
fn import_usd(text: &str) -> Option<i64> {
    text.replace(',', "").parse::<i64>().ok()
}

/// "field: reason" for each violation, with CSV column names.
fn describe(violations: Violations) -> String {
    let status: tonic::Status = ApiError::InvalidArgument(violations).into();
    use tonic_types::StatusExt;
    status
        .get_details_bad_request()
        .map(|bad| {
            bad.field_violations
                .into_iter()
                .map(|v| {
                    let field = v
                        .field
                        .strip_prefix("profile.")
                        .unwrap_or(&v.field)
                        .to_owned();
                    format!("{field}: {}", v.description)
                })
                .collect::<Vec<_>>()
                .join("; ")
        })
        .unwrap_or_default()
}

#[derive(Debug, Default)]
pub struct ImportReport {
    pub created: u32,
    pub already_present: u32,
    /// (line, reason), in file order.
    pub rejected: Vec<(u64, String)>,
}

/// Imports `file` for `office` into `pool`, reporting progress on stderr
/// when `progress` is set.
pub async fn import_file(
    pool: &PgPool,
    file: &std::path::Path,
    office: &str,
    progress: bool,
) -> anyhow::Result<ImportReport> {
    let mut reader = csv::ReaderBuilder::new()
        .flexible(true)
        .from_path(file)
        .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let headers = reader.headers()?.clone();
    let mut report = ImportReport::default();
    let mut rows = Vec::new();
    for record in reader.records() {
        match record {
            Ok(row) => rows.push(row),
            Err(error) => {
                let line = error.position().map(|p| p.line()).unwrap_or_default();
                report
                    .rejected
                    .push((line, format!("unreadable row: {error}")));
            }
        }
    }
    let total = rows.len();
    for (done, row) in rows.iter().enumerate() {
        let line = row.position().map(|p| p.line()).unwrap_or_default();
        let wire = row_profile(row, &headers);
        let mut violations = Violations::default();
        if wire.external_ref.is_empty() {
            violations.add("ref", "required, so a re-run recognises the row");
        }
        let volume = row
            .iter()
            .zip(headers.iter())
            .find(|(_, h)| h.trim().eq_ignore_ascii_case("annual_import_usd"))
            .map(|(v, _)| v.trim())
            .unwrap_or_default();
        if !volume.is_empty() && import_usd(volume).is_none() {
            violations.add("annual_import_usd", "a whole number of US dollars");
        }
        let profile = BuyerProfile::parse(&wire, "profile", &mut violations);
        match profile.filter(|_| violations.is_empty()) {
            None => report.rejected.push((line, describe(violations))),
            Some(profile) => {
                match grpc::register_buyer(pool, None, office, &profile, Utc::now()).await {
                    Ok(Registered::New(_)) => report.created += 1,
                    Ok(Registered::Existing(_)) => report.already_present += 1,
                    Err(error) => report.rejected.push((line, error.to_string())),
                }
            }
        }
        if progress && ((done + 1) % 25 == 0 || done + 1 == total) {
            eprint!(
                "\r{}/{} rows  {} new  {} already present  {} rejected",
                done + 1,
                total,
                report.created,
                report.already_present,
                report.rejected.len()
            );
        }
    }
    if progress {
        eprintln!();
    }
    report.rejected.sort_by_key(|(line, _)| *line);
    Ok(report)
}

async fn import_buyers(args: ImportArgs, settings: ServerSettings) -> anyhow::Result<()> {
    let office = args.trade_office.trim();
    if office.is_empty() {
        anyhow::bail!("--trade-office is required");
    }
    let pool = onestop_platform::db::connect(&database_url(&settings)?, 4).await?;
    onestop_platform::db::migrate(&pool, sqlx::migrate!("./migrations")).await?;
    let report = import_file(&pool, &args.file, office, true).await?;
    for (line, reason) in &report.rejected {
        println!("line {line}: {reason}");
    }
    println!(
        "{} created, {} already present, {} rejected",
        report.created,
        report.already_present,
        report.rejected.len()
    );
    Ok(())
}

// ------------------------------------------------------------- benchmark

/// A small deterministic generator, so every run loads the same registry.
struct Lcg(u64);

impl Lcg {
    fn next(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        self.0 >> 33
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const BENCH_COUNTRIES: [&str; 30] = [
    "US", "CA", "MX", "BR", "GB", "DE", "FR", "IT", "ES", "NL", "PL", "TR", "AE", "SA", "IN", "VN",
    "TH", "MY", "ID", "PH", "SG", "JP", "CN", "TW", "HK", "AU", "NZ", "ZA", "EG", "CL",
];
const BENCH_LANGUAGES: [&str; 10] = ["en", "es", "de", "fr", "vi", "ja", "zh", "ar", "pt", "ru"];
const BENCH_CHAPTERS: usize = 60;

fn bench_code(rng: &mut Lcg, six_digits: bool) -> String {
    let chapter = 1 + rng.below(BENCH_CHAPTERS);
    let heading = 1 + rng.below(20);
    if six_digits {
        format!("{chapter:02}{heading:02}{:02}", 10 * rng.below(10))
    } else {
        format!("{chapter:02}{heading:02}")
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

async fn load_synthetic(pool: &PgPool, count: u32) -> anyhow::Result<()> {
    let mut rng = Lcg(0x5eed);
    let now = Utc::now();
    let batch = 5_000u32;
    let mut loaded = 0u32;
    while loaded < count {
        let n = batch.min(count - loaded);
        let mut ids = Vec::new();
        let mut countries = Vec::new();
        let mut codes = Vec::new();
        let mut languages = Vec::new();
        let mut statuses = Vec::new();
        let mut scores = Vec::new();
        let mut vetted = Vec::new();
        for _ in 0..n {
            ids.push(Uuid::now_v7());
            countries.push(BENCH_COUNTRIES[rng.below(BENCH_COUNTRIES.len())].to_owned());
            let wanted = 1 + rng.below(3);
            let mut list: Vec<String> = (0..wanted)
                .map(|_| {
                    let six_digits = rng.below(5) != 0;
                    bench_code(&mut rng, six_digits)
                })
                .collect();
            list.sort();
            list.dedup();
            codes.push(list.join(","));
            let mut langs = vec![BENCH_LANGUAGES[rng.below(BENCH_LANGUAGES.len())]];
            if rng.below(2) == 0 {
                langs.push("en");
            }
            langs.dedup();
            languages.push(langs.join(","));
            // Mostly verified and fresh; the rest must be skipped by matching.
            let (status, age_days) = match rng.below(20) {
                0 | 1 => ("UNVERIFIED", None),
                2 => ("REJECTED", Some(30)),
                3 => ("VERIFIED", Some(400)),
                _ => ("VERIFIED", Some(rng.below(300) as i64)),
            };
            statuses.push(status.to_owned());
            scores.push(rng.below(101) as i32);
            vetted.push(age_days.map(|d| now - chrono::Duration::days(d)));
        }
        sqlx::query(
            "INSERT INTO buyer (id, trade_office_id, company_name, country, city, time_zone, hs_codes,
                 industries_ksic, import_volume_usd_minor, languages, website, status, quality_score,
                 criteria_met, vetted_at, vetted_by)
             SELECT id, 'bench-office-' || (ordinality % 100), 'Synthetic buyer ' || id, country, 'City',
                    'UTC', string_to_array(codes, ','), '{}', 100000000, string_to_array(langs, ','), '',
                    status, score, '{VETTING_CRITERION_REGISTRY_CHECKED}', vetted_at,
                    CASE WHEN vetted_at IS NULL THEN '' ELSE 'bench' END
               FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::timestamptz[])
                    WITH ORDINALITY AS t(id, country, codes, langs, status, score, vetted_at, ordinality)",
        )
        .bind(&ids)
        .bind(&countries)
        .bind(&codes)
        .bind(&languages)
        .bind(&statuses)
        .bind(&scores)
        .bind(&vetted)
        .execute(pool)
        .await?;
        let mut conn = pool.acquire().await?;
        crate::store::reindex_buyers(&mut conn, &ids).await?;
        loaded += n;
        eprint!("\rloaded {loaded}/{count} buyers");
    }
    eprintln!();
    sqlx::query("ANALYZE").execute(pool).await?;
    Ok(())
}

fn with_database(url: &str, name: &str) -> anyhow::Result<String> {
    let (base, rest) = url
        .rsplit_once('/')
        .ok_or_else(|| anyhow::anyhow!("DATABASE_URL has no database name"))?;
    let query = rest
        .split_once('?')
        .map(|(_, q)| format!("?{q}"))
        .unwrap_or_default();
    Ok(format!("{base}/{name}{query}"))
}

async fn bench_find_buyers(args: BenchArgs, mut settings: ServerSettings) -> anyhow::Result<()> {
    let url = database_url(&settings)?;
    let name = format!("onestop_buyers_bench_{}", std::process::id());
    let options: PgConnectOptions = url.parse()?;
    let mut admin = options.connect().await?;
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await?;
    let result = bench_in(&args, &mut settings, &with_database(&url, &name)?).await;
    if !args.keep_database {
        sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
            .execute(&mut admin)
            .await?;
    } else {
        eprintln!("kept database {name}");
    }
    admin.close().await?;
    result
}

async fn bench_in(
    args: &BenchArgs,
    settings: &mut ServerSettings,
    url: &str,
) -> anyhow::Result<()> {
    settings.database_url = Some(url.to_owned());
    settings.listen = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let app = Application::build_with_clock(settings.clone(), Arc::new(SystemClock)).await?;
    let addr = app.local_addr();
    let pool = app.pool();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());

    let started = Instant::now();
    load_synthetic(&pool, args.buyers).await?;
    let matchable: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM buyer WHERE status = 'VERIFIED' AND vetted_at > $1",
    )
    .bind(crate::domain::buyer::freshness_cutoff(Utc::now()))
    .fetch_one(&pool)
    .await?;
    eprintln!(
        "{} buyers loaded in {:.1}s ({matchable} matchable)",
        args.buyers,
        started.elapsed().as_secs_f64()
    );
    let ids: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM buyer ORDER BY random() LIMIT 1000")
        .fetch_all(&pool)
        .await?;

    let token =
        settings
            .token_keys()
            .issue("bench", Role::Admin, None, Duration::from_secs(3600))?;
    let bearer: MetadataValue<_> = format!("Bearer {token}").parse()?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client =
        BuyerServiceClient::with_interceptor(channel, move |mut request: tonic::Request<()>| {
            request
                .metadata_mut()
                .insert("authorization", bearer.clone());
            Ok(request)
        });

    let mut rng = Lcg(0xbe7c4);
    let find_request = |rng: &mut Lcg| {
        let products = 1 + rng.below(3);
        pb::FindBuyersRequest {
            company: Some(CompanySnapshot {
                company_id: "bench-company".into(),
                hs_codes: (0..products).map(|_| bench_code(rng, true)).collect(),
                languages: vec!["ko".into(), "en".into()],
                ..Default::default()
            }),
            target_markets: (0..2)
                .map(|_| BENCH_COUNTRIES[rng.below(BENCH_COUNTRIES.len())].to_owned())
                .collect(),
            limit: 20,
            ..Default::default()
        }
    };
    let warmup = (args.queries / 10).max(20);
    for i in 0..warmup {
        client.find_buyers(find_request(&mut rng)).await?;
        client
            .get_buyer(pb::GetBuyerRequest {
                buyer_id: ids[i as usize % ids.len().max(1)].to_string(),
            })
            .await?;
    }
    let mut find = Vec::with_capacity(args.queries as usize);
    let mut get = Vec::with_capacity(args.queries as usize);
    let mut returned = 0usize;
    for i in 0..args.queries {
        // Interleaved, so both see the same machine load.
        let request = find_request(&mut rng);
        let at = Instant::now();
        returned += client
            .find_buyers(request)
            .await?
            .into_inner()
            .candidates
            .len();
        find.push(at.elapsed());
        let request = pb::GetBuyerRequest {
            buyer_id: ids[i as usize % ids.len().max(1)].to_string(),
        };
        let at = Instant::now();
        client.get_buyer(request).await?;
        get.push(at.elapsed());
    }
    find.sort();
    get.sort();
    let (f50, f99) = (percentile(&find, 0.50), percentile(&find, 0.99));
    let (g50, g99) = (percentile(&get, 0.50), percentile(&get, 0.99));
    println!(
        "{SERVICE_NAME} bench-find-buyers: {} buyers, {} timed calls each",
        args.buyers, args.queries
    );
    println!(
        "FindBuyers  p50 {:7.2} ms  p99 {:7.2} ms  (avg {:.1} candidates)",
        ms(f50),
        ms(f99),
        returned as f64 / f64::from(args.queries.max(1))
    );
    println!(
        "GetBuyer    p50 {:7.2} ms  p99 {:7.2} ms  (baseline)",
        ms(g50),
        ms(g99)
    );
    println!(
        "ratio FindBuyers/GetBuyer  p50 {:.2}x  p99 {:.2}x",
        ms(f50) / ms(g50).max(f64::EPSILON),
        ms(f99) / ms(g99).max(f64::EPSILON)
    );
    shutdown.cancel();
    let _ = server.await;
    pool.close().await;
    Ok(())
}
