//! Consultation slots: 30 minutes on a half-hour grid, inside the business
//! hours of the buyer's zone and of Seoul. Computed from UTC instants so a
//! daylight-saving change on either side is handled by the zone rules, not
//! by arithmetic on local clocks.

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;

pub const SLOT_MINUTES: i64 = 30;
pub const SEOUL: Tz = chrono_tz::Asia::Seoul;
/// Longest range ListConsultationSlots accepts.
pub const MAX_RANGE_DAYS: i64 = 31;

/// Local business hours, Monday to Friday.
#[derive(Debug, Clone, Copy)]
pub struct BusinessHours {
    pub opens: NaiveTime,
    pub closes: NaiveTime,
}

impl Default for BusinessHours {
    fn default() -> Self {
        Self {
            opens: NaiveTime::from_hms_opt(9, 0, 0).unwrap_or(NaiveTime::MIN),
            closes: NaiveTime::from_hms_opt(18, 0, 0).unwrap_or(NaiveTime::MIN),
        }
    }
}

impl BusinessHours {
    /// Whether the whole slot starting at `start` falls inside these hours
    /// in `zone`.
    pub fn covers(&self, zone: Tz, start: DateTime<Utc>) -> bool {
        let local_start = zone.from_utc_datetime(&start.naive_utc());
        let local_end =
            zone.from_utc_datetime(&(start + Duration::minutes(SLOT_MINUTES)).naive_utc());
        let weekday = !matches!(local_start.weekday(), Weekday::Sat | Weekday::Sun);
        weekday
            && local_start.date_naive() == local_end.date_naive()
            && local_start.time() >= self.opens
            && local_end.time() <= self.closes
    }
}

/// One candidate slot.
#[derive(Debug, Clone, PartialEq)]
pub struct Slot {
    pub start: DateTime<Utc>,
    pub end: DateTime<Utc>,
    /// Outside Seoul business hours: only the overseas desk can staff it.
    pub overseas_desk: bool,
}

/// Whether `start` lies on the half-hour grid.
pub fn on_grid(start: DateTime<Utc>) -> bool {
    start.second() == 0 && start.nanosecond() == 0 && start.minute().is_multiple_of(30)
}

/// Checks one slot start; None when either side cannot take it.
pub fn slot_at(
    start: DateTime<Utc>,
    buyer_zone: Tz,
    hours: BusinessHours,
    overseas_desk: bool,
) -> Option<Slot> {
    if !on_grid(start) || !hours.covers(buyer_zone, start) {
        return None;
    }
    let seoul_open = hours.covers(SEOUL, start);
    if !seoul_open && !overseas_desk {
        return None;
    }
    Some(Slot {
        start,
        end: start + Duration::minutes(SLOT_MINUTES),
        overseas_desk: !seoul_open,
    })
}

/// Every slot starting in [from, to).
pub fn slots_between(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    buyer_zone: Tz,
    hours: BusinessHours,
    overseas_desk: bool,
) -> Vec<Slot> {
    let mut start = round_up_to_grid(from);
    let mut slots = Vec::new();
    while start < to {
        if let Some(slot) = slot_at(start, buyer_zone, hours, overseas_desk) {
            slots.push(slot);
        }
        start += Duration::minutes(SLOT_MINUTES);
    }
    slots
}

fn round_up_to_grid(at: DateTime<Utc>) -> DateTime<Utc> {
    let step = SLOT_MINUTES * 60;
    let seconds = at.timestamp();
    let rounded = if at.timestamp_subsec_nanos() == 0 && seconds.rem_euclid(step) == 0 {
        seconds
    } else {
        (seconds.div_euclid(step) + 1) * step
    };
    DateTime::from_timestamp(rounded, 0).unwrap_or(at)
}

/// ISO 8601 with the offset in force at that instant.
pub fn local_string(zone: Tz, at: DateTime<Utc>) -> String {
    zone.from_utc_datetime(&at.naive_utc())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}
