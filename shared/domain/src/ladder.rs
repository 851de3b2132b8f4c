use onestop_contracts::common::v1 as pb;

use crate::Invalid;

/// The export growth ladder. The stage follows from exports over the last
/// twelve months in USD; the thresholds are the brief's.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum GrowthStage {
    Domestic,
    FirstExport,
    Promising,
    Strong,
}

/// USD 100,000 in cents.
const PROMISING_FROM_CENTS: i64 = 100_000 * 100;
/// USD 5,000,000 in cents.
const STRONG_FROM_CENTS: i64 = 5_000_000 * 100;

impl GrowthStage {
    pub fn from_annual_exports_usd_cents(cents: i64) -> Self {
        match cents {
            c if c <= 0 => Self::Domestic,
            c if c < PROMISING_FROM_CENTS => Self::FirstExport,
            c if c < STRONG_FROM_CENTS => Self::Promising,
            _ => Self::Strong,
        }
    }

    pub fn to_proto(self) -> pb::GrowthStage {
        match self {
            Self::Domestic => pb::GrowthStage::Domestic,
            Self::FirstExport => pb::GrowthStage::FirstExport,
            Self::Promising => pb::GrowthStage::Promising,
            Self::Strong => pb::GrowthStage::Strong,
        }
    }

    pub fn from_proto(value: i32) -> Result<Self, Invalid> {
        match pb::GrowthStage::try_from(value) {
            Ok(pb::GrowthStage::Domestic) => Ok(Self::Domestic),
            Ok(pb::GrowthStage::FirstExport) => Ok(Self::FirstExport),
            Ok(pb::GrowthStage::Promising) => Ok(Self::Promising),
            Ok(pb::GrowthStage::Strong) => Ok(Self::Strong),
            _ => Err(Invalid::new(
                "one of DOMESTIC, FIRST_EXPORT, PROMISING, STRONG",
            )),
        }
    }

    /// Stored form, e.g. "FIRST_EXPORT".
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Domestic => "DOMESTIC",
            Self::FirstExport => "FIRST_EXPORT",
            Self::Promising => "PROMISING",
            Self::Strong => "STRONG",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        [
            Self::Domestic,
            Self::FirstExport,
            Self::Promising,
            Self::Strong,
        ]
        .into_iter()
        .find(|stage| stage.as_str() == text)
    }
}

/// Which service serves a need.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeedOwner {
    Mentoring,
    Buyers,
    Referral,
}

impl NeedOwner {
    pub fn to_proto(self) -> pb::NeedOwner {
        match self {
            Self::Mentoring => pb::NeedOwner::Mentoring,
            Self::Buyers => pb::NeedOwner::Buyers,
            Self::Referral => pb::NeedOwner::Referral,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Mentoring => "MENTORING",
            Self::Buyers => "BUYERS",
            Self::Referral => "REFERRAL",
        }
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        [Self::Mentoring, Self::Buyers, Self::Referral]
            .into_iter()
            .find(|owner| owner.as_str() == text)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NeedCategory {
    BuyerDiscovery,
    ExportFinance,
    Certification,
    Marketing,
    Interpretation,
    Logistics,
    MarketDiversification,
    TradeShowFollowUp,
    SampleTestMarketing,
    Training,
    LegalIp,
    Mentoring,
}

impl NeedCategory {
    pub const ALL: [NeedCategory; 12] = [
        Self::BuyerDiscovery,
        Self::ExportFinance,
        Self::Certification,
        Self::Marketing,
        Self::Interpretation,
        Self::Logistics,
        Self::MarketDiversification,
        Self::TradeShowFollowUp,
        Self::SampleTestMarketing,
        Self::Training,
        Self::LegalIp,
        Self::Mentoring,
    ];

    pub fn to_proto(self) -> pb::NeedCategory {
        match self {
            Self::BuyerDiscovery => pb::NeedCategory::BuyerDiscovery,
            Self::ExportFinance => pb::NeedCategory::ExportFinance,
            Self::Certification => pb::NeedCategory::Certification,
            Self::Marketing => pb::NeedCategory::Marketing,
            Self::Interpretation => pb::NeedCategory::Interpretation,
            Self::Logistics => pb::NeedCategory::Logistics,
            Self::MarketDiversification => pb::NeedCategory::MarketDiversification,
            Self::TradeShowFollowUp => pb::NeedCategory::TradeShowFollowUp,
            Self::SampleTestMarketing => pb::NeedCategory::SampleTestMarketing,
            Self::Training => pb::NeedCategory::Training,
            Self::LegalIp => pb::NeedCategory::LegalIp,
            Self::Mentoring => pb::NeedCategory::Mentoring,
        }
    }

    pub fn from_proto(value: i32) -> Result<Self, Invalid> {
        Self::ALL
            .into_iter()
            .find(|category| category.to_proto() as i32 == value)
            .ok_or_else(|| {
                Invalid::new("a need category such as BUYER_DISCOVERY or EXPORT_FINANCE")
            })
    }

    /// Stored form, e.g. "EXPORT_FINANCE".
    pub fn as_str(self) -> &'static str {
        self.to_proto()
            .as_str_name()
            .trim_start_matches("NEED_CATEGORY_")
    }

    pub fn from_stored(text: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|category| category.as_str() == text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stage_boundaries_follow_the_brief() {
        let stage = GrowthStage::from_annual_exports_usd_cents;
        assert_eq!(stage(0), GrowthStage::Domestic);
        assert_eq!(stage(1), GrowthStage::FirstExport);
        assert_eq!(stage(9_999_999), GrowthStage::FirstExport);
        assert_eq!(stage(10_000_000), GrowthStage::Promising);
        assert_eq!(stage(499_999_999), GrowthStage::Promising);
        assert_eq!(stage(500_000_000), GrowthStage::Strong);
    }

    #[test]
    fn categories_round_trip_through_storage() {
        for category in NeedCategory::ALL {
            assert_eq!(NeedCategory::from_stored(category.as_str()), Some(category));
            assert_eq!(
                NeedCategory::from_proto(category.to_proto() as i32),
                Ok(category)
            );
        }
        assert!(NeedCategory::from_proto(0).is_err());
    }
}
