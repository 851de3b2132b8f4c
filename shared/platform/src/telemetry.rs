//! Logs, traces and metrics. Traces and metrics are exported over OTLP/gRPC
//! when the standard `OTEL_EXPORTER_OTLP_ENDPOINT` (or the per-signal
//! variant) is set, and are cleanly off otherwise; W3C trace context is
//! propagated either way so a service without a collector does not break a
//! trace that passes through it.

use std::collections::HashMap;
use std::sync::OnceLock;

use opentelemetry::propagation::{Extractor, Injector, TextMapPropagator};
use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::Resource;
use opentelemetry_sdk::metrics::SdkMeterProvider;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing_opentelemetry::OpenTelemetrySpanExt;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer};

/// Flushes and shuts the exporters down when dropped, so the spans of the
/// last requests before a shutdown still reach the collector.
pub struct TelemetryGuard {
    tracer_provider: SdkTracerProvider,
    meter_provider: Option<SdkMeterProvider>,
}

impl Drop for TelemetryGuard {
    fn drop(&mut self) {
        if let Err(error) = self.tracer_provider.shutdown() {
            eprintln!("trace exporter shutdown: {error}");
        }
        if let Some(meter_provider) = &self.meter_provider
            && let Err(error) = meter_provider.shutdown()
        {
            eprintln!("metric exporter shutdown: {error}");
        }
    }
}

fn env_set(name: &str) -> bool {
    std::env::var(name).is_ok_and(|value| !value.trim().is_empty())
}

/// OTLP export of `signal` ("TRACES", "METRICS") is on when an endpoint is
/// set, unless the standard `OTEL_<signal>_EXPORTER` says `none`.
fn otlp_enabled(signal: &str) -> bool {
    let turned_off = std::env::var(format!("OTEL_{signal}_EXPORTER")).is_ok_and(|v| v == "none");
    !turned_off
        && (env_set("OTEL_EXPORTER_OTLP_ENDPOINT")
            || env_set(&format!("OTEL_EXPORTER_OTLP_{signal}_ENDPOINT")))
}

fn resource(default_service_name: &str) -> Resource {
    // The builder reads OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES; only
    // fall back to the binary's own name when the operator set neither.
    let builder = Resource::builder();
    if env_set("OTEL_SERVICE_NAME") {
        builder.build()
    } else {
        builder
            .with_service_name(default_service_name.to_owned())
            .build()
    }
}

/// Installs the global subscriber, propagator and exporters. Call once, at
/// the start of `main`, and keep the guard alive until the process ends.
pub fn init(default_service_name: &str, format: LogFormat) -> anyhow::Result<TelemetryGuard> {
    install(default_service_name, DEFAULT_FILTER, Some(format))
}

/// The log filter when RUST_LOG is unset.
pub const DEFAULT_FILTER: &str = "info,sqlx=warn";

/// What `--help` says about the variables telemetry reads that are not
/// flags.
pub const ENVIRONMENT_HELP: &str = "\
Also read from the environment:
  RUST_LOG                       log filter [default: info,sqlx=warn], e.g. info,onestop_platform=debug
  OTEL_EXPORTER_OTLP_ENDPOINT    OTLP/gRPC collector for traces and metrics; unset turns export off
  OTEL_EXPORTER_OTLP_TRACES_ENDPOINT, OTEL_EXPORTER_OTLP_METRICS_ENDPOINT
                                 the collector for one signal only
  OTEL_TRACES_EXPORTER, OTEL_METRICS_EXPORTER
                                 none turns that signal's export off
  OTEL_SERVICE_NAME              service name on traces and metrics [default: onestop-<service>]
  OTEL_*                         the other standard OpenTelemetry variables (headers, timeouts,
                                 resource attributes)";

/// Initialises telemetry once per process for tests that run services
/// in-process (quiet unless RUST_LOG says otherwise, and captured per test);
/// later calls are no-ops.
pub fn init_for_tests() {
    static GUARD: OnceLock<Option<TelemetryGuard>> = OnceLock::new();
    GUARD.get_or_init(|| install("onestop-test", "warn", None).ok());
}

fn install(
    default_service_name: &str,
    default_filter: &str,
    // None: the test writer, captured per test.
    format: Option<LogFormat>,
) -> anyhow::Result<TelemetryGuard> {
    opentelemetry::global::set_text_map_propagator(TraceContextPropagator::new());
    let resource = resource(default_service_name);

    let mut tracer_builder = SdkTracerProvider::builder().with_resource(resource.clone());
    if otlp_enabled("TRACES") {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?;
        tracer_builder = tracer_builder.with_batch_exporter(exporter);
    }
    let tracer_provider = tracer_builder.build();
    opentelemetry::global::set_tracer_provider(tracer_provider.clone());

    let meter_provider = if otlp_enabled("METRICS") {
        let exporter = opentelemetry_otlp::MetricExporter::builder()
            .with_tonic()
            .build()?;
        let provider = SdkMeterProvider::builder()
            .with_resource(resource)
            .with_periodic_exporter(exporter)
            .build();
        opentelemetry::global::set_meter_provider(provider.clone());
        Some(provider)
    } else {
        None
    };

    let filter =
        EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_filter));
    let fmt = match format {
        None => tracing_subscriber::fmt::layer().with_test_writer().boxed(),
        Some(LogFormat::Json) => tracing_subscriber::fmt::layer().json().boxed(),
        Some(LogFormat::Text) => tracing_subscriber::fmt::layer()
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
            .boxed(),
    };
    // One global filter, not one per layer: per-layer filters that disagree
    // drop events at random (tokio-rs/tracing#2704).
    let otel = tracing_opentelemetry::layer()
        .with_tracer(tracer_provider.tracer(default_service_name.to_owned()));
    tracing_subscriber::registry()
        .with(LogsAndSpans(filter))
        .with(fmt)
        .with(otel)
        .try_init()
        .map_err(|error| anyhow::anyhow!("telemetry already initialised: {error}"))?;

    Ok(TelemetryGuard {
        tracer_provider,
        meter_provider,
    })
}

/// The global filter: RUST_LOG decides which events are logged, while
/// spans at INFO and above always pass, so a quiet service still
/// continues the traces that pass through it.
struct LogsAndSpans(EnvFilter);

fn span_kept(metadata: &tracing::Metadata<'_>) -> bool {
    metadata.is_span() && *metadata.level() <= tracing::Level::INFO
}

impl<S> Layer<S> for LogsAndSpans
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn register_callsite(
        &self,
        metadata: &'static tracing::Metadata<'static>,
    ) -> tracing::subscriber::Interest {
        if span_kept(metadata) {
            tracing::subscriber::Interest::always()
        } else {
            Layer::<S>::register_callsite(&self.0, metadata)
        }
    }

    fn enabled(
        &self,
        metadata: &tracing::Metadata<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        span_kept(metadata) || Layer::<S>::enabled(&self.0, metadata, ctx)
    }

    fn max_level_hint(&self) -> Option<tracing_subscriber::filter::LevelFilter> {
        let logs = Layer::<S>::max_level_hint(&self.0)?;
        Some(logs.max(tracing_subscriber::filter::LevelFilter::INFO))
    }

    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_new_span(attrs, id, ctx);
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        self.0.on_record(id, values, ctx);
    }

    fn on_enter(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_enter(id, ctx);
    }

    fn on_exit(&self, id: &tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_exit(id, ctx);
    }

    fn on_close(&self, id: tracing::span::Id, ctx: tracing_subscriber::layer::Context<'_, S>) {
        self.0.on_close(id, ctx);
    }
}

/// How log lines are written (`ONESTOP_LOG_FORMAT`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    Text,
    Json,
}

impl LogFormat {
    /// Unset or empty is text; an unknown value is refused rather than
    /// quietly written as text.
    pub fn parse(value: &str) -> Result<Self, String> {
        match value.trim() {
            "" | "text" => Ok(Self::Text),
            "json" => Ok(Self::Json),
            other => Err(format!("{other:?} is not a log format; use text or json")),
        }
    }
}

struct HeaderExtractor<'a>(&'a http::HeaderMap);

impl Extractor for HeaderExtractor<'_> {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).and_then(|value| value.to_str().ok())
    }
    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(|key| key.as_str()).collect()
    }
}

/// The remote parent carried by `traceparent`/`tracestate` headers.
pub fn extract_context(headers: &http::HeaderMap) -> opentelemetry::Context {
    TraceContextPropagator::new().extract(&HeaderExtractor(headers))
}

struct MetadataInjector<'a>(&'a mut tonic::metadata::MetadataMap);

impl Injector for MetadataInjector<'_> {
    fn set(&mut self, key: &str, value: String) {
        if let (Ok(key), Ok(value)) = (
            tonic::metadata::MetadataKey::from_bytes(key.as_bytes()),
            tonic::metadata::MetadataValue::try_from(value.as_str()),
        ) {
            self.0.insert(key, value);
        }
    }
}

/// Writes the current span's W3C trace context into outgoing metadata.
pub fn inject_current_context(metadata: &mut tonic::metadata::MetadataMap) {
    let context = tracing::Span::current().context();
    TraceContextPropagator::new().inject_context(&context, &mut MetadataInjector(metadata));
}

/// Client interceptor that carries the caller's trace into the callee.
pub fn propagate_trace(
    mut request: tonic::Request<()>,
) -> Result<tonic::Request<()>, tonic::Status> {
    inject_current_context(request.metadata_mut());
    Ok(request)
}

/// W3C `traceparent` and `tracestate` of the current span; empty strings
/// when no trace is active.
pub fn current_trace_context() -> (String, String) {
    let context = tracing::Span::current().context();
    if !context.span().span_context().is_valid() {
        return (String::new(), String::new());
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    (
        carrier.remove("traceparent").unwrap_or_default(),
        carrier.remove("tracestate").unwrap_or_default(),
    )
}

/// The remote context a stored `traceparent` describes, to continue a trace
/// from an event (for example when an outbox entry is delivered later).
pub fn context_from_traceparent(traceparent: &str, tracestate: &str) -> opentelemetry::Context {
    let mut carrier = HashMap::new();
    carrier.insert("traceparent".to_owned(), traceparent.to_owned());
    if !tracestate.is_empty() {
        carrier.insert("tracestate".to_owned(), tracestate.to_owned());
    }
    TraceContextPropagator::new().extract(&carrier)
}

/// Makes `span` a child of the trace a stored `traceparent` describes, so
/// work done later on behalf of an event (an outbox delivery, a feed
/// consumer) joins the trace of the request that caused it.
pub fn continue_trace(span: &tracing::Span, traceparent: &str, tracestate: &str) {
    if traceparent.is_empty() {
        return;
    }
    let _ = span.set_parent(context_from_traceparent(traceparent, tracestate));
}
