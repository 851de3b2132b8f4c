//! The home-doctor contact cadence: how often an advisor must be in touch,
//! by the company's growth stage, how many periods a silence has missed,
//! and the listing of overdue contacts.

use chrono::{DateTime, Duration, Utc};
use onestop_contracts::mentoring::v1 as pb;
use onestop_domain::{GrowthStage, Province};
use onestop_platform::Violations;
use onestop_platform::pagination::Page;
use uuid::Uuid;

use super::{optional_code, optional_id};

/// Days between contacts per stage. Companies early on the ladder need the
/// closest follow-up; strong exporters a quarterly check.
// Each flag is its variable's name in kebab case; the shorter names these
// settings had first stay as hidden aliases, so command lines using them work.
#[derive(Debug, Clone, Copy, clap::Args)]
pub struct Cadence {
    /// Days between advisor contacts for DOMESTIC companies.
    #[arg(
        long = "cadence-domestic-days",
        alias = "domestic-days",
        env = "ONESTOP_CADENCE_DOMESTIC_DAYS",
        default_value_t = 30
    )]
    pub domestic_days: u32,
    /// Days between advisor contacts for FIRST_EXPORT companies.
    #[arg(
        long = "cadence-first-export-days",
        alias = "first-export-days",
        env = "ONESTOP_CADENCE_FIRST_EXPORT_DAYS",
        default_value_t = 30
    )]
    pub first_export_days: u32,
    /// Days between advisor contacts for PROMISING companies.
    #[arg(
        long = "cadence-promising-days",
        alias = "promising-days",
        env = "ONESTOP_CADENCE_PROMISING_DAYS",
        default_value_t = 61
    )]
    pub promising_days: u32,
    /// Days between advisor contacts for STRONG companies.
    #[arg(
        long = "cadence-strong-days",
        alias = "strong-days",
        env = "ONESTOP_CADENCE_STRONG_DAYS",
        default_value_t = 91
    )]
    pub strong_days: u32,
}

impl Default for Cadence {
    fn default() -> Self {
        Self {
            domestic_days: 30,
            first_export_days: 30,
            promising_days: 61,
            strong_days: 91,
        }
    }
}

impl Cadence {
    pub fn interval_days(&self, stage: GrowthStage) -> u32 {
        let days = match stage {
            GrowthStage::Domestic => self.domestic_days,
            GrowthStage::FirstExport => self.first_export_days,
            GrowthStage::Promising => self.promising_days,
            GrowthStage::Strong => self.strong_days,
        };
        days.max(1)
    }
}

/// Whole cadence periods that have passed since `since` without contact.
pub fn periods_missed(since: DateTime<Utc>, interval_days: i32, now: DateTime<Utc>) -> i64 {
    let interval = Duration::days(i64::from(interval_days.max(1)));
    if now < since + interval {
        return 0;
    }
    (now - since).num_seconds() / interval.num_seconds()
}

/// When period `period` (1-based) fell due.
pub fn due_at(since: DateTime<Utc>, interval_days: i32, period: i64) -> DateTime<Utc> {
    since + Duration::days(i64::from(interval_days.max(1)) * period.max(1))
}

/// Which overdue contacts a listing shows.
#[derive(Debug, Default)]
pub struct OverdueFilter {
    pub advisor_id: Option<Uuid>,
    pub region: Option<String>,
    pub stage: Option<GrowthStage>,
}

#[derive(Debug)]
pub struct OverdueQuery {
    pub filter: OverdueFilter,
    /// Most overdue first: the key is (due_at, assignment id).
    pub page: Page<(DateTime<Utc>, Uuid)>,
}

impl TryFrom<&pb::ListOverdueContactsRequest> for OverdueQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListOverdueContactsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        let stage = match request.stage {
            0 => None,
            value => violations.check("stage", GrowthStage::from_proto(value)),
        };
        let filter = OverdueFilter {
            advisor_id: optional_id("advisor_id", &request.advisor_id, &mut violations),
            region: optional_code("region", &request.region, Province::parse, &mut violations)
                .map(|p| p.code().to_owned()),
            stage,
        };
        violations.finish_with(|| Some(OverdueQuery { filter, page }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_period_counts_only_once_it_has_fully_passed() {
        let start = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        assert_eq!(periods_missed(start, 30, start + Duration::days(29)), 0);
        assert_eq!(periods_missed(start, 30, start + Duration::days(30)), 1);
        assert_eq!(periods_missed(start, 30, start + Duration::days(61)), 2);
        assert_eq!(due_at(start, 30, 2), start + Duration::days(60));
    }

    #[test]
    fn stages_have_their_own_interval() {
        let cadence = Cadence::default();
        assert_eq!(cadence.interval_days(GrowthStage::FirstExport), 30);
        assert_eq!(cadence.interval_days(GrowthStage::Strong), 91);
    }
}
