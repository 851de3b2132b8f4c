//! The whole suite as separate processes: the four real binaries on
//! ephemeral loopback ports, each on its own fresh database; in
//! development mode, or secured: keys generated for the run (no
//! development keys) and mutual TLS on every connection.

pub use onestop_test_support::Suite;

/// Starts mentoring, buyers and referral, then intake wired to them, in
/// development mode; `env` goes to every process.
pub async fn start(env: &[(&str, &str)]) -> Suite {
    Suite::start(env!("CARGO_BIN_EXE_onestop-intake"), &SERVICES, env).await
}

/// As [`start`], with keys generated for the run (development mode off)
/// and mutual TLS on every connection.
pub async fn start_secured(env: &[(&str, &str)]) -> Suite {
    Suite::start_secured(env!("CARGO_BIN_EXE_onestop-intake"), &SERVICES, env).await
}

/// Starts the suite exporting its traces to a receiver in this process,
/// with `env` added.
pub async fn start_traced(env: &[(&str, &str)]) -> (Suite, crate::otlp::Receiver) {
    let (collector, receiver) = crate::otlp::Receiver::start().await;
    let endpoint = format!("http://{collector}");
    let mut all = vec![
        ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
        ("OTEL_BSP_SCHEDULE_DELAY", "100"),
        ("OTEL_METRICS_EXPORTER", "none"),
    ];
    all.extend_from_slice(env);
    (start(&all).await, receiver)
}

const SERVICES: [&str; 4] = ["mentoring", "buyers", "referral", "intake"];

/// The built binary of `service`, beside this test's intake binary (`cargo
/// test --workspace` builds every service's binary before any test runs).
pub fn built_binary(service: &str) -> std::path::PathBuf {
    let path = std::path::Path::new(env!("CARGO_BIN_EXE_onestop-intake"))
        .with_file_name(format!("onestop-{service}"));
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` first",
        path.display()
    );
    path
}
