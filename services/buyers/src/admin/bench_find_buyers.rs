//! `bench-find-buyers`: FindBuyers latency at registry scale, against a
//! GetBuyer baseline measured in the same run over the same connection, on
//! a synthetic registry in a scratch database of its own.

use std::time::{Duration, Instant};

use chrono::Utc;
use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::buyers::v1::buyer_service_client::BuyerServiceClient;
use onestop_contracts::common::v1::CompanySnapshot;
use onestop_platform::Role;
use onestop_platform::client::SignedToken;
use onestop_platform::config::ServerSettings;
use onestop_platform::server::Application as _;
use sqlx::postgres::PgConnectOptions;
use sqlx::{ConnectOptions, Connection, PgPool};
use uuid::Uuid;

use super::database_url;
use crate::domain::buyer;
use crate::startup::{Application, SERVICE_NAME};
use crate::store::{self, SyntheticBuyers};

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

/// How specific a synthetic code is.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Depth {
    Heading,
    Subheading,
}

fn bench_code(rng: &mut Lcg, depth: Depth) -> String {
    let chapter = 1 + rng.below(BENCH_CHAPTERS);
    let heading = 1 + rng.below(20);
    if depth == Depth::Subheading {
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
    let batch_size = 5_000u32;
    let mut loaded = 0u32;
    let mut conn = pool.acquire().await?;
    while loaded < count {
        let n = batch_size.min(count - loaded);
        let mut batch = SyntheticBuyers::default();
        for _ in 0..n {
            batch.ids.push(Uuid::now_v7());
            batch
                .countries
                .push(BENCH_COUNTRIES[rng.below(BENCH_COUNTRIES.len())].to_owned());
            let wanted = 1 + rng.below(3);
            let mut list: Vec<String> = (0..wanted)
                .map(|_| {
                    let depth = if rng.below(5) == 0 {
                        Depth::Heading
                    } else {
                        Depth::Subheading
                    };
                    bench_code(&mut rng, depth)
                })
                .collect();
            list.sort();
            list.dedup();
            batch.codes.push(list.join(","));
            let mut langs = vec![BENCH_LANGUAGES[rng.below(BENCH_LANGUAGES.len())]];
            if rng.below(2) == 0 {
                langs.push("en");
            }
            langs.dedup();
            batch.languages.push(langs.join(","));
            // Mostly verified and fresh; the rest must be skipped by matching.
            let (status, age_days) = match rng.below(20) {
                0 | 1 => ("UNVERIFIED", None),
                2 => ("REJECTED", Some(30)),
                3 => ("VERIFIED", Some(400)),
                _ => ("VERIFIED", Some(rng.below(300) as i64)),
            };
            batch.statuses.push(status.to_owned());
            batch.quality_scores.push(rng.below(101) as i32);
            batch
                .vetted_at
                .push(age_days.map(|d| now - chrono::Duration::days(d)));
        }
        store::insert_synthetic_buyers(&mut conn, &batch).await?;
        loaded += n;
        eprint!("\rloaded {loaded}/{count} buyers");
    }
    eprintln!();
    store::analyze(&mut conn).await?;
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

pub async fn run(args: BenchArgs, mut settings: ServerSettings) -> anyhow::Result<()> {
    let url = database_url(&settings)?;
    let name = format!("onestop_buyers_bench_{}", std::process::id());
    let options: PgConnectOptions = url.parse()?;
    let mut admin = options.connect().await?;
    store::create_database(&mut admin, &name).await?;
    let result = bench_in(&args, &mut settings, &with_database(&url, &name)?).await;
    if !args.keep_database {
        store::drop_database(&mut admin, &name).await?;
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
    let app = Application::build(settings.clone()).await?;
    let addr = app.local_addr();
    let pool = app.pool();
    let shutdown = app.shutdown_token();
    let server = tokio::spawn(app.run_until_stopped());

    let started = Instant::now();
    load_synthetic(&pool, args.buyers).await?;
    let mut conn = pool.acquire().await?;
    let matchable = store::count_matchable(&mut conn, buyer::freshness_cutoff(Utc::now())).await?;
    eprintln!(
        "{} buyers loaded in {:.1}s ({matchable} matchable)",
        args.buyers,
        started.elapsed().as_secs_f64()
    );
    let ids = store::random_buyer_ids(&mut conn, 1000).await?;
    drop(conn);

    let admin = SignedToken::mint(&settings.token_keys(), "bench", Role::Admin, None)?;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))?
        .connect()
        .await?;
    let mut client = BuyerServiceClient::with_interceptor(channel, admin);

    let mut rng = Lcg(0xbe7c4);
    let find_request = |rng: &mut Lcg| {
        let products = 1 + rng.below(3);
        pb::FindBuyersRequest {
            company: Some(CompanySnapshot {
                company_id: "bench-company".into(),
                hs_codes: (0..products)
                    .map(|_| bench_code(rng, Depth::Subheading))
                    .collect(),
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
