//! What a sample test's feedback adds up to.

use std::collections::BTreeMap;

use onestop_contracts::buyers::v1 as pb;

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
