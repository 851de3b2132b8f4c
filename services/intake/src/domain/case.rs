//! Which needs a case gets, and who owns each.

use onestop_contracts::intake::v1 as pb;
use onestop_domain::{CountryCode, GrowthStage, HsInterest, NeedCategory, NeedOwner};
use onestop_platform::Violations;

const MAX_NEEDS: usize = 20;
const MAX_DETAIL: usize = 2000;

#[derive(Debug, Clone)]
pub struct NeedSpec {
    pub category: NeedCategory,
    pub detail: String,
    pub target_markets: Vec<CountryCode>,
    pub hs_codes: Vec<HsInterest>,
}

/// A need as the case will hold it.
#[derive(Debug, Clone)]
pub struct PlannedNeed {
    pub spec: NeedSpec,
    pub owner: NeedOwner,
    pub added_by_rule: bool,
}

pub fn parse_needs(needs: &[pb::NeedRequest], violations: &mut Violations) -> Vec<NeedSpec> {
    if needs.is_empty() {
        violations.add("needs", "at least one need");
    } else if needs.len() > MAX_NEEDS {
        violations.add("needs", format!("at most {MAX_NEEDS} needs in one case"));
    }
    let mut specs = Vec::new();
    for (i, need) in needs.iter().enumerate() {
        let field = |name: &str| format!("needs[{i}].{name}");
        let category = violations.check(field("category"), NeedCategory::from_proto(need.category));
        let detail = need.detail.trim();
        if detail.chars().count() > MAX_DETAIL {
            violations.add(field("detail"), format!("at most {MAX_DETAIL} characters"));
        }
        let mut target_markets = Vec::new();
        for (j, code) in need.target_markets.iter().enumerate() {
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
        for (j, code) in need.hs_codes.iter().enumerate() {
            if let Some(code) = violations.check(
                format!("{}[{j}]", field("hs_codes")),
                HsInterest::parse(code),
            ) {
                hs_codes.push(code);
            }
        }
        hs_codes.sort();
        hs_codes.dedup();
        if let Some(category) = category {
            specs.push(NeedSpec {
                category,
                detail: detail.to_owned(),
                target_markets,
                hs_codes,
            });
        }
    }
    specs
}

/// Routes each requested need to its owner, and adds a MENTORING need for a
/// company that is early on the ladder (DOMESTIC, FIRST_EXPORT) or a small
/// merchant, unless the case asks for one or the company already has an
/// open mentoring need: such companies need one long-term advisor more than
/// anything else, and one is enough.
pub fn plan(
    requested: Vec<NeedSpec>,
    stage: GrowthStage,
    small_merchant: bool,
    has_open_mentoring_need: bool,
) -> Vec<PlannedNeed> {
    let asked_for_mentoring = requested
        .iter()
        .any(|n| n.category == NeedCategory::Mentoring);
    let early = matches!(stage, GrowthStage::Domestic | GrowthStage::FirstExport);
    let mut markets: Vec<CountryCode> = requested
        .iter()
        .flat_map(|n| n.target_markets.clone())
        .collect();
    markets.sort();
    markets.dedup();
    let mut planned: Vec<PlannedNeed> = requested
        .into_iter()
        .map(|spec| PlannedNeed {
            owner: spec.category.owner(),
            spec,
            added_by_rule: false,
        })
        .collect();
    if (early || small_merchant) && !asked_for_mentoring && !has_open_mentoring_need {
        let reason = if small_merchant {
            "small merchant"
        } else {
            stage.as_str()
        };
        planned.push(PlannedNeed {
            spec: NeedSpec {
                category: NeedCategory::Mentoring,
                detail: format!(
                    "Long-term export advisor (at least three years), added because the company is {reason}"
                ),
                target_markets: markets,
                hs_codes: Vec::new(),
            },
            owner: NeedOwner::Mentoring,
            added_by_rule: true,
        });
    }
    planned
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
        }
    }

    #[test]
    fn early_companies_and_small_merchants_get_an_advisor() {
        let finance = || vec![need(NeedCategory::ExportFinance)];
        for stage in [GrowthStage::Domestic, GrowthStage::FirstExport] {
            let planned = plan(finance(), stage, false, false);
            assert_eq!(planned.len(), 2);
            assert!(planned[1].added_by_rule);
            assert_eq!(planned[1].owner, NeedOwner::Mentoring);
            assert_eq!(
                planned[1].spec.target_markets,
                vec![CountryCode::parse("VN").unwrap()]
            );
        }
        assert_eq!(plan(finance(), GrowthStage::Strong, true, false).len(), 2);
        assert_eq!(
            plan(finance(), GrowthStage::Promising, false, false).len(),
            1
        );
        assert_eq!(plan(finance(), GrowthStage::Domestic, false, true).len(), 1);
        let asked = plan(
            vec![need(NeedCategory::Mentoring)],
            GrowthStage::Domestic,
            true,
            false,
        );
        assert_eq!(asked.len(), 1);
        assert!(!asked[0].added_by_rule);
    }
}
