//! Mentoring's rules: requests validated into commands and queries, the
//! advisor profile, explained matching, the contact cadence and the reasons
//! a company's advisor may change. No SQL and no transport here.

pub mod advisor;
pub mod cadence;
pub mod change;
pub mod fees;
pub mod matching;
pub mod request;
pub mod session;
pub mod waitlist;

use chrono::{DateTime, Utc};
use onestop_platform::Violations;
use onestop_platform::time::from_timestamp;
use uuid::Uuid;

/// An id filter: empty matches everything, anything else must be an id
/// this API handed out.
fn optional_id(field: &str, text: &str, violations: &mut Violations) -> Option<Uuid> {
    if text.is_empty() {
        None
    } else {
        violations.id(field, text)
    }
}

/// A time bound: unset is open.
fn optional_time(
    field: &str,
    at: Option<&prost_types::Timestamp>,
    violations: &mut Violations,
) -> Option<DateTime<Utc>> {
    let parsed = from_timestamp(at?);
    if parsed.is_none() {
        violations.add(field, "a valid timestamp");
    }
    parsed
}

/// A text filter: empty matches everything, anything else is parsed.
fn optional_code<T, E: std::fmt::Display>(
    field: &str,
    text: &str,
    parse: impl FnOnce(&str) -> Result<T, E>,
    violations: &mut Violations,
) -> Option<T> {
    if text.is_empty() {
        None
    } else {
        violations.check(field, parse(text))
    }
}
