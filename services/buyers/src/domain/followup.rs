//! Trade-show follow-up cadence: each lead is checked one week, three
//! months and six months after the show. Also the imports, follow-ups and
//! listings the lead RPCs ask for, validated.

use chrono::{DateTime, Duration, Months, Utc};
use onestop_contracts::buyers::v1 as pb;
use onestop_domain::{CountryCode, HsInterest};
use onestop_platform::pagination::{Page, PageKey};
use onestop_platform::time::{CALENDAR, from_calendar_timestamp};
use onestop_platform::{ApiError, Violations, limits};
use uuid::Uuid;

use super::buyer::parse_contacts;
use super::{optional, optional_text, parse_list, required_text};

use onestop_platform::limits::{MAX_NAME as MAX_TEXT, MAX_NOTE};

pub const CHECKPOINTS: [pb::CheckpointKind; 3] = [
    pb::CheckpointKind::OneWeek,
    pb::CheckpointKind::ThreeMonths,
    pb::CheckpointKind::SixMonths,
];

pub fn due_at(show_date: DateTime<Utc>, kind: pb::CheckpointKind) -> DateTime<Utc> {
    match kind {
        pb::CheckpointKind::OneWeek => show_date
            .checked_add_signed(Duration::days(7))
            .unwrap_or(show_date),
        pb::CheckpointKind::ThreeMonths => show_date
            .checked_add_months(Months::new(3))
            .unwrap_or(show_date),
        pb::CheckpointKind::SixMonths | pb::CheckpointKind::Unspecified => show_date
            .checked_add_months(Months::new(6))
            .unwrap_or(show_date),
    }
}

/// Progress beyond a failed attempt: anything better than NO_CONTACT.
pub fn is_progress(outcome: i32) -> bool {
    outcome > pb::FollowUpOutcome::NoContact as i32
}

/// What a lead becomes after a follow-up with `outcome`; `best` is its
/// best outcome so far, this one included. A converted lead takes no more
/// follow-ups.
pub fn status_after_follow_up(
    current: pb::LeadStatus,
    best: i32,
    outcome: pb::FollowUpOutcome,
) -> Result<pb::LeadStatus, ApiError> {
    Ok(match current {
        pb::LeadStatus::Converted => {
            return Err(ApiError::failed_precondition(
                "LEAD_CONVERTED",
                "the lead already reached an agreement",
            ));
        }
        _ if outcome == pb::FollowUpOutcome::Agreement => pb::LeadStatus::Converted,
        // Progress takes the lead off the reactivation list.
        pb::LeadStatus::Reactivation if is_progress(best) => pb::LeadStatus::CadenceCompleted,
        other => other,
    })
}

/// What happens when a checkpoint of an open lead falls due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WhenDue {
    /// The follow-up is due (followup.due).
    FollowUp,
    /// The six-month checkpoint passed without any progress: the lead goes
    /// on the reactivation list (lead.reactivation) instead.
    Reactivation,
}

pub fn when_due(kind: i32, best_outcome: i32) -> WhenDue {
    if kind == pb::CheckpointKind::SixMonths as i32 && !is_progress(best_outcome) {
        WhenDue::Reactivation
    } else {
        WhenDue::FollowUp
    }
}

/// Where the leads imported for one trade-show follow-up need stand.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, sqlx::FromRow)]
pub struct NeedLeads {
    pub trade_shows: i64,
    pub leads: i64,
    pub open: i64,
    pub converted: i64,
    pub cadence_completed: i64,
    pub reactivation: i64,
}

impl NeedLeads {
    /// The need is done once it has leads and none is still OPEN: each
    /// either converted or went through every checkpoint (followed up at
    /// each, or six months passed without progress). One converted lead
    /// does not finish it, as the company met the others at the show too
    /// and the cadence is owed to each. A lead never returns to OPEN, so
    /// this holds once it holds.
    pub fn finished(&self) -> bool {
        self.leads > 0 && self.open == 0
    }
}

/// Whether a search's need is one whose leads finish it: a trade-show
/// follow-up, or a search opened before its category was kept (intake
/// finishes only a trade-show follow-up need with the event anyway).
pub fn finished_by_leads(category: &str) -> bool {
    category.is_empty() || category == onestop_domain::NeedCategory::TradeShowFollowUp.as_str()
}

/// The show a batch of leads was met at. Stored as sent, but for the
/// trimmed name and city.
#[derive(Debug)]
pub struct TradeShow {
    pub company_id: String,
    pub name: String,
    pub country: String,
    pub city: String,
    /// The show's last day; checkpoints count from it.
    pub date: DateTime<Utc>,
    pub need_id: String,
    pub case_id: String,
}

/// One lead to import: its profile as stored, and the registered buyer it
/// is, if the company knows.
#[derive(Debug)]
pub struct NewLead {
    pub profile: pb::LeadProfile,
    pub buyer_id: Option<Uuid>,
}

/// A company's leads from one trade show, validated all or nothing.
#[derive(Debug)]
pub struct LeadImport {
    pub show: TradeShow,
    pub leads: Vec<NewLead>,
}

impl TryFrom<&pb::ImportTradeShowLeadsRequest> for LeadImport {
    type Error = Violations;
    fn try_from(request: &pb::ImportTradeShowLeadsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        required_text("company_id", &request.company_id, MAX_TEXT, &mut violations);
        let name = required_text("show_name", &request.show_name, MAX_TEXT, &mut violations);
        violations.check("show_country", CountryCode::parse(&request.show_country));
        let city = optional_text("show_city", &request.show_city, MAX_TEXT, &mut violations);
        let date = match &request.show_date {
            None => {
                violations.add("show_date", "required");
                None
            }
            Some(timestamp) => {
                let date = from_calendar_timestamp(timestamp);
                if date.is_none() {
                    violations.add("show_date", CALENDAR);
                }
                date
            }
        };
        if request.leads.is_empty() {
            violations.add("leads", "at least one lead");
        }
        let leads = limits::bounded(
            "leads",
            &request.leads,
            limits::MAX_IMPORT_ROWS,
            &mut violations,
        )
        .iter()
        .enumerate()
        .map(|(i, lead)| parse_lead(i, lead, &mut violations))
        .collect();
        violations.finish_with(|| {
            Some(LeadImport {
                show: TradeShow {
                    company_id: request.company_id.clone(),
                    name,
                    country: request.show_country.clone(),
                    city,
                    date: date?,
                    need_id: request.need_id.clone(),
                    case_id: request.case_id.clone(),
                },
                leads,
            })
        })
    }
}

fn parse_lead(i: usize, lead: &pb::LeadProfile, violations: &mut Violations) -> NewLead {
    let at = |name: &str| format!("leads[{i}].{name}");
    let name = required_text(
        &at("buyer_company_name"),
        &lead.buyer_company_name,
        MAX_TEXT,
        violations,
    );
    violations.check(at("country"), CountryCode::parse(&lead.country));
    let city = optional_text(&at("city"), &lead.city, MAX_TEXT, violations);
    let codes = parse_list(
        &at("hs_codes"),
        &lead.hs_codes,
        HsInterest::parse,
        violations,
    );
    let contacts = parse_contacts(&at("contacts"), &lead.contacts, violations);
    let note = optional_text(&at("note"), &lead.note, MAX_NOTE, violations);
    let buyer_id = optional(&lead.buyer_id).and_then(|id| violations.id(at("buyer_id"), &id));
    NewLead {
        profile: pb::LeadProfile {
            buyer_company_name: name,
            country: lead.country.clone(),
            city,
            contacts,
            hs_codes: codes.iter().map(|c| c.as_str().to_owned()).collect(),
            note,
            buyer_id: lead.buyer_id.clone(),
        },
        buyer_id,
    }
}

/// One follow-up on a lead, validated; when it happened is checked against
/// the clock by [`FollowUp::occurred_by`].
#[derive(Debug)]
pub struct FollowUp {
    pub lead_id: Uuid,
    pub outcome: pb::FollowUpOutcome,
    /// None means now.
    pub occurred_at: Option<DateTime<Utc>>,
}

const NOT_IN_THE_FUTURE: &str = "a time not in the future";

impl TryFrom<&pb::RecordFollowUpRequest> for FollowUp {
    type Error = Violations;
    fn try_from(request: &pb::RecordFollowUpRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let lead_id = violations.id("lead_id", &request.lead_id);
        let outcome = match pb::FollowUpOutcome::try_from(request.outcome) {
            Ok(pb::FollowUpOutcome::Unspecified) | Err(_) => {
                violations.add(
                    "outcome",
                    "NO_CONTACT, IN_TOUCH, SAMPLE_REQUESTED, NEGOTIATING or AGREEMENT",
                );
                None
            }
            Ok(outcome) => Some(outcome),
        };
        let occurred_at = request.occurred_at.as_ref().map(from_calendar_timestamp);
        if let Some(None) = occurred_at {
            violations.add("occurred_at", NOT_IN_THE_FUTURE);
        }
        // The note is for the caller's own records; it is checked, not kept.
        optional_text("note", &request.note, MAX_NOTE, &mut violations);
        violations.finish_with(|| {
            Some(FollowUp {
                lead_id: lead_id?,
                outcome: outcome?,
                occurred_at: occurred_at.flatten(),
            })
        })
    }
}

impl FollowUp {
    /// When the follow-up happened, which may not be after `now`.
    pub fn occurred_by(&self, now: DateTime<Utc>) -> Result<DateTime<Utc>, ApiError> {
        match self.occurred_at {
            None => Ok(now),
            Some(at) if at <= now => Ok(at),
            Some(_) => Err(ApiError::invalid("occurred_at", NOT_IN_THE_FUTURE)),
        }
    }
}

/// Which leads a listing shows.
#[derive(Debug, Default)]
pub struct LeadFilter {
    pub company_id: Option<String>,
    pub trade_show_id: Option<Uuid>,
    /// Only leads of these companies (the caller's reach); None for all.
    pub companies: Option<Vec<String>>,
}

/// A listing of leads or their checkpoints, paged by `K`.
#[derive(Debug)]
pub struct LeadQuery<K> {
    pub filter: LeadFilter,
    pub page: Page<K>,
}

impl<K: PageKey> LeadQuery<K> {
    fn parse(
        page_size: i32,
        page_token: &str,
        company_id: &str,
        trade_show_id: &str,
    ) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(page_size, page_token, &mut violations);
        let filter = LeadFilter {
            companies: None,
            company_id: optional(company_id),
            trade_show_id: optional(trade_show_id)
                .and_then(|id| violations.id("trade_show_id", &id)),
        };
        violations.finish_with(|| Some(LeadQuery { filter, page }))
    }
}

/// DUE checkpoints, earliest first: the key is (due at, lead, kind).
impl TryFrom<&pb::ListDueFollowUpsRequest> for LeadQuery<(DateTime<Utc>, Uuid, i32)> {
    type Error = Violations;
    fn try_from(request: &pb::ListDueFollowUpsRequest) -> Result<Self, Violations> {
        Self::parse(
            request.page_size,
            &request.page_token,
            &request.company_id,
            &request.trade_show_id,
        )
    }
}

/// Leads in reactivation, in id order.
impl TryFrom<&pb::ListReactivationLeadsRequest> for LeadQuery<Uuid> {
    type Error = Violations;
    fn try_from(request: &pb::ListReactivationLeadsRequest) -> Result<Self, Violations> {
        Self::parse(
            request.page_size,
            &request.page_token,
            &request.company_id,
            &request.trade_show_id,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(open: i64, converted: i64, cadence_completed: i64, reactivation: i64) -> NeedLeads {
        NeedLeads {
            trade_shows: 1,
            leads: open + converted + cadence_completed + reactivation,
            open,
            converted,
            cadence_completed,
            reactivation,
        }
    }

    #[test]
    fn a_need_is_done_when_no_lead_is_open() {
        assert!(need(0, 1, 1, 1).finished());
        assert!(need(0, 2, 0, 0).finished());
        assert!(need(0, 0, 0, 3).finished());
        // One conversion does not finish the others' cadence.
        assert!(!need(1, 1, 0, 0).finished());
        assert!(!need(1, 0, 0, 0).finished());
        // A need without leads has nothing to finish.
        assert!(!NeedLeads::default().finished());
    }

    #[test]
    fn only_trade_show_follow_up_searches_are_finished_by_leads() {
        assert!(finished_by_leads("TRADE_SHOW_FOLLOW_UP"));
        assert!(finished_by_leads(""));
        assert!(!finished_by_leads("BUYER_DISCOVERY"));
        assert!(!finished_by_leads("MARKET_DIVERSIFICATION"));
    }
}
