//! The fee ledger of fee-charging programs: which charges a listing shows.

use chrono::{DateTime, Utc};
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::Violations;
use onestop_platform::pagination::Page;
use uuid::Uuid;

use super::optional_id;

/// A calendar month as the ledger names it ("2026-03").
fn month(field: &str, text: &str, violations: &mut Violations) -> Option<String> {
    if text.is_empty() {
        return None;
    }
    let valid = text.len() == 7
        && text.as_bytes()[4] == b'-'
        && text[..4].chars().all(|c| c.is_ascii_digit())
        && matches!(text[5..].parse::<u32>(), Ok(1..=12));
    if !valid {
        violations.add(field, "a month as YYYY-MM, e.g. 2026-03");
        return None;
    }
    Some(text.to_owned())
}

#[derive(Debug, Default)]
pub struct FeeFilter {
    pub company_id: Option<Uuid>,
    pub month: Option<String>,
    pub advisor_id: Option<Uuid>,
    pub program_id: Option<String>,
}

/// Where a page of the ledger continues: (month, charged_at, charge id);
/// months run newest first, charges within a month oldest first.
pub type FeeKey = (String, DateTime<Utc>, Uuid);

#[derive(Debug)]
pub struct FeeQuery {
    pub filter: FeeFilter,
    pub page: Page<FeeKey>,
}

impl TryFrom<&pb::ListFeeChargesRequest> for FeeQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListFeeChargesRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        let filter = FeeFilter {
            company_id: optional_id("company_id", &request.company_id, &mut violations),
            month: month("month", &request.month, &mut violations),
            advisor_id: optional_id("advisor_id", &request.advisor_id, &mut violations),
            program_id: (!request.program_id.is_empty()).then(|| request.program_id.clone()),
        };
        violations.finish_with(|| Some(FeeQuery { filter, page }))
    }
}
