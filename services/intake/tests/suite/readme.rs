//! The README's request examples, run as written against the real binaries:
//! every `sh` block that calls `grpcurl` is read in order, its tokens
//! minted as `issue-token` would, and each call made through the contracts'
//! descriptor set with a generic client, so an example that stops working
//! fails here. Examples build on each other: a placeholder `"<fieldName>"`
//! stands for that field of the latest response that had one (a list that
//! fills asynchronously is asked again, as a person would, until it does).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use onestop_platform::auth::Role;
use prost::Message as _;
use prost_reflect::{DescriptorPool, DynamicMessage, MessageDescriptor, MethodDescriptor};
use serde_json::Value;
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::metadata::MetadataValue;
use tonic::{Code, Status};

use crate::support;

/// The README's ports, in the order of its service table.
const PORTS: [(u16, &str); 5] = [
    (50051, "intake"),
    (50052, "mentoring"),
    (50053, "buyers"),
    (50054, "referral"),
    (50055, "insights"),
];

#[tokio::test(flavor = "multi_thread")]
async fn the_readme_request_examples_run_as_written() {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
            .expect("README.md");
    let steps = examples(&readme);
    assert!(
        steps
            .iter()
            .filter(|s| matches!(s, Step::Call { .. }))
            .count()
            >= 6,
        "the README's examples were found: {steps:?}"
    );

    let suite = support::start(&[]).await;
    suite.seed_directory().await;
    let addrs: HashMap<&str, SocketAddr> = PORTS
        .iter()
        .filter(|(_, service)| *service != "insights")
        .map(|(_, service)| (*service, suite.addr(service)))
        .collect();
    let pool = descriptor_pool();

    let mut tokens: HashMap<String, String> = HashMap::new();
    let mut values: HashMap<String, String> = HashMap::new();
    let mut previous: Option<&Step> = None;
    for step in &steps {
        match step {
            Step::Token { var, role, tenant } => {
                let role: Role = role.parse().expect("a role the README names");
                tokens.insert(
                    var.clone(),
                    onestop_test_support::token(role, tenant.as_deref()),
                );
            }
            Step::Call { .. } => {
                let deadline = Instant::now() + Duration::from_secs(30);
                while unresolved(step, &values).is_some() {
                    let Some(before) = previous else { break };
                    assert!(
                        Instant::now() < deadline,
                        "{step:?}: no earlier answer gave {:?}; values: {values:?}",
                        unresolved(step, &values)
                    );
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    let answer = call(before, &pool, &addrs, &tokens, &values).await;
                    harvest(&answer, &mut values);
                }
                let answer = call(step, &pool, &addrs, &tokens, &values).await;
                harvest(&answer, &mut values);
                previous = Some(step);
            }
        }
    }
    suite.stop().await;
}

#[derive(Debug)]
enum Step {
    /// `VAR=$(... issue-token --role R --tenant T)`.
    Token {
        var: String,
        role: String,
        tenant: Option<String>,
    },
    /// `grpcurl -plaintext [-H "authorization: Bearer $VAR"] [-d 'JSON'] ADDR METHOD`.
    Call {
        token: Option<String>,
        body: String,
        port: u16,
        method: String,
    },
}

/// Every step of every `sh` block that calls grpcurl, in README order.
fn examples(readme: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    let mut block: Option<String> = None;
    for line in readme.lines() {
        let trimmed = line.trim_start();
        match &mut block {
            None if trimmed.starts_with("```sh") => block = Some(String::new()),
            Some(text) if trimmed.starts_with("```") => {
                if text.contains("grpcurl ") {
                    steps.extend(commands(text).into_iter().filter_map(step));
                }
                block = None;
            }
            Some(text) => {
                text.push_str(trimmed);
                text.push('\n');
            }
            None => {}
        }
    }
    steps
}

/// One command as the shell would split it: words with quotes removed and
/// `$VAR` kept as written (expanded when the step runs).
fn commands(text: &str) -> Vec<Vec<String>> {
    let mut commands = Vec::new();
    let mut words: Vec<String> = Vec::new();
    let mut word: Option<String> = None;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'\n') => {
                chars.next();
            }
            // The README's quotes hold no escapes: '…' and "…" alike run to
            // the next quote of their kind.
            quote @ ('\'' | '"') => {
                let w = word.get_or_insert_with(String::new);
                for c in chars.by_ref() {
                    if c == quote {
                        break;
                    }
                    w.push(c);
                }
            }
            '$' if chars.peek() == Some(&'(') => {
                let w = word.get_or_insert_with(String::new);
                w.push('$');
                let mut depth = 0;
                for c in chars.by_ref() {
                    w.push(c);
                    match c {
                        '(' => depth += 1,
                        ')' => {
                            depth -= 1;
                            if depth == 0 {
                                break;
                            }
                        }
                        _ => {}
                    }
                }
            }
            '#' if word.is_none() => {
                for c in chars.by_ref() {
                    if c == '\n' {
                        break;
                    }
                }
                words.extend(word.take());
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            ' ' | '\t' => words.extend(word.take()),
            '\n' => {
                words.extend(word.take());
                if !words.is_empty() {
                    commands.push(std::mem::take(&mut words));
                }
            }
            c => word.get_or_insert_with(String::new).push(c),
        }
    }
    words.extend(word.take());
    if !words.is_empty() {
        commands.push(words);
    }
    commands
}

/// The step a command stands for; `export ONESTOP_DEV_MODE=true` and the
/// like set nothing the calls need. Anything else in a block of examples
/// is a command this test does not know, so it fails rather than skip it.
fn step(words: Vec<String>) -> Option<Step> {
    let first = words.first()?.as_str();
    if first == "grpcurl" {
        let mut token = None;
        let mut body = "{}".to_owned();
        let mut positional = Vec::new();
        let mut args = words[1..].iter();
        while let Some(arg) = args.next() {
            match arg.as_str() {
                "-plaintext" => {}
                "-H" => {
                    let header = args.next().expect("a header");
                    let var = header
                        .strip_prefix("authorization: Bearer $")
                        .unwrap_or_else(|| panic!("an authorization header, not {header:?}"));
                    token = Some(var.to_owned());
                }
                "-d" => body = args.next().expect("a body").clone(),
                other if other.starts_with('-') => panic!("grpcurl flag {other} not understood"),
                other => positional.push(other.to_owned()),
            }
        }
        let [addr, method] = &positional[..] else {
            panic!("grpcurl ADDR METHOD expected: {words:?}");
        };
        let port = addr
            .rsplit(':')
            .next()
            .and_then(|p| p.parse().ok())
            .expect("an address with a port");
        return Some(Step::Call {
            token,
            body,
            port,
            method: method.clone(),
        });
    }
    let assignment = if first == "export" {
        words.get(1)?
    } else {
        &words[0]
    };
    let (var, value) = assignment
        .split_once('=')
        .unwrap_or_else(|| panic!("a command the README examples may not use: {words:?}"));
    if !value.contains("issue-token") {
        return None;
    }
    let all: Vec<String> = words
        .join(" ")
        .split_whitespace()
        .map(|w| w.trim_end_matches(')').to_owned())
        .collect();
    let after = |flag: &str| {
        all.iter()
            .position(|w| w == flag)
            .and_then(|i| all.get(i + 1))
            .cloned()
    };
    Some(Step::Token {
        var: var.to_owned(),
        role: after("--role").expect("issue-token --role"),
        tenant: after("--tenant"),
    })
}

/// The first placeholder of a call that no earlier answer has filled.
fn unresolved(step: &Step, values: &HashMap<String, String>) -> Option<String> {
    let Step::Call { body, .. } = step else {
        return None;
    };
    placeholders(body)
        .into_iter()
        .find(|name| !values.contains_key(name))
}

fn placeholders(body: &str) -> Vec<String> {
    body.split("\"<")
        .skip(1)
        .filter_map(|rest| rest.split_once(">\"").map(|(name, _)| name.to_owned()))
        .collect()
}

/// Makes the call and returns its answer as JSON (a stream's first message);
/// anything but OK fails the test with the README's call named.
async fn call(
    step: &Step,
    pool: &DescriptorPool,
    addrs: &HashMap<&str, SocketAddr>,
    tokens: &HashMap<String, String>,
    values: &HashMap<String, String>,
) -> Value {
    let Step::Call {
        token,
        body,
        port,
        method,
    } = step
    else {
        unreachable!("only calls are made");
    };
    let mut body = body.clone();
    for name in placeholders(&body) {
        body = body.replace(
            &format!("\"<{name}>\""),
            &Value::String(values[&name].clone()).to_string(),
        );
    }
    let descriptor = method_descriptor(pool, method);
    let mut deserializer = serde_json::Deserializer::from_str(&body);
    let message = DynamicMessage::deserialize(descriptor.input(), &mut deserializer)
        .unwrap_or_else(|e| {
            panic!("{method}: the README's body does not fit the contract: {e}\n{body}")
        });
    let service = PORTS
        .iter()
        .find(|(p, _)| p == port)
        .map(|(_, s)| *s)
        .unwrap_or_else(|| panic!("{method}: port {port} is no service's"));
    let mut request = tonic::Request::new(message);
    if let Some(var) = token {
        let token = tokens
            .get(var)
            .unwrap_or_else(|| panic!("{method}: ${var} is set by no earlier example"));
        request.metadata_mut().insert(
            "authorization",
            MetadataValue::try_from(format!("Bearer {token}")).expect("header"),
        );
    }
    let mut client = tonic::client::Grpc::new(onestop_test_support::channel(addrs[service]));
    client.ready().await.expect("the service answers");
    let path = format!("/{method}").parse().expect("a method path");
    let codec = DynamicCodec(descriptor.output());
    let answer: Result<DynamicMessage, Status> = if descriptor.is_server_streaming() {
        match client.server_streaming(request, path, codec).await {
            Ok(response) => match response.into_inner().message().await {
                Ok(Some(first)) => Ok(first),
                Ok(None) => Err(Status::new(Code::Unknown, "the stream ended empty")),
                Err(status) => Err(status),
            },
            Err(status) => Err(status),
        }
    } else {
        client
            .unary(request, path, codec)
            .await
            .map(tonic::Response::into_inner)
    };
    let answer = answer.unwrap_or_else(|status| {
        panic!(
            "the README's {method} fails: {:?} {}\nbody: {body}",
            status.code(),
            status.message()
        )
    });
    serde_json::to_value(&answer).expect("the answer as JSON")
}

fn method_descriptor(pool: &DescriptorPool, method: &str) -> MethodDescriptor {
    let (service, name) = method
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("Service/Method expected, not {method}"));
    pool.get_service_by_name(service)
        .unwrap_or_else(|| panic!("no service {service} in the contracts"))
        .methods()
        .find(|m| m.name() == name)
        .unwrap_or_else(|| panic!("no method {name} in {service}"))
}

/// The contracts and the health protocol, which every port serves too.
fn descriptor_pool() -> DescriptorPool {
    let mut pool =
        DescriptorPool::decode(onestop_contracts::FILE_DESCRIPTOR_SET).expect("the contracts");
    pool.decode_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
        .expect("grpc.health.v1");
    pool
}

/// Remembers every string field of an answer by its JSON name (the first of
/// each name in the answer), for the placeholders of later examples.
fn harvest(answer: &Value, values: &mut HashMap<String, String>) {
    fn walk(value: &Value, seen: &mut HashMap<String, String>) {
        match value {
            Value::Object(fields) => {
                for (name, field) in fields {
                    if let Value::String(text) = field {
                        seen.entry(name.clone()).or_insert_with(|| text.clone());
                    }
                    walk(field, seen);
                }
            }
            Value::Array(items) => items.iter().for_each(|item| walk(item, seen)),
            _ => {}
        }
    }
    let mut seen = HashMap::new();
    walk(answer, &mut seen);
    values.extend(seen);
}

/// Encodes and decodes messages known only by their descriptors.
struct DynamicCodec(MessageDescriptor);

impl Codec for DynamicCodec {
    type Encode = DynamicMessage;
    type Decode = DynamicMessage;
    type Encoder = DynamicEncoder;
    type Decoder = DynamicDecoder;

    fn encoder(&mut self) -> DynamicEncoder {
        DynamicEncoder
    }

    fn decoder(&mut self) -> DynamicDecoder {
        DynamicDecoder(self.0.clone())
    }
}

struct DynamicEncoder;

impl Encoder for DynamicEncoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn encode(&mut self, item: DynamicMessage, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encode: {e}")))
    }
}

struct DynamicDecoder(MessageDescriptor);

impl Decoder for DynamicDecoder {
    type Item = DynamicMessage;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<DynamicMessage>, Status> {
        DynamicMessage::decode(self.0.clone(), src)
            .map(Some)
            .map_err(|e| Status::internal(format!("decode: {e}")))
    }
}

#[test]
fn placeholders_and_commands_are_read_as_the_shell_would() {
    let text = "TOKEN=$(cargo run -q -p onestop-intake -- issue-token --role agency --tenant kotra)\n\
                grpcurl -plaintext -H \"authorization: Bearer $TOKEN\" -d '{\n  \"caseId\": \"<caseId>\"}' \\\n  localhost:50051 a.B/C\n";
    let steps: Vec<Step> = commands(text).into_iter().filter_map(step).collect();
    assert!(
        matches!(&steps[0], Step::Token { var, role, tenant } if var == "TOKEN" && role == "agency" && tenant.as_deref() == Some("kotra"))
    );
    match &steps[1] {
        Step::Call {
            token,
            body,
            port,
            method,
        } => {
            assert_eq!(token.as_deref(), Some("TOKEN"));
            assert_eq!(placeholders(body), vec!["caseId".to_owned()]);
            assert_eq!((*port, method.as_str()), (50051, "a.B/C"));
        }
        other => panic!("a call expected, not {other:?}"),
    }
}
