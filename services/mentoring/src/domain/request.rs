//! Intake's hand-off of a mentoring need, validated.

use onestop_contracts::mentoring::v1 as pb;
use onestop_domain::{
    CountryCode, GrowthStage, HsCode, HsInterest, KsicCode, LanguageCode, NeedCategory, Province,
};
use onestop_platform::Violations;
use uuid::Uuid;

use crate::domain::matching::CompanyFeatures;

const MAX_DETAIL: usize = 2000;

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

fn uuid(field: &str, text: &str, violations: &mut Violations) -> Option<Uuid> {
    let parsed = Uuid::parse_str(text).ok();
    if parsed.is_none() {
        violations.add(field, "a UUID");
    }
    parsed
}

fn push_unique(list: &mut Vec<String>, value: &str) {
    if !list.iter().any(|v| v == value) {
        list.push(value.to_owned());
    }
}

impl AdvisorRequest {
    pub fn parse(request: &pb::RequestAdvisorRequest, violations: &mut Violations) -> Option<Self> {
        let need_id = uuid("need_id", &request.need_id, violations);
        let case_id = uuid("case_id", &request.case_id, violations);
        let category = violations.check("category", NeedCategory::from_proto(request.category));
        let Some(company) = &request.company else {
            violations.add("company", "required");
            return None;
        };
        let company_id = uuid("company.company_id", &company.company_id, violations);
        let region = violations.check("company.region", Province::parse(&company.region));
        let industry = violations.check(
            "company.industry_ksic",
            KsicCode::parse(&company.industry_ksic),
        );
        let stage = violations.check("company.stage", GrowthStage::from_proto(company.stage));
        let mut hs_chapters = Vec::new();
        for (i, code) in company.hs_codes.iter().enumerate() {
            if let Some(code) =
                violations.check(format!("company.hs_codes[{i}]"), HsCode::parse(code))
            {
                push_unique(&mut hs_chapters, &code.as_str()[..2]);
            }
        }
        for (i, code) in request.hs_codes.iter().enumerate() {
            if let Some(code) = violations.check(format!("hs_codes[{i}]"), HsInterest::parse(code))
            {
                push_unique(&mut hs_chapters, &code.as_str()[..2]);
            }
        }
        let mut target_markets = Vec::new();
        for (i, code) in request.target_markets.iter().enumerate() {
            if let Some(code) =
                violations.check(format!("target_markets[{i}]"), CountryCode::parse(code))
            {
                push_unique(&mut target_markets, code.as_str());
            }
        }
        let mut languages_needed = Vec::new();
        for (i, code) in request.languages_needed.iter().enumerate() {
            if let Some(code) =
                violations.check(format!("languages_needed[{i}]"), LanguageCode::parse(code))
            {
                push_unique(&mut languages_needed, code.as_str());
            }
        }
        if request.detail.chars().count() > MAX_DETAIL {
            violations.add("detail", format!("at most {MAX_DETAIL} characters"));
        }
        Some(Self {
            need_id: need_id?,
            case_id: case_id?,
            category: category?,
            company_id: company_id?,
            stage: stage?,
            small_merchant: company.small_merchant,
            features: CompanyFeatures {
                region: region?.code().to_owned(),
                industry_ksic: industry?.as_str().to_owned(),
                hs_chapters,
                target_markets,
                languages_needed,
            },
            detail: request.detail.clone(),
        })
    }
}
