//! Values many tests build: money, company snapshots as intake hands them
//! to the owners, timestamps.

use chrono::{DateTime, Utc};
use onestop_contracts::common::v1::{CompanySnapshot, GrowthStage, Money};
use onestop_contracts::intake::v1 as pb;

pub fn usd(cents: i64) -> Money {
    Money {
        currency_code: "USD".into(),
        amount_minor: cents,
    }
}

pub fn krw(won: i64) -> Money {
    Money {
        currency_code: "KRW".into(),
        amount_minor: won,
    }
}

pub fn timestamp(at: DateTime<Utc>) -> prost_types::Timestamp {
    onestop_platform::time::to_timestamp(at)
}

/// A first-time exporter of cosmetics in Busan, as intake would hand it
/// over: a fresh company id and no personal data.
pub fn company_snapshot() -> CompanySnapshot {
    CompanySnapshot {
        company_id: uuid::Uuid::now_v7().to_string(),
        business_registration_number: "1248100998".into(),
        name_ko: "한빛화장품".into(),
        name_en: "Hanbit Cosmetics".into(),
        region: "KR-26".into(),
        industry_ksic: "20423".into(),
        hs_codes: vec!["330499".into()],
        employees: 24,
        annual_revenue: Some(krw(3_200_000_000)),
        export_revenue: Some(usd(4_500_000)),
        export_countries: vec!["VN".into()],
        languages: vec!["ko".into(), "en".into()],
        small_merchant: false,
        stage: GrowthStage::FirstExport as i32,
        readiness_score: 55,
    }
}

/// A valid registration number made from `seed` (check digit computed).
pub fn registration_number(seed: u32) -> String {
    let body = format!("{:09}", 100_000_000 + seed % 800_000_000);
    let d: Vec<u32> = body.chars().map(|c| c.to_digit(10).unwrap()).collect();
    let weights = [1, 3, 7, 1, 3, 7, 1, 3, 5];
    let sum: u32 = d.iter().zip(weights).map(|(a, b)| a * b).sum::<u32>() + d[8] * 5 / 10;
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// A first-time exporter of cosmetics in Busan as a partner registers it
/// with intake, under registration number `number`.
pub fn company_profile(number: &str) -> pb::CompanyProfile {
    pb::CompanyProfile {
        business_registration_number: number.into(),
        name_ko: "한빛화장품".into(),
        name_en: "Hanbit Cosmetics Co., Ltd.".into(),
        region: "KR-26".into(),
        industry_ksic: "20423".into(),
        hs_codes: vec!["330499".into(), "330420".into()],
        employees: 24,
        annual_revenue: Some(krw(3_200_000_000)),
        export_revenue: Some(usd(0)),
        export_countries: vec![],
        languages: vec!["ko".into(), "en".into()],
        small_merchant: false,
        contacts: vec![pb::Contact {
            name: "Kim Jiwoo".into(),
            title: "Export manager".into(),
            email: "jiwoo.kim@hanbit-cosmetics.kr".into(),
            phone: "+82 51-555-0142".into(),
        }],
    }
}
