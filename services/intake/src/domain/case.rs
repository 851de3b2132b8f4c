//! Cases: which needs a case gets and who owns each, how far a need has
//! come, and what the case RPCs ask for, validated.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use onestop_contracts::intake::v1 as pb;
use onestop_domain::{CountryCode, GrowthStage, HsInterest, NeedCategory, NeedOwner};
use onestop_platform::pagination::Page;
use onestop_platform::{Violations, limits};
use uuid::Uuid;

use limits::{MAX_NEEDS, MAX_NOTE as MAX_DETAIL};
/// Program ids are referral's directory keys ("sbc.buyer-matching").
const MAX_PROGRAM_ID: usize = limits::MAX_LABEL;

#[derive(Debug, Clone)]
pub struct NeedSpec {
    pub category: NeedCategory,
    pub detail: String,
    pub target_markets: Vec<CountryCode>,
    pub hs_codes: Vec<HsInterest>,
    /// The agency program the partner chose; empty when none.
    pub program_id: String,
}

/// Which service serves each need category: intake's `category_owner`
/// table, read in the transaction that opens the needs, so changing the
/// routing is an update of data, not a release.
#[derive(Debug, Clone)]
pub struct CategoryOwners(HashMap<NeedCategory, NeedOwner>);

impl CategoryOwners {
    /// `None` when a category has no owner in the table (the table was
    /// edited by hand and lost a row): routing refuses rather than guess.
    pub fn new(owners: HashMap<NeedCategory, NeedOwner>) -> Option<Self> {
        NeedCategory::ALL
            .iter()
            .all(|category| owners.contains_key(category))
            .then_some(Self(owners))
    }

    /// The owner of a need: referral when it names an agency program (the
    /// directory is referral's, whatever the category), else the one its
    /// category's row names.
    pub fn owner_of(&self, spec: &NeedSpec) -> NeedOwner {
        if spec.program_id.is_empty() {
            self.0[&spec.category]
        } else {
            NeedOwner::Referral
        }
    }
}

/// A need as the case will hold it.
#[derive(Debug, Clone)]
pub struct PlannedNeed {
    pub spec: NeedSpec,
    pub owner: NeedOwner,
    pub added_by_rule: bool,
}

/// OpenCase, validated.
#[derive(Debug)]
pub struct NewCase {
    pub company_id: Uuid,
    pub needs: Vec<NeedSpec>,
}

impl TryFrom<&pb::OpenCaseRequest> for NewCase {
    type Error = Violations;
    fn try_from(request: &pb::OpenCaseRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let company_id = violations.id("company_id", &request.company_id);
        let needs = parse_needs(&request.needs, &mut violations);
        violations.finish_with(|| {
            Some(NewCase {
                company_id: company_id?,
                needs,
            })
        })
    }
}

/// AddNeeds, validated.
#[derive(Debug)]
pub struct NewNeeds {
    pub case_id: Uuid,
    pub needs: Vec<NeedSpec>,
}

impl TryFrom<&pb::AddNeedsRequest> for NewNeeds {
    type Error = Violations;
    fn try_from(request: &pb::AddNeedsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let case_id = violations.id("case_id", &request.case_id);
        let needs = parse_needs(&request.needs, &mut violations);
        violations.finish_with(|| {
            Some(NewNeeds {
                case_id: case_id?,
                needs,
            })
        })
    }
}

/// CancelNeed, validated.
#[derive(Debug)]
pub struct NeedCancellation {
    pub case_id: Uuid,
    pub need_id: Uuid,
    pub reason: String,
}

impl TryFrom<&pb::CancelNeedRequest> for NeedCancellation {
    type Error = Violations;
    fn try_from(request: &pb::CancelNeedRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let case_id = violations.id("case_id", &request.case_id);
        let need_id = violations.id("need_id", &request.need_id);
        let reason = required_text("reason", &request.reason, &mut violations);
        violations.finish_with(|| {
            Some(NeedCancellation {
                case_id: case_id?,
                need_id: need_id?,
                reason,
            })
        })
    }
}

/// CloseCase, validated.
#[derive(Debug)]
pub struct CaseClosing {
    pub case_id: Uuid,
    pub outcome_summary: String,
}

impl TryFrom<&pb::CloseCaseRequest> for CaseClosing {
    type Error = Violations;
    fn try_from(request: &pb::CloseCaseRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let case_id = violations.id("case_id", &request.case_id);
        let outcome_summary =
            required_text("outcome_summary", &request.outcome_summary, &mut violations);
        violations.finish_with(|| {
            Some(CaseClosing {
                case_id: case_id?,
                outcome_summary,
            })
        })
    }
}

/// Free text a person must write, trimmed and bounded.
fn required_text(field: &str, text: &str, violations: &mut Violations) -> String {
    limits::required_text(field, text, MAX_DETAIL, violations)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CaseStatus {
    Open,
    Closed,
}

impl CaseStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Closed => "CLOSED",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        [Self::Open, Self::Closed]
            .into_iter()
            .find(|status| status.as_str() == text)
    }

    pub fn to_proto(self) -> pb::CaseStatus {
        match self {
            Self::Open => pb::CaseStatus::Open,
            Self::Closed => pb::CaseStatus::Closed,
        }
    }
}

/// Which cases a listing shows.
#[derive(Debug, Default)]
pub struct CaseFilter {
    pub company_id: Option<Uuid>,
    pub status: Option<CaseStatus>,
}

#[derive(Debug)]
pub struct CaseQuery {
    pub filter: CaseFilter,
    /// Oldest first: the key is the case id (a UUIDv7, so time-ordered).
    pub page: Page<Uuid>,
}

impl TryFrom<&pb::ListCasesRequest> for CaseQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListCasesRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        let company_id = (!request.company_id.is_empty())
            .then(|| violations.id("company_id", &request.company_id))
            .flatten();
        let status = match pb::CaseStatus::try_from(request.status) {
            Ok(pb::CaseStatus::Unspecified) => None,
            Ok(pb::CaseStatus::Open) => Some(CaseStatus::Open),
            Ok(pb::CaseStatus::Closed) => Some(CaseStatus::Closed),
            Err(_) => {
                violations.add("status", "OPEN or CLOSED");
                None
            }
        };
        let filter = CaseFilter { company_id, status };
        violations.finish_with(|| Some(CaseQuery { filter, page }))
    }
}

/// A page of a case's timeline, oldest first: entries sort by when they
/// happened, then by when intake learned of them.
#[derive(Debug)]
pub struct TimelineQuery {
    pub case_id: Uuid,
    pub page: Page<(DateTime<Utc>, i64)>,
}

impl TryFrom<&pb::GetCaseTimelineRequest> for TimelineQuery {
    type Error = Violations;
    fn try_from(request: &pb::GetCaseTimelineRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let case_id = violations.id("case_id", &request.case_id);
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        violations.finish_with(|| {
            Some(TimelineQuery {
                case_id: case_id?,
                page,
            })
        })
    }
}

/// A page of a case's needs, in the order they were added: the key is the
/// need's position on the case.
#[derive(Debug)]
pub struct NeedsQuery {
    pub case_id: Uuid,
    pub page: Page<i32>,
}

impl TryFrom<&pb::ListCaseNeedsRequest> for NeedsQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListCaseNeedsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let case_id = violations.id("case_id", &request.case_id);
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        violations.finish_with(|| {
            Some(NeedsQuery {
                case_id: case_id?,
                page,
            })
        })
    }
}

/// RetryNeedDelivery, validated.
#[derive(Debug)]
pub struct DeliveryRetry {
    pub case_id: Uuid,
    pub need_id: Uuid,
}

impl TryFrom<&pb::RetryNeedDeliveryRequest> for DeliveryRetry {
    type Error = Violations;
    fn try_from(request: &pb::RetryNeedDeliveryRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let case_id = violations.id("case_id", &request.case_id);
        let need_id = violations.id("need_id", &request.need_id);
        violations.finish_with(|| {
            Some(DeliveryRetry {
                case_id: case_id?,
                need_id: need_id?,
            })
        })
    }
}

/// How far a need has come. The order is the order a need moves in, and it
/// only ever moves forward: a late or replayed "accepted" never undoes
/// "done", and nothing moves a need out of DONE or CANCELLED.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum NeedStatus {
    Open,
    Routed,
    InProgress,
    Done,
    Cancelled,
}

impl NeedStatus {
    const ALL: [Self; 5] = [
        Self::Open,
        Self::Routed,
        Self::InProgress,
        Self::Done,
        Self::Cancelled,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Open => "OPEN",
            Self::Routed => "ROUTED",
            Self::InProgress => "IN_PROGRESS",
            Self::Done => "DONE",
            Self::Cancelled => "CANCELLED",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|status| status.as_str() == text)
    }

    pub fn to_proto(self) -> pb::NeedStatus {
        match self {
            Self::Open => pb::NeedStatus::Open,
            Self::Routed => pb::NeedStatus::Routed,
            Self::InProgress => pb::NeedStatus::InProgress,
            Self::Done => pb::NeedStatus::Done,
            Self::Cancelled => pb::NeedStatus::Cancelled,
        }
    }

    /// Whether a need at `self` moves on to `to`.
    pub fn advances_to(self, to: NeedStatus) -> bool {
        !self.is_finished() && to > self
    }

    /// DONE or CANCELLED: nothing moves the need any more.
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Done | Self::Cancelled)
    }
}

/// Why a case closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseCause {
    NeedsFinished,
    ClosedByPartner,
}

impl CloseCause {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NeedsFinished => "NEEDS_FINISHED",
            Self::ClosedByPartner => "CLOSED_BY_PARTNER",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        [Self::NeedsFinished, Self::ClosedByPartner]
            .into_iter()
            .find(|cause| cause.as_str() == text)
    }

    pub fn to_proto(self) -> pb::CaseCloseCause {
        match self {
            Self::NeedsFinished => pb::CaseCloseCause::NeedsFinished,
            Self::ClosedByPartner => pb::CaseCloseCause::ClosedByPartner,
        }
    }
}

fn parse_needs(needs: &[pb::NeedRequest], violations: &mut Violations) -> Vec<NeedSpec> {
    if needs.is_empty() {
        violations.add("needs", "at least one need");
    } else if needs.len() > MAX_NEEDS {
        violations.add("needs", format!("at most {MAX_NEEDS} needs in one case"));
        return Vec::new();
    }
    let mut specs = Vec::new();
    for (i, need) in needs.iter().enumerate() {
        let field = |name: &str| format!("needs[{i}].{name}");
        let category = violations.check(field("category"), NeedCategory::from_proto(need.category));
        let detail = need.detail.trim();
        limits::check_text(&field("detail"), detail, MAX_DETAIL, violations);
        let mut target_markets = Vec::new();
        for (j, code) in limits::bounded(
            &field("target_markets"),
            &need.target_markets,
            limits::MAX_CODES,
            violations,
        )
        .iter()
        .enumerate()
        {
            if let Some(code) = violations.check(
                format!("{}[{j}]", field("target_markets")),
                CountryCode::parse(code),
            ) {
                target_markets.push(code);
            }
        }
        target_markets.sort();
        target_markets.dedup();
        let mut hs_codes = Vec::new();
        for (j, code) in limits::bounded(
            &field("hs_codes"),
            &need.hs_codes,
            limits::MAX_CODES,
            violations,
        )
        .iter()
        .enumerate()
        {
            if let Some(code) = violations.check(
                format!("{}[{j}]", field("hs_codes")),
                HsInterest::parse(code),
            ) {
                hs_codes.push(code);
            }
        }
        hs_codes.sort();
        hs_codes.dedup();
        let program_id = need.program_id.trim();
        if program_id.len() > MAX_PROGRAM_ID || !program_id.chars().all(|c| c.is_ascii_graphic()) {
            violations.add(
                field("program_id"),
                format!("at most {MAX_PROGRAM_ID} printable ASCII characters"),
            );
        }
        if let Some(category) = category {
            specs.push(NeedSpec {
                category,
                detail: detail.to_owned(),
                target_markets,
                hs_codes,
                program_id: program_id.to_owned(),
            });
        }
    }
    specs
}

/// What planning a case needs to know about the company.
#[derive(Debug, Clone, Copy)]
pub struct Standing {
    pub stage: GrowthStage,
    pub small_merchant: bool,
    pub has_open_mentoring_need: bool,
}

/// Routes each requested need to its owner, and adds a MENTORING need for a
/// company that is early on the ladder (DOMESTIC, FIRST_EXPORT) or a small
/// merchant, unless the case asks for one or the company already has an
/// open mentoring need: such companies need one long-term advisor more than
/// anything else, and one is enough.
pub fn plan(
    requested: Vec<NeedSpec>,
    standing: Standing,
    owners: &CategoryOwners,
) -> Vec<PlannedNeed> {
    let mut planned = route(requested, owners);
    if let Some(advisor) = advisor_by_rule(&planned, standing, owners) {
        planned.push(advisor);
    }
    planned
}

/// Each need to its owner, as asked: AddNeeds adds exactly what the
/// partner names.
pub fn route(requested: Vec<NeedSpec>, owners: &CategoryOwners) -> Vec<PlannedNeed> {
    requested
        .into_iter()
        .map(|spec| PlannedNeed {
            owner: owners.owner_of(&spec),
            spec,
            added_by_rule: false,
        })
        .collect()
}

fn advisor_by_rule(
    requested: &[PlannedNeed],
    standing: Standing,
    owners: &CategoryOwners,
) -> Option<PlannedNeed> {
    let Standing {
        stage,
        small_merchant,
        has_open_mentoring_need,
    } = standing;
    let asked_for_mentoring = requested
        .iter()
        .any(|n| n.spec.category == NeedCategory::Mentoring);
    let early = matches!(stage, GrowthStage::Domestic | GrowthStage::FirstExport);
    if !(early || small_merchant) || asked_for_mentoring || has_open_mentoring_need {
        return None;
    }
    let mut markets: Vec<CountryCode> = requested
        .iter()
        .flat_map(|n| n.spec.target_markets.clone())
        .collect();
    markets.sort();
    markets.dedup();
    let reason = if small_merchant {
        "small merchant"
    } else {
        stage.as_str()
    };
    let spec = NeedSpec {
        category: NeedCategory::Mentoring,
        detail: format!(
            "Long-term export advisor (at least three years), added because the company is {reason}"
        ),
        target_markets: markets,
        hs_codes: Vec::new(),
        program_id: String::new(),
    };
    Some(PlannedNeed {
        owner: owners.owner_of(&spec),
        spec,
        added_by_rule: true,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn need(category: NeedCategory) -> NeedSpec {
        NeedSpec {
            category,
            detail: String::new(),
            target_markets: vec![CountryCode::parse("VN").unwrap()],
            hs_codes: vec![],
            program_id: String::new(),
        }
    }

    /// The routing the first migration seeds.
    fn owners() -> CategoryOwners {
        use NeedCategory::*;
        CategoryOwners::new(
            NeedCategory::ALL
                .into_iter()
                .map(|category| {
                    let owner = match category {
                        Mentoring => NeedOwner::Mentoring,
                        BuyerDiscovery
                        | SampleTestMarketing
                        | TradeShowFollowUp
                        | MarketDiversification => NeedOwner::Buyers,
                        _ => NeedOwner::Referral,
                    };
                    (category, owner)
                })
                .collect(),
        )
        .unwrap()
    }

    #[test]
    fn a_named_program_sends_any_need_to_referral() {
        let owners = owners();
        let mut discovery = need(NeedCategory::BuyerDiscovery);
        assert_eq!(owners.owner_of(&discovery), NeedOwner::Buyers);
        discovery.program_id = "sbc.buyer-matching".into();
        assert_eq!(owners.owner_of(&discovery), NeedOwner::Referral);
        let mut partial: HashMap<_, _> = HashMap::new();
        partial.insert(NeedCategory::Mentoring, NeedOwner::Mentoring);
        assert!(CategoryOwners::new(partial).is_none());
    }

    fn standing(stage: GrowthStage, small_merchant: bool, has_open: bool) -> Standing {
        Standing {
            stage,
            small_merchant,
            has_open_mentoring_need: has_open,
        }
    }

    #[test]
    fn needs_only_move_forward() {
        assert!(NeedStatus::Open.advances_to(NeedStatus::Routed));
        assert!(NeedStatus::Routed.advances_to(NeedStatus::Done));
        assert!(!NeedStatus::InProgress.advances_to(NeedStatus::Routed));
        assert!(!NeedStatus::Done.advances_to(NeedStatus::Cancelled));
        assert!(!NeedStatus::Cancelled.advances_to(NeedStatus::Done));
        for status in NeedStatus::ALL {
            assert_eq!(NeedStatus::from_stored(status.as_str()), Some(status));
        }
    }

    #[test]
    fn early_companies_and_small_merchants_get_an_advisor() {
        let finance = || vec![need(NeedCategory::ExportFinance)];
        for stage in [GrowthStage::Domestic, GrowthStage::FirstExport] {
            let planned = plan(finance(), standing(stage, false, false), &owners());
            assert_eq!(planned.len(), 2);
            assert!(planned[1].added_by_rule);
            assert_eq!(planned[1].owner, NeedOwner::Mentoring);
            assert_eq!(
                planned[1].spec.target_markets,
                vec![CountryCode::parse("VN").unwrap()]
            );
        }
        let planned =
            |stage, small, has_open| plan(finance(), standing(stage, small, has_open), &owners());
        assert_eq!(planned(GrowthStage::Strong, true, false).len(), 2);
        assert_eq!(planned(GrowthStage::Promising, false, false).len(), 1);
        assert_eq!(planned(GrowthStage::Domestic, false, true).len(), 1);
        let asked = plan(
            vec![need(NeedCategory::Mentoring)],
            standing(GrowthStage::Domestic, true, false),
            &owners(),
        );
        assert_eq!(asked.len(), 1);
        assert!(!asked[0].added_by_rule);
    }
}
