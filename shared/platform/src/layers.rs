//! The tower layers every OneStop server runs, outermost first:
//! [`RpcTelemetryLayer`] (one span and one duration sample per RPC, with its
//! gRPC status), [`CatchPanicLayer`] (a handler that panics answers
//! INTERNAL and the server goes on), [`LoadShedLayer`] (a global limit on
//! RPCs in flight, excess refused at once with RESOURCE_EXHAUSTED) and
//! [`AuthLayer`] (bearer token to [`Caller`]), then the Watch stream caps
//! ([`WatchLimitLayer`]); both limits are one [`InFlightLimitLayer`] with
//! their own [`Admission`].

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Instant;

use futures_util::FutureExt;
use futures_util::future::BoxFuture;
use http_body::{Body as HttpBody, Frame, SizeHint};
use opentelemetry::KeyValue;
use opentelemetry::metrics::Histogram;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::body::Body;
use tonic::{Code, Status};
use tower::{Layer, Service};
use tracing::Instrument;
use tracing_opentelemetry::OpenTelemetrySpanExt;

use crate::auth::{Caller, TokenVerifier};
use crate::telemetry;
use crate::watchers::{WatchLimitLayer, WatchLimitService};

/// Paths served without a token: probes and API discovery.
fn is_open_path(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.") || path.starts_with("/grpc.reflection.")
}

pub(crate) fn refuse(status: Status) -> http::Response<Body> {
    status.into_http()
}

/// Swaps in a ready clone so the service that was polled ready is the one
/// called (tower's usual rule for services moved into a future).
pub(crate) fn take_ready<S: Clone>(inner: &mut S) -> S {
    let clone = inner.clone();
    std::mem::replace(inner, clone)
}

// ---------------------------------------------------------------- the stack

/// Every layer above, in their order: what each OneStop listener (gRPC,
/// and the dashboard's gRPC-Web) puts in front of its services.
#[derive(Clone)]
pub struct RpcLayers {
    telemetry: RpcTelemetryLayer,
    shed: LoadShedLayer,
    auth: AuthLayer,
    watchers: WatchLimitLayer,
}

impl RpcLayers {
    /// `watchers` is shared by every listener of a replica, so its caps
    /// hold for the replica as a whole; it sits after authentication
    /// because it counts streams per caller.
    pub fn new(
        service_name: &'static str,
        max_in_flight: usize,
        keys: TokenVerifier,
        watchers: WatchLimitLayer,
    ) -> Self {
        Self {
            telemetry: RpcTelemetryLayer::new(service_name),
            shed: LoadShedLayer::new(max_in_flight),
            auth: AuthLayer::new(keys),
            watchers,
        }
    }
}

impl<S> Layer<S> for RpcLayers {
    type Service =
        RpcTelemetryService<CatchPanicService<LoadShedService<AuthService<WatchLimitService<S>>>>>;
    fn layer(&self, inner: S) -> Self::Service {
        self.telemetry.layer(
            CatchPanicLayer.layer(self.shed.layer(self.auth.layer(self.watchers.layer(inner)))),
        )
    }
}

// ---------------------------------------------------------------- auth

#[derive(Clone)]
pub struct AuthLayer {
    keys: TokenVerifier,
}

impl AuthLayer {
    pub fn new(keys: TokenVerifier) -> Self {
        Self { keys }
    }
}

impl<S> Layer<S> for AuthLayer {
    type Service = AuthService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AuthService {
            inner,
            keys: self.keys.clone(),
        }
    }
}

#[derive(Clone)]
pub struct AuthService<S> {
    inner: S,
    keys: TokenVerifier,
}

impl<S> AuthService<S> {
    fn authenticate(&self, headers: &http::HeaderMap) -> Result<Caller, Status> {
        let header = headers
            .get(http::header::AUTHORIZATION)
            .ok_or_else(|| Status::unauthenticated("missing bearer token"))?;
        let token = header
            .to_str()
            .ok()
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .ok_or_else(|| Status::unauthenticated("authorization must be 'Bearer <token>'"))?;
        self.keys
            .verify(token.trim())
            .map_err(|error| Status::unauthenticated(error.to_string()))
    }
}

impl<S, B> Service<http::Request<B>> for AuthService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<B>) -> Self::Future {
        if !is_open_path(request.uri().path()) {
            match self.authenticate(request.headers()) {
                Ok(caller) => {
                    tracing::Span::current().record("enduser.role", caller.role.as_str());
                    request.extensions_mut().insert(caller);
                }
                Err(status) => return Box::pin(async move { Ok(refuse(status)) }),
            }
        }
        let mut inner = take_ready(&mut self.inner);
        Box::pin(inner.call(request))
    }
}

// ---------------------------------------------------------------- panics

/// Turns a panic while a call is handled into INTERNAL for that call alone,
/// logged with the method and the panic's message. Without it the stream is
/// reset and the caller sees a transport error with nothing in the logs
/// that says which call broke.
#[derive(Clone, Default)]
pub struct CatchPanicLayer;

impl<S> Layer<S> for CatchPanicLayer {
    type Service = CatchPanicService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        CatchPanicService { inner }
    }
}

#[derive(Clone)]
pub struct CatchPanicService<S> {
    inner: S,
}

/// Longest panic message logged: enough for the cause, too short to carry
/// a request's contents along with it.
const MAX_PANIC_MESSAGE: usize = 300;

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    let message = payload
        .downcast_ref::<&str>()
        .map(|text| (*text).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned());
    message.chars().take(MAX_PANIC_MESSAGE).collect()
}

impl<S, B> Service<http::Request<B>> for CatchPanicService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let method = request.uri().path().to_owned();
        let mut inner = take_ready(&mut self.inner);
        // Building the future may panic as well as polling it.
        let call = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| inner.call(request)));
        Box::pin(async move {
            let outcome = match call {
                Ok(future) => std::panic::AssertUnwindSafe(future).catch_unwind().await,
                Err(payload) => Err(payload),
            };
            outcome.unwrap_or_else(|payload| {
                tracing::error!(
                    rpc.method = %method,
                    panic = %panic_message(payload.as_ref()),
                    "handler panicked; answered INTERNAL"
                );
                Ok(refuse(Status::internal("internal error")))
            })
        })
    }
}

// ---------------------------------------------------------------- in-flight limits

/// One limit on what is in flight: which calls it counts, and a place for
/// one more or the refusal. [`InFlightLimitLayer`] applies it; a call
/// that finds no place is refused at once rather than queued.
pub trait Admission: Clone + Send + Sync + 'static {
    /// What a call holds while it counts; its place is free once dropped.
    type Place: Send + 'static;
    /// Whether the place is held until the response body ends (a stream)
    /// rather than until the response starts (a unary call).
    const HOLD_THROUGH_BODY: bool;
    /// Whether calls to `path` count against this limit.
    fn counts(&self, path: &str) -> bool;
    /// A place for `request`, or the RESOURCE_EXHAUSTED status saying why
    /// there is none.
    fn admit<B>(&self, request: &http::Request<B>) -> Result<Self::Place, Status>;
}

/// Applies one [`Admission`] to the calls it counts; every other call
/// passes untouched.
#[derive(Clone)]
pub struct InFlightLimitLayer<A> {
    admission: A,
}

impl<A> InFlightLimitLayer<A> {
    pub(crate) fn with(admission: A) -> Self {
        Self { admission }
    }

    pub(crate) fn admission(&self) -> &A {
        &self.admission
    }
}

impl<S, A: Clone> Layer<S> for InFlightLimitLayer<A> {
    type Service = InFlightLimitService<S, A>;
    fn layer(&self, inner: S) -> Self::Service {
        InFlightLimitService {
            inner,
            admission: self.admission.clone(),
        }
    }
}

#[derive(Clone)]
pub struct InFlightLimitService<S, A> {
    inner: S,
    admission: A,
}

impl<S, A, B> Service<http::Request<B>> for InFlightLimitService<S, A>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    A: Admission,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let mut inner = take_ready(&mut self.inner);
        if !self.admission.counts(request.uri().path()) {
            return Box::pin(inner.call(request));
        }
        let place = match self.admission.admit(&request) {
            Ok(place) => place,
            Err(status) => return Box::pin(async move { Ok(refuse(status)) }),
        };
        Box::pin(async move {
            let response = inner.call(request).await;
            if !A::HOLD_THROUGH_BODY {
                drop(place);
                return response;
            }
            let (parts, body) = response?.into_parts();
            let body = Body::new(PlacedBody {
                inner: body,
                _place: place,
            });
            Ok(http::Response::from_parts(parts, body))
        })
    }
}

pin_project_lite::pin_project! {
    /// A stream's body, holding its place until it ends or is dropped.
    struct PlacedBody<P> {
        #[pin]
        inner: Body,
        _place: P,
    }
}

impl<P> HttpBody for PlacedBody<P> {
    type Data = <Body as HttpBody>::Data;
    type Error = <Body as HttpBody>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        self.project().inner.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// ---------------------------------------------------------------- load shedding

/// Caps RPCs in flight across all connections. A call that finds no free
/// slot is refused with RESOURCE_EXHAUSTED instead of queueing, so an
/// overloaded replica sheds load quickly and clients back off or go
/// elsewhere. Health probes are never shed, and Watch streams are capped
/// apart ([`crate::watchers`]). A slot is held until the response starts.
pub type LoadShedLayer = InFlightLimitLayer<CallSlots>;
pub type LoadShedService<S> = InFlightLimitService<S, CallSlots>;

/// The replica's slots for calls in flight.
#[derive(Clone)]
pub struct CallSlots {
    slots: Arc<Semaphore>,
}

impl LoadShedLayer {
    pub fn new(max_in_flight: usize) -> Self {
        Self::with(CallSlots {
            slots: Arc::new(Semaphore::new(max_in_flight.max(1))),
        })
    }
}

impl Admission for CallSlots {
    type Place = OwnedSemaphorePermit;
    const HOLD_THROUGH_BODY: bool = false;

    fn counts(&self, path: &str) -> bool {
        !path.starts_with("/grpc.health.v1.") && !crate::watchers::is_watch_path(path)
    }

    fn admit<B>(&self, _: &http::Request<B>) -> Result<Self::Place, Status> {
        self.slots.clone().try_acquire_owned().map_err(|_| {
            Status::resource_exhausted("server is at its concurrency limit, retry with backoff")
        })
    }
}

// ---------------------------------------------------------------- telemetry

/// One server span per RPC, parented on the caller's W3C trace context,
/// ending with the gRPC status code; plus an `rpc.server.duration` sample
/// (milliseconds, by method and status) from which rate and error ratio
/// follow. Only the method and the status are recorded: never a payload.
#[derive(Clone)]
pub struct RpcTelemetryLayer {
    duration: Histogram<f64>,
}

impl RpcTelemetryLayer {
    pub fn new(service_name: &'static str) -> Self {
        let meter = opentelemetry::global::meter(service_name);
        let duration = meter
            .f64_histogram("rpc.server.duration")
            .with_unit("ms")
            .with_description("Duration of inbound RPCs")
            .build();
        Self { duration }
    }
}

impl<S> Layer<S> for RpcTelemetryLayer {
    type Service = RpcTelemetryService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        RpcTelemetryService {
            inner,
            duration: self.duration.clone(),
        }
    }
}

#[derive(Clone)]
pub struct RpcTelemetryService<S> {
    inner: S,
    duration: Histogram<f64>,
}

impl<S, B> Service<http::Request<B>> for RpcTelemetryService<S>
where
    S: Service<http::Request<B>, Response = http::Response<Body>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    B: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = S::Error;
    type Future = BoxFuture<'static, Result<Self::Response, Self::Error>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let path = request.uri().path().to_owned();
        let (service, method) = path
            .trim_start_matches('/')
            .split_once('/')
            .map(|(s, m)| (s.to_owned(), m.to_owned()))
            .unwrap_or_else(|| (String::new(), path.clone()));
        let span = tracing::info_span!(
            "rpc",
            otel.name = %path,
            otel.kind = "server",
            otel.status_code = tracing::field::Empty,
            rpc.system = "grpc",
            rpc.service = %service,
            rpc.method = %method,
            rpc.grpc.status_code = tracing::field::Empty,
            enduser.role = tracing::field::Empty,
        );
        // A malformed traceparent just starts a new trace.
        let _ = span.set_parent(telemetry::extract_context(request.headers()));
        let observer = Observer {
            span: span.clone(),
            method: path,
            started: Instant::now(),
            duration: self.duration.clone(),
            done: false,
        };
        let mut inner = take_ready(&mut self.inner);
        Box::pin(
            async move {
                let response = inner.call(request).await?;
                let (parts, body) = response.into_parts();
                let mut observer = observer;
                // Errors are "trailers-only" responses: the status is in the
                // headers. Otherwise it arrives in the trailers.
                if let Some(code) = grpc_code(&parts.headers) {
                    observer.finish(code);
                }
                let body = Body::new(ObservedBody {
                    inner: body,
                    observer: Some(observer),
                });
                Ok(http::Response::from_parts(parts, body))
            }
            .instrument(span),
        )
    }
}

fn grpc_code(headers: &http::HeaderMap) -> Option<Code> {
    headers
        .get("grpc-status")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<i32>().ok())
        .map(Code::from_i32)
}

struct Observer {
    span: tracing::Span,
    method: String,
    started: Instant,
    duration: Histogram<f64>,
    done: bool,
}

impl Observer {
    fn finish(&mut self, code: Code) {
        if self.done {
            return;
        }
        self.done = true;
        let elapsed_ms = self.started.elapsed().as_secs_f64() * 1000.0;
        self.span.record("rpc.grpc.status_code", code as i32);
        let server_fault = matches!(
            code,
            Code::Unknown
                | Code::Internal
                | Code::Unavailable
                | Code::DataLoss
                | Code::DeadlineExceeded
        );
        if server_fault {
            self.span.record("otel.status_code", "ERROR");
        }
        self.duration.record(
            elapsed_ms,
            &[
                KeyValue::new("rpc.method", self.method.clone()),
                KeyValue::new("rpc.grpc.status_code", code as i64),
            ],
        );
        self.span.in_scope(|| {
            if server_fault {
                tracing::warn!(code = ?code, elapsed_ms, "rpc finished");
            } else {
                tracing::debug!(code = ?code, elapsed_ms, "rpc finished");
            }
        });
    }
}

impl Drop for Observer {
    fn drop(&mut self) {
        // The body went away before trailers: the client cancelled or the
        // connection broke.
        self.finish(Code::Cancelled);
    }
}

pin_project_lite::pin_project! {
    struct ObservedBody {
        #[pin]
        inner: Body,
        observer: Option<Observer>,
    }
}

impl HttpBody for ObservedBody {
    type Data = bytes_alias::Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Self::Data>, Self::Error>>> {
        let this = self.project();
        let frame = ready!(this.inner.poll_frame(cx));
        match &frame {
            Some(Ok(frame)) => {
                if let Some(trailers) = frame.trailers_ref()
                    && let Some(mut observer) = this.observer.take()
                {
                    observer.finish(grpc_code(trailers).unwrap_or(Code::Unknown));
                }
            }
            Some(Err(status)) => {
                if let Some(mut observer) = this.observer.take() {
                    observer.finish(status.code());
                }
            }
            None => {
                if let Some(mut observer) = this.observer.take() {
                    observer.finish(Code::Ok);
                }
            }
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

mod bytes_alias {
    pub type Bytes = <tonic::body::Body as http_body::Body>::Data;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(path: &str) -> http::Request<Body> {
        http::Request::builder()
            .uri(path)
            .body(Body::empty())
            .expect("request")
    }

    #[tokio::test]
    async fn a_panicking_handler_answers_internal_and_the_next_call_is_served() {
        let handler = tower::service_fn(|request: http::Request<Body>| async move {
            if request.uri().path().ends_with("/Explode") {
                panic!("`DateTime + TimeDelta` overflowed");
            }
            Ok::<_, std::convert::Infallible>(http::Response::new(Body::empty()))
        });
        let mut service = CatchPanicLayer.layer(handler);

        let answer = service
            .call(request("/onestop.test.v1.Test/Explode"))
            .await
            .expect("answered");
        assert_eq!(grpc_code(answer.headers()), Some(Code::Internal));

        let answer = service
            .call(request("/onestop.test.v1.Test/Calm"))
            .await
            .expect("answered");
        assert_eq!(answer.status(), http::StatusCode::OK);
        assert_eq!(grpc_code(answer.headers()), None);
    }

    #[tokio::test]
    async fn a_panic_while_the_call_is_built_is_caught_too() {
        #[derive(Clone)]
        struct Brittle;
        impl Service<http::Request<Body>> for Brittle {
            type Response = http::Response<Body>;
            type Error = std::convert::Infallible;
            type Future = std::future::Ready<Result<Self::Response, Self::Error>>;
            fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
                Poll::Ready(Ok(()))
            }
            fn call(&mut self, _: http::Request<Body>) -> Self::Future {
                panic!("index out of bounds: the len is 0 but the index is 0")
            }
        }
        let answer = CatchPanicLayer
            .layer(Brittle)
            .call(request("/onestop.test.v1.Test/Brittle"))
            .await
            .expect("answered");
        assert_eq!(grpc_code(answer.headers()), Some(Code::Internal));
    }

    #[test]
    fn long_panic_messages_are_cut() {
        let payload: Box<dyn std::any::Any + Send> = Box::new("x".repeat(10_000));
        assert_eq!(panic_message(payload.as_ref()).len(), MAX_PANIC_MESSAGE);
    }
}
