//! A webhook receiver: a real HTTP/1.1 server (hyper) on loopback that
//! records every POST it gets and answers with the status the test sets;
//! it can go down and come back on the same port.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};

use http_body_util::{BodyExt, Empty};
use hyper::body::{Bytes, Incoming};
use hyper_util::rt::TokioIo;

/// One request the receiver got, and what it answered.
#[derive(Debug, Clone)]
pub struct Received {
    pub headers: http::HeaderMap,
    pub body: Vec<u8>,
    pub answered: u16,
}

#[derive(Default)]
struct Shared {
    answer: AtomicU16,
    received: Mutex<Vec<Received>>,
}

/// Stops serving when dropped.
pub struct WebhookReceiver {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    serving: tokio::task::JoinHandle<()>,
}

impl WebhookReceiver {
    /// Serves on a free loopback port, answering 200.
    pub async fn start() -> Self {
        Self::serve(
            tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind"),
            Arc::default(),
        )
    }

    fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>) -> Self {
        if shared.answer.load(Ordering::SeqCst) == 0 {
            shared.answer.store(200, Ordering::SeqCst);
        }
        let addr = listener.local_addr().expect("address");
        let served = shared.clone();
        let serving = tokio::spawn(async move {
            let mut connections = tokio::task::JoinSet::new();
            while let Ok((tcp, _)) = listener.accept().await {
                let shared = served.clone();
                let service = hyper::service::service_fn(move |request| {
                    let shared = shared.clone();
                    async move { Ok::<_, Infallible>(record(&shared, request).await) }
                });
                connections.spawn(async move {
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(tcp), service)
                        .await;
                });
            }
        });
        Self {
            addr,
            shared,
            serving,
        }
    }

    /// Where to register it.
    pub fn url(&self) -> String {
        format!("http://{}/hooks/onestop", self.addr)
    }

    /// Answers every later request with `status`.
    pub fn answer_with(&self, status: u16) {
        self.shared.answer.store(status, Ordering::SeqCst);
    }

    /// Everything received so far, in arrival order.
    pub fn received(&self) -> Vec<Received> {
        self.shared
            .received
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Goes down: the port refuses connections until [`Self::come_back`].
    pub async fn go_down(&self) {
        self.serving.abort();
        while !self.serving.is_finished() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    }

    /// Serves again on the same port, keeping what was received.
    pub async fn come_back(&mut self) {
        let listener = tokio::net::TcpListener::bind(self.addr)
            .await
            .expect("the receiver's port is free again");
        let back = Self::serve(listener, self.shared.clone());
        // The old server is down already; dropping it changes nothing.
        drop(std::mem::replace(self, back));
    }
}

async fn record(
    shared: &Shared,
    request: hyper::Request<Incoming>,
) -> hyper::Response<Empty<Bytes>> {
    let (parts, body) = request.into_parts();
    let body = body
        .collect()
        .await
        .map(|collected| collected.to_bytes().to_vec())
        .unwrap_or_default();
    let answered = shared.answer.load(Ordering::SeqCst);
    shared
        .received
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .push(Received {
            headers: parts.headers,
            body,
            answered,
        });
    let mut response = hyper::Response::new(Empty::new());
    *response.status_mut() = http::StatusCode::from_u16(answered).unwrap_or(http::StatusCode::OK);
    response
}

impl Drop for WebhookReceiver {
    fn drop(&mut self) {
        self.serving.abort();
    }
}
