use std::net::SocketAddr;
use std::time::Duration;

use onestop_contracts::intake::v1 as pb;
use onestop_test_support::{TcpProxy, TestDb, channel, eventually, server_url};
use sqlx::postgres::PgConnectOptions;
use tokio_stream::StreamExt;
use tonic::Code;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_reflection::pb::v1::ServerReflectionRequest;
use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

use crate::common::{Intake, profile, registration_number};

async fn health(addr: SocketAddr, service: &str) -> Option<ServingStatus> {
    let mut client = HealthClient::new(channel(addr));
    let response = client
        .check(HealthCheckRequest {
            service: service.into(),
        })
        .await
        .ok()?;
    ServingStatus::try_from(response.into_inner().status).ok()
}

fn postgres_addr() -> SocketAddr {
    let options: PgConnectOptions = server_url().parse().unwrap();
    format!("{}:{}", options.get_host(), options.get_port())
        .parse()
        .expect("the test Postgres listens on TCP")
}

#[tokio::test]
async fn health_is_not_serving_while_the_database_is_unreachable_and_recovers() {
    let db = TestDb::new().await;
    let proxy = TcpProxy::start(postgres_addr()).await;
    let url = db.url_via(proxy.addr());
    let intake = Intake::start_on(db, |settings| settings.database_url = Some(url)).await;
    let api = "onestop.intake.v1.IntakeService";

    let serving = || async { health(intake.addr, api).await == Some(ServingStatus::Serving) };
    let not_serving =
        || async { health(intake.addr, api).await == Some(ServingStatus::NotServing) };
    assert!(eventually(Duration::from_secs(10), serving).await);
    assert_eq!(health(intake.addr, "").await, Some(ServingStatus::Serving));

    assert_eq!(
        health(intake.addr, "readiness").await,
        Some(ServingStatus::Serving)
    );
    assert_eq!(
        health(intake.addr, "liveness").await,
        Some(ServingStatus::Serving)
    );

    proxy.cut();
    assert!(eventually(Duration::from_secs(10), not_serving).await);
    assert_eq!(
        health(intake.addr, "onestop.events.v1.EventFeedService").await,
        Some(ServingStatus::NotServing)
    );
    // Out of rotation, but alive: a database outage must not make the
    // kubelet restart every replica.
    assert_eq!(
        health(intake.addr, "").await,
        Some(ServingStatus::NotServing)
    );
    assert_eq!(
        health(intake.addr, "readiness").await,
        Some(ServingStatus::NotServing)
    );
    assert_eq!(
        health(intake.addr, "liveness").await,
        Some(ServingStatus::Serving)
    );
    // Calls fail as UNAVAILABLE, a retryable code, not as INTERNAL.
    let status = intake
        .kotra()
        .register_company(pb::RegisterCompanyRequest {
            idempotency_key: String::new(),
            profile: Some(profile(&registration_number(800))),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");

    proxy.restore();
    assert!(eventually(Duration::from_secs(15), serving).await);
    intake.register(&registration_number(801), 0, false).await;
}

#[tokio::test]
async fn reflection_lists_only_the_services_this_port_serves() {
    let intake = Intake::start().await;
    let mut client = ServerReflectionClient::new(channel(intake.addr));
    let requests = [
        MessageRequest::ListServices(String::new()),
        MessageRequest::FileContainingSymbol("onestop.intake.v1.IntakeService".into()),
    ]
    .map(|message| ServerReflectionRequest {
        host: String::new(),
        message_request: Some(message),
    });
    let mut responses = client
        .server_reflection_info(tokio_stream::iter(requests))
        .await
        .unwrap()
        .into_inner();
    let response = responses.next().await.unwrap().unwrap();
    let Some(MessageResponse::ListServicesResponse(list)) = response.message_response else {
        panic!("unexpected reflection response");
    };
    let mut names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    names.sort();
    assert_eq!(
        names,
        [
            "grpc.health.v1.Health",
            "grpc.reflection.v1.ServerReflection",
            "grpc.reflection.v1alpha.ServerReflection",
            "onestop.audit.v1.AuditService",
            "onestop.events.v1.EventFeedService",
            "onestop.intake.v1.IntakeService",
        ]
    );
    // What is listed can still be described.
    let described = responses.next().await.unwrap().unwrap();
    assert!(
        matches!(
            described.message_response,
            Some(MessageResponse::FileDescriptorResponse(ref files)) if !files.file_descriptor_proto.is_empty()
        ),
        "{described:?}"
    );
}

/// Holds the idempotency row a call will try to claim, so that call blocks
/// inside the server until the returned transaction ends.
async fn block_key(intake: &Intake, key: &str) -> sqlx::Transaction<'static, sqlx::Postgres> {
    let mut tx = intake.pool.begin().await.unwrap();
    sqlx::query(
        "INSERT INTO idempotency_key (scope, method, key, request_hash)
         VALUES ('agency:kotra:test', 'RegisterCompany', $1, '\\x00')",
    )
    .bind(key)
    .execute(&mut *tx)
    .await
    .unwrap();
    tx
}

fn keyed(key: &str, seed: u32) -> pb::RegisterCompanyRequest {
    pb::RegisterCompanyRequest {
        idempotency_key: key.into(),
        profile: Some(profile(&registration_number(seed))),
        ..Default::default()
    }
}

#[tokio::test]
async fn calls_past_the_concurrency_limit_are_shed() {
    let intake = Intake::start_with(|settings| settings.max_in_flight = 1).await;
    let blocker = block_key(&intake, "blocked").await;
    let mut slow_client = intake.kotra();
    let slow =
        tokio::spawn(async move { slow_client.register_company(keyed("blocked", 810)).await });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let status = intake
        .kotra()
        .get_company(pb::GetCompanyRequest {
            company_id: uuid::Uuid::now_v7().to_string(),
        })
        .await
        .unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted);
    // Probes are never shed.
    assert_eq!(health(intake.addr, "").await, Some(ServingStatus::Serving));

    blocker.rollback().await.unwrap();
    slow.await
        .unwrap()
        .expect("the held call completes once unblocked");
}

#[tokio::test]
async fn calls_past_the_request_timeout_are_cancelled() {
    let intake =
        Intake::start_with(|settings| settings.request_timeout = Duration::from_millis(300)).await;
    let blocker = block_key(&intake, "too-slow").await;
    let status = intake
        .kotra()
        .register_company(keyed("too-slow", 820))
        .await
        .unwrap_err();
    assert!(
        matches!(status.code(), Code::Cancelled | Code::DeadlineExceeded),
        "{status:?}"
    );
    blocker.rollback().await.unwrap();
    assert_eq!(intake.count("company").await, 0);
}

#[tokio::test]
async fn oversized_messages_are_refused() {
    let intake = Intake::start_with(|settings| settings.max_message_bytes = 4096).await;
    let mut request = keyed("", 830);
    request.profile.as_mut().unwrap().name_ko = "가".repeat(5000);
    let status = intake.kotra().register_company(request).await.unwrap_err();
    assert!(
        matches!(status.code(), Code::OutOfRange | Code::ResourceExhausted),
        "{status:?}"
    );
    assert_eq!(intake.count("company").await, 0);
}

/// A connection whose peer falls silent is closed by the keepalive within
/// its interval and timeout, on the server's side and on the client's.
#[tokio::test]
async fn a_silent_peer_is_dropped_by_http2_keepalive() {
    use onestop_platform::client::lazy_channel;
    use onestop_platform::config::Keepalive;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    let keepalive = Keepalive {
        interval: Duration::from_millis(300),
        timeout: Duration::from_millis(300),
    };
    let intake = Intake::start_on(TestDb::new().await, |settings| {
        settings.keepalive = keepalive
    })
    .await;

    // The server: a client that opens HTTP/2 and then never answers a PING.
    let mut silent = tokio::net::TcpStream::connect(intake.addr).await.unwrap();
    silent
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0")
        .await
        .unwrap();
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        let mut buffer = [0u8; 1024];
        while silent.read(&mut buffer).await.is_ok_and(|read| read > 0) {}
    })
    .await;
    assert!(closed.is_ok(), "the server kept a silent connection open");

    // The client: a live watch whose connection is blackholed fails instead
    // of waiting forever.
    let proxy = TcpProxy::start(intake.addr).await;
    let channel = lazy_channel(
        &format!("http://{}", proxy.addr()),
        Duration::from_secs(3600),
        &Default::default(),
        &keepalive,
    )
    .unwrap();
    let mut watch = HealthClient::new(channel)
        .watch(HealthCheckRequest {
            service: "liveness".into(),
        })
        .await
        .unwrap()
        .into_inner();
    let first = watch.message().await.unwrap().unwrap();
    assert_eq!(first.status(), ServingStatus::Serving);
    proxy.blackhole();
    let ended = tokio::time::timeout(Duration::from_secs(5), watch.message())
        .await
        .expect("the client noticed the silent server");
    assert!(ended.is_err(), "{ended:?}");
}

#[tokio::test]
async fn watch_streams_are_capped_per_replica_and_per_caller_apart_from_unary_calls() {
    use onestop_contracts::events::v1::WatchRequest;
    use onestop_test_support::{Bearer, FeedClient};

    let intake = Intake::start_with(|settings| {
        settings.max_watchers = 2;
        settings.max_watchers_per_caller = 1;
        settings.max_in_flight = 1;
    })
    .await;
    let watch = |bearer: Bearer| {
        let mut client: FeedClient = intake.client(bearer);
        async move { client.watch(WatchRequest::default()).await }
    };

    let first = watch(Bearer::dashboard()).await.expect("a first stream");
    let again = watch(Bearer::dashboard()).await.unwrap_err();
    assert_eq!(again.code(), Code::ResourceExhausted, "{again:?}");
    let _second = watch(Bearer::service()).await.expect("another caller's");
    let full = watch(Bearer::admin()).await.unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted, "{full:?}");

    // Open streams take no place of the unary calls' one slot.
    intake.register(&registration_number(830), 0, false).await;
    assert_eq!(health(intake.addr, "").await, Some(ServingStatus::Serving));

    // A closed stream gives its place back.
    drop(first);
    let admitted = || async { watch(Bearer::admin()).await.is_ok() };
    assert!(eventually(Duration::from_secs(5), admitted).await);
}
