//! Export-readiness diagnosis: a 0-100 score from what the company already
//! has in place, the growth-ladder stage from its exports, and a short
//! rationale naming strengths, gaps and the support that fits the stage.

use onestop_contracts::intake::v1 as pb;
use onestop_domain::{GrowthStage, LanguageCode, Money};
use onestop_platform::Violations;
use onestop_platform::limits::{self, MAX_CERTIFICATION_NAME, MAX_CERTIFICATIONS};
use onestop_platform::pagination::Page;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// Validated answers to the diagnosis questionnaire.
#[derive(Debug, Clone)]
pub struct Answers {
    pub foreign_language_catalog: bool,
    pub foreign_language_website: bool,
    pub certifications: Vec<String>,
    pub dedicated_trade_staff: bool,
    pub trade_show_experience: bool,
    pub export_plan: bool,
    /// USD, last twelve months.
    pub export_revenue: Money,
}

impl Answers {
    pub fn parse(
        answers: Option<&pb::ReadinessAnswers>,
        violations: &mut Violations,
    ) -> Option<Self> {
        let Some(answers) = answers else {
            violations.add("answers", "required");
            return None;
        };
        let export_revenue = match &answers.export_revenue {
            None => {
                violations.add(
                    "answers.export_revenue",
                    "required: exports over the last twelve months in USD decide the growth stage",
                );
                None
            }
            Some(money) => {
                violations.check("answers.export_revenue", Money::parse(money, Some("USD")))
            }
        };
        let mut certifications = Vec::new();
        let held = limits::bounded(
            "answers.certifications",
            &answers.certifications,
            MAX_CERTIFICATIONS,
            violations,
        );
        for (i, name) in held.iter().enumerate() {
            let name = name.trim();
            if name.is_empty()
                || name.chars().count() > MAX_CERTIFICATION_NAME
                || name.chars().any(char::is_control)
            {
                violations.add(
                    format!("answers.certifications[{i}]"),
                    format!("a certification name of 1 to {MAX_CERTIFICATION_NAME} characters"),
                );
            } else {
                certifications.push(name.to_owned());
            }
        }
        Some(Self {
            foreign_language_catalog: answers.foreign_language_catalog,
            foreign_language_website: answers.foreign_language_website,
            certifications,
            dedicated_trade_staff: answers.dedicated_trade_staff,
            trade_show_experience: answers.trade_show_experience,
            export_plan: answers.export_plan,
            export_revenue: export_revenue?,
        })
    }

    /// The answers as kept with the assessment: their canonical form
    /// (trimmed certifications).
    pub fn to_proto(&self) -> pb::ReadinessAnswers {
        pb::ReadinessAnswers {
            foreign_language_catalog: self.foreign_language_catalog,
            foreign_language_website: self.foreign_language_website,
            certifications: self.certifications.clone(),
            dedicated_trade_staff: self.dedicated_trade_staff,
            trade_show_experience: self.trade_show_experience,
            export_plan: self.export_plan,
            export_revenue: Some(self.export_revenue.to_proto()),
        }
    }
}

/// DiagnoseReadiness, validated.
#[derive(Debug)]
pub struct Diagnose {
    pub company_id: Uuid,
    pub answers: Answers,
}

impl TryFrom<&pb::DiagnoseReadinessRequest> for Diagnose {
    type Error = Violations;
    fn try_from(request: &pb::DiagnoseReadinessRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let company_id = violations.id("company_id", &request.company_id);
        let answers = Answers::parse(request.answers.as_ref(), &mut violations);
        violations.finish_with(|| {
            Some(Diagnose {
                company_id: company_id?,
                answers: answers?,
            })
        })
    }
}

/// A page of a company's assessments, newest first.
#[derive(Debug)]
pub struct AssessmentQuery {
    pub company_id: Uuid,
    /// The key is the assessment's version.
    pub page: Page<i32>,
}

impl TryFrom<&pb::ListAssessmentsRequest> for AssessmentQuery {
    type Error = Violations;
    fn try_from(request: &pb::ListAssessmentsRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let company_id = violations.id("company_id", &request.company_id);
        let page = Page::parse(request.page_size, &request.page_token, &mut violations);
        violations.finish_with(|| {
            Some(AssessmentQuery {
                company_id: company_id?,
                page,
            })
        })
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScoreItem {
    pub criterion: String,
    pub points: u32,
    pub max_points: u32,
}

#[derive(Debug, Clone)]
pub struct Diagnosis {
    pub score: u32,
    pub stage: GrowthStage,
    pub breakdown: Vec<ScoreItem>,
    pub rationale: String,
}

/// Scores `answers`; `languages` are the company's in-house languages.
pub fn diagnose(answers: &Answers, languages: &[LanguageCode]) -> Diagnosis {
    let foreign_language = languages.iter().any(|l| l.as_str() != "ko");
    let exported = answers.export_revenue.amount_minor > 0;
    let criteria: [(&str, bool, u32); 8] = [
        (
            "foreign-language catalog",
            answers.foreign_language_catalog,
            15,
        ),
        (
            "foreign-language website or online listing",
            answers.foreign_language_website,
            15,
        ),
        (
            "certifications for target markets",
            !answers.certifications.is_empty(),
            15,
        ),
        ("dedicated trade staff", answers.dedicated_trade_staff, 15),
        ("trade-show experience", answers.trade_show_experience, 10),
        ("written export plan", answers.export_plan, 10),
        ("foreign language spoken in-house", foreign_language, 10),
        ("export track record", exported, 10),
    ];
    let breakdown: Vec<ScoreItem> = criteria
        .iter()
        .map(|(criterion, met, max)| ScoreItem {
            criterion: (*criterion).to_owned(),
            points: if *met { *max } else { 0 },
            max_points: *max,
        })
        .collect();
    let score = breakdown.iter().map(|item| item.points).sum();
    let stage = GrowthStage::from_annual_exports_usd_cents(answers.export_revenue.amount_minor);

    let strengths: Vec<&str> = criteria.iter().filter(|c| c.1).map(|c| c.0).collect();
    let gaps: Vec<&str> = criteria.iter().filter(|c| !c.1).map(|c| c.0).collect();
    let cents = answers.export_revenue.amount_minor;
    let mut rationale = format!(
        "{} on the growth ladder with USD {}.{:02} of exports over the last twelve months; readiness {score}/100.",
        stage.as_str(),
        group_thousands(cents / 100),
        cents % 100
    );
    if !strengths.is_empty() {
        rationale.push_str(&format!(" In place: {}.", strengths.join(", ")));
    }
    if !gaps.is_empty() {
        rationale.push_str(&format!(" Missing: {}.", gaps.join(", ")));
    }
    rationale.push_str(" Fits now: ");
    rationale.push_str(support_for(stage, score));
    Diagnosis {
        score,
        stage,
        breakdown,
        rationale,
    }
}

/// The support that fits a stage; a low score at any stage means the
/// basics (catalog, website, staff) come first.
fn support_for(stage: GrowthStage, score: u32) -> &'static str {
    match (stage, score) {
        (GrowthStage::Domestic, s) if s < 40 => {
            "export first-step training, a foreign-language catalog and an export advisor."
        }
        (GrowthStage::Domestic, _) => {
            "an export advisor, an online export listing and a first buyer search."
        }
        (GrowthStage::FirstExport, _) => {
            "the same export advisor for the next three years, buyer discovery in the first markets and export finance."
        }
        (GrowthStage::Promising, _) => {
            "market diversification, trade shows with follow-up, and certification for new markets."
        }
        (GrowthStage::Strong, _) => {
            "distributorships and exclusive supply deals, overseas branch-office services and IP protection."
        }
    }
}

fn group_thousands(value: i64) -> String {
    let digits = value.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use onestop_domain::CurrencyCode;

    fn answers(all: bool, cents: i64) -> Answers {
        Answers {
            foreign_language_catalog: all,
            foreign_language_website: all,
            certifications: if all { vec!["CE".into()] } else { vec![] },
            dedicated_trade_staff: all,
            trade_show_experience: all,
            export_plan: all,
            export_revenue: Money {
                currency: CurrencyCode::parse("USD").unwrap(),
                amount_minor: cents,
            },
        }
    }

    #[test]
    fn score_spans_zero_to_one_hundred() {
        let en = vec![LanguageCode::parse("en").unwrap()];
        let full = diagnose(&answers(true, 1), &en);
        assert_eq!(full.score, 100);
        assert_eq!(
            full.breakdown.iter().map(|i| i.max_points).sum::<u32>(),
            100
        );
        let none = diagnose(&answers(false, 0), &[LanguageCode::parse("ko").unwrap()]);
        assert_eq!(none.score, 0);
        assert_eq!(none.stage, GrowthStage::Domestic);
        assert!(
            none.rationale.contains("first-step training"),
            "{}",
            none.rationale
        );
    }

    #[test]
    fn rationale_names_the_exports() {
        let diagnosis = diagnose(&answers(true, 123_456_789), &[]);
        assert!(
            diagnosis.rationale.contains("USD 1,234,567.89"),
            "{}",
            diagnosis.rationale
        );
        assert_eq!(diagnosis.stage, GrowthStage::Promising);
    }
}
