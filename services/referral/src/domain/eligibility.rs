//! Eligibility as data: a program's `Eligibility` becomes a list of rules
//! and one engine checks any company against any program, saying in words
//! what each rule asked and what the company has.

use onestop_contracts::common::v1::{CompanySnapshot, GrowthStage as PbStage};
use onestop_contracts::referral::v1::{
    self as pb, Availability, EligibilityRule, ProgramEvaluation, RuleCheck,
};
use onestop_domain::{
    BusinessRegistrationNumber, GrowthStage, KsicCode, Money, NeedCategory, Province,
};
use onestop_platform::Violations;

/// What eligibility looks at in a company, validated.
#[derive(Debug, Clone)]
pub struct Company {
    pub stage: GrowthStage,
    pub region: Province,
    pub industry: KsicCode,
    pub employees: u32,
    /// KRW minor units (KRW has none, so won).
    pub annual_revenue_krw: i64,
    pub small_merchant: bool,
}

const MAX_ID_LEN: usize = onestop_platform::limits::MAX_LABEL;

/// Checks an id chosen by another service or the directory owner.
pub fn check_id(field: &str, text: &str, violations: &mut Violations) {
    if text.is_empty() {
        violations.add(field, "required");
    } else if text.len() > MAX_ID_LEN || !text.chars().all(|c| c.is_ascii_graphic()) {
        violations.add(
            field,
            format!("at most {MAX_ID_LEN} printable ASCII characters"),
        );
    }
}

impl Company {
    /// Validates intake's snapshot; problems go under `field`.
    pub fn parse(
        snapshot: Option<&CompanySnapshot>,
        field: &str,
        violations: &mut Violations,
    ) -> Option<Company> {
        let Some(snapshot) = snapshot else {
            violations.add(field, "required");
            return None;
        };
        let at = |name: &str| format!("{field}.{name}");
        check_id(&at("company_id"), &snapshot.company_id, violations);
        if !snapshot.business_registration_number.is_empty() {
            violations.check(
                at("business_registration_number"),
                BusinessRegistrationNumber::parse(&snapshot.business_registration_number),
            );
        }
        let stage = violations.check(at("stage"), GrowthStage::from_proto(snapshot.stage));
        let region = violations.check(at("region"), Province::parse(&snapshot.region));
        let industry = violations.check(
            at("industry_ksic"),
            KsicCode::parse(&snapshot.industry_ksic),
        );
        let revenue = match &snapshot.annual_revenue {
            Some(money) => violations
                .check(at("annual_revenue"), Money::parse(money, Some("KRW")))
                .map(|m| m.amount_minor),
            None => Some(0),
        };
        Some(Company {
            stage: stage?,
            region: region?,
            industry: industry?,
            employees: snapshot.employees,
            annual_revenue_krw: revenue?,
            small_merchant: snapshot.small_merchant,
        })
    }
}

/// One restriction a program sets.
#[derive(Debug, Clone)]
enum Rule {
    Stage(Vec<i32>),
    Region(Vec<String>),
    MaxEmployees(u32),
    MaxAnnualRevenue(i64),
    SmallMerchant,
    Industry(Vec<String>),
}

fn stage_name(value: i32) -> String {
    PbStage::try_from(value)
        .map(|s| {
            s.as_str_name()
                .trim_start_matches("GROWTH_STAGE_")
                .to_owned()
        })
        .unwrap_or_else(|_| value.to_string())
}

/// The rules a program's eligibility sets; a field left empty sets none.
fn rules(eligibility: &pb::Eligibility) -> Vec<Rule> {
    let mut rules = Vec::new();
    if !eligibility.stages.is_empty() {
        rules.push(Rule::Stage(eligibility.stages.clone()));
    }
    if !eligibility.regions.is_empty() {
        rules.push(Rule::Region(eligibility.regions.clone()));
    }
    if eligibility.max_employees > 0 {
        rules.push(Rule::MaxEmployees(eligibility.max_employees));
    }
    if let Some(max) = &eligibility.max_annual_revenue {
        rules.push(Rule::MaxAnnualRevenue(max.amount_minor));
    }
    if eligibility.small_merchants_only {
        rules.push(Rule::SmallMerchant);
    }
    if !eligibility.industries_ksic.is_empty() {
        rules.push(Rule::Industry(eligibility.industries_ksic.clone()));
    }
    rules
}

impl Rule {
    fn check(&self, company: &Company) -> RuleCheck {
        let (rule, passed, required, actual) = match self {
            Rule::Stage(stages) => (
                EligibilityRule::Stage,
                stages.contains(&(company.stage.to_proto() as i32)),
                format!(
                    "stage in [{}]",
                    stages
                        .iter()
                        .map(|s| stage_name(*s))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                company.stage.as_str().to_owned(),
            ),
            Rule::Region(regions) => (
                EligibilityRule::Region,
                regions.iter().any(|r| r == company.region.code()),
                format!("region in [{}]", regions.join(", ")),
                company.region.code().to_owned(),
            ),
            Rule::MaxEmployees(max) => (
                EligibilityRule::MaxEmployees,
                company.employees <= *max,
                format!("at most {max} employees"),
                format!("{} employees", company.employees),
            ),
            Rule::MaxAnnualRevenue(max) => (
                EligibilityRule::MaxAnnualRevenue,
                company.annual_revenue_krw <= *max,
                format!("annual revenue at most {max} KRW"),
                format!("{} KRW", company.annual_revenue_krw),
            ),
            Rule::SmallMerchant => (
                EligibilityRule::SmallMerchant,
                company.small_merchant,
                "small merchant".to_owned(),
                if company.small_merchant {
                    "small merchant".to_owned()
                } else {
                    "not a small merchant".to_owned()
                },
            ),
            Rule::Industry(codes) => (
                EligibilityRule::Industry,
                codes
                    .iter()
                    .any(|code| company.industry.as_str().starts_with(code.as_str())),
                format!("KSIC under [{}]", codes.join(", ")),
                company.industry.as_str().to_owned(),
            ),
        };
        RuleCheck {
            rule: rule as i32,
            passed,
            required,
            actual,
        }
    }
}

/// Whether routing could send to the program now: it takes referrals and
/// has an open slot, or keeps a waitlist.
pub fn can_take(program: &pb::Program) -> bool {
    let capacity = program.capacity.unwrap_or_default();
    match Availability::try_from(capacity.availability) {
        Ok(Availability::Yes) => capacity.open_slots > 0,
        Ok(Availability::Waitlist) => true,
        _ => false,
    }
}

fn has_open_slot(program: &pb::Program) -> bool {
    program
        .capacity
        .as_ref()
        .is_some_and(|capacity| capacity.open_slots > 0)
}

/// Evaluates one program for one company. The score favours programs
/// that target the company more specifically (more restrictions met),
/// then those with more room, and free ones over paid ones.
pub fn evaluate(program: &pb::Program, company: &Company) -> ProgramEvaluation {
    let eligibility = program.eligibility.clone().unwrap_or_default();
    let (passed_rules, failed_rules): (Vec<RuleCheck>, Vec<RuleCheck>) = rules(&eligibility)
        .iter()
        .map(|rule| rule.check(company))
        .partition(|check| check.passed);
    let eligible = failed_rules.is_empty();
    let score = if eligible {
        let capacity = program.capacity.unwrap_or_default();
        let room = f64::from(capacity.open_slots) / f64::from(capacity.total_slots.max(1));
        let paid = program
            .monthly_fee
            .as_ref()
            .is_some_and(|fee| fee.amount_minor > 0);
        1.0 + passed_rules.len() as f64 + room - if paid { 0.5 } else { 0.0 }
    } else {
        0.0
    };
    ProgramEvaluation {
        program: Some(program.clone()),
        eligible,
        passed_rules,
        failed_rules,
        can_take: can_take(program),
        score,
        rank: 0,
    }
}

/// A preferred program that does not serve the need's category: passed
/// over, with that rule failed (its other rules are beside the point).
pub fn not_serving(program: &pb::Program, category: NeedCategory) -> ProgramEvaluation {
    let served: Vec<&str> = program
        .categories
        .iter()
        .filter_map(|c| NeedCategory::from_proto(*c).ok())
        .map(NeedCategory::as_str)
        .collect();
    ProgramEvaluation {
        program: Some(program.clone()),
        eligible: false,
        passed_rules: Vec::new(),
        failed_rules: vec![RuleCheck {
            rule: EligibilityRule::Category as i32,
            passed: false,
            required: format!("category in [{}]", served.join(", ")),
            actual: category.as_str().to_owned(),
        }],
        can_take: can_take(program),
        score: 0.0,
        rank: 0,
    }
}

/// Every program evaluated: the eligible ones best first with their rank,
/// then the ineligible ones.
pub fn recommend(
    programs: &[pb::Program],
    company: &Company,
) -> (Vec<ProgramEvaluation>, Vec<ProgramEvaluation>) {
    let (mut eligible, ineligible): (Vec<_>, Vec<_>) = programs
        .iter()
        .map(|program| evaluate(program, company))
        .partition(|evaluation| evaluation.eligible);
    eligible.sort_by(|a, b| {
        b.score
            .total_cmp(&a.score)
            .then_with(|| program_id(a).cmp(program_id(b)))
    });
    for (i, evaluation) in eligible.iter_mut().enumerate() {
        evaluation.rank = i as u32 + 1;
    }
    (eligible, ineligible)
}

pub fn program_id(evaluation: &ProgramEvaluation) -> &str {
    evaluation
        .program
        .as_ref()
        .map(|p| p.program_id.as_str())
        .unwrap_or_default()
}

/// Routing order among eligible programs not yet tried: the preferred
/// program first when it can take the referral, then programs with an open
/// slot best first, then waitlisting programs best first. Full programs
/// without a waitlist and programs taking no referrals are left out.
pub fn routing_order(
    eligible: &[ProgramEvaluation],
    tried: &[String],
    preferred: &str,
) -> Vec<ProgramEvaluation> {
    let untried = |e: &&ProgramEvaluation| e.can_take && !tried.iter().any(|t| t == program_id(e));
    let open = |e: &&ProgramEvaluation| e.program.as_ref().is_some_and(has_open_slot);
    let mut order: Vec<ProgramEvaluation> = Vec::new();
    order.extend(
        eligible
            .iter()
            .filter(untried)
            .filter(|e| !preferred.is_empty() && program_id(e) == preferred)
            .cloned(),
    );
    let rest = eligible
        .iter()
        .filter(untried)
        .filter(|e| preferred.is_empty() || program_id(e) != preferred);
    let (with_slot, waitlist): (Vec<_>, Vec<_>) = rest.partition(open);
    order.extend(with_slot.into_iter().cloned());
    order.extend(waitlist.into_iter().cloned());
    order
}

/// Whether a program serves a category.
pub fn serves(program: &pb::Program, category: NeedCategory) -> bool {
    program.categories.contains(&(category.to_proto() as i32))
}
