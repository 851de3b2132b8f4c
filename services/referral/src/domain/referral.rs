//! What the referral RPCs ask for, validated: a hand-off to route, a
//! recommendation to explain, an inbox query.

use onestop_contracts::referral::v1::{self as pb, ReferralStatus};
use onestop_domain::{CountryCode, HsInterest, NeedCategory};
use onestop_platform::pagination::Page;
use onestop_platform::{Violations, limits};
use uuid::Uuid;

use super::directory::{category_filter, optional};
use super::eligibility::{Company, check_id};
use super::lifecycle;

/// The referral less its free text (detail, notes, cancel reason): people
/// write names and phone numbers there, so it stays off the feed, away
/// from dashboards and goes when the company's personal data is erased.
pub fn without_free_text(mut referral: pb::Referral) -> pb::Referral {
    referral.detail.clear();
    referral.cancel_reason.clear();
    if let Some(outcome) = referral.outcome.as_mut() {
        outcome.note.clear();
    }
    for leg in &mut referral.legs {
        leg.note.clear();
    }
    referral
}

/// Longest free-text detail a hand-off may carry.
const MAX_DETAIL: usize = limits::MAX_TEXT;

/// Intake's hand-off of one need, validated.
#[derive(Debug)]
pub struct NewReferral {
    pub category: NeedCategory,
    pub company: Company,
}

impl TryFrom<&pb::CreateReferralRequest> for NewReferral {
    type Error = Violations;
    fn try_from(request: &pb::CreateReferralRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        check_id("need_id", &request.need_id, &mut violations);
        check_id("case_id", &request.case_id, &mut violations);
        let category = violations.check("category", NeedCategory::from_proto(request.category));
        let company = Company::parse(request.company.as_ref(), "company", &mut violations);
        if !request.preferred_program_id.is_empty() {
            check_id(
                "preferred_program_id",
                &request.preferred_program_id,
                &mut violations,
            );
        }
        let markets = limits::bounded(
            "target_markets",
            &request.target_markets,
            limits::MAX_CODES,
            &mut violations,
        );
        for (i, market) in markets.iter().enumerate() {
            violations.check(format!("target_markets[{i}]"), CountryCode::parse(market));
        }
        let codes = limits::bounded(
            "hs_codes",
            &request.hs_codes,
            limits::MAX_CODES,
            &mut violations,
        );
        for (i, code) in codes.iter().enumerate() {
            violations.check(format!("hs_codes[{i}]"), HsInterest::parse(code));
        }
        limits::check_text("detail", &request.detail, MAX_DETAIL, &mut violations);
        violations.finish_with(|| {
            Some(NewReferral {
                category: category?,
                company: company?,
            })
        })
    }
}

/// A company to evaluate every program of a category for.
#[derive(Debug)]
pub struct Recommendation {
    pub category: NeedCategory,
    pub company: Company,
}

impl TryFrom<&pb::RecommendProgramsRequest> for Recommendation {
    type Error = Violations;
    fn try_from(request: &pb::RecommendProgramsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let category = violations.check("category", NeedCategory::from_proto(request.category));
        let company = Company::parse(request.company.as_ref(), "company", &mut violations);
        violations.finish_with(|| {
            Some(Recommendation {
                category: category?,
                company: company?,
            })
        })
    }
}

/// Which referrals a listing shows (an agency's own are enforced by the
/// handler on top of this).
#[derive(Debug, Default)]
pub struct ReferralFilter {
    pub statuses: Vec<String>,
    pub agency_id: Option<String>,
    pub include_rerouted_away: bool,
    pub program_id: Option<String>,
    pub company_id: Option<String>,
    pub case_id: Option<String>,
    pub need_id: Option<String>,
    pub category: Option<String>,
}

#[derive(Debug)]
pub struct ReferralQuery {
    pub filter: ReferralFilter,
    /// Newest first: the key is the referral id (a UUIDv7, so time-ordered).
    pub page: Page<Uuid>,
}

impl TryFrom<&pb::ListReferralsRequest> for ReferralQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListReferralsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        let mut statuses = Vec::new();
        let wanted = limits::bounded(
            "statuses",
            &request.statuses,
            limits::MAX_CODES,
            &mut violations,
        );
        for (i, status) in wanted.iter().enumerate() {
            match ReferralStatus::try_from(*status) {
                Ok(ReferralStatus::Unspecified) | Err(_) => {
                    violations.add(format!("statuses[{i}]"), "a referral status such as SENT")
                }
                Ok(status) => statuses.push(lifecycle::status_name(status).to_owned()),
            }
        }
        let category = category_filter(request.category, "category", &mut violations);
        let filter = ReferralFilter {
            statuses,
            agency_id: optional(&request.agency_id),
            include_rerouted_away: request.include_rerouted_away,
            program_id: optional(&request.program_id),
            company_id: optional(&request.company_id),
            case_id: optional(&request.case_id),
            need_id: optional(&request.need_id),
            category,
        };
        violations.finish_with(|| Some(ReferralQuery { filter, page }))
    }
}
