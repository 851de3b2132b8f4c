//! A logged contact between an advisor and its company, and the session
//! listing, validated.

use chrono::{DateTime, Utc};
use onestop_contracts::mentoring::v1 as pb;
use onestop_domain::LanguageCode;
use onestop_platform::pagination::Page;
use onestop_platform::time::from_timestamp;
use onestop_platform::{Violations, limits};
use uuid::Uuid;

use super::{optional_id, optional_time};

const MAX_TOPICS: usize = limits::MAX_SESSION_ITEMS;
const MAX_ACTIONS: usize = limits::MAX_SESSION_ITEMS;
const MAX_TEXT: usize = limits::MAX_LINE;

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
    /// `now` bounds held_at: a session cannot be logged before it happened,
    /// nor (`started`) before its assignment began.
    fn parse(
        request: &pb::LogSessionRequest,
        now: DateTime<Utc>,
        started: Option<DateTime<Utc>>,
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
            Some(Some(at)) if started.is_some_and(|started| at < started) => {
                violations.add("held_at", "must not be before the assignment started");
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
        let topics = limits::bounded("topics", &request.topics, MAX_TOPICS, violations)
            .iter()
            .enumerate()
            .map(|(i, topic)| short_text(format!("topics[{i}]"), topic, violations))
            .collect();
        let mut follow_up_actions = Vec::new();
        let actions = limits::bounded(
            "follow_up_actions",
            &request.follow_up_actions,
            MAX_ACTIONS,
            violations,
        );
        for (i, action) in actions.iter().enumerate() {
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

/// A session to log on an assignment.
#[derive(Debug)]
pub struct NewSession {
    pub assignment_id: Uuid,
    pub log: SessionLog,
}

/// A LogSession request as of `now`, which bounds when it may have been held.
/// A LogSession request, the time now and when its assignment started
/// (when the caller may see that assignment).
type LogSessionInput<'a> = (
    &'a pb::LogSessionRequest,
    DateTime<Utc>,
    Option<DateTime<Utc>>,
);

impl TryFrom<LogSessionInput<'_>> for NewSession {
    type Error = Violations;
    fn try_from((request, now, started): LogSessionInput<'_>) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let assignment_id = violations.id("assignment_id", &request.assignment_id);
        let log = SessionLog::parse(request, now, started, &mut violations);
        violations.finish_with(|| {
            Some(NewSession {
                assignment_id: assignment_id?,
                log: log?,
            })
        })
    }
}

/// Which sessions a listing shows.
#[derive(Debug, Default)]
pub struct SessionFilter {
    pub assignment_id: Option<Uuid>,
    pub company_id: Option<Uuid>,
    pub advisor_id: Option<Uuid>,
    pub held_from: Option<DateTime<Utc>>,
    pub held_to: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub struct SessionQuery {
    pub filter: SessionFilter,
    /// Newest first: the key is (held_at, session id) of the last row.
    pub page: Page<(DateTime<Utc>, Uuid)>,
}

impl TryFrom<&pb::ListSessionsRequest> for SessionQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListSessionsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        let filter = SessionFilter {
            assignment_id: optional_id("assignment_id", &request.assignment_id, &mut violations),
            company_id: optional_id("company_id", &request.company_id, &mut violations),
            advisor_id: optional_id("advisor_id", &request.advisor_id, &mut violations),
            held_from: optional_time("held_from", request.held_from.as_ref(), &mut violations),
            held_to: optional_time("held_to", request.held_to.as_ref(), &mut violations),
        };
        violations.finish_with(|| Some(SessionQuery { filter, page }))
    }
}
