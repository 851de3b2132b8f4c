//! What tracing costs: two lone intakes on fresh databases, one exporting
//! every span (100% sampling, the SDK's default) to an OTLP receiver in
//! this process, one with export off, each read with GetCompany by the
//! same clients for the same time, one after the other.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use onestop_test_support::{ServiceProcess, TestDb};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio_stream::wrappers::TcpListenerStream;

use crate::ops::{Mix, Worker, World};
use crate::stats::Stats;
use crate::target::Target;

/// Counts the spans exported to it and drops them.
#[derive(Clone, Default)]
struct Receiver {
    spans: Arc<AtomicU64>,
}

#[tonic::async_trait]
impl TraceService for Receiver {
    async fn export(
        &self,
        request: tonic::Request<ExportTraceServiceRequest>,
    ) -> Result<tonic::Response<ExportTraceServiceResponse>, tonic::Status> {
        let spans: usize = request
            .into_inner()
            .resource_spans
            .iter()
            .flat_map(|resource| &resource.scope_spans)
            .map(|scope| scope.spans.len())
            .sum();
        self.spans.fetch_add(spans as u64, Ordering::Relaxed);
        Ok(tonic::Response::new(ExportTraceServiceResponse::default()))
    }
}

async fn start_receiver() -> anyhow::Result<(SocketAddr, Receiver)> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let receiver = Receiver::default();
    let service = TraceServiceServer::new(receiver.clone());
    tokio::spawn(async move {
        tonic::transport::Server::builder()
            .add_service(service)
            .serve_with_incoming(TcpListenerStream::new(listener))
            .await
    });
    Ok((addr, receiver))
}

pub struct TracingCost {
    pub untraced: Figures,
    pub traced: Figures,
    pub spans_received: u64,
}

pub struct Figures {
    pub rate: f64,
    pub report: String,
}

/// Measures GetCompany on an untraced and then a traced intake, each for
/// `duration` with `concurrency` clients.
pub async fn measure(
    bin_dir: &Path,
    concurrency: usize,
    duration: Duration,
) -> anyhow::Result<TracingCost> {
    let (addr, receiver) = start_receiver().await?;
    let endpoint = format!("http://{addr}");
    let untraced = lone_intake(bin_dir, concurrency, duration, &[]).await?;
    let traced = lone_intake(
        bin_dir,
        concurrency,
        duration,
        &[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint.as_str()),
            ("OTEL_METRICS_EXPORTER", "none"),
        ],
    )
    .await?;
    // The batch exporter sends on a timer; what it holds at exit was sent
    // when the process drained on SIGTERM.
    Ok(TracingCost {
        untraced,
        traced,
        spans_received: receiver.spans.load(Ordering::Relaxed),
    })
}

async fn lone_intake(
    bin_dir: &Path,
    concurrency: usize,
    duration: Duration,
    env: &[(&str, &str)],
) -> anyhow::Result<Figures> {
    let db = TestDb::new().await;
    let binary = bin_dir.join("onestop-intake");
    let mut all = vec![
        ("DATABASE_URL", db.url.as_str()),
        ("RUST_LOG", "warn,onestop_platform::server=info"),
    ];
    all.extend_from_slice(env);
    let process = ServiceProcess::spawn(&binary.to_string_lossy(), &all).await;
    let target = Arc::new(Target::connect(
        [("intake", format!("http://{}", process.addr))].into(),
        None,
    ));
    let stats = Arc::new(Stats::default());
    let world = Arc::new(World::default());
    let mut registrar = Worker::new(target.clone(), Arc::new(Stats::default()), world.clone())?;
    registrar.register().await;
    let workers: Vec<Worker> = (0..concurrency)
        .map(|_| Worker::new(target.clone(), stats.clone(), world.clone()))
        .collect::<anyhow::Result<_>>()?;
    let only_reads: Mix = "get-company".parse().expect("a valid mix");
    let elapsed = crate::run_for(workers, duration, None, &only_reads).await;
    let _ = process.terminate_and_collect(Duration::from_secs(15)).await;
    anyhow::ensure!(
        stats.errors() == 0,
        "GetCompany failed:\n{}",
        stats.report(elapsed)
    );
    Ok(Figures {
        rate: stats.rate_of("intake.GetCompany", elapsed),
        report: stats.report(elapsed),
    })
}
