//! Deal values in USD: each currency converted at a configured rate, so
//! markets can be compared; a currency without a rate stays unconverted
//! rather than being guessed.

use std::collections::BTreeMap;
use std::str::FromStr;

use onestop_domain::CurrencyCode;

/// USD per one major unit of each currency.
#[derive(Debug, Clone, PartialEq)]
pub struct UsdRates(BTreeMap<String, f64>);

/// Minor units per major unit (ISO 4217 exponents; 2 unless listed).
pub fn minor_per_major(currency: &str) -> f64 {
    match currency {
        "KRW" | "JPY" | "VND" | "IDR" | "CLP" | "ISK" | "PYG" | "UGX" => 1.0,
        "BHD" | "KWD" | "OMR" | "JOD" | "TND" | "IQD" | "LYD" => 1000.0,
        _ => 100.0,
    }
}

impl UsdRates {
    /// Planning rates for the currencies deals are most often in; operators
    /// set their own with ONESTOP_USD_RATES.
    pub const DEFAULT: &'static str =
        "KRW=0.00072,EUR=1.08,JPY=0.0067,CNY=0.14,GBP=1.27,VND=0.00004";

    /// `amount_minor` of `currency` in US cents, or None without a rate.
    pub fn to_usd_cents(&self, currency: &str, amount_minor: i64) -> Option<i64> {
        if currency == "USD" {
            return Some(amount_minor);
        }
        let rate = self.0.get(currency)?;
        let major = amount_minor as f64 / minor_per_major(currency);
        Some((major * rate * 100.0).round() as i64)
    }
}

impl FromStr for UsdRates {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        let mut rates = BTreeMap::new();
        for pair in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (code, rate) = pair
                .split_once('=')
                .ok_or_else(|| format!("{pair:?}: expected CODE=RATE, e.g. KRW=0.00072"))?;
            let code = CurrencyCode::parse(code.trim())
                .map_err(|error| format!("{code:?}: {}", error.0))?;
            let rate: f64 = rate
                .trim()
                .parse()
                .ok()
                .filter(|rate: &f64| rate.is_finite() && *rate > 0.0)
                .ok_or_else(|| format!("{pair:?}: the rate must be a positive number"))?;
            rates.insert(code.as_str().to_owned(), rate);
        }
        Ok(Self(rates))
    }
}

/// "USD 12,000.00"-style text for the ticker: no grouping, the
/// currency's own minor unit.
pub fn display(currency: &str, amount_minor: i64) -> String {
    let per_major = minor_per_major(currency);
    if per_major == 1.0 {
        format!("{currency} {amount_minor}")
    } else {
        let decimals = per_major.log10() as usize;
        format!(
            "{currency} {:.*}",
            decimals,
            amount_minor as f64 / per_major
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn converts_by_the_currency_minor_unit() {
        let rates: UsdRates = "KRW=0.00075,EUR=1.1".parse().unwrap();
        assert_eq!(rates.to_usd_cents("USD", 12_345), Some(12_345));
        // 1,000,000 KRW (no minor unit) at 0.00075 is USD 750.00.
        assert_eq!(rates.to_usd_cents("KRW", 1_000_000), Some(75_000));
        // EUR 10.00 is USD 11.00.
        assert_eq!(rates.to_usd_cents("EUR", 1_000), Some(1_100));
        assert_eq!(rates.to_usd_cents("CHF", 1_000), None);
    }

    #[test]
    fn bad_rates_are_refused() {
        assert!("KRW".parse::<UsdRates>().is_err());
        assert!("KRW=-1".parse::<UsdRates>().is_err());
        assert!("krw=1".parse::<UsdRates>().is_err());
        assert!(UsdRates::DEFAULT.parse::<UsdRates>().is_ok());
        assert_eq!("".parse::<UsdRates>(), Ok(UsdRates(BTreeMap::new())));
    }
}
