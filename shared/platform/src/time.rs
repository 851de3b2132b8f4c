//! Time on the wire is `google.protobuf.Timestamp` in UTC.

use chrono::{DateTime, Utc};
use prost_types::Timestamp;

pub fn to_timestamp(at: DateTime<Utc>) -> Timestamp {
    Timestamp {
        seconds: at.timestamp(),
        nanos: at.timestamp_subsec_nanos() as i32,
    }
}

/// Any instant chrono can hold.
pub fn from_timestamp(timestamp: &Timestamp) -> Option<DateTime<Utc>> {
    let nanos = u32::try_from(timestamp.nanos).ok()?;
    DateTime::from_timestamp(timestamp.seconds, nanos)
}

/// First second after the last day a caller may name: 10000-01-01.
const END_OF_CALENDAR: i64 = 253_402_300_800;

/// What a caller may name as a date: 1970 to the end of 9999. Anything
/// wider is a mistake, and date arithmetic on it (a checkpoint months
/// later) would overflow.
pub const CALENDAR: &str = "a time from 1970 to 9999";

/// As [`from_timestamp`], within [`CALENDAR`].
pub fn from_calendar_timestamp(timestamp: &Timestamp) -> Option<DateTime<Utc>> {
    if !(0..END_OF_CALENDAR).contains(&timestamp.seconds) {
        return None;
    }
    from_timestamp(timestamp)
}

/// A clock services can replace in tests, so time-driven behaviour (SLA
/// timers, cadences) is tested without sleeping.
pub trait Clock: Send + Sync + 'static {
    fn now(&self) -> DateTime<Utc>;
}

#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_calendar_runs_from_1970_to_the_end_of_9999() {
        let at = |seconds| from_calendar_timestamp(&Timestamp { seconds, nanos: 0 });
        assert!(at(0).is_some());
        assert_eq!(
            at(END_OF_CALENDAR - 1).map(|t| t.to_rfc3339()),
            Some("9999-12-31T23:59:59+00:00".to_owned())
        );
        assert!(at(END_OF_CALENDAR).is_none());
        assert!(at(-1).is_none());
        assert!(at(i64::MAX).is_none());
    }
}
