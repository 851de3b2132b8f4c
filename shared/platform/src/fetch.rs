//! Small HTTP(S) GETs with a deadline and a size bound: identity
//! providers' key sets and revocation lists. One request per connection;
//! these are fetched every few seconds at most. And POSTs of one JSON body
//! with a deadline, answering only the status: webhook deliveries.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use http_body_util::{BodyExt, Empty, Full, Limited};
use hyper::body::Bytes;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;

use crate::tls::ClientTls;

/// Key sets and revocation lists are small; anything bigger is refused.
const MAX_BODY: usize = 1024 * 1024;

/// The body of a `200 OK` answer to `GET url`, within `deadline`.
pub async fn get(url: &str, tls: &ClientTls, deadline: Duration) -> anyhow::Result<Vec<u8>> {
    tokio::time::timeout(deadline, get_now(url, tls))
        .await
        .map_err(|_| anyhow::anyhow!("{url}: no answer within {deadline:?}"))?
        .with_context(|| format!("GET {url}"))
}

async fn get_now(url: &str, tls: &ClientTls) -> anyhow::Result<Vec<u8>> {
    let uri: http::Uri = url.parse().context("not a URL")?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => anyhow::bail!("only http and https URLs can be fetched"),
    };
    let authority = uri.authority().context("URL has no host")?.clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let request = http::Request::get(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority.as_str())
        .header(http::header::USER_AGENT, "onestop")
        .header(http::header::ACCEPT, "application/json")
        .body(Empty::<Bytes>::new())?;
    let tcp = TcpStream::connect((host, port)).await?;
    if https {
        let connector = tokio_rustls::TlsConnector::from(Arc::new(tls.rustls_config()?));
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())?;
        send(connector.connect(name, tcp).await?, request).await
    } else {
        send(tcp, request).await
    }
}

async fn send<S>(io: S, request: http::Request<Empty<Bytes>>) -> anyhow::Result<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io)).await?;
    // Driven beside the request, and stopped with it even on a timeout.
    let driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender.send_request(request).await?;
    anyhow::ensure!(
        response.status() == http::StatusCode::OK,
        "answered {}",
        response.status()
    );
    let body = Limited::new(response.into_body(), MAX_BODY)
        .collect()
        .await
        .map_err(|error| anyhow::anyhow!("reading the body: {error}"))?;
    drop(driver);
    Ok(body.to_bytes().to_vec())
}

/// Why a POST got no HTTP status.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PostFailure {
    /// No answer within the deadline.
    Timeout,
    /// The host could not be reached (name, refused, reset).
    Connect,
    /// The TLS handshake failed (certificate, protocol).
    Tls,
    /// The URL or the HTTP exchange was not usable.
    Protocol,
}

impl PostFailure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Timeout => "timeout",
            Self::Connect => "connect",
            Self::Tls => "tls",
            Self::Protocol => "protocol",
        }
    }
}

/// POSTs `body` (JSON) with `headers` to `url` within `deadline`; the
/// answer's status, whatever it is. The answer's body is not read.
pub async fn post(
    url: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
    tls: &ClientTls,
    deadline: Duration,
) -> Result<u16, PostFailure> {
    tokio::time::timeout(deadline, post_now(url, headers, body, tls))
        .await
        .unwrap_or(Err(PostFailure::Timeout))
}

async fn post_now(
    url: &str,
    headers: &[(&'static str, String)],
    body: Vec<u8>,
    tls: &ClientTls,
) -> Result<u16, PostFailure> {
    let uri: http::Uri = url.parse().map_err(|_| PostFailure::Protocol)?;
    let https = match uri.scheme_str() {
        Some("https") => true,
        Some("http") => false,
        _ => return Err(PostFailure::Protocol),
    };
    let authority = uri.authority().ok_or(PostFailure::Protocol)?.clone();
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']');
    let port = authority.port_u16().unwrap_or(if https { 443 } else { 80 });
    let mut request = http::Request::post(uri.path_and_query().map_or("/", |p| p.as_str()))
        .header(http::header::HOST, authority.as_str())
        .header(http::header::USER_AGENT, "onestop")
        .header(http::header::CONTENT_TYPE, "application/json");
    for (name, value) in headers {
        request = request.header(*name, value.as_str());
    }
    let request = request
        .body(Full::new(Bytes::from(body)))
        .map_err(|_| PostFailure::Protocol)?;
    let tcp = TcpStream::connect((host, port))
        .await
        .map_err(|_| PostFailure::Connect)?;
    if https {
        let config = tls.rustls_config().map_err(|_| PostFailure::Tls)?;
        let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
        let name = rustls_pki_types::ServerName::try_from(host.to_owned())
            .map_err(|_| PostFailure::Tls)?;
        let stream = connector
            .connect(name, tcp)
            .await
            .map_err(|_| PostFailure::Tls)?;
        send_post(stream, request).await
    } else {
        send_post(tcp, request).await
    }
}

async fn send_post<S>(io: S, request: http::Request<Full<Bytes>>) -> Result<u16, PostFailure>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(io))
        .await
        .map_err(|_| PostFailure::Protocol)?;
    let _driver = AbortOnDrop(tokio::spawn(async move {
        let _ = connection.await;
    }));
    let response = sender
        .send_request(request)
        .await
        .map_err(|_| PostFailure::Connect)?;
    Ok(response.status().as_u16())
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
