//! Background loops under supervision. A loop that panics, returns an
//! error or ends on its own is started again after a backoff that doubles
//! up to a cap, each restart logged and counted (`onestop.loop.restarts`,
//! by loop). Every loop is reported in gRPC health under its own name,
//! `onestop.<service>.<loop>`: SERVING while it works, NOT_SERVING once it
//! has failed several times in a row without a success between. The loops'
//! names never change the overall ("") status: a stalled sweeper is no
//! reason to take a replica out of rotation, but an operator must see it.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use opentelemetry::KeyValue;
use opentelemetry::metrics::Counter;
use tokio_util::sync::CancellationToken;
use tonic_health::ServingStatus;
use tonic_health::server::HealthReporter;

/// How a failing loop is restarted and when it is reported as failing.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    pub first: Duration,
    pub max: Duration,
    /// Failures in a row after which the loop is NOT_SERVING.
    pub failing_after: u32,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            first: Duration::from_millis(500),
            max: Duration::from_secs(60),
            failing_after: 3,
        }
    }
}

impl Backoff {
    /// The wait before the restart that follows `failures` failures in a row.
    pub fn after(&self, failures: u32) -> Duration {
        doubling(self.first, failures, self.max)
    }
}

/// The wait after `failures` failures in a row: `first` after the first,
/// doubling with each further one, never more than `max` (nor less than
/// `first`). Every retry of the services waits by this rule.
pub fn doubling(first: Duration, failures: u32, max: Duration) -> Duration {
    let doublings = failures.saturating_sub(1).min(30);
    first.saturating_mul(1 << doublings).min(max.max(first))
}

/// Starts and watches this service's background loops.
#[derive(Clone)]
pub struct Supervisor {
    inner: Arc<Inner>,
}

struct Inner {
    service: &'static str,
    health: HealthReporter,
    shutdown: CancellationToken,
    backoff: Backoff,
    loops: Mutex<BTreeMap<&'static str, LoopState>>,
}

/// What the supervisor knows of one loop.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopState {
    /// Times the loop was started again since the process started.
    pub restarts: u64,
    /// Failures since the last success.
    pub failures_in_a_row: u32,
}

impl Supervisor {
    pub fn new(service: &'static str, health: HealthReporter, shutdown: CancellationToken) -> Self {
        Self::with_backoff(service, health, shutdown, Backoff::default())
    }

    pub fn with_backoff(
        service: &'static str,
        health: HealthReporter,
        shutdown: CancellationToken,
        backoff: Backoff,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                service,
                health,
                shutdown,
                backoff,
                loops: Mutex::default(),
            }),
        }
    }

    /// The gRPC health service name the loop `name` is reported under.
    pub fn health_name(&self, name: &str) -> String {
        format!("onestop.{}.{name}", self.inner.service)
    }

    /// What is known of the loop `name`, if it was started.
    pub fn state(&self, name: &str) -> Option<LoopState> {
        self.inner.lock().get(name).copied()
    }

    /// Runs `run` as the loop `name` until shutdown, starting it again
    /// whenever it panics, fails or ends early. `run` gets a [`Beat`] to
    /// report progress through and to learn of shutdown.
    pub fn spawn<F, Fut>(&self, name: &'static str, run: F) -> tokio::task::JoinHandle<()>
    where
        F: Fn(Beat) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        self.inner.lock().entry(name).or_default();
        let inner = self.inner.clone();
        tokio::spawn(async move {
            inner.report(name, ServingStatus::Serving).await;
            let beat = Beat {
                inner: inner.clone(),
                name,
            };
            loop {
                let attempt = tokio::spawn(run(beat.clone()));
                let abort = attempt.abort_handle();
                let outcome = tokio::select! {
                    outcome = attempt => outcome,
                    _ = inner.shutdown.cancelled() => {
                        abort.abort();
                        return;
                    }
                };
                if inner.shutdown.is_cancelled() {
                    return;
                }
                let reason = match outcome {
                    Ok(Ok(())) => "ended early".to_owned(),
                    Ok(Err(error)) => format!("failed: {error:#}"),
                    Err(error) if error.is_panic() => "panicked".to_owned(),
                    Err(_) => "was cancelled".to_owned(),
                };
                let failures = inner.failed(name).await;
                let wait = inner.backoff.after(failures);
                let restarts = inner.restarted(name);
                tracing::error!(
                    service = inner.service,
                    background_loop = name,
                    restarts,
                    failures_in_a_row = failures,
                    retry_in_ms = wait.as_millis() as u64,
                    "background loop {reason}; restarting"
                );
                tokio::select! {
                    _ = inner.shutdown.cancelled() => return,
                    _ = tokio::time::sleep(wait) => {}
                }
            }
        })
    }

    /// Runs `worker` as the loop `name` for a worker that retries by itself
    /// (a feed follower) and tells failures through its [`Beat`]; a panic
    /// that escapes it still restarts it.
    pub fn keep_running<W, F, Fut>(
        &self,
        name: &'static str,
        worker: W,
        run: F,
    ) -> tokio::task::JoinHandle<()>
    where
        W: Send + Sync + 'static,
        F: Fn(Arc<W>, Beat) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let worker = Arc::new(worker);
        self.spawn(name, move |beat| {
            let running = run(worker.clone(), beat);
            async move {
                running.await;
                Ok(())
            }
        })
    }

    /// Runs `step` as the loop `name` every `interval` (the first right
    /// away) until shutdown. A step that fails or panics is retried after
    /// the supervisor's backoff rather than the interval.
    pub fn every<F, Fut>(
        &self,
        name: &'static str,
        interval: Duration,
        step: F,
    ) -> tokio::task::JoinHandle<()>
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = anyhow::Result<()>> + Send + 'static,
    {
        let step = Arc::new(step);
        self.spawn(name, move |beat| {
            let step = step.clone();
            async move {
                loop {
                    step().await?;
                    beat.ok().await;
                    tokio::select! {
                        _ = beat.stopping() => return Ok(()),
                        _ = tokio::time::sleep(interval) => {}
                    }
                }
            }
        })
    }
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<&'static str, LoopState>> {
        self.loops.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn report(&self, name: &'static str, status: ServingStatus) {
        self.health
            .set_service_status(format!("onestop.{}.{name}", self.service), status)
            .await;
    }

    /// Counts a failure; returns the failures in a row.
    async fn failed(&self, name: &'static str) -> u32 {
        let failures = {
            let mut loops = self.lock();
            let state = loops.entry(name).or_default();
            state.failures_in_a_row = state.failures_in_a_row.saturating_add(1);
            state.failures_in_a_row
        };
        if failures == self.backoff.failing_after {
            self.report(name, ServingStatus::NotServing).await;
        }
        failures
    }

    fn restarted(&self, name: &'static str) -> u64 {
        restarts_counter().add(
            1,
            &[
                KeyValue::new("service", self.service),
                KeyValue::new("loop", name),
            ],
        );
        let mut loops = self.lock();
        let state = loops.entry(name).or_default();
        state.restarts += 1;
        state.restarts
    }
}

/// A running loop's line to its supervisor.
#[derive(Clone)]
pub struct Beat {
    inner: Arc<Inner>,
    name: &'static str,
}

impl Beat {
    /// The loop did useful work (or found none to do): it is healthy again.
    pub async fn ok(&self) {
        let was_failing = {
            let mut loops = self.inner.lock();
            let state = loops.entry(self.name).or_default();
            std::mem::take(&mut state.failures_in_a_row) >= self.inner.backoff.failing_after
        };
        if was_failing {
            tracing::info!(
                service = self.inner.service,
                background_loop = self.name,
                "background loop recovered"
            );
            self.inner.report(self.name, ServingStatus::Serving).await;
        }
    }

    /// The loop failed but retries by itself (a follower reconnecting):
    /// counted like a restart's failure, without the restart.
    pub async fn failed(&self) {
        self.inner.failed(self.name).await;
    }

    /// Resolves when the service shuts down.
    pub async fn stopping(&self) {
        self.inner.shutdown.cancelled().await
    }

    pub fn shutdown_token(&self) -> CancellationToken {
        self.inner.shutdown.clone()
    }
}

fn restarts_counter() -> &'static Counter<u64> {
    static COUNTER: OnceLock<Counter<u64>> = OnceLock::new();
    COUNTER.get_or_init(|| {
        opentelemetry::global::meter("onestop-platform")
            .u64_counter("onestop.loop.restarts")
            .with_description(
                "Background loops started again after a panic, an error or an early end",
            )
            .build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_its_cap() {
        let backoff = Backoff {
            first: Duration::from_millis(500),
            max: Duration::from_secs(4),
            failing_after: 3,
        };
        assert_eq!(backoff.after(1), Duration::from_millis(500));
        assert_eq!(backoff.after(2), Duration::from_secs(1));
        assert_eq!(backoff.after(4), Duration::from_secs(4));
        assert_eq!(backoff.after(u32::MAX), Duration::from_secs(4));
    }
}
