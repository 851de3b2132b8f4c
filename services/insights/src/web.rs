//! The dashboard port (ONESTOP_HTTP_LISTEN): the built dashboard page as
//! static files, and `InsightsService` over gRPC-Web with CORS, behind the
//! same telemetry, load shedding and bearer-token check as the gRPC port.
//! The page sends its token only as the authorization header.

use std::collections::HashMap;
use std::convert::Infallible;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{Either, Ready, ready};
use http::{HeaderValue, Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use onestop_platform::auth::TokenVerifier;
use onestop_platform::config::ServerSettings;
use onestop_platform::layers::RpcLayers;
use onestop_platform::server::CancellationToken;
use onestop_platform::watchers::WatchLimitLayer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::body::Body;
use tonic::server::NamedService;
use tower::{Layer, Service};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// Most files the page directory may hold; it holds a handful.
const MAX_ASSETS: usize = 256;
/// Largest asset served.
const MAX_ASSET_BYTES: u64 = 16 * 1024 * 1024;

/// Headers a browser may send and read on gRPC-Web calls.
const ALLOWED_HEADERS: [&str; 5] = [
    "authorization",
    "content-type",
    "x-grpc-web",
    "x-user-agent",
    "grpc-timeout",
];
const EXPOSED_HEADERS: [&str; 3] = ["grpc-status", "grpc-message", "grpc-status-details-bin"];

/// The page may load only its own files and call any insights origin; it
/// is never framed.
const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; img-src 'self' data:; \
     style-src 'self' 'unsafe-inline'; connect-src 'self' http: https:; frame-ancestors 'none'";

pub struct Page {
    pub listener: TcpListener,
    pub dashboard_dir: PathBuf,
    pub cors_origins: String,
    /// The replica's Watch caps, shared with the gRPC port.
    pub watchers: WatchLimitLayer,
}

impl Page {
    /// Serves until `shutdown`.
    pub async fn serve<S>(
        self,
        api: S,
        settings: ServerSettings,
        verifier: TokenVerifier,
        shutdown: CancellationToken,
    ) -> anyhow::Result<()>
    where
        S: Service<Request<Body>, Response = Response<Body>, Error = Infallible>
            + NamedService
            + Clone
            + Send
            + Sync
            + 'static,
        S::Future: Send + 'static,
    {
        let assets = Assets::load(&self.dashboard_dir);
        let addr = self.listener.local_addr()?;
        let layers = tower::ServiceBuilder::new()
            .layer(cors(&self.cors_origins)?)
            .layer(AssetsLayer(Arc::new(assets)))
            .layer(tonic_web::GrpcWebLayer::new())
            .layer(RpcLayers::new(
                crate::startup::SERVICE_NAME,
                settings.max_in_flight,
                verifier,
                self.watchers.clone(),
            ));
        tracing::info!(http_addr = %addr, "dashboard page and gRPC-Web served");
        settings
            .keepalive
            .server(tonic::transport::Server::builder())
            .accept_http1(true)
            .layer(layers)
            .add_service(api)
            .serve_with_incoming_shutdown(
                TcpListenerStream::new(self.listener),
                shutdown.cancelled_owned(),
            )
            .await?;
        Ok(())
    }
}

fn cors(origins: &str) -> anyhow::Result<CorsLayer> {
    let allow = if origins.trim() == "*" {
        AllowOrigin::any()
    } else {
        let list = origins
            .split(',')
            .map(str::trim)
            .filter(|o| !o.is_empty())
            .map(HeaderValue::from_str)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|error| anyhow::anyhow!("ONESTOP_CORS_ORIGINS: {error}"))?;
        AllowOrigin::list(list)
    };
    Ok(CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([Method::POST, Method::GET, Method::OPTIONS])
        .allow_headers(ALLOWED_HEADERS.map(header::HeaderName::from_static))
        .expose_headers(EXPOSED_HEADERS.map(header::HeaderName::from_static))
        .max_age(Duration::from_secs(24 * 3600)))
}

struct Asset {
    content_type: &'static str,
    bytes: Bytes,
}

/// The page's files, read once at startup.
struct Assets {
    dir: PathBuf,
    files: HashMap<String, Asset>,
}

fn content_type(path: &Path) -> &'static str {
    match path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
    {
        "html" => "text/html; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "json" | "map" => "application/json",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "txt" => "text/plain; charset=utf-8",
        _ => "application/octet-stream",
    }
}

impl Assets {
    fn load(dir: &Path) -> Self {
        let mut files = HashMap::new();
        let mut pending = vec![dir.to_path_buf()];
        while let Some(current) = pending.pop() {
            let Ok(entries) = std::fs::read_dir(&current) else {
                continue;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(meta) = entry.metadata() else { continue };
                if meta.is_dir() {
                    pending.push(path);
                } else if meta.len() <= MAX_ASSET_BYTES && files.len() < MAX_ASSETS {
                    let Ok(relative) = path.strip_prefix(dir) else {
                        continue;
                    };
                    let Ok(bytes) = std::fs::read(&path) else {
                        continue;
                    };
                    let key = format!("/{}", relative.to_string_lossy().replace('\\', "/"));
                    files.insert(
                        key,
                        Asset {
                            content_type: content_type(&path),
                            bytes: Bytes::from(bytes),
                        },
                    );
                }
            }
        }
        if files.contains_key("/index.html") {
            tracing::info!(dir = %dir.display(), files = files.len(), "dashboard page loaded");
        } else {
            tracing::warn!(
                dir = %dir.display(),
                "no dashboard page there (build it: npm run build --prefix services/insights/web); \
                 gRPC-Web still served"
            );
        }
        Self {
            dir: dir.to_path_buf(),
            files,
        }
    }

    fn respond(&self, path: &str) -> Response<Body> {
        let key = if path == "/" { "/index.html" } else { path };
        let (status, content_type, bytes) = match self.files.get(key) {
            Some(asset) => (StatusCode::OK, asset.content_type, asset.bytes.clone()),
            None => (
                StatusCode::NOT_FOUND,
                "text/plain; charset=utf-8",
                Bytes::from(format!(
                    "not found; the dashboard page is served from {}\n",
                    self.dir.display()
                )),
            ),
        };
        let mut response = Response::new(Body::new(Full::new(bytes)));
        *response.status_mut() = status;
        let headers = response.headers_mut();
        headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
        // Small files, rebuilt under the same names: always revalidate.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        headers.insert(
            header::CONTENT_SECURITY_POLICY,
            HeaderValue::from_static(CONTENT_SECURITY_POLICY),
        );
        headers.insert(
            header::REFERRER_POLICY,
            HeaderValue::from_static("no-referrer"),
        );
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        response
    }
}

/// Answers GET and HEAD for the page's files; everything else (gRPC-Web
/// and gRPC calls are POSTs) goes on to the API.
#[derive(Clone)]
struct AssetsLayer(Arc<Assets>);

impl<S> Layer<S> for AssetsLayer {
    type Service = AssetsService<S>;
    fn layer(&self, inner: S) -> Self::Service {
        AssetsService {
            assets: self.0.clone(),
            inner,
        }
    }
}

#[derive(Clone)]
struct AssetsService<S> {
    assets: Arc<Assets>,
    inner: S,
}

impl<S, B> Service<Request<B>> for AssetsService<S>
where
    S: Service<Request<B>, Response = Response<Body>>,
{
    type Response = Response<Body>;
    type Error = S::Error;
    type Future = Either<Ready<Result<Response<Body>, S::Error>>, S::Future>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: Request<B>) -> Self::Future {
        if request.method() == Method::GET || request.method() == Method::HEAD {
            Either::Left(ready(Ok(self.assets.respond(request.uri().path()))))
        } else {
            Either::Right(self.inner.call(request))
        }
    }
}
