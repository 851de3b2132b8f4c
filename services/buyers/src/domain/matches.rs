//! What the match and deal RPCs ask for, validated: a lifecycle move, a
//! deal to record, and the match and unconfirmed-deal listings.

use chrono::{DateTime, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_domain::Money;
use onestop_platform::Violations;
use onestop_platform::pagination::Page;
use onestop_platform::time::from_timestamp;
use uuid::Uuid;

use super::lifecycle::MatchStatus;
use super::{optional, optional_text};

use onestop_platform::limits::MAX_NOTE;

/// One AdvanceMatch, validated: a target AdvanceMatch may reach, and a
/// no-deal reason exactly when closing without a deal.
#[derive(Debug)]
pub struct Advance {
    pub match_id: Uuid,
    pub to: MatchStatus,
    /// The status the caller last saw, when it guards against races.
    pub expected: Option<MatchStatus>,
    pub reason: Option<pb::NoDealReason>,
    pub note: String,
}

impl TryFrom<&pb::AdvanceMatchRequest> for Advance {
    type Error = Violations;
    fn try_from(request: &pb::AdvanceMatchRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let match_id = violations.id("match_id", &request.match_id);
        let to = match MatchStatus::from_proto(request.to_status) {
            Some(
                status @ (MatchStatus::Introduced
                | MatchStatus::MeetingScheduled
                | MatchStatus::Negotiating
                | MatchStatus::ClosedNoDeal),
            ) => Some(status),
            Some(MatchStatus::Deal) => {
                violations.add("to_status", "a deal is recorded with RecordDeal");
                None
            }
            _ => {
                violations.add(
                    "to_status",
                    "INTRODUCED, MEETING_SCHEDULED, NEGOTIATING or CLOSED_NO_DEAL",
                );
                None
            }
        };
        let expected = match request.expected_status {
            0 => None,
            value => {
                let status = MatchStatus::from_proto(value);
                if status.is_none() {
                    violations.add("expected_status", "a match status");
                }
                status
            }
        };
        let reason = match pb::NoDealReason::try_from(request.no_deal_reason) {
            Ok(pb::NoDealReason::Unspecified) => None,
            Ok(reason) => Some(reason),
            Err(_) => {
                violations.add("no_deal_reason", "a no-deal reason");
                None
            }
        };
        match (to, reason) {
            (Some(MatchStatus::ClosedNoDeal), None) => {
                violations.add("no_deal_reason", "required to close without a deal")
            }
            (Some(to), Some(_)) if to != MatchStatus::ClosedNoDeal => {
                violations.add("no_deal_reason", "only with CLOSED_NO_DEAL")
            }
            _ => {}
        }
        let note = optional_text("note", &request.note, MAX_NOTE, &mut violations);
        violations.finish_with(|| {
            Some(Advance {
                match_id: match_id?,
                to: to?,
                expected,
                reason,
                note,
            })
        })
    }
}

/// The company's dispute of a recorded deal, validated.
#[derive(Debug)]
pub struct DealDispute {
    pub deal_id: Uuid,
    pub reason: pb::DealDisputeReason,
    pub note: String,
}

impl TryFrom<&pb::DisputeDealRequest> for DealDispute {
    type Error = Violations;
    fn try_from(request: &pb::DisputeDealRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let deal_id = violations.id("deal_id", &request.deal_id);
        let reason = match pb::DealDisputeReason::try_from(request.reason) {
            Ok(pb::DealDisputeReason::Unspecified) | Err(_) => {
                violations.add(
                    "reason",
                    "NO_DEAL, WRONG_VALUE, WRONG_TYPE, WITHDRAWN_BY_BUYER or OTHER",
                );
                None
            }
            Ok(reason) => Some(reason),
        };
        let note = optional_text("note", &request.note, MAX_NOTE, &mut violations);
        if reason == Some(pb::DealDisputeReason::Other) && note.is_empty() {
            violations.add("note", "required when the reason is OTHER");
        }
        violations.finish_with(|| {
            Some(DealDispute {
                deal_id: deal_id?,
                reason: reason?,
                note,
            })
        })
    }
}

/// The deal of a NEGOTIATING match, validated.
#[derive(Debug)]
pub struct NewDeal {
    pub match_id: Uuid,
    pub deal_type: pb::DealType,
    /// Greater than zero, any currency.
    pub value: Money,
    pub note: String,
}

impl TryFrom<&pb::RecordDealRequest> for NewDeal {
    type Error = Violations;
    fn try_from(request: &pb::RecordDealRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let match_id = violations.id("match_id", &request.match_id);
        let deal_type = match pb::DealType::try_from(request.deal_type) {
            Ok(pb::DealType::Unspecified) | Err(_) => {
                violations.add("deal_type", "EXCLUSIVE_SUPPLY, DISTRIBUTORSHIP or ORDER");
                None
            }
            Ok(deal_type) => Some(deal_type),
        };
        let value = match &request.value {
            None => {
                violations.add("value", "required");
                None
            }
            Some(money) => match violations.check("value", Money::parse(money, None)) {
                Some(value) if value.amount_minor == 0 => {
                    violations.add("value.amount_minor", "greater than zero");
                    None
                }
                value => value,
            },
        };
        let note = optional_text("note", &request.note, MAX_NOTE, &mut violations);
        violations.finish_with(|| {
            Some(NewDeal {
                match_id: match_id?,
                deal_type: deal_type?,
                value: value?,
                note,
            })
        })
    }
}

/// Which matches a listing shows (a trade office's own are enforced by the
/// handler on top of this).
#[derive(Debug, Default)]
pub struct MatchFilter {
    pub company_id: Option<String>,
    pub buyer_id: Option<Uuid>,
    pub need_id: Option<String>,
    /// Matches of buyers this office found.
    pub office: Option<String>,
    /// Empty means all.
    pub statuses: Vec<MatchStatus>,
    /// Only matches of these companies (the caller's reach); None for all.
    pub companies: Option<Vec<String>>,
}

#[derive(Debug)]
pub struct MatchListQuery {
    pub filter: MatchFilter,
    /// In id order.
    pub page: Page<Uuid>,
}

impl TryFrom<&pb::ListMatchesRequest> for MatchListQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListMatchesRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        let buyer_id = optional(&request.buyer_id).and_then(|id| violations.id("buyer_id", &id));
        let mut statuses = Vec::new();
        let wanted = onestop_platform::limits::bounded(
            "statuses",
            &request.statuses,
            onestop_platform::limits::MAX_CODES,
            &mut violations,
        );
        for (i, value) in wanted.iter().enumerate() {
            match MatchStatus::from_proto(*value) {
                Some(status) => statuses.push(status),
                None => violations.add(format!("statuses[{i}]"), "a match status"),
            }
        }
        let filter = MatchFilter {
            companies: None,
            company_id: optional(&request.company_id),
            buyer_id,
            need_id: optional(&request.need_id),
            office: optional(&request.trade_office_id),
            statuses,
        };
        violations.finish_with(|| Some(MatchListQuery { filter, page }))
    }
}

/// Which unconfirmed deals a listing shows.
#[derive(Debug, Default)]
pub struct DealFilter {
    pub office: Option<String>,
    pub company_id: Option<String>,
    pub recorded_before: Option<DateTime<Utc>>,
}

#[derive(Debug)]
pub struct UnconfirmedDealQuery {
    pub filter: DealFilter,
    /// Oldest first: the key is (recorded at, deal id).
    pub page: Page<(DateTime<Utc>, Uuid)>,
}

impl TryFrom<&pb::ListUnconfirmedDealsRequest> for UnconfirmedDealQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListUnconfirmedDealsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        let filter = DealFilter {
            office: optional(&request.trade_office_id),
            company_id: optional(&request.company_id),
            recorded_before: request.recorded_before.as_ref().and_then(from_timestamp),
        };
        violations.finish_with(|| Some(UnconfirmedDealQuery { filter, page }))
    }
}
