//! The whole suite as separate processes: the four real binaries on
//! ephemeral loopback ports, each on its own fresh database.

pub use onestop_test_support::Suite;

/// Starts mentoring, buyers and referral, then intake wired to them; `env`
/// goes to every process.
pub async fn start(env: &[(&str, &str)]) -> Suite {
    Suite::start(
        env!("CARGO_BIN_EXE_onestop-intake"),
        &["mentoring", "buyers", "referral", "intake"],
        env,
    )
    .await
}
