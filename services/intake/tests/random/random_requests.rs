//! Random well-typed requests to every RPC of the four live services
//! (intake, mentoring, buyers, referral, and each one's audit log and event
//! feed), built
//! from the contracts' descriptor set: random strings (codes, ids, long
//! text, control characters), list sizes around the bounds, known and
//! unknown enum values, extreme timestamps, from every role. No call may
//! come back INTERNAL or UNKNOWN (a panic would: the catch-panic layer
//! turns it into INTERNAL), and a refused call stores nothing: the called
//! service's event log has the same head before and after it.
//!
//! Up to 40 calls per RPC (about 3,000 in all) within 45 s by default;
//! `ONESTOP_RANDOM_CALLS_PER_RPC` and `ONESTOP_RANDOM_SECONDS` scale it for
//! a long run, `ONESTOP_RANDOM_SEED` replays one (the seed is printed, and
//! named in any failure).

use std::time::Instant;

use onestop_buyers::startup::Application as BuyersApplication;
use onestop_mentoring::startup::Application as MentoringApplication;
use onestop_platform::Role;
use onestop_referral::startup::Application as ReferralApplication;
use onestop_test_support::{
    BuyersClient, MentoringClient, ReferralClient, TestServer, channel, token,
};
use prost::Message;
use prost::bytes::{Buf, BufMut};
use prost_reflect::{DescriptorPool, DynamicMessage, Kind, MessageDescriptor, Value};
use sqlx::PgPool;
use tonic::Code;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::codegen::http::uri::PathAndQuery;
use tonic::transport::Channel;

use crate::common::{Intake, registration_number};

/// Sends already encoded request bytes; reads and drops the answer.
#[derive(Clone, Copy, Default)]
struct RawCodec;

struct RawEncoder;
struct RawDecoder;

impl Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = ();
    type Encoder = RawEncoder;
    type Decoder = RawDecoder;
    fn encoder(&mut self) -> RawEncoder {
        RawEncoder
    }
    fn decoder(&mut self) -> RawDecoder {
        RawDecoder
    }
}

impl Encoder for RawEncoder {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(&mut self, item: Vec<u8>, dst: &mut EncodeBuf<'_>) -> Result<(), tonic::Status> {
        dst.put_slice(&item);
        Ok(())
    }
}

impl Decoder for RawDecoder {
    type Item = ();
    type Error = tonic::Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<()>, tonic::Status> {
        let remaining = src.remaining();
        src.advance(remaining);
        Ok(Some(()))
    }
}

/// The depth at which a long list's elements are made: deep enough that
/// they hold no message and no long text.
const LONG_LIST_DEPTH: usize = 5;

/// xorshift64*: reproducible from its seed, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Clone>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())].clone()
    }
    fn chance(&mut self, percent: usize) -> bool {
        self.below(100) < percent
    }
}

/// Strings a field may get: valid codes of every kind (so calls get past
/// the first check), ids that exist, and text that must be refused.
fn random_string(rng: &mut Rng, ids: &[String], depth: usize) -> String {
    // Long text only where it is not multiplied by a list.
    let kinds = if depth >= LONG_LIST_DEPTH { 6 } else { 12 };
    match rng.below(kinds) {
        0 => String::new(),
        1 => rng
            .pick(&[
                "US",
                "VN",
                "KR",
                "ko",
                "en",
                "KRW",
                "USD",
                "KR-26",
                "KR-11",
                "20423",
                "20",
                "330499",
                "3304",
                "33",
                "CE",
                "2026-03",
                "need.opened",
                "referral.*",
            ])
            .into(),
        2 => rng
            .pick(&["America/New_York", "Asia/Seoul", "Mars/Olympus", "UTC"])
            .into(),
        3 => uuid::Uuid::now_v7().to_string(),
        4 if !ids.is_empty() => rng.pick(ids),
        5 => rng
            .pick(&[
                "kotra",
                "sbc",
                "kbc-newyork",
                "kotra.export-first-step",
                "admin",
            ])
            .into(),
        6 => "a\0b".into(),
        7 => "\u{1b}[31m\r\n\u{7f}".into(),
        8 => "가".repeat(rng.pick(&[199, 200, 201, 2001, 4001])),
        9 => "x".repeat(rng.below(6000)),
        10 => registration_number(rng.below(1_000_000) as u32),
        _ => format!("{:x}", rng.next()),
    }
}

fn random_value(rng: &mut Rng, kind: &Kind, depth: usize, ids: &[String]) -> Value {
    // A draw of its own for the "any value" choices below.
    let any = rng.next();
    match kind {
        Kind::String => Value::String(random_string(rng, ids, depth)),
        Kind::Bytes => Value::Bytes(random_string(rng, ids, depth).into_bytes().into()),
        Kind::Bool => Value::Bool(rng.chance(50)),
        Kind::Int32 | Kind::Sint32 | Kind::Sfixed32 => Value::I32(rng.pick(&[
            0,
            1,
            -1,
            5,
            50,
            100,
            500,
            501,
            1440,
            i32::MAX,
            i32::MIN,
            any as i32,
        ])),
        Kind::Int64 | Kind::Sint64 | Kind::Sfixed64 => {
            Value::I64(rng.pick(&[0, 1, -1, 100, 3_200_000_000, i64::MAX, i64::MIN, any as i64]))
        }
        Kind::Uint32 | Kind::Fixed32 => {
            Value::U32(rng.pick(&[0, 1, 5, 50, 100, 101, 200, 365, u32::MAX, any as u32]))
        }
        Kind::Uint64 | Kind::Fixed64 => Value::U64(rng.pick(&[0, 1, u64::MAX, any])),
        Kind::Float => Value::F32(rng.pick(&[0.0, -1.0, 0.5, f32::NAN, f32::INFINITY])),
        Kind::Double => Value::F64(rng.pick(&[0.0, -1.0, 0.5, 1e300, f64::NAN])),
        Kind::Enum(enumeration) => {
            let numbers: Vec<i32> = enumeration.values().map(|v| v.number()).collect();
            Value::EnumNumber(if rng.chance(90) {
                rng.pick(&numbers)
            } else {
                rng.pick(&[99, -1, i32::MAX])
            })
        }
        Kind::Message(message) => Value::Message(random_message(rng, message, depth + 1, ids)),
    }
}

fn random_message(
    rng: &mut Rng,
    descriptor: &MessageDescriptor,
    depth: usize,
    ids: &[String],
) -> DynamicMessage {
    let mut message = DynamicMessage::new(descriptor.clone());
    if descriptor.full_name() == "google.protobuf.Timestamp" {
        let seconds = rng.pick(&[
            0,
            -62_135_596_800,
            253_402_300_799,
            253_402_300_800,
            1_790_000_000,
            chrono::Utc::now().timestamp(),
            chrono::Utc::now().timestamp() + 86_400 * 400,
            i64::MAX,
            i64::MIN,
        ]);
        message.set_field_by_name("seconds", Value::I64(seconds));
        message.set_field_by_name(
            "nanos",
            Value::I32(rng.pick(&[0, 999_999_999, 1_000_000_000, -1])),
        );
        return message;
    }
    if depth > 4 {
        return message;
    }
    for field in descriptor.fields() {
        if field.is_map() || rng.chance(25) {
            continue;
        }
        let kind = field.kind();
        let value = if field.is_list() {
            let len = match rng.below(10) {
                0 => rng.pick(&[20, 21, 30, 31, 50, 51, 64, 65]),
                1 => rng.pick(&[500, 501]),
                _ => rng.below(4),
            };
            // Nested lists stay short: a message of 500 messages of 500 is
            // no more telling than one.
            let len = if depth > 1 { len.min(3) } else { len };
            // Long lists test their bound, not their elements: those
            // stay short, and the request small enough to send quickly.
            let element_depth = if len > 20 { LONG_LIST_DEPTH } else { depth };
            Value::List(
                (0..len)
                    .map(|_| random_value(rng, &kind, element_depth, ids))
                    .collect(),
            )
        } else {
            random_value(rng, &kind, depth, ids)
        };
        message.set_field(&field, value);
    }
    message
}

/// A bearer of every role (partners with a tenant), admins twice as
/// often: they pass every role check and reach the deepest code.
fn bearers() -> Vec<String> {
    [
        token(Role::Admin, None),
        token(Role::Admin, None),
        token(Role::Agency, Some("kotra")),
        token(Role::Advisor, Some(&uuid::Uuid::now_v7().to_string())),
        token(Role::TradeOffice, Some("kbc-newyork")),
        token(Role::Service, None),
        token(Role::Dashboard, None),
    ]
    .into_iter()
    .map(|token| format!("Bearer {token}"))
    .collect()
}

async fn event_head(pool: &PgPool) -> i64 {
    sqlx::query_scalar("SELECT COALESCE(max(id), 0) FROM event_log")
        .fetch_one(pool)
        .await
        .expect("event log head")
}

/// One live service: where it listens, its database, its API's name.
struct Target {
    service: &'static str,
    channel: Channel,
    pool: PgPool,
}

/// Calls every unary RPC of `target` (and its audit log) `per_rpc` times;
/// returns how many calls it made.
async fn storm(
    pool: &DescriptorPool,
    target: &Target,
    per_rpc: usize,
    deadline: Instant,
    seed: u64,
    ids: &[String],
) -> (usize, usize) {
    let mut rng = Rng(seed | 1);
    let bearers = bearers();
    let mut grpc = tonic::client::Grpc::new(target.channel.clone());
    let mut calls = 0;
    let mut methods = Vec::new();
    let services = [
        target.service,
        "onestop.audit.v1.AuditService",
        "onestop.events.v1.EventFeedService",
    ];
    for service in services {
        let descriptor = pool
            .get_service_by_name(service)
            .unwrap_or_else(|| panic!("{service} in the descriptor set"));
        for method in descriptor.methods() {
            if !method.is_client_streaming() {
                let path = PathAndQuery::try_from(format!("/{service}/{}", method.name()))
                    .expect("method path");
                methods.push((service, method, path));
            }
        }
    }
    // Round after round over every RPC, so a deadline cuts all of them
    // alike.
    let mut rounds = 0;
    while rounds < per_rpc && Instant::now() < deadline {
        rounds += 1;
        for (service, method, path) in &methods {
            {
                let request = random_message(&mut rng, &method.input(), 0, ids);
                let bytes = request.encode_to_vec();
                let mut call = tonic::Request::new(bytes);
                call.metadata_mut()
                    .insert("authorization", rng.pick(&bearers).parse().expect("header"));
                let before = event_head(&target.pool).await;
                grpc.ready().await.expect("server ready");
                let answer = if method.is_server_streaming() {
                    // A stream's refusal comes first or with its first
                    // message; a stream that opened is let go at once.
                    match grpc.server_streaming(call, path.clone(), RawCodec).await {
                        Ok(stream) => {
                            let first = tokio::time::timeout(
                                std::time::Duration::from_millis(200),
                                stream.into_inner().message(),
                            )
                            .await;
                            match first {
                                Ok(Err(status)) => Err(status),
                                _ => Ok(()),
                            }
                        }
                        Err(status) => Err(status),
                    }
                } else {
                    grpc.unary(call, path.clone(), RawCodec).await.map(drop)
                };
                calls += 1;
                let Err(status) = answer else { continue };
                let shown: String = format!("{request:?}").chars().take(2000).collect();
                assert!(
                    !matches!(status.code(), Code::Internal | Code::Unknown),
                    "{service}/{} answered {:?}: {} (seed {seed}); request: {shown}",
                    method.name(),
                    status.code(),
                    status.message(),
                );
                assert_eq!(
                    event_head(&target.pool).await,
                    before,
                    "{service}/{} stored events although it refused with {:?} (seed {seed}); request: {shown}",
                    method.name(),
                    status.code(),
                );
            }
        }
    }
    (calls, rounds)
}

#[tokio::test]
async fn thousands_of_random_requests_never_fail_inside_and_refused_ones_store_nothing() {
    let per_rpc: usize = std::env::var("ONESTOP_RANDOM_CALLS_PER_RPC")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(40);
    let seed: u64 = std::env::var("ONESTOP_RANDOM_SEED")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap()
                .as_nanos() as u64
        });
    let pool = DescriptorPool::decode(onestop_contracts::FILE_DESCRIPTOR_SET)
        .expect("descriptor set decodes");

    // Each service on its own, so nothing but the call under test writes
    // to its event log.
    let intake = Intake::start().await;
    let mentoring: TestServer<MentoringClient> =
        TestServer::start(MentoringApplication::build).await;
    let buyers: TestServer<BuyersClient> = TestServer::start(BuyersApplication::build).await;
    let referral: TestServer<ReferralClient> = TestServer::start(ReferralApplication::build).await;
    // A company that exists, so some calls reach past "not found".
    let company = intake.register(&registration_number(77), 0, false).await;
    let ids = vec![company.company_id];

    let targets = [
        Target {
            service: "onestop.intake.v1.IntakeService",
            channel: channel(intake.addr),
            pool: intake.pool.clone(),
        },
        Target {
            service: "onestop.mentoring.v1.MentoringService",
            channel: channel(mentoring.addr),
            pool: mentoring.pool.clone(),
        },
        Target {
            service: "onestop.buyers.v1.BuyerService",
            channel: channel(buyers.addr),
            pool: buyers.pool.clone(),
        },
        Target {
            service: "onestop.referral.v1.ReferralService",
            channel: channel(referral.addr),
            pool: referral.pool.clone(),
        },
    ];
    let seconds: u64 = std::env::var("ONESTOP_RANDOM_SECONDS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(45);
    let started = Instant::now();
    let deadline = started + std::time::Duration::from_secs(seconds);
    let counts = futures_util::future::join_all(targets.iter().enumerate().map(|(i, target)| {
        storm(
            &pool,
            target,
            per_rpc,
            deadline,
            seed.wrapping_add(i as u64),
            &ids,
        )
    }))
    .await;
    let calls: usize = counts.iter().map(|(calls, _)| calls).sum();
    let rounds = counts.iter().map(|(_, rounds)| *rounds).min().unwrap_or(0);
    println!(
        "{calls} random calls (seed {seed}), every RPC at least {rounds} times, in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(
        rounds >= 10.min(per_rpc),
        "only {rounds} calls per RPC within {seconds} s"
    );
}
