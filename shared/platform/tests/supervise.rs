//! Supervised background loops, observed the way an operator sees them:
//! through a real gRPC health server.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use onestop_platform::supervise::{Backoff, Supervisor};
use tokio_util::sync::CancellationToken;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::health_server::HealthServer;
use tonic_health::server::{HealthReporter, HealthService};

async fn health_server(reporter: &HealthReporter) -> HealthClient<tonic::transport::Channel> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = HealthServer::new(HealthService::from_health_reporter(reporter.clone()));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
        .unwrap()
        .connect_lazy();
    HealthClient::new(channel)
}

async fn status(client: &mut HealthClient<tonic::transport::Channel>, name: &str) -> ServingStatus {
    let response = client
        .check(HealthCheckRequest {
            service: name.to_owned(),
        })
        .await
        .expect("the loop is known to health");
    response.into_inner().status()
}

/// Polls until `status` of `name` is `wanted`, for at most 5 s.
async fn until_status(
    client: &mut HealthClient<tonic::transport::Channel>,
    name: &str,
    wanted: ServingStatus,
) {
    for _ in 0..500 {
        if status(client, name).await == wanted {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("{name} never became {wanted:?}");
}

fn quick() -> Backoff {
    Backoff {
        first: Duration::from_millis(10),
        max: Duration::from_millis(40),
        failing_after: 3,
    }
}

#[tokio::test]
async fn a_loop_that_panics_is_restarted_and_reported_until_it_recovers() {
    let reporter = HealthReporter::new();
    let mut health = health_server(&reporter).await;
    let shutdown = CancellationToken::new();
    let supervisor = Supervisor::with_backoff("test", reporter, shutdown.clone(), quick());
    let name = supervisor.health_name("flaky");
    assert_eq!(name, "onestop.test.flaky");

    // Panics until the test lets it work.
    let (fixed, is_fixed) = tokio::sync::watch::channel(false);
    supervisor.spawn("flaky", move |beat| {
        let is_fixed = is_fixed.clone();
        async move {
            if !*is_fixed.borrow() {
                panic!("a bad row");
            }
            loop {
                beat.ok().await;
                tokio::select! {
                    _ = beat.stopping() => return Ok(()),
                    _ = tokio::time::sleep(Duration::from_millis(5)) => {}
                }
            }
        }
    });

    until_status(&mut health, &name, ServingStatus::NotServing).await;
    assert!(supervisor.state("flaky").unwrap().restarts >= 3);
    // The overall status is not the loop's.
    assert_eq!(status(&mut health, "").await, ServingStatus::Serving);

    fixed.send(true).unwrap();
    until_status(&mut health, &name, ServingStatus::Serving).await;
    let state = supervisor.state("flaky").unwrap();
    assert_eq!(state.failures_in_a_row, 0);
    assert!(state.restarts >= 3, "{state:?}");
    shutdown.cancel();
}

#[tokio::test]
async fn a_loop_that_fails_is_restarted_with_backoff_and_stops_on_shutdown() {
    let reporter = HealthReporter::new();
    let mut health = health_server(&reporter).await;
    let shutdown = CancellationToken::new();
    let supervisor = Supervisor::with_backoff("test", reporter, shutdown.clone(), quick());
    let runs = Arc::new(AtomicU32::new(0));
    let counted = runs.clone();
    let task = supervisor.every("sweeper", Duration::from_secs(3600), move || {
        let runs = counted.clone();
        async move {
            runs.fetch_add(1, Ordering::SeqCst);
            anyhow::bail!("database gone")
        }
    });
    until_status(
        &mut health,
        "onestop.test.sweeper",
        ServingStatus::NotServing,
    )
    .await;
    // Each failed step was retried after a backoff, not after the hour.
    assert!(runs.load(Ordering::SeqCst) >= 3);

    shutdown.cancel();
    tokio::time::timeout(Duration::from_secs(2), task)
        .await
        .expect("the supervisor stops on shutdown")
        .unwrap();
    let after = runs.load(Ordering::SeqCst);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(
        runs.load(Ordering::SeqCst),
        after,
        "no restart after shutdown"
    );
}
