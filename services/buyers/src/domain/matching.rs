//! How a buyer scores for a company. The points are spaced so the factors
//! rank in a strict order of importance: an HS level always outweighs
//! everything below it (market fit, language and quality together stay
//! under the gap between two levels), market fit outweighs language and
//! quality together, and a shared language outweighs any quality score.
//! Quality then orders buyers that tie on everything else.

use onestop_contracts::buyers::v1 as pb;
use onestop_contracts::common::v1::{CompanySnapshot, NeedCategory};
use onestop_domain::{CountryCode, HsCode, HsInterest, LanguageCode};
use onestop_platform::Violations;
use onestop_platform::limits::MAX_NAME as MAX_ID;

use super::{bounded_count, optional_text, parse_list, required_text};

pub const EXACT_POINTS: f64 = 60.0;
pub const HEADING_POINTS: f64 = 40.0;
pub const CHAPTER_POINTS: f64 = 20.0;
pub const MARKET_POINTS: f64 = 12.0;
pub const LANGUAGE_POINTS: f64 = 5.0;
/// Points for a quality score of 100.
pub const QUALITY_POINTS_MAX: f64 = 2.0;

// The strict order above, checked when compiling.
const _: () = {
    let below_levels = MARKET_POINTS + LANGUAGE_POINTS + QUALITY_POINTS_MAX;
    assert!(below_levels < EXACT_POINTS - HEADING_POINTS);
    assert!(below_levels < HEADING_POINTS - CHAPTER_POINTS);
    assert!(LANGUAGE_POINTS + QUALITY_POINTS_MAX < MARKET_POINTS);
    assert!(QUALITY_POINTS_MAX < LANGUAGE_POINTS);
};

pub const DEFAULT_LIMIT: u32 = 20;
pub const MAX_LIMIT: u32 = 100;
/// Buyers proposed when the hand-off names no count.
pub const DEFAULT_PROPOSALS: u32 = 5;
pub const MAX_PROPOSALS: u32 = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HsLevel {
    Chapter = 1,
    Heading = 2,
    Exact = 3,
}

impl HsLevel {
    /// The level at which a company's code (2, 4 or 6 digits) meets a
    /// buyer's sought code (4 or 6), if they share at least a chapter.
    pub fn between(company: &str, buyer: &str) -> Option<Self> {
        let common = company
            .bytes()
            .zip(buyer.bytes())
            .take_while(|(a, b)| a == b)
            .count();
        let depth = common.min(company.len()).min(buyer.len());
        match depth {
            6 => Some(Self::Exact),
            4 | 5 => Some(Self::Heading),
            2 | 3 => Some(Self::Chapter),
            _ => None,
        }
    }

    pub fn points(self) -> f64 {
        match self {
            Self::Exact => EXACT_POINTS,
            Self::Heading => HEADING_POINTS,
            Self::Chapter => CHAPTER_POINTS,
        }
    }

    pub fn to_proto(self) -> pb::HsMatchLevel {
        match self {
            Self::Exact => pb::HsMatchLevel::Exact,
            Self::Heading => pb::HsMatchLevel::Heading,
            Self::Chapter => pb::HsMatchLevel::Chapter,
        }
    }
}

pub fn quality_points(score: u32) -> f64 {
    f64::from(score.min(100)) * QUALITY_POINTS_MAX / 100.0
}

/// What to match a company on, validated.
#[derive(Debug, Clone)]
pub struct MatchQuery {
    pub company_id: String,
    pub hs_codes: Vec<HsInterest>,
    pub target_markets: Vec<CountryCode>,
    pub languages: Vec<LanguageCode>,
    pub limit: u32,
}

/// A request to match a company: FindBuyers and OpenBuyerSearch name the
/// company and what it wants in the same fields.
pub trait MatchRequest {
    /// (company, target_markets, hs_codes, languages).
    fn wanted(&self) -> (Option<&CompanySnapshot>, &[String], &[String], &[String]);
}

macro_rules! match_requests {
    ($($request:ty),+) => {$(
        impl MatchRequest for $request {
            fn wanted(&self) -> (Option<&CompanySnapshot>, &[String], &[String], &[String]) {
                (
                    self.company.as_ref(),
                    &self.target_markets,
                    &self.hs_codes,
                    &self.languages,
                )
            }
        }
    )+};
}

match_requests!(pb::FindBuyersRequest, pb::OpenBuyerSearchRequest);

impl MatchQuery {
    /// What `request` wants matched, `limit` buyers of it; violations are
    /// named after the request's fields.
    pub fn parse(
        request: &impl MatchRequest,
        limit: u32,
        violations: &mut Violations,
    ) -> Option<Self> {
        let (company, target_markets, hs_codes, languages) = request.wanted();
        let Some(company) = company else {
            violations.add("company", "required");
            return None;
        };
        if company.company_id.is_empty() {
            violations.add("company.company_id", "required");
        }
        let company_codes = parse_list(
            "company.hs_codes",
            &company.hs_codes,
            HsCode::parse,
            violations,
        );
        let mut codes = parse_list("hs_codes", hs_codes, HsInterest::parse, violations);
        if hs_codes.is_empty() {
            codes = company_codes
                .iter()
                .filter_map(|c| HsInterest::parse(c.as_str()).ok())
                .collect();
        }
        if codes.is_empty() && violations.is_empty() {
            violations.add(
                "hs_codes",
                "at least one HS code, here or in company.hs_codes",
            );
        }
        let target_markets = parse_list(
            "target_markets",
            target_markets,
            CountryCode::parse,
            violations,
        );
        let mut langs = parse_list("languages", languages, LanguageCode::parse, violations);
        if languages.is_empty() {
            langs = parse_list(
                "company.languages",
                &company.languages,
                LanguageCode::parse,
                violations,
            );
        }
        Some(Self {
            company_id: company.company_id.clone(),
            hs_codes: codes,
            target_markets,
            languages: langs,
            limit,
        })
        .filter(|_| violations.is_empty())
    }

    pub fn codes(&self) -> Vec<String> {
        self.hs_codes
            .iter()
            .map(|c| c.as_str().to_owned())
            .collect()
    }
}

impl TryFrom<&pb::FindBuyersRequest> for MatchQuery {
    type Error = Violations;
    fn try_from(request: &pb::FindBuyersRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let limit = bounded_count(
            "limit",
            request.limit,
            DEFAULT_LIMIT,
            MAX_LIMIT,
            &mut violations,
        );
        let query = MatchQuery::parse(request, limit, &mut violations);
        violations.finish_with(|| query)
    }
}

/// What a buyer search does with the buyers it finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SearchKind {
    /// Proposes the best buyers as matches (for a sample test, the
    /// candidates to send the sample to).
    Proposing,
    /// Recorded without proposals: a trade-show follow-up starts from the
    /// company's own leads (ImportTradeShowLeads).
    RecordOnly,
}

/// Intake's hand-off of a buyers-owned need, validated; `query.limit` is
/// the number of buyers to propose.
#[derive(Debug)]
pub struct NewSearch {
    pub need_id: String,
    pub case_id: String,
    pub kind: SearchKind,
    pub query: MatchQuery,
}

impl TryFrom<&pb::OpenBuyerSearchRequest> for NewSearch {
    type Error = Violations;
    fn try_from(request: &pb::OpenBuyerSearchRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let need_id = required_text("need_id", &request.need_id, MAX_ID, &mut violations);
        let case_id = optional_text("case_id", &request.case_id, MAX_ID, &mut violations);
        // Intake hands every buyers-owned need here.
        let kind = match NeedCategory::try_from(request.category) {
            Ok(
                NeedCategory::BuyerDiscovery
                | NeedCategory::MarketDiversification
                | NeedCategory::SampleTestMarketing,
            ) => Some(SearchKind::Proposing),
            Ok(NeedCategory::TradeShowFollowUp) => Some(SearchKind::RecordOnly),
            _ => {
                violations.add(
                    "category",
                    "a buyers need: BUYER_DISCOVERY, MARKET_DIVERSIFICATION, SAMPLE_TEST_MARKETING or TRADE_SHOW_FOLLOW_UP",
                );
                None
            }
        };
        let count = bounded_count(
            "count",
            request.count,
            DEFAULT_PROPOSALS,
            MAX_PROPOSALS,
            &mut violations,
        );
        let query = MatchQuery::parse(request, count, &mut violations);
        violations.finish_with(|| {
            Some(NewSearch {
                need_id,
                case_id,
                kind: kind?,
                query: query?,
            })
        })
    }
}

/// One buyer code row as the matching index holds it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub buyer_code: String,
    pub country: String,
    pub languages: Vec<String>,
    pub quality_score: u32,
}

/// Scores one candidate code against the query; None when it shares no
/// chapter with any of the company's codes.
pub fn score(query: &MatchQuery, candidate: &Candidate) -> Option<pb::BuyerMatchScore> {
    let (level, company_code) = query
        .hs_codes
        .iter()
        .filter_map(|code| {
            HsLevel::between(code.as_str(), &candidate.buyer_code).map(|l| (l, code.as_str()))
        })
        .max_by_key(|(level, _)| *level)?;
    let market_fit = query
        .target_markets
        .iter()
        .any(|m| m.as_str() == candidate.country);
    let shared_languages: Vec<String> = query
        .languages
        .iter()
        .filter(|l| candidate.languages.iter().any(|b| b == l.as_str()))
        .map(|l| l.as_str().to_owned())
        .collect();
    let hs_points = level.points();
    let market_points = if market_fit { MARKET_POINTS } else { 0.0 };
    let language_points = if shared_languages.is_empty() {
        0.0
    } else {
        LANGUAGE_POINTS
    };
    let quality_points = quality_points(candidate.quality_score);
    Some(pb::BuyerMatchScore {
        total: hs_points + market_points + language_points + quality_points,
        hs_match_level: level.to_proto() as i32,
        company_hs_code: company_code.to_owned(),
        buyer_hs_code: candidate.buyer_code.clone(),
        hs_points,
        market_fit,
        market_points,
        shared_languages,
        language_points,
        quality_score: candidate.quality_score,
        quality_points,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn levels_follow_the_shared_prefix() {
        assert_eq!(HsLevel::between("330499", "330499"), Some(HsLevel::Exact));
        assert_eq!(HsLevel::between("330499", "3304"), Some(HsLevel::Heading));
        assert_eq!(HsLevel::between("330499", "330410"), Some(HsLevel::Heading));
        assert_eq!(HsLevel::between("330499", "330510"), Some(HsLevel::Chapter));
        assert_eq!(HsLevel::between("33", "330510"), Some(HsLevel::Chapter));
        assert_eq!(HsLevel::between("330499", "340499"), None);
    }
}
