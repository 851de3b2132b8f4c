//! The reference dashboard consumer: merges several services' event feeds
//! live and prints them as JSON lines, resuming from a cursor file.
//!
//! Each event is printed before its cursor is saved, so a crash between the
//! two prints it again on restart (at-least-once); consumers deduplicate on
//! `(source, id)`, which is unique and ordered per source.
//!
//! A feed that refuses its cursor for good (OUT_OF_RANGE: older than the
//! feed's retention, or past its newest event) stops alone, said on stderr
//! with what to do; the others go on, and when every feed has stopped the
//! command exits non-zero. A token the feeds refuse (bad, or a role that
//! may not watch) ends the command at once: no feed would take it.
//!
//! Payloads are printed as protobuf JSON, decoded through the contracts'
//! descriptor set, so a dashboard needs no protobuf tooling; a payload of a
//! type the set does not know (a newer producer) comes as base64 instead.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use onestop_contracts::events::v1::event_feed_service_client::EventFeedServiceClient;
use onestop_contracts::events::v1::{Event, WatchRequest, watch_response};
use prost_reflect::{DescriptorPool, DynamicMessage};
use prost_types::Any;
use std::io::Write;
use tokio::sync::mpsc;

use crate::auth::Role;
use crate::client::{SignedToken, call_error, lazy_channel};
use crate::config::ServerSettings;
use crate::time::from_timestamp;

#[derive(Debug, Clone, clap::Args)]
pub struct WatchFeedsArgs {
    /// A feed to follow as NAME=URL; repeat for each. Defaults to the four
    /// services at ONESTOP_INTAKE_URL, ONESTOP_MENTORING_URL,
    /// ONESTOP_BUYERS_URL and ONESTOP_REFERRAL_URL (those that are set).
    #[arg(long = "feed", value_parser = parse_feed)]
    pub feeds: Vec<(String, String)>,
    /// Where the last printed id per feed is kept between runs.
    #[arg(long, default_value = "onestop-feeds.cursor.json")]
    pub cursor_file: PathBuf,
    /// Only these event types ("referral.*" for a family); empty means all.
    #[arg(long = "type")]
    pub types: Vec<String>,
    /// Bearer token to watch with: a dashboard token from `issue-token`.
    /// Unset, development mode signs one with the development key.
    #[arg(long, env = "ONESTOP_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
}

fn parse_feed(text: &str) -> Result<(String, String), String> {
    let (name, url) = text
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=URL, got {text:?}"))?;
    if name.is_empty() || url.is_empty() {
        return Err(format!("expected NAME=URL, got {text:?}"));
    }
    Ok((name.to_owned(), url.to_owned()))
}

fn default_feeds() -> Vec<(String, String)> {
    ["intake", "mentoring", "buyers", "referral"]
        .into_iter()
        .filter_map(|name| {
            let url = std::env::var(format!("ONESTOP_{}_URL", name.to_uppercase())).ok()?;
            (!url.is_empty()).then(|| (name.to_owned(), url))
        })
        .collect()
}

/// One printed line.
#[derive(serde::Serialize)]
struct Line<'a> {
    source: &'a str,
    id: i64,
    #[serde(rename = "type")]
    event_type: &'a str,
    aggregate_type: &'a str,
    aggregate_id: &'a str,
    occurred_at: Option<String>,
    payload_type: &'a str,
    /// The payload as protobuf JSON (camelCase fields, enums by name, 64-bit
    /// integers as strings).
    payload: Option<serde_json::Value>,
    /// The payload's protobuf bytes, only when its type is unknown here.
    #[serde(skip_serializing_if = "Option::is_none")]
    payload_base64: Option<String>,
    traceparent: &'a str,
}

fn descriptors() -> &'static DescriptorPool {
    static POOL: OnceLock<DescriptorPool> = OnceLock::new();
    POOL.get_or_init(|| {
        DescriptorPool::decode(onestop_contracts::FILE_DESCRIPTOR_SET)
            .expect("the contracts' descriptor set decodes")
    })
}

/// The payload as JSON through the descriptor set, or None when its type is
/// not in the set or the bytes do not decode as it.
pub fn payload_json(payload: &Any) -> Option<serde_json::Value> {
    let name = payload.type_url.rsplit('/').next()?;
    let descriptor = descriptors().get_message_by_name(name)?;
    let message = DynamicMessage::decode(descriptor, payload.value.as_slice()).ok()?;
    serde_json::to_value(&message).ok()
}

async fn load_cursors(path: &Path) -> anyhow::Result<BTreeMap<String, i64>> {
    match tokio::fs::read(path).await {
        Ok(bytes) => Ok(serde_json::from_slice(&bytes)?),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(BTreeMap::new()),
        Err(error) => Err(error.into()),
    }
}

/// Written to a temporary file and renamed over the old one, so a crash
/// never leaves a torn cursor file.
async fn save_cursors(path: &Path, cursors: &BTreeMap<String, i64>) -> anyhow::Result<()> {
    let temporary = path.with_extension("tmp");
    tokio::fs::write(&temporary, serde_json::to_vec_pretty(cursors)?).await?;
    tokio::fs::rename(&temporary, path).await?;
    Ok(())
}

pub async fn watch(args: WatchFeedsArgs, settings: &ServerSettings) -> anyhow::Result<()> {
    let feeds = if args.feeds.is_empty() {
        default_feeds()
    } else {
        args.feeds.clone()
    };
    anyhow::ensure!(
        !feeds.is_empty(),
        "no feeds: pass --feed NAME=URL or set ONESTOP_*_URL"
    );
    // Long-lived: a watcher reconnects with the same token for as long as
    // it runs.
    let token = SignedToken::bearer(&match &args.token {
        Some(token) => token.clone(),
        None if settings.auth.dev_mode => settings.auth.issuer()?.issue(
            "feed-watcher",
            Role::Dashboard,
            None,
            crate::auth::MAX_TOKEN_LIFETIME,
        )?,
        None => anyhow::bail!(
            "watch-feeds needs a dashboard token: ONESTOP_TOKEN=$(onestop-intake issue-token \
             --role dashboard --ttl 30d), minted where the issuer key is kept"
        ),
    })?;
    let tls = settings.tls.client()?;
    let mut cursors = load_cursors(&args.cursor_file).await?;
    let (sender, mut receiver) = mpsc::channel::<Followed>(256);
    let mut followers = tokio::task::JoinSet::new();
    let mut stopped = Vec::new();
    for (name, url) in feeds {
        let after = cursors.get(&name).copied().unwrap_or(0);
        // On stderr: stdout carries only the JSON lines.
        eprintln!("following {name} at {url} after event {after}");
        let channel = lazy_channel(
            &url,
            Duration::from_secs(24 * 3600),
            &tls,
            &settings.keepalive,
        )?;
        followers.spawn(follow(
            Feed { name, url },
            channel,
            token.clone(),
            args.types.clone(),
            after,
            sender.clone(),
        ));
    }
    drop(sender);
    let mut stdout = std::io::stdout();
    loop {
        let next = tokio::select! {
            next = receiver.recv() => next,
            Some(Ok(Err(error))) = followers.join_next() => return Err(error),
            _ = tokio::signal::ctrl_c() => return Ok(()),
        };
        let (source, event) = match next {
            Some(Followed::Event(source, event)) => (source, event),
            Some(Followed::Stopped(source, why)) => {
                eprintln!(
                    "{source}: feed stopped, the others go on: {why}; to read it again from its \
                     oldest retained event, remove \"{source}\" from {}",
                    args.cursor_file.display()
                );
                stopped.push(source);
                continue;
            }
            None => {
                // Every follower has ended: say why, if one failed.
                while let Some(ended) = followers.join_next().await {
                    ended??;
                }
                if !stopped.is_empty() {
                    anyhow::bail!("every feed stopped: {}", stopped.join(", "));
                }
                return Ok(());
            }
        };
        let payload = event.payload.as_ref().and_then(payload_json);
        let line = Line {
            source: &source,
            id: event.id,
            event_type: &event.r#type,
            aggregate_type: &event.aggregate_type,
            aggregate_id: &event.aggregate_id,
            occurred_at: event
                .occurred_at
                .as_ref()
                .and_then(from_timestamp)
                .map(|at| at.to_rfc3339()),
            payload_type: event.payload.as_ref().map_or("", |p| p.type_url.as_str()),
            payload_base64: match (&event.payload, &payload) {
                (Some(raw), None) => Some(STANDARD.encode(&raw.value)),
                _ => None,
            },
            payload,
            traceparent: &event.traceparent,
        };
        let mut text = serde_json::to_vec(&line)?;
        text.push(b'\n');
        stdout.write_all(&text)?;
        stdout.flush()?;
        cursors.insert(source, event.id);
        save_cursors(&args.cursor_file, &cursors).await?;
    }
}

struct Feed {
    name: String,
    url: String,
}

/// What a follower hands the printer.
enum Followed {
    Event(String, Box<Event>),
    /// The feed refused this watch for good; why.
    Stopped(String, String),
}

/// The token is bad or may not watch: every feed would refuse it, so the
/// command ends.
fn is_token_refused(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
    )
}

/// This feed refuses this cursor or watch however often it is asked again
/// (a cursor past its retention or ahead of it): the feed stops, the
/// others go on.
fn is_cursor_refused(code: tonic::Code) -> bool {
    matches!(
        code,
        tonic::Code::OutOfRange | tonic::Code::InvalidArgument | tonic::Code::Unimplemented
    )
}

/// Streams one feed into `sender` from `after`, reconnecting with backoff
/// after transient failures; stops when the feed refuses for good, and ends
/// the command when the token is refused.
async fn follow(
    feed: Feed,
    channel: tonic::transport::Channel,
    token: SignedToken,
    types: Vec<String>,
    mut after: i64,
    sender: mpsc::Sender<Followed>,
) -> anyhow::Result<()> {
    let mut wait = Duration::from_millis(250);
    loop {
        let request = WatchRequest {
            after,
            types: types.clone(),
            ..Default::default()
        };
        let mut client = EventFeedServiceClient::with_interceptor(channel.clone(), token.clone());
        let failure = match client.watch(request).await {
            Ok(response) => {
                let mut stream = response.into_inner();
                loop {
                    match stream.message().await {
                        Ok(Some(message)) => {
                            let Some(watch_response::Item::Event(event)) = message.item else {
                                continue;
                            };
                            after = event.id;
                            wait = Duration::from_millis(250);
                            if sender
                                .send(Followed::Event(feed.name.clone(), Box::new(event)))
                                .await
                                .is_err()
                            {
                                return Ok(());
                            }
                        }
                        Ok(None) => break None,
                        Err(status) => break Some(status),
                    }
                }
            }
            Err(status) => Some(status),
        };
        if let Some(status) = failure {
            let error = call_error(&format!("{} at {}", feed.name, feed.url), &status);
            if is_token_refused(status.code()) {
                return Err(error.context(format!("stopped following {}", feed.name)));
            }
            if is_cursor_refused(status.code()) {
                let _ = sender
                    .send(Followed::Stopped(feed.name.clone(), format!("{error:#}")))
                    .await;
                return Ok(());
            }
            eprintln!("{error:#}; reconnecting in {wait:?}");
        }
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(Duration::from_secs(10));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use onestop_contracts::referral::v1::{Referral, ReferralLeg, ReferralStatus};

    #[test]
    fn payloads_print_as_protobuf_json() {
        let referral = Referral {
            referral_id: "r-1".into(),
            status: ReferralStatus::Accepted as i32,
            legs: vec![ReferralLeg {
                leg_number: 1,
                agency_id: "sbc".into(),
                ..Default::default()
            }],
            ..Default::default()
        };
        let json = payload_json(&Any::from_msg(&referral).unwrap()).unwrap();
        assert_eq!(json["referralId"], "r-1");
        assert_eq!(json["status"], "REFERRAL_STATUS_ACCEPTED");
        assert_eq!(json["legs"][0]["agencyId"], "sbc");

        let unknown = Any {
            type_url: "type.googleapis.com/onestop.future.v9.Thing".into(),
            value: vec![1, 2, 3],
        };
        assert!(payload_json(&unknown).is_none());
    }
}
