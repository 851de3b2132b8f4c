//! Explained matching: every advisor with free capacity gets a weighted
//! score over industry, market, language, province and load, and the
//! breakdown travels with the assignment so anyone can see why this advisor.

use onestop_contracts::mentoring::v1::{AdvisorScore, FactorScore};
use uuid::Uuid;

/// How much each factor counts. Industry and market knowledge matter most
/// for a first-time exporter; load spreads companies over the pool.
#[derive(Debug, Clone, Copy)]
pub struct Weights {
    pub industry: f64,
    pub market: f64,
    pub language: f64,
    pub region: f64,
    pub load: f64,
}

impl Default for Weights {
    fn default() -> Self {
        Self {
            industry: 0.30,
            market: 0.25,
            language: 0.20,
            region: 0.15,
            load: 0.10,
        }
    }
}

/// What a company needs from its advisor.
#[derive(Debug, Clone)]
pub struct CompanyFeatures {
    pub region: String,
    pub industry_ksic: String,
    pub hs_chapters: Vec<String>,
    pub target_markets: Vec<String>,
    pub languages_needed: Vec<String>,
}

/// An advisor as matching sees it.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub advisor_id: Uuid,
    pub industries_ksic: Vec<String>,
    pub hs_chapters: Vec<String>,
    pub markets: Vec<String>,
    pub languages: Vec<String>,
    pub region: String,
    pub remote: bool,
    pub capacity: i32,
    pub active_companies: i32,
}

fn factor(weight: f64, fit: f64, matched: Vec<String>, detail: String) -> FactorScore {
    let fit = fit.clamp(0.0, 1.0);
    FactorScore {
        weight,
        fit,
        points: round(weight * fit),
        matched,
        detail,
    }
}

/// Scores are compared and shown; four decimals keep them readable and
/// stable across encodings.
fn round(value: f64) -> f64 {
    (value * 10_000.0).round() / 10_000.0
}

/// Share of `wanted` the advisor covers, and which ones.
fn coverage(wanted: &[String], offered: &[String]) -> (f64, Vec<String>) {
    if wanted.is_empty() {
        return (0.0, Vec::new());
    }
    let matched: Vec<String> = wanted
        .iter()
        .filter(|w| offered.contains(w))
        .cloned()
        .collect();
    (matched.len() as f64 / wanted.len() as f64, matched)
}

fn industry(weights: &Weights, company: &CompanyFeatures, advisor: &Candidate) -> FactorScore {
    // A shorter KSIC code covers every code under it.
    let ksic = advisor
        .industries_ksic
        .iter()
        .find(|code| company.industry_ksic.starts_with(code.as_str()));
    let (hs_fit, hs_matched) = coverage(&company.hs_chapters, &advisor.hs_chapters);
    let mut matched: Vec<String> = ksic.iter().map(|code| format!("KSIC {code}")).collect();
    matched.extend(hs_matched.iter().map(|chapter| format!("HS {chapter}")));
    let ksic_fit = if ksic.is_some() { 1.0 } else { 0.0 };
    let fit = if company.hs_chapters.is_empty() {
        ksic_fit
    } else {
        (ksic_fit + hs_fit) / 2.0
    };
    let detail = format!(
        "KSIC {}: {}; HS chapters {} of {}",
        company.industry_ksic,
        if ksic.is_some() { "known" } else { "not known" },
        hs_matched.len(),
        company.hs_chapters.len()
    );
    factor(weights.industry, fit, matched, detail)
}

/// A factor scored as the share of what the company wants that the advisor
/// offers; `what` names it in the detail ("target markets").
fn coverage_factor(weight: f64, wanted: &[String], offered: &[String], what: &str) -> FactorScore {
    let (fit, matched) = coverage(wanted, offered);
    let detail = if wanted.is_empty() {
        format!("no {what} stated")
    } else {
        format!("covers {} of {} {what}", matched.len(), wanted.len())
    };
    factor(weight, fit, matched, detail)
}

fn market(weights: &Weights, company: &CompanyFeatures, advisor: &Candidate) -> FactorScore {
    coverage_factor(
        weights.market,
        &company.target_markets,
        &advisor.markets,
        "target markets",
    )
}

fn language(weights: &Weights, company: &CompanyFeatures, advisor: &Candidate) -> FactorScore {
    coverage_factor(
        weights.language,
        &company.languages_needed,
        &advisor.languages,
        "languages needed",
    )
}

fn region(weights: &Weights, company: &CompanyFeatures, advisor: &Candidate) -> FactorScore {
    if advisor.region == company.region {
        factor(
            weights.region,
            1.0,
            vec![advisor.region.clone()],
            "same province: visits possible".into(),
        )
    } else if advisor.remote {
        factor(
            weights.region,
            0.5,
            Vec::new(),
            format!("works remotely from {}", advisor.region),
        )
    } else {
        factor(
            weights.region,
            0.0,
            Vec::new(),
            format!("based in {}, not remote", advisor.region),
        )
    }
}

fn load(weights: &Weights, advisor: &Candidate) -> FactorScore {
    let capacity = advisor.capacity.max(1);
    let used = advisor.active_companies.clamp(0, capacity);
    factor(
        weights.load,
        1.0 - f64::from(used) / f64::from(capacity),
        Vec::new(),
        format!("{used} of {capacity} slots in use"),
    )
}

pub fn score(weights: &Weights, company: &CompanyFeatures, advisor: &Candidate) -> AdvisorScore {
    let industry = industry(weights, company, advisor);
    let market = market(weights, company, advisor);
    let language = language(weights, company, advisor);
    let region = region(weights, company, advisor);
    let load = load(weights, advisor);
    let total =
        round(industry.points + market.points + language.points + region.points + load.points);
    AdvisorScore {
        total,
        industry: Some(industry),
        market: Some(market),
        language: Some(language),
        region: Some(region),
        load: Some(load),
        candidates_considered: 0,
    }
}

/// Candidates best first. Ties go to the advisor registered first (ids are
/// time-ordered), so the outcome never depends on row order.
pub fn rank(
    weights: &Weights,
    company: &CompanyFeatures,
    candidates: &[Candidate],
) -> Vec<(Uuid, AdvisorScore)> {
    let considered = candidates.len() as u32;
    let mut ranked: Vec<(Uuid, AdvisorScore)> = candidates
        .iter()
        .map(|candidate| {
            let mut score = score(weights, company, candidate);
            score.candidates_considered = considered;
            (candidate.advisor_id, score)
        })
        .collect();
    ranked.sort_by(|(a_id, a), (b_id, b)| b.total.total_cmp(&a.total).then_with(|| a_id.cmp(b_id)));
    ranked
}

#[cfg(test)]
mod tests {
    use super::*;

    fn company() -> CompanyFeatures {
        CompanyFeatures {
            region: "KR-26".into(),
            industry_ksic: "20423".into(),
            hs_chapters: vec!["33".into()],
            target_markets: vec!["US".into(), "VN".into()],
            languages_needed: vec!["en".into(), "vi".into()],
        }
    }

    fn advisor() -> Candidate {
        Candidate {
            advisor_id: Uuid::now_v7(),
            industries_ksic: vec!["204".into()],
            hs_chapters: vec!["33".into()],
            markets: vec!["US".into()],
            languages: vec!["en".into()],
            region: "KR-26".into(),
            remote: false,
            capacity: 4,
            active_companies: 1,
        }
    }

    #[test]
    fn the_points_add_up_to_the_total_and_explain_each_factor() {
        let score = score(&Weights::default(), &company(), &advisor());
        let industry = score.industry.unwrap();
        assert_eq!(industry.fit, 1.0);
        assert_eq!(industry.matched, vec!["KSIC 204", "HS 33"]);
        assert_eq!(score.market.as_ref().unwrap().fit, 0.5);
        assert_eq!(score.load.as_ref().unwrap().detail, "1 of 4 slots in use");
        // 0.30 + 0.125 + 0.10 + 0.15 + 0.075
        assert!((score.total - 0.75).abs() < 1e-9, "{}", score.total);
    }

    #[test]
    fn remote_advisors_score_half_on_region() {
        let mut far = advisor();
        far.region = "KR-11".into();
        far.remote = true;
        let score = score(&Weights::default(), &company(), &far);
        assert_eq!(score.region.unwrap().fit, 0.5);
    }
}
