//! Changes of a company's advisor: the reasons an admin may give, what a
//! reassignment or an ending asks for, and the pages of a company's history.

use chrono::{DateTime, Utc};
use onestop_contracts::mentoring::v1 as pb;
use onestop_platform::pagination::Page;
use onestop_platform::{Violations, limits};
use uuid::Uuid;

use super::advisor::MAX_HANDOVER_DAYS;
use super::optional_id;

const MAX_NOTE: usize = limits::MAX_CHANGE_NOTE;

/// Why an assignment was replaced or ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChangeReason {
    AdvisorLeft,
    CompanyRequest,
    Conflict,
    Other,
}

impl ChangeReason {
    /// What ReassignAdvisor accepts.
    pub const FOR_REASSIGNMENT: &[ChangeReason] = &[
        Self::AdvisorLeft,
        Self::CompanyRequest,
        Self::Conflict,
        Self::Other,
    ];
    /// What EndAssignment accepts: an advisor leaving is a deactivation,
    /// which hands the company over instead.
    pub const FOR_ENDING: &[ChangeReason] = &[Self::CompanyRequest, Self::Conflict, Self::Other];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::AdvisorLeft => "ADVISOR_LEFT",
            Self::CompanyRequest => "COMPANY_REQUEST",
            Self::Conflict => "CONFLICT",
            Self::Other => "OTHER",
        }
    }

    pub fn to_proto(self) -> pb::ReassignReason {
        match self {
            Self::AdvisorLeft => pb::ReassignReason::AdvisorLeft,
            Self::CompanyRequest => pb::ReassignReason::CompanyRequest,
            Self::Conflict => pb::ReassignReason::Conflict,
            Self::Other => pb::ReassignReason::Other,
        }
    }

    fn from_proto(value: i32) -> Option<Self> {
        match pb::ReassignReason::try_from(value) {
            Ok(pb::ReassignReason::AdvisorLeft) => Some(Self::AdvisorLeft),
            Ok(pb::ReassignReason::CompanyRequest) => Some(Self::CompanyRequest),
            Ok(pb::ReassignReason::Conflict) => Some(Self::Conflict),
            Ok(pb::ReassignReason::Other) => Some(Self::Other),
            _ => None,
        }
    }

    /// The wire value of a stored reason; UNSPECIFIED for none.
    pub fn proto_from_stored(text: Option<&str>) -> i32 {
        Self::FOR_REASSIGNMENT
            .iter()
            .find(|reason| Some(reason.as_str()) == text)
            .map(|reason| reason.to_proto() as i32)
            .unwrap_or_default()
    }

    fn parse(value: i32, allowed: &[ChangeReason], violations: &mut Violations) -> Option<Self> {
        let reason = Self::from_proto(value).filter(|reason| allowed.contains(reason));
        if reason.is_none() {
            let names: Vec<&str> = allowed.iter().map(|reason| reason.as_str()).collect();
            violations.add("reason", format!("required: one of {}", names.join(", ")));
        }
        reason
    }
}

/// One ACTIVE assignment to replace or end, and why.
#[derive(Debug)]
pub struct Change {
    pub assignment_id: Uuid,
    pub reason: ChangeReason,
    pub note: String,
}

impl Change {
    fn parse(
        assignment_id: &str,
        reason: i32,
        note: &str,
        allowed: &[ChangeReason],
        violations: &mut Violations,
    ) -> Option<Self> {
        let assignment_id = violations.id("assignment_id", assignment_id);
        let reason = ChangeReason::parse(reason, allowed, violations);
        let note = note.trim().to_owned();
        if reason == Some(ChangeReason::Other) && note.is_empty() {
            violations.add("note", "required when the reason is OTHER");
        }
        limits::check_text("note", &note, MAX_NOTE, violations);
        Some(Self {
            assignment_id: assignment_id?,
            reason: reason?,
            note,
        })
    }
}

impl TryFrom<&pb::EndAssignmentRequest> for Change {
    type Error = Violations;
    fn try_from(request: &pb::EndAssignmentRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let change = Change::parse(
            &request.assignment_id,
            request.reason,
            &request.note,
            ChangeReason::FOR_ENDING,
            &mut violations,
        );
        violations.finish_with(|| change)
    }
}

/// A new advisor for a company, chosen by an admin or by matching.
#[derive(Debug)]
pub struct Reassignment {
    pub change: Change,
    /// The advisor the admin named; None picks the best match.
    pub successor: Option<Uuid>,
    /// Days both advisors stay listed; None ends the old assignment at once.
    pub handover_days: Option<u32>,
}

impl TryFrom<&pb::ReassignAdvisorRequest> for Reassignment {
    type Error = Violations;
    fn try_from(request: &pb::ReassignAdvisorRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let change = Change::parse(
            &request.assignment_id,
            request.reason,
            &request.note,
            ChangeReason::FOR_REASSIGNMENT,
            &mut violations,
        );
        let successor = optional_id("advisor_id", &request.advisor_id, &mut violations);
        if request.handover_days > MAX_HANDOVER_DAYS {
            violations.add("handover_days", format!("0 to {MAX_HANDOVER_DAYS} days"));
        }
        violations.finish_with(|| {
            Some(Reassignment {
                change: change?,
                successor,
                handover_days: (request.handover_days > 0).then_some(request.handover_days),
            })
        })
    }
}

/// Where a page of a company's history continues: (1 for the ACTIVE
/// assignment, else 0; started_at; assignment id), so the current advisor
/// comes last.
pub type HistoryKey = (i32, DateTime<Utc>, Uuid);

#[derive(Debug)]
pub struct HistoryQuery {
    pub company_id: Uuid,
    pub page: Page<HistoryKey>,
}

impl TryFrom<&pb::GetAdvisorHistoryRequest> for HistoryQuery {
    type Error = Violations;
    fn try_from(request: &pb::GetAdvisorHistoryRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let company_id = violations.id("company_id", &request.company_id);
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        violations.finish_with(|| {
            Some(HistoryQuery {
                company_id: company_id?,
                page,
            })
        })
    }
}
