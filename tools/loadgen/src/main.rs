//! `onestop-loadgen`: drives the real services over gRPC with the generated
//! clients and prints throughput and latency percentiles per RPC, the
//! commit-to-delivery latency of Watch streams, the services' memory, and
//! a pgbench baseline measured against the same Postgres in the same run.

mod baseline;
mod ops;
mod pgstat;
mod rss;
mod stats;
mod target;
mod tracing_cost;
mod watchers;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Parser;
use onestop_platform::config::parse_duration;

use crate::ops::{Mix, Op, Worker, World};
use crate::stats::Stats;
use crate::target::Target;
use crate::watchers::Watchers;

/// How long intake's database is watched while idle, before and after the
/// watchers subscribe (with --spawn).
const IDLE_WINDOW: Duration = Duration::from_secs(3);
/// Longest the baseline waits for the hand-off to deliver what the load
/// opened (with --spawn).
const DRAIN_MAX: Duration = Duration::from_secs(120);
/// Left after the last need is delivered, for the owners' events about it
/// to come back onto the case.
const DRAIN_SETTLE: Duration = Duration::from_secs(1);

#[derive(Parser, Debug)]
#[command(
    name = "onestop-loadgen",
    about = "Drives the OneStop services with a realistic mix and reports throughput, \
             p50/p99/p99.9 per RPC, Watch delivery latency and memory"
)]
struct Args {
    /// Start intake, mentoring, buyers and referral from the binaries in
    /// --bin-dir, each on a fresh database (dropped at the end), in
    /// development mode.
    #[arg(long)]
    spawn: bool,
    /// Where the service binaries are; default: beside this binary.
    #[arg(long)]
    bin_dir: Option<PathBuf>,
    /// Intake's URL, without --spawn (plain HTTP/2).
    #[arg(long, env = "ONESTOP_INTAKE_URL")]
    intake_url: Option<String>,
    #[arg(long, env = "ONESTOP_MENTORING_URL")]
    mentoring_url: Option<String>,
    #[arg(long, env = "ONESTOP_BUYERS_URL")]
    buyers_url: Option<String>,
    #[arg(long, env = "ONESTOP_REFERRAL_URL")]
    referral_url: Option<String>,
    /// One bearer token for every call. Unset: tokens are signed with the
    /// development keys, which only services in development mode accept.
    #[arg(long, env = "ONESTOP_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Operations per second over all clients; 0 runs every client as fast
    /// as its calls return.
    #[arg(long, default_value_t = 0.0)]
    rate: f64,
    /// Clients, each on its own connections, one call at a time.
    #[arg(long, default_value_t = 8)]
    concurrency: usize,
    /// Companies registered before the load (at least one per client). The
    /// calls pick among them at random, so with many more companies than
    /// clients two calls seldom wait for one company's row, as in a
    /// network of thousands of companies each opening a case now and then.
    #[arg(long, default_value_t = 200)]
    companies: usize,
    /// How long the load runs, e.g. 10s, 2m.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    duration: Duration,
    /// Weighted operations: register, diagnose, open-case, get-company,
    /// referral, buyers, mentoring.
    #[arg(long, default_value = ops::DEFAULT_MIX)]
    mix: Mix,
    /// Also run pgbench with OpenCase's transaction shape (one case row, two
    /// event rows, a notification) on the same Postgres, with as many
    /// clients and as long, and print OpenCase's throughput over it.
    #[arg(long)]
    baseline: bool,
    /// Open this many EventFeedService/Watch streams on intake before the
    /// load, and after it commit probe events and report commit-to-delivery
    /// latency and intake's memory.
    #[arg(long, default_value_t = 0)]
    watchers: usize,
    /// Probe events committed one at a time after the load (with --watchers).
    #[arg(long, default_value_t = 5)]
    probes: usize,
    /// Also measure what tracing costs: GetCompany on two lone intakes
    /// started from --bin-dir, one exporting every span to an OTLP receiver
    /// in this process, one not, each for --duration.
    #[arg(long)]
    tracing: bool,
    /// Intake's process id, for its memory; default: the process listening
    /// on intake's port on this machine.
    #[arg(long)]
    server_pid: Option<u32>,
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    match run(args).await {
        Ok(0) => {}
        Ok(_) => std::process::exit(1),
        Err(error) => {
            eprintln!("error: {error:#}");
            std::process::exit(1);
        }
    }
}

fn bin_dir(args: &Args) -> anyhow::Result<PathBuf> {
    match &args.bin_dir {
        Some(dir) => Ok(dir.clone()),
        None => Ok(std::env::current_exe()?
            .parent()
            .context("this binary's directory")?
            .to_path_buf()),
    }
}

/// Runs everything and returns how many calls failed.
async fn run(args: Args) -> anyhow::Result<u64> {
    anyhow::ensure!(args.concurrency > 0, "--concurrency must be at least 1");
    anyhow::ensure!(
        args.rate >= 0.0 && args.rate.is_finite(),
        "--rate must be 0 or above"
    );
    let target = Arc::new(if args.spawn {
        Target::spawn(&bin_dir(&args)?, args.watchers).await?
    } else {
        let mut urls = HashMap::new();
        let given = [
            ("intake", &args.intake_url),
            ("mentoring", &args.mentoring_url),
            ("buyers", &args.buyers_url),
            ("referral", &args.referral_url),
        ];
        for (service, url) in given {
            if let Some(url) = url {
                urls.insert(service, url.clone());
            }
        }
        anyhow::ensure!(
            urls.contains_key("intake"),
            "give --spawn, or --intake-url (and the owners' URLs)"
        );
        Target::connect(urls, args.token.clone())
    });
    for (op, service) in [
        (Op::Referral, "referral"),
        (Op::Buyers, "buyers"),
        (Op::Mentoring, "mentoring"),
    ] {
        anyhow::ensure!(
            !args.mix.has(op) || target.has(service),
            "the mix acts as {service}, whose URL is missing"
        );
    }
    let outcome = measure(&args, target.clone()).await;
    if let Ok(target) = Arc::try_unwrap(target) {
        target.stop().await;
    }
    let errors = outcome?;
    // After the suite stopped: its connections would crowd the server.
    if args.tracing {
        let cost = tracing_cost::measure(&bin_dir(&args)?, args.concurrency, args.duration).await?;
        println!(
            "\ntracing: GetCompany on two lone intakes, {} clients, {:.0} s each; export off:",
            args.concurrency,
            args.duration.as_secs_f64()
        );
        print!("{}", cost.untraced.report);
        println!("every span exported over OTLP:");
        print!("{}", cost.traced.report);
        println!(
            "ratio traced/untraced GetCompany: {:.3} ({:.1} over {:.1} calls/s; {} spans received)",
            cost.traced.rate / cost.untraced.rate,
            cost.traced.rate,
            cost.untraced.rate,
            cost.spans_received
        );
    }
    println!("errors: {errors}");
    Ok(errors)
}

async fn measure(args: &Args, target: Arc<Target>) -> anyhow::Result<u64> {
    let pid_of = |service: &str| {
        if service == "intake"
            && let Some(pid) = args.server_pid
        {
            return Some(pid);
        }
        target.port(service).and_then(rss::listening_pid)
    };
    println!("idle RSS per service:");
    for service in target.services() {
        match pid_of(service).and_then(rss::rss_kib) {
            Some(kib) => println!("  {service:<10} {:>8.1} MiB", rss::mib(kib)),
            None => println!("  {service:<10} unknown (not a local process this user can see)"),
        }
    }
    let intake_rss = || pid_of("intake").and_then(rss::rss_kib);

    // Companies to work on from the first second.
    let world = Arc::new(World::default());
    let setup = Arc::new(Stats::default());
    let mut registrar = Worker::new(target.clone(), setup.clone(), world.clone())?;
    for _ in 0..args.companies.max(args.concurrency) {
        registrar.register().await;
    }
    anyhow::ensure!(
        setup.errors() == 0,
        "registering the first companies failed:\n{}",
        setup.report(Duration::from_secs(1))
    );
    let stats = Arc::new(Stats::default());
    let workers: Vec<Worker> = (0..args.concurrency)
        .map(|_| Worker::new(target.clone(), stats.clone(), world.clone()))
        .collect::<anyhow::Result<_>>()?;

    let watchers = if args.watchers > 0 {
        let before = intake_rss();
        let idle = match target.intake_database() {
            Some(url) => Some(pgstat::idle_rate(url, IDLE_WINDOW).await?),
            None => None,
        };
        let opened = Watchers::open(&target, args.watchers).await?;
        println!(
            "watchers: {} of {} subscribed in {:.2} s; refused: {:?}",
            opened.subscribed,
            args.watchers,
            opened.subscribe_time.as_secs_f64(),
            opened.refused
        );
        if let (Some(before), Some(after)) = (before, intake_rss()) {
            println!(
                "intake RSS: {:.1} MiB before the watchers, {:.1} MiB with them",
                rss::mib(before),
                rss::mib(after)
            );
        }
        if let (Some(without), Some(url)) = (idle, target.intake_database()) {
            // Let the burst of subscriptions settle first.
            tokio::time::sleep(Duration::from_secs(1)).await;
            let with = pgstat::idle_rate(url, IDLE_WINDOW).await?;
            println!(
                "intake's database while idle: {without:.1} transactions/s without the \
                 watchers, {with:.1} with them"
            );
        }
        Some(opened)
    } else {
        None
    };

    let elapsed = load(args, workers, &stats).await;
    println!(
        "\nload: {} clients, {:.1} s, rate {}, mix {}",
        args.concurrency,
        elapsed.as_secs_f64(),
        if args.rate > 0.0 {
            format!("{}/s", args.rate)
        } else {
            "unbounded".into()
        },
        args.mix
    );
    print!("{}", stats.report(elapsed));
    println!(
        "total: {} calls, {:.1} calls/s, {} errors; {} companies",
        stats.calls(),
        stats.calls() as f64 / elapsed.as_secs_f64(),
        stats.errors(),
        world.companies()
    );
    let mut errors = stats.errors();

    if let Some(watchers) = watchers {
        let delivery = watchers.probe(target.clone(), args.probes).await?;
        println!(
            "watch delivery: {} of {} subscribed streams received all {} probe events \
             ({} streams open); commit-to-delivery p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            delivery.received_all,
            watchers.subscribed,
            delivery.probes,
            watchers.open_now(),
            delivery.p50_ms,
            delivery.p99_ms,
            delivery.max_ms
        );
        if let Some(kib) = intake_rss() {
            println!(
                "intake RSS with {} watchers after the load: {:.1} MiB",
                watchers.subscribed,
                rss::mib(kib)
            );
        }
        errors += delivery.probe_errors;
        errors += (watchers.subscribed - delivery.received_all) as u64;
        errors += watchers.refused.values().sum::<usize>() as u64;
        watchers.close();
    }

    if args.baseline {
        if let Some(url) = target.intake_database() {
            let drain = pgstat::wait_for_hand_off(url, DRAIN_MAX).await?;
            match drain.took {
                Some(took) => {
                    tokio::time::sleep(DRAIN_SETTLE).await;
                    println!(
                        "hand-off: {} needs not yet delivered when the load stopped, \
                         all delivered {:.1} s later",
                        drain.pending,
                        took.as_secs_f64()
                    );
                }
                None => println!(
                    "hand-off: {} needs not yet delivered when the load stopped, some still \
                     pending after {} s; pgbench runs beside their delivery",
                    drain.pending,
                    DRAIN_MAX.as_secs()
                ),
            }
        }
        let seconds = args.duration.as_secs().max(1);
        let baseline = baseline::pgbench(args.concurrency, seconds).await?;
        let open_case = stats.rate_of("intake.OpenCase", elapsed);
        println!(
            "baseline: pgbench, OpenCase's transaction shape, {} clients, {} s: {:.1} tps \
             (latency {:.2} ms)",
            args.concurrency,
            seconds,
            baseline.tps,
            baseline.latency_ms.unwrap_or(f64::NAN)
        );
        println!(
            "ratio OpenCase/pgbench: {:.3} ({:.1} OpenCase calls/s over {:.1} tps)",
            open_case / baseline.tps,
            open_case,
            baseline.tps
        );
    }
    Ok(errors)
}

/// Runs the mix on every worker for the run's duration, printing a
/// progress line each second; returns how long it ran.
async fn load(args: &Args, workers: Vec<Worker>, stats: &Arc<Stats>) -> Duration {
    let started = Instant::now();
    let progress = {
        let stats = stats.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            tick.tick().await;
            let mut last = 0;
            loop {
                tick.tick().await;
                let calls = stats.calls();
                eprintln!(
                    "[{:>4.0}s] {:>8} calls, {:>7} calls/s, {} errors",
                    started.elapsed().as_secs_f64(),
                    calls,
                    calls - last,
                    stats.errors()
                );
                last = calls;
            }
        })
    };
    // Each client keeps its share of the rate.
    let every =
        (args.rate > 0.0).then(|| Duration::from_secs_f64(args.concurrency as f64 / args.rate));
    let elapsed = run_for(workers, args.duration, every, &args.mix).await;
    progress.abort();
    elapsed
}

/// Runs every worker for `duration`, each drawing its operations from
/// shuffled decks of `mix`, at most one every `every` (staggered between
/// workers) or back to back; returns how long it ran.
pub async fn run_for(
    workers: Vec<Worker>,
    duration: Duration,
    every: Option<Duration>,
    mix: &Mix,
) -> Duration {
    let started = Instant::now();
    let deadline = started + duration;
    let count = workers.len() as u32;
    let tasks: Vec<_> = workers
        .into_iter()
        .enumerate()
        .map(|(index, mut worker)| {
            let mix = mix.clone();
            tokio::spawn(async move {
                let mut random = ops::Random::new();
                let mut deck = Vec::new();
                let mut pacing = every.map(|every| {
                    let offset = every * index as u32 / count;
                    let mut interval =
                        tokio::time::interval_at(tokio::time::Instant::now() + offset, every);
                    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
                    interval
                });
                while Instant::now() < deadline {
                    if let Some(pacing) = pacing.as_mut() {
                        pacing.tick().await;
                        if Instant::now() >= deadline {
                            break;
                        }
                    }
                    if deck.is_empty() {
                        deck = mix.deck(&mut random);
                    }
                    worker.run(deck.pop().expect("a full deck")).await;
                }
            })
        })
        .collect();
    for task in tasks {
        let _ = task.await;
    }
    started.elapsed()
}
