//! The dashboard port: the page's files and the API over gRPC-Web (HTTP/1.1,
//! as browsers speak it), with CORS, behind the bearer-token check.

use std::net::SocketAddr;

use onestop_contracts::insights::v1 as pb;
use prost::Message;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{Feeds, Insights, filter};

/// One HTTP/1.1 exchange on a fresh connection: status, headers (lower
/// case), body (de-chunked).
async fn exchange(addr: SocketAddr, request: Vec<u8>) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    stream.write_all(&request).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a header block");
    let head = String::from_utf8(raw[..split].to_vec()).unwrap();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v == "chunked")
    {
        let mut plain = Vec::new();
        let mut rest = body.as_slice();
        loop {
            let line_end = rest.windows(2).position(|w| w == b"\r\n").unwrap();
            let size =
                usize::from_str_radix(std::str::from_utf8(&rest[..line_end]).unwrap(), 16).unwrap();
            rest = &rest[line_end + 2..];
            if size == 0 {
                break;
            }
            plain.extend_from_slice(&rest[..size]);
            rest = &rest[size + 2..];
        }
        body = plain;
    }
    (status, headers, body)
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

fn get(path: &str) -> Vec<u8> {
    format!("GET {path} HTTP/1.1\r\nhost: dashboard\r\nconnection: close\r\n\r\n").into_bytes()
}

/// A gRPC-Web call as a browser's fetch sends it.
fn grpc_web(method: &str, message: &impl Message, token: Option<&str>) -> Vec<u8> {
    let payload = message.encode_to_vec();
    let mut frame = vec![0u8];
    frame.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    frame.extend_from_slice(&payload);
    let authorization = token
        .map(|t| format!("authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    let mut request = format!(
        "POST /onestop.insights.v1.InsightsService/{method} HTTP/1.1\r\nhost: dashboard\r\n\
         origin: http://elsewhere.example\r\ncontent-type: application/grpc-web+proto\r\n\
         x-grpc-web: 1\r\n{authorization}content-length: {}\r\nconnection: close\r\n\r\n",
        frame.len()
    )
    .into_bytes();
    request.extend_from_slice(&frame);
    request
}

/// The frames of a gRPC-Web response body: data messages and the trailer
/// block (flag 0x80).
fn frames(mut body: &[u8]) -> (Vec<Vec<u8>>, String) {
    let (mut messages, mut trailers) = (Vec::new(), String::new());
    while body.len() >= 5 {
        let length = u32::from_be_bytes(body[1..5].try_into().unwrap()) as usize;
        let data = body[5..5 + length].to_vec();
        if body[0] & 0x80 != 0 {
            trailers = String::from_utf8(data).unwrap();
        } else {
            messages.push(data);
        }
        body = &body[5 + length..];
    }
    (messages, trailers)
}

#[tokio::test]
async fn the_page_and_grpc_web_are_served_on_the_dashboard_port() {
    let page = tempdir();
    std::fs::write(
        page.join("index.html"),
        "<!doctype html><title>OneStop</title>",
    )
    .unwrap();
    std::fs::create_dir_all(page.join("assets")).unwrap();
    std::fs::write(page.join("assets/app.js"), "console.log('live')").unwrap();
    let feeds = Feeds::start().await;
    let insights = Insights::start(onestop_insights::startup::InsightsSettings {
        dashboard_dir: Some(page.clone()),
        ..feeds.settings()
    })
    .await;

    let (status, headers, body) = exchange(insights.http, get("/")).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/html; charset=utf-8")
    );
    assert!(
        header(&headers, "content-security-policy")
            .unwrap()
            .contains("frame-ancestors 'none'")
    );
    assert_eq!(header(&headers, "referrer-policy"), Some("no-referrer"));
    assert!(String::from_utf8(body).unwrap().contains("OneStop"));
    let (status, headers, _) = exchange(insights.http, get("/assets/app.js")).await;
    assert_eq!(status, 200);
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/javascript; charset=utf-8")
    );
    let (status, _, _) = exchange(insights.http, get("/../Cargo.toml")).await;
    assert_eq!(status, 404);

    // A browser on another origin asks first.
    let preflight = b"OPTIONS /onestop.insights.v1.InsightsService/GetIndicators HTTP/1.1\r\n\
        host: dashboard\r\norigin: http://elsewhere.example\r\n\
        access-control-request-method: POST\r\n\
        access-control-request-headers: authorization,content-type,x-grpc-web\r\n\
        connection: close\r\n\r\n"
        .to_vec();
    let (status, headers, _) = exchange(insights.http, preflight).await;
    assert_eq!(status, 200);
    assert_eq!(header(&headers, "access-control-allow-origin"), Some("*"));
    assert!(
        header(&headers, "access-control-allow-headers")
            .unwrap()
            .contains("authorization")
    );

    let request = pb::GetIndicatorsRequest {
        filter: Some(filter()),
    };
    let token = onestop_test_support::token(onestop_platform::Role::Dashboard, None);
    let (status, headers, body) = exchange(
        insights.http,
        grpc_web("GetIndicators", &request, Some(&token)),
    )
    .await;
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("application/grpc-web")
    );
    assert!(
        header(&headers, "access-control-expose-headers")
            .unwrap()
            .contains("grpc-status")
    );
    let (messages, trailers) = frames(&body);
    assert!(trailers.contains("grpc-status:0"), "{trailers}");
    let indicators = pb::Indicators::decode(messages[0].as_slice()).unwrap();
    assert_eq!(indicators.period, filter().period);
    assert!(indicators.buyer_vetting.is_some());

    // No token: refused like on the gRPC port.
    let (status, headers, body) =
        exchange(insights.http, grpc_web("GetIndicators", &request, None)).await;
    assert_eq!(status, 200);
    let refused = header(&headers, "grpc-status")
        .map(str::to_owned)
        .unwrap_or_else(|| frames(&body).1);
    assert!(refused.contains("16"), "{refused}");
}

fn tempdir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("onestop-dashboard-{}", uuid::Uuid::new_v4()));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}
