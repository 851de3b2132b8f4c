//! Intake's hand-off of a mentoring need, and how a caller names an
//! assignment, validated.

use onestop_contracts::common::v1::CompanySnapshot;
use onestop_contracts::mentoring::v1 as pb;
use onestop_domain::{
    CountryCode, GrowthStage, HsCode, HsInterest, KsicCode, LanguageCode, NeedCategory, Province,
};
use onestop_platform::{Violations, limits};
use uuid::Uuid;

use crate::domain::matching::CompanyFeatures;

const MAX_DETAIL: usize = limits::MAX_NOTE;

#[derive(Debug, Clone)]
pub struct AdvisorRequest {
    pub need_id: Uuid,
    pub case_id: Uuid,
    pub category: NeedCategory,
    pub company_id: Uuid,
    pub stage: GrowthStage,
    pub small_merchant: bool,
    pub features: CompanyFeatures,
    pub detail: String,
}

/// An id intake issued.
fn intake_id(field: &str, text: &str, violations: &mut Violations) -> Option<Uuid> {
    let parsed = Uuid::parse_str(text).ok();
    if parsed.is_none() {
        violations.add(field, "a UUID");
    }
    parsed
}

/// What mentoring keeps of the company snapshot.
struct Company {
    id: Uuid,
    stage: GrowthStage,
    region: String,
    industry_ksic: String,
    small_merchant: bool,
}

fn parse_company(
    company: &CompanySnapshot,
    field: &str,
    violations: &mut Violations,
) -> Option<Company> {
    let at = |name: &str| format!("{field}.{name}");
    let id = intake_id(&at("company_id"), &company.company_id, violations);
    let region = violations.check(at("region"), Province::parse(&company.region));
    let industry = violations.check(at("industry_ksic"), KsicCode::parse(&company.industry_ksic));
    let stage = violations.check(at("stage"), GrowthStage::from_proto(company.stage));
    Some(Company {
        id: id?,
        stage: stage?,
        region: region?.code().to_owned(),
        industry_ksic: industry?.as_str().to_owned(),
        small_merchant: company.small_merchant,
    })
}

impl TryFrom<&pb::RequestAdvisorRequest> for AdvisorRequest {
    type Error = Violations;
    fn try_from(request: &pb::RequestAdvisorRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let need_id = intake_id("need_id", &request.need_id, &mut violations);
        let case_id = intake_id("case_id", &request.case_id, &mut violations);
        let category = violations.check("category", NeedCategory::from_proto(request.category));
        let company = violations.required("company", request.company.as_ref(), parse_company);
        let mut hs_chapters = Vec::new();
        let company_codes = match &request.company {
            Some(company) => limits::bounded(
                "company.hs_codes",
                &company.hs_codes,
                limits::MAX_CODES,
                &mut violations,
            ),
            None => &[],
        };
        for (i, code) in company_codes.iter().enumerate() {
            if let Some(code) =
                violations.check(format!("company.hs_codes[{i}]"), HsCode::parse(code))
            {
                hs_chapters.push(code.as_str()[..2].to_owned());
            }
        }
        for (i, code) in limits::bounded(
            "hs_codes",
            &request.hs_codes,
            limits::MAX_CODES,
            &mut violations,
        )
        .iter()
        .enumerate()
        {
            if let Some(code) = violations.check(format!("hs_codes[{i}]"), HsInterest::parse(code))
            {
                hs_chapters.push(code.as_str()[..2].to_owned());
            }
        }
        let mut target_markets = Vec::new();
        for (i, code) in limits::bounded(
            "target_markets",
            &request.target_markets,
            limits::MAX_CODES,
            &mut violations,
        )
        .iter()
        .enumerate()
        {
            if let Some(code) =
                violations.check(format!("target_markets[{i}]"), CountryCode::parse(code))
            {
                target_markets.push(code.as_str().to_owned());
            }
        }
        let mut languages_needed = Vec::new();
        for (i, code) in limits::bounded(
            "languages_needed",
            &request.languages_needed,
            limits::MAX_CODES,
            &mut violations,
        )
        .iter()
        .enumerate()
        {
            if let Some(code) =
                violations.check(format!("languages_needed[{i}]"), LanguageCode::parse(code))
            {
                languages_needed.push(code.as_str().to_owned());
            }
        }
        limits::dedupe(&mut hs_chapters);
        limits::dedupe(&mut target_markets);
        limits::dedupe(&mut languages_needed);
        limits::check_text("detail", &request.detail, MAX_DETAIL, &mut violations);
        violations.finish_with(|| {
            let company = company?;
            Some(AdvisorRequest {
                need_id: need_id?,
                case_id: case_id?,
                category: category?,
                company_id: company.id,
                stage: company.stage,
                small_merchant: company.small_merchant,
                features: CompanyFeatures {
                    region: company.region,
                    industry_ksic: company.industry_ksic,
                    hs_chapters,
                    target_markets,
                    languages_needed,
                },
                detail: request.detail.clone(),
            })
        })
    }
}

/// Which assignment a caller asks for.
#[derive(Debug, Clone, Copy)]
pub enum AssignmentLookup {
    Assignment(Uuid),
    /// The company's ACTIVE assignment.
    ActiveOfCompany(Uuid),
}

impl TryFrom<&pb::GetAssignmentRequest> for AssignmentLookup {
    type Error = Violations;
    fn try_from(request: &pb::GetAssignmentRequest) -> Result<Self, Violations> {
        use pb::get_assignment_request::Lookup;
        let mut violations = Violations::default();
        let lookup = match &request.lookup {
            Some(Lookup::AssignmentId(id)) => violations
                .id("assignment_id", id)
                .map(AssignmentLookup::Assignment),
            Some(Lookup::CompanyId(id)) => violations
                .id("company_id", id)
                .map(AssignmentLookup::ActiveOfCompany),
            None => {
                violations.add("lookup", "assignment_id or company_id is required");
                None
            }
        };
        violations.finish_with(|| lookup)
    }
}
