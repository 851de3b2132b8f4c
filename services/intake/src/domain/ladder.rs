//! Care along the growth ladder: the follow-on needs a move between stages
//! calls for. The table is the README's ("Care along the ladder"); a jump
//! over several rungs takes the follow-ons of every rung it crosses, each
//! category once.

use onestop_domain::{GrowthStage, NeedCategory};

/// One need a stage move prescribes, with the words that say why on the
/// case (never personal data).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FollowOn {
    pub category: NeedCategory,
    pub why: &'static str,
}

const fn follow_on(category: NeedCategory, why: &'static str) -> FollowOn {
    FollowOn { category, why }
}

/// The first export of a small merchant: its advisor's care after the
/// order (SEMAS's export centers follow a merchant's first shipment).
const SMALL_MERCHANT_FIRST_EXPORT: &[FollowOn] = &[follow_on(
    NeedCategory::Mentoring,
    "care after the first export, with the company's advisor",
)];

/// Any other company's first export: the advisor's care, and a second
/// buyer so the first order is not the last.
const FIRST_EXPORT: &[FollowOn] = &[
    follow_on(
        NeedCategory::Mentoring,
        "care after the first export, with the company's advisor",
    ),
    follow_on(
        NeedCategory::BuyerDiscovery,
        "repeat and new buyers after the first export",
    ),
];

/// Into PROMISING: more markets and the money to serve them.
const PROMISING: &[FollowOn] = &[
    follow_on(
        NeedCategory::MarketDiversification,
        "new markets now that exports are growing",
    ),
    follow_on(
        NeedCategory::ExportFinance,
        "finance for larger and more frequent orders",
    ),
];

/// Into STRONG: protect the brand where it sells, and spread the risk.
const STRONG: &[FollowOn] = &[
    follow_on(
        NeedCategory::LegalIp,
        "brand and IP protection in the markets it sells to",
    ),
    follow_on(
        NeedCategory::MarketDiversification,
        "new markets to spread the risk of a large export business",
    ),
];

/// A step down: the export channel is blocked; alternative markets and the
/// advisor's help to recover.
const DOWN: &[FollowOn] = &[
    follow_on(
        NeedCategory::MarketDiversification,
        "alternative markets after exports fell",
    ),
    follow_on(
        NeedCategory::Mentoring,
        "the advisor's help to recover after exports fell",
    ),
];

fn rank(stage: GrowthStage) -> u8 {
    match stage {
        GrowthStage::Domestic => 0,
        GrowthStage::FirstExport => 1,
        GrowthStage::Promising => 2,
        GrowthStage::Strong => 3,
    }
}

/// The needs a move from `from` to `to` prescribes, in table order, each
/// category once; none when the stage did not change.
pub fn follow_ons(from: GrowthStage, to: GrowthStage, small_merchant: bool) -> Vec<FollowOn> {
    let mut rungs: Vec<&[FollowOn]> = Vec::new();
    if rank(to) < rank(from) {
        rungs.push(DOWN);
    }
    for (stage, prescribed) in [
        (
            GrowthStage::FirstExport,
            if small_merchant {
                SMALL_MERCHANT_FIRST_EXPORT
            } else {
                FIRST_EXPORT
            },
        ),
        (GrowthStage::Promising, PROMISING),
        (GrowthStage::Strong, STRONG),
    ] {
        if rank(from) < rank(stage) && rank(stage) <= rank(to) {
            rungs.push(prescribed);
        }
    }
    let mut needs: Vec<FollowOn> = Vec::new();
    for need in rungs.into_iter().flatten() {
        if needs.iter().all(|n| n.category != need.category) {
            needs.push(*need);
        }
    }
    needs
}

#[cfg(test)]
mod tests {
    use super::*;
    use GrowthStage::*;

    fn categories(from: GrowthStage, to: GrowthStage, small: bool) -> Vec<NeedCategory> {
        follow_ons(from, to, small)
            .into_iter()
            .map(|n| n.category)
            .collect()
    }

    #[test]
    fn each_rung_prescribes_its_table_row() {
        assert_eq!(
            categories(Domestic, FirstExport, true),
            vec![NeedCategory::Mentoring]
        );
        assert_eq!(
            categories(Domestic, FirstExport, false),
            vec![NeedCategory::Mentoring, NeedCategory::BuyerDiscovery]
        );
        assert_eq!(
            categories(FirstExport, Promising, false),
            vec![
                NeedCategory::MarketDiversification,
                NeedCategory::ExportFinance
            ]
        );
        assert_eq!(
            categories(Promising, Strong, true),
            vec![NeedCategory::LegalIp, NeedCategory::MarketDiversification]
        );
        assert_eq!(
            categories(Strong, Promising, false),
            vec![NeedCategory::MarketDiversification, NeedCategory::Mentoring]
        );
        assert!(categories(Promising, Promising, false).is_empty());
    }

    #[test]
    fn a_jump_takes_every_rung_crossed_once_per_category() {
        assert_eq!(
            categories(Domestic, Strong, false),
            vec![
                NeedCategory::Mentoring,
                NeedCategory::BuyerDiscovery,
                NeedCategory::MarketDiversification,
                NeedCategory::ExportFinance,
                NeedCategory::LegalIp,
            ]
        );
    }
}
