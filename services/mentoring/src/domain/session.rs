//! A logged contact between an advisor and its company, validated.

use chrono::{DateTime, Utc};
use onestop_contracts::mentoring::v1 as pb;
use onestop_domain::LanguageCode;
use onestop_platform::Violations;
use onestop_platform::time::from_timestamp;

const MAX_TOPICS: usize = 20;
const MAX_ACTIONS: usize = 20;
const MAX_TEXT: usize = 500;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    Visit,
    Phone,
    Video,
}

impl Channel {
    pub fn from_proto(value: i32) -> Option<Self> {
        match pb::SessionChannel::try_from(value) {
            Ok(pb::SessionChannel::Visit) => Some(Self::Visit),
            Ok(pb::SessionChannel::Phone) => Some(Self::Phone),
            Ok(pb::SessionChannel::Video) => Some(Self::Video),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Visit => "VISIT",
            Self::Phone => "PHONE",
            Self::Video => "VIDEO",
        }
    }

    pub fn proto_from_stored(text: &str) -> i32 {
        let channel = match text {
            "VISIT" => pb::SessionChannel::Visit,
            "PHONE" => pb::SessionChannel::Phone,
            "VIDEO" => pb::SessionChannel::Video,
            _ => pb::SessionChannel::Unspecified,
        };
        channel as i32
    }
}

#[derive(Debug, Clone)]
pub struct SessionLog {
    pub held_at: DateTime<Utc>,
    pub channel: Channel,
    pub minutes: u32,
    pub topics: Vec<String>,
    pub follow_up_actions: Vec<pb::ActionItem>,
    pub interpreter_language: String,
}

fn short_text(field: String, value: &str, violations: &mut Violations) -> String {
    let value = value.trim();
    if value.is_empty() {
        violations.add(field, "required");
    } else if value.chars().count() > MAX_TEXT || value.chars().any(char::is_control) {
        violations.add(field, format!("at most {MAX_TEXT} printable characters"));
    }
    value.to_owned()
}

impl SessionLog {
    /// `now` bounds held_at: a session cannot be logged before it happened.
    pub fn parse(
        request: &pb::LogSessionRequest,
        now: DateTime<Utc>,
        violations: &mut Violations,
    ) -> Option<Self> {
        let held_at = match request.held_at.as_ref().map(from_timestamp) {
            None => {
                violations.add("held_at", "required");
                None
            }
            Some(None) => {
                violations.add("held_at", "a valid timestamp");
                None
            }
            Some(Some(at)) if at > now => {
                violations.add("held_at", "must not be in the future");
                None
            }
            Some(at) => at,
        };
        let channel = Channel::from_proto(request.channel);
        if channel.is_none() {
            violations.add("channel", "one of VISIT, PHONE, VIDEO");
        }
        if !(1..=1440).contains(&request.minutes) {
            violations.add("minutes", "1 to 1440");
        }
        if request.topics.len() > MAX_TOPICS {
            violations.add("topics", format!("at most {MAX_TOPICS}"));
        }
        let topics = request
            .topics
            .iter()
            .enumerate()
            .map(|(i, topic)| short_text(format!("topics[{i}]"), topic, violations))
            .collect();
        if request.follow_up_actions.len() > MAX_ACTIONS {
            violations.add("follow_up_actions", format!("at most {MAX_ACTIONS}"));
        }
        let mut follow_up_actions = Vec::new();
        for (i, action) in request.follow_up_actions.iter().enumerate() {
            let description = short_text(
                format!("follow_up_actions[{i}].description"),
                &action.description,
                violations,
            );
            if !matches!(
                pb::ActionOwner::try_from(action.owner),
                Ok(pb::ActionOwner::Company | pb::ActionOwner::Advisor)
            ) {
                violations.add(
                    format!("follow_up_actions[{i}].owner"),
                    "one of COMPANY, ADVISOR",
                );
            }
            if let Some(due) = &action.due_at
                && from_timestamp(due).is_none()
            {
                violations.add(
                    format!("follow_up_actions[{i}].due_at"),
                    "a valid timestamp",
                );
            }
            follow_up_actions.push(pb::ActionItem {
                description,
                owner: action.owner,
                due_at: action.due_at,
            });
        }
        if !request.interpreter_language.is_empty() {
            violations.check(
                "interpreter_language",
                LanguageCode::parse(&request.interpreter_language),
            );
        }
        Some(Self {
            held_at: held_at?,
            channel: channel?,
            minutes: request.minutes,
            topics,
            follow_up_actions,
            interpreter_language: request.interpreter_language.clone(),
        })
    }
}
