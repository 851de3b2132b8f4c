//! Consultation slots: 30 minutes on a half-hour grid, inside the business
//! hours of the buyer's zone and of Seoul. Computed from UTC instants so a
//! daylight-saving change on either side is handled by the zone rules, not
//! by arithmetic on local clocks.

use chrono::{DateTime, Datelike, Duration, NaiveTime, TimeZone, Timelike, Utc, Weekday};
use chrono_tz::Tz;
use onestop_contracts::buyers::v1 as pb;
use onestop_domain::LanguageCode;
use onestop_platform::Violations;
use onestop_platform::time::{from_timestamp, to_timestamp};
use uuid::Uuid;

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

/// Who covers the Korean side of a consultation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// Seoul staff, in Seoul business hours only.
    SeoulHours,
    /// The overseas office's 24-hour online desk, which also covers Korean
    /// night hours: slots then need only the buyer's business hours.
    OverseasDesk,
}

impl Coverage {
    pub fn requested(overseas_desk: bool) -> Self {
        if overseas_desk {
            Self::OverseasDesk
        } else {
            Self::SeoulHours
        }
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
    coverage: Coverage,
) -> Option<Slot> {
    if !on_grid(start) || !hours.covers(buyer_zone, start) {
        return None;
    }
    let seoul_open = hours.covers(SEOUL, start);
    if !seoul_open && coverage == Coverage::SeoulHours {
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
    coverage: Coverage,
) -> Vec<Slot> {
    let mut start = round_up_to_grid(from);
    let mut slots = Vec::new();
    while start < to {
        if let Some(slot) = slot_at(start, buyer_zone, hours, coverage) {
            slots.push(slot);
        }
        start += Duration::minutes(SLOT_MINUTES);
    }
    slots
}

/// Why a range has no free slot for `coverage`: no shared hours (the desk
/// would find some), no business hours at all, or all of them booked.
pub fn why_none_free(
    from: DateTime<Utc>,
    to: DateTime<Utc>,
    buyer_zone: Tz,
    hours: BusinessHours,
    coverage: Coverage,
) -> (pb::NoSlotsReason, String) {
    if !slots_between(from, to, buyer_zone, hours, coverage).is_empty() {
        return (
            pb::NoSlotsReason::AllBooked,
            "every slot in the range is already booked for the buyer or the company; \
             try another range"
                .into(),
        );
    }
    let desk = slots_between(from, to, buyer_zone, hours, Coverage::OverseasDesk);
    if coverage == Coverage::SeoulHours && !desk.is_empty() {
        return (
            pb::NoSlotsReason::NoSharedHours,
            format!(
                "the buyer's business hours ({buyer_zone}) never meet Seoul's in this range; \
                 with overseas_desk the office's 24-hour online desk covers Korean night \
                 hours ({} slots)",
                desk.len()
            ),
        );
    }
    (
        pb::NoSlotsReason::NoBusinessHours,
        format!(
            "the range holds none of the buyer's business hours (Monday to Friday, {}-{} \
             {buyer_zone}); widen it",
            hours.opens.format("%H:%M"),
            hours.closes.format("%H:%M")
        ),
    )
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

impl Slot {
    /// The slot as both parties read it.
    pub fn to_proto(&self, buyer_zone: Tz) -> pb::ConsultationSlot {
        pb::ConsultationSlot {
            start_time: Some(to_timestamp(self.start)),
            end_time: Some(to_timestamp(self.end)),
            buyer_time_zone: buyer_zone.name().to_owned(),
            buyer_local_start: local_string(buyer_zone, self.start),
            seoul_time_zone: SEOUL.name().to_owned(),
            seoul_local_start: local_string(SEOUL, self.start),
            overseas_desk: self.overseas_desk,
        }
    }
}

/// ISO 8601 with the offset in force at that instant.
pub fn local_string(zone: Tz, at: DateTime<Utc>) -> String {
    zone.from_utc_datetime(&at.naive_utc())
        .format("%Y-%m-%dT%H:%M:%S%:z")
        .to_string()
}

/// A range to list a match's free slots in, validated.
#[derive(Debug)]
pub struct SlotQuery {
    pub match_id: Uuid,
    pub from: DateTime<Utc>,
    pub to: DateTime<Utc>,
    pub coverage: Coverage,
}

impl TryFrom<&pb::ListConsultationSlotsRequest> for SlotQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListConsultationSlotsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let match_id = violations.id("match_id", &request.match_id);
        let from = request.from.as_ref().and_then(from_timestamp);
        let to = request.to.as_ref().and_then(from_timestamp);
        if from.is_none() {
            violations.add("from", "required");
        }
        if to.is_none() {
            violations.add("to", "required");
        }
        if let (Some(from), Some(to)) = (from, to)
            && (to <= from || to - from > Duration::days(MAX_RANGE_DAYS))
        {
            violations.add(
                "to",
                format!("after from, at most {MAX_RANGE_DAYS} days later"),
            );
        }
        violations.finish_with(|| {
            Some(SlotQuery {
                match_id: match_id?,
                from: from?,
                to: to?,
                coverage: Coverage::requested(request.overseas_desk),
            })
        })
    }
}

/// A consultation to book, validated as far as the request alone allows:
/// whether `start` is a slot depends on the buyer's zone.
#[derive(Debug)]
pub struct Booking {
    pub match_id: Uuid,
    pub start: DateTime<Utc>,
    /// Empty for none.
    pub interpreter_language: String,
    pub coverage: Coverage,
}

impl TryFrom<&pb::BookConsultationRequest> for Booking {
    type Error = Violations;
    fn try_from(request: &pb::BookConsultationRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let match_id = violations.id("match_id", &request.match_id);
        let start = request.start_time.as_ref().and_then(from_timestamp);
        if start.is_none() {
            violations.add("start_time", "required");
        }
        if !request.interpreter_language.is_empty() {
            violations.check(
                "interpreter_language",
                LanguageCode::parse(&request.interpreter_language),
            );
        }
        violations.finish_with(|| {
            Some(Booking {
                match_id: match_id?,
                start: start?,
                interpreter_language: request.interpreter_language.clone(),
                coverage: Coverage::requested(request.overseas_desk),
            })
        })
    }
}
