//! Sample test marketing: the test to start, the feedback one buyer
//! gives, and what the feedback adds up to.

use std::collections::BTreeMap;

use onestop_contracts::buyers::v1 as pb;
use onestop_domain::HsCode;
use onestop_platform::{Violations, limits};
use uuid::Uuid;

use super::{optional_text, parse_list, required_text};

use onestop_platform::limits::{MAX_NAME as MAX_TEXT, MAX_NOTE as MAX_COMMENT};

/// A sample test to start, validated; whether its buyers are matchable is
/// checked against the registry.
#[derive(Debug)]
pub struct NewSampleTest {
    pub company_id: String,
    pub product_name: String,
    pub hs_code: HsCode,
    /// No repeats, in request order.
    pub buyer_ids: Vec<Uuid>,
    pub need_id: String,
    pub case_id: String,
}

impl TryFrom<&pb::StartSampleTestRequest> for NewSampleTest {
    type Error = Violations;
    fn try_from(request: &pb::StartSampleTestRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let company_id =
            required_text("company_id", &request.company_id, MAX_TEXT, &mut violations);
        let product_name = required_text(
            "product_name",
            &request.product_name,
            MAX_TEXT,
            &mut violations,
        );
        let hs_code = violations.check("hs_code", HsCode::parse(&request.hs_code));
        let need_id = optional_text("need_id", &request.need_id, MAX_TEXT, &mut violations);
        let case_id = optional_text("case_id", &request.case_id, MAX_TEXT, &mut violations);
        if request.buyer_ids.is_empty() {
            violations.add("buyer_ids", "at least one buyer");
        }
        let mut buyer_ids = Vec::new();
        let listed = limits::bounded(
            "buyer_ids",
            &request.buyer_ids,
            limits::MAX_IDS,
            &mut violations,
        );
        for (i, text) in listed.iter().enumerate() {
            let field = format!("buyer_ids[{i}]");
            if let Some(id) = violations.id(&field, text) {
                if buyer_ids.contains(&id) {
                    violations.add(field, "listed twice");
                } else {
                    buyer_ids.push(id);
                }
            }
        }
        violations.finish_with(|| {
            Some(NewSampleTest {
                company_id,
                product_name,
                hs_code: hs_code?,
                buyer_ids,
                need_id,
                case_id,
            })
        })
    }
}

/// One buyer's feedback on a sample, validated.
#[derive(Debug)]
pub struct Feedback {
    pub sample_test_id: Uuid,
    pub buyer_id: Uuid,
    /// Each 1 to 5.
    pub ratings: pb::SampleRatings,
    /// Upper case, no repeats.
    pub certification_gaps: Vec<String>,
    pub would_order: bool,
    pub comment: String,
}

impl TryFrom<&pb::RecordSampleFeedbackRequest> for Feedback {
    type Error = Violations;
    fn try_from(request: &pb::RecordSampleFeedbackRequest) -> Result<Self, Violations> {
        let mut violations = Violations::default();
        let sample_test_id = violations.id("sample_test_id", &request.sample_test_id);
        let buyer_id = violations.id("buyer_id", &request.buyer_id);
        let ratings = match request.ratings {
            None => {
                violations.add("ratings", "required");
                None
            }
            Some(ratings) => {
                for (field, value) in [
                    ("ratings.price", ratings.price),
                    ("ratings.quality", ratings.quality),
                    ("ratings.packaging", ratings.packaging),
                    ("ratings.labelling", ratings.labelling),
                ] {
                    if !(1..=5).contains(&value) {
                        violations.add(field, "1 to 5");
                    }
                }
                Some(ratings)
            }
        };
        let certification_gaps = parse_list(
            "certification_gaps",
            &request.certification_gaps,
            certification,
            &mut violations,
        );
        let comment = optional_text("comment", &request.comment, MAX_COMMENT, &mut violations);
        violations.finish_with(|| {
            Some(Feedback {
                sample_test_id: sample_test_id?,
                buyer_id: buyer_id?,
                ratings: ratings?,
                certification_gaps,
                would_order: request.would_order,
                comment,
            })
        })
    }
}

/// Parses a certification name: upper-case letters, digits, spaces, '-'.
fn certification(text: &str) -> Result<String, &'static str> {
    let name = text.trim().to_uppercase();
    if name.is_empty()
        || name.len() > 40
        || !name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == ' ' || c == '-')
    {
        return Err("a certification name such as FDA or HALAL");
    }
    Ok(name)
}

pub fn report(test: pb::SampleTest, feedback: Vec<pb::SampleFeedback>) -> pb::SampleTestReport {
    let responses = feedback.len() as u32;
    let mut sums = [0u32; 4];
    let mut would_order = 0;
    // certification -> (countries, buyers naming it)
    let mut gaps: BTreeMap<String, (Vec<String>, u32)> = BTreeMap::new();
    for entry in &feedback {
        let r = entry.ratings.unwrap_or_default();
        for (sum, value) in sums
            .iter_mut()
            .zip([r.price, r.quality, r.packaging, r.labelling])
        {
            *sum += value;
        }
        if entry.would_order {
            would_order += 1;
        }
        for gap in &entry.certification_gaps {
            let (countries, buyers) = gaps.entry(gap.clone()).or_default();
            if !countries.contains(&entry.country) {
                countries.push(entry.country.clone());
                countries.sort();
            }
            *buyers += 1;
        }
    }
    let average = |sum: u32| {
        if responses == 0 {
            0.0
        } else {
            f64::from(sum) / f64::from(responses)
        }
    };
    let mut certification_gaps: Vec<pb::CertificationGapSummary> = gaps
        .into_iter()
        .map(
            |(certification, (countries, buyer_count))| pb::CertificationGapSummary {
                certification,
                countries,
                buyer_count,
            },
        )
        .collect();
    // Most named first; the BTreeMap already ordered ties by name.
    certification_gaps.sort_by_key(|gap| std::cmp::Reverse(gap.buyer_count));
    pb::SampleTestReport {
        buyers_sent: test.buyer_ids.len() as u32,
        responses,
        averages: Some(pb::RatingAverages {
            price: average(sums[0]),
            quality: average(sums[1]),
            packaging: average(sums[2]),
            labelling: average(sums[3]),
        }),
        would_order_count: would_order,
        certification_gaps,
        feedback,
        test: Some(test),
    }
}
