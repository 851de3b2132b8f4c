//! What a request for indicators asks for: calendar months in Asia/Seoul,
//! a province, an agency; and, from the caller, how much it may see.

use chrono::{DateTime, Datelike, Duration, NaiveDate, TimeZone, Utc};
use chrono_tz::Asia::Seoul;
use onestop_contracts::insights::v1 as pb;
use onestop_domain::Province;
use onestop_platform::{ApiError, Caller, Role, Violations};

/// Longest period one request may cover.
pub const MAX_MONTHS: u32 = 24;
/// Longest agency id accepted in a filter.
const MAX_AGENCY_ID: usize = onestop_platform::limits::MAX_LABEL;

/// Whole calendar months in Asia/Seoul: `count` months from `first`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Months {
    /// The first day of the first month.
    first: NaiveDate,
    count: u32,
}

fn parse_month(text: &str) -> Option<NaiveDate> {
    let (year, month) = text.split_once('-')?;
    if year.len() != 4 || month.len() != 2 {
        return None;
    }
    NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)
}

fn month_label(date: NaiveDate) -> String {
    date.format("%Y-%m").to_string()
}

fn start_of(date: NaiveDate) -> DateTime<Utc> {
    Seoul
        .from_local_datetime(&date.and_hms_opt(0, 0, 0).expect("midnight exists"))
        .single()
        .expect("Seoul has no daylight saving")
        .with_timezone(&Utc)
}

impl Months {
    /// The month `at` falls in, in Asia/Seoul.
    pub fn current(at: DateTime<Utc>) -> Self {
        let local = at.with_timezone(&Seoul).date_naive();
        Self {
            first: local.with_day(1).expect("day 1 exists"),
            count: 1,
        }
    }

    pub fn count(&self) -> u32 {
        self.count
    }

    fn last(&self) -> NaiveDate {
        self.first + chrono::Months::new(self.count - 1)
    }

    /// First instant of the period.
    pub fn start(&self) -> DateTime<Utc> {
        start_of(self.first)
    }

    /// First instant after the period.
    pub fn end(&self) -> DateTime<Utc> {
        start_of(self.first + chrono::Months::new(self.count))
    }

    /// Each month as "YYYY-MM", oldest first.
    pub fn labels(&self) -> Vec<String> {
        (0..self.count)
            .map(|i| month_label(self.first + chrono::Months::new(i)))
            .collect()
    }

    /// The Mondays (Asia/Seoul) of every week overlapping the period.
    pub fn week_starts(&self) -> Vec<NaiveDate> {
        let last_day = self.first + chrono::Months::new(self.count) - Duration::days(1);
        let mut monday =
            self.first - Duration::days(self.first.weekday().num_days_from_monday() as i64);
        let mut weeks = Vec::new();
        while monday <= last_day {
            weeks.push(monday);
            monday += Duration::days(7);
        }
        weeks
    }

    pub fn to_proto(&self) -> pb::Period {
        pb::Period {
            start_month: month_label(self.first),
            end_month: month_label(self.last()),
        }
    }
}

/// A Monday's start and the next Monday's, as instants.
pub fn week_bounds(monday: NaiveDate) -> (DateTime<Utc>, DateTime<Utc>) {
    (start_of(monday), start_of(monday + Duration::days(7)))
}

/// A validated filter; an unset period is resolved against the clock later.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    pub months: Option<Months>,
    pub province: Option<Province>,
    pub agency_id: Option<String>,
}

fn parse_period(period: &pb::Period, violations: &mut Violations) -> Option<Option<Months>> {
    if period.start_month.is_empty() {
        if !period.end_month.is_empty() {
            violations.add("filter.period.start_month", "required with end_month");
            return None;
        }
        return Some(None);
    }
    let start = parse_month(&period.start_month);
    if start.is_none() {
        violations.add(
            "filter.period.start_month",
            "a month as YYYY-MM, e.g. 2026-03",
        );
    }
    let end = if period.end_month.is_empty() {
        start
    } else {
        let end = parse_month(&period.end_month);
        if end.is_none() {
            violations.add(
                "filter.period.end_month",
                "a month as YYYY-MM, e.g. 2026-05",
            );
        }
        end
    };
    let (start, end) = (start?, end?);
    if end < start {
        violations.add("filter.period.end_month", "not before start_month");
        return None;
    }
    let count = (end.year() - start.year()) * 12 + end.month() as i32 - start.month() as i32 + 1;
    if count > MAX_MONTHS as i32 {
        violations.add(
            "filter.period",
            format!("at most {MAX_MONTHS} months in one request"),
        );
        return None;
    }
    Some(Some(Months {
        first: start,
        count: count as u32,
    }))
}

fn valid_agency_id(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_AGENCY_ID
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '-' | '.' | '_'))
}

impl TryFrom<Option<&pb::IndicatorFilter>> for Filter {
    type Error = Violations;
    fn try_from(filter: Option<&pb::IndicatorFilter>) -> Result<Self, Violations> {
        let filter = filter.cloned().unwrap_or_default();
        let mut violations = Violations::default();
        let months = parse_period(&filter.period.unwrap_or_default(), &mut violations);
        let province = if filter.province.is_empty() {
            Some(None)
        } else {
            violations
                .check(
                    "filter.province",
                    Province::parse(&filter.province).map_err(|e| e.0),
                )
                .map(Some)
        };
        let agency_id = if filter.agency_id.is_empty() {
            Some(None)
        } else if valid_agency_id(&filter.agency_id) {
            Some(Some(filter.agency_id.clone()))
        } else {
            violations.add(
                "filter.agency_id",
                "an agency id such as \"sbc\" or \"kotra\"",
            );
            None
        };
        violations.finish_with(|| {
            Some(Filter {
                months: months?,
                province: province?,
                agency_id: agency_id?,
            })
        })
    }
}

/// How much of the indicators a caller sees.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Scope {
    /// Dashboards and admins: every section.
    Everything,
    /// An agency token: its own agency's referral funnel and events only.
    OwnAgency,
}

/// A filter resolved for one caller at one time: what is computed.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Query {
    pub months: Months,
    pub province: Option<&'static str>,
    pub agency_id: Option<String>,
    pub scope: Scope,
}

/// Roles that may read indicators at all.
pub const READERS: &[Role] = &[Role::Dashboard, Role::Admin, Role::Agency];

impl Filter {
    /// The query `caller` may run: an agency token reads its own agency
    /// (asking for another is PERMISSION_DENIED); the period defaults to
    /// the month `now` falls in.
    pub fn resolve(self, caller: &Caller, now: DateTime<Utc>) -> Result<Query, ApiError> {
        caller.require(READERS)?;
        let (agency_id, scope) = match caller.tenant_for(Role::Agency) {
            Some(own) => {
                if self.agency_id.as_deref().is_some_and(|asked| asked != own) {
                    return Err(ApiError::PermissionDenied(
                        "an agency token reads its own agency's figures only".into(),
                    ));
                }
                (Some(own.to_owned()), Scope::OwnAgency)
            }
            None => (self.agency_id, Scope::Everything),
        };
        Ok(Query {
            months: self.months.unwrap_or_else(|| Months::current(now)),
            province: self.province.map(|p| p.code()),
            agency_id,
            scope,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(start: &str, end: &str) -> Result<Filter, Violations> {
        Filter::try_from(Some(&pb::IndicatorFilter {
            period: Some(pb::Period {
                start_month: start.into(),
                end_month: end.into(),
            }),
            ..Default::default()
        }))
    }

    #[test]
    fn months_are_seoul_calendar_months() {
        // 2026-02-28 16:00 UTC is already 1 March in Seoul.
        let at = Utc.with_ymd_and_hms(2026, 2, 28, 16, 0, 0).unwrap();
        let march = Months::current(at);
        assert_eq!(march.to_proto().start_month, "2026-03");
        assert_eq!(
            march.start(),
            Utc.with_ymd_and_hms(2026, 2, 28, 15, 0, 0).unwrap()
        );
        assert_eq!(
            march.end(),
            Utc.with_ymd_and_hms(2026, 3, 31, 15, 0, 0).unwrap()
        );
        // March 2026 starts on a Sunday: its first week starts Monday 23 Feb.
        let weeks = march.week_starts();
        assert_eq!(weeks.first().unwrap().to_string(), "2026-02-23");
        assert_eq!(weeks.last().unwrap().to_string(), "2026-03-30");
        assert_eq!(weeks.len(), 6);
    }

    #[test]
    fn periods_parse_and_are_bounded() {
        let quarter = filter("2026-01", "2026-03").unwrap().months.unwrap();
        assert_eq!(quarter.count(), 3);
        assert_eq!(quarter.labels(), ["2026-01", "2026-02", "2026-03"]);
        let year_end = filter("2025-11", "2026-02").unwrap().months.unwrap();
        assert_eq!(year_end.count(), 4);
        assert!(filter("", "").unwrap().months.is_none());
        let fields = |result: Result<Filter, Violations>| -> Vec<String> {
            result.unwrap_err().fields().map(str::to_owned).collect()
        };
        assert_eq!(fields(filter("2026-13", "")), ["filter.period.start_month"]);
        assert_eq!(
            fields(filter("2026-03", "2026-01")),
            ["filter.period.end_month"]
        );
        assert_eq!(fields(filter("2020-01", "2026-01")), ["filter.period"]);
        assert_eq!(fields(filter("", "2026-01")), ["filter.period.start_month"]);
    }

    #[test]
    fn an_agency_reads_its_own_agency_only() {
        let agency = Caller {
            subject: "t".into(),
            role: Role::Agency,
            tenant: Some("sbc".into()),
        };
        let now = Utc::now();
        let own = Filter::try_from(None)
            .unwrap()
            .resolve(&agency, now)
            .unwrap();
        assert_eq!(own.agency_id.as_deref(), Some("sbc"));
        assert_eq!(own.scope, Scope::OwnAgency);
        let other = Filter {
            agency_id: Some("kotra".into()),
            ..Filter::try_from(None).unwrap()
        };
        assert!(matches!(
            other.resolve(&agency, now),
            Err(ApiError::PermissionDenied(_))
        ));
        let advisor = Caller {
            subject: "t".into(),
            role: Role::Advisor,
            tenant: Some("a-1".into()),
        };
        assert!(
            Filter::try_from(None)
                .unwrap()
                .resolve(&advisor, now)
                .is_err()
        );
    }
}
