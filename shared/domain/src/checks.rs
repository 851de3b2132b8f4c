//! What every parser of outside input is held to, whatever bytes arrive:
//! it never panics, and a value it accepts reads back as itself. One
//! function per fuzz target in `fuzz/` (which runs them under libFuzzer on
//! a nightly toolchain); `tests/fuzz_corpus.rs` replays the committed
//! corpus through the same functions on stable, so a regression fails
//! `cargo test` too.

use onestop_contracts::common::v1::Money as WireMoney;

use crate::wire::{EventTypeFilter, decode_page_token, encode_page_token, parse_time_zone};
use crate::{
    BusinessRegistrationNumber, CountryCode, CurrencyCode, HsCode, HsInterest, KsicCode,
    LanguageCode, Money,
};

/// A check of one parser against one input.
pub type Check = fn(&[u8]);

/// Each fuzz target's name (its folder under `fuzz/corpus/`) and check.
pub const TARGETS: &[(&str, Check)] = &[
    ("registration_number", registration_number),
    ("hs_code", hs_code),
    ("ksic_code", ksic_code),
    ("country_code", country_code),
    ("language_code", language_code),
    ("money", money),
    ("time_zone", time_zone),
    ("page_token", page_token),
    ("event_type_filter", event_type_filter),
];

fn text(data: &[u8]) -> Option<&str> {
    std::str::from_utf8(data).ok()
}

pub fn registration_number(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(number) = BusinessRegistrationNumber::parse(text) {
        assert_eq!(number.as_str().len(), 10, "{text:?}");
        assert_eq!(
            BusinessRegistrationNumber::parse(&number.dashed()).as_ref(),
            Ok(&number)
        );
        assert_eq!(
            BusinessRegistrationNumber::parse(number.as_str()).as_ref(),
            Ok(&number)
        );
    }
}

pub fn hs_code(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(code) = HsCode::parse(text) {
        assert_eq!(HsCode::parse(code.as_str()).as_ref(), Ok(&code));
        // Every product code states an interest in itself.
        assert!(HsInterest::parse(code.as_str()).is_ok());
    }
    if let Ok(interest) = HsInterest::parse(text) {
        assert!(matches!(interest.as_str().len(), 2 | 4 | 6), "{text:?}");
        assert_eq!(HsInterest::parse(interest.as_str()).as_ref(), Ok(&interest));
    }
}

pub fn ksic_code(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(code) = KsicCode::parse(text) {
        assert_eq!(KsicCode::parse(code.as_str()).as_ref(), Ok(&code));
    }
}

pub fn country_code(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(code) = CountryCode::parse(text) {
        assert_eq!(code.as_str().len(), 2, "{text:?}");
        assert_eq!(CountryCode::parse(code.as_str()).as_ref(), Ok(&code));
    }
}

pub fn language_code(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(code) = LanguageCode::parse(text) {
        assert_eq!(code.as_str().len(), 2, "{text:?}");
        assert_eq!(LanguageCode::parse(code.as_str()).as_ref(), Ok(&code));
    }
}

/// The first eight bytes are the amount, the ninth picks whether a
/// currency is required, the rest is the currency code.
pub fn money(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let amount_minor = i64::from_le_bytes(data[..8].try_into().expect("eight bytes"));
    let required = (data[8] % 3 == 1).then_some("KRW");
    let Some(currency_code) = text(&data[9..]) else {
        return;
    };
    let _ = CurrencyCode::parse(currency_code);
    let wire = WireMoney {
        currency_code: currency_code.to_owned(),
        amount_minor,
    };
    if let Ok(money) = Money::parse(&wire, required) {
        assert!(money.amount_minor >= 0);
        assert_eq!(money.to_proto(), wire);
        if let Some(required) = required {
            assert_eq!(money.currency.as_str(), required);
        }
    }
}

pub fn time_zone(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Ok(zone) = parse_time_zone(text) {
        assert_eq!(parse_time_zone(zone.name()), Ok(zone));
    }
}

pub fn page_token(data: &[u8]) {
    let Some(text) = text(data) else { return };
    if let Some(key) = decode_page_token(text) {
        assert_eq!(
            decode_page_token(&encode_page_token(&key)).as_deref(),
            Some(key.as_str())
        );
    }
    // Any key text survives the round trip.
    assert_eq!(
        decode_page_token(&encode_page_token(text)).as_deref(),
        Some(text)
    );
}

pub fn event_type_filter(data: &[u8]) {
    let Some(text) = text(data) else { return };
    match EventTypeFilter::parse(text) {
        Ok(EventTypeFilter::Exact(exact)) => assert_eq!(exact, text),
        Ok(EventTypeFilter::Family(prefix)) => assert_eq!(format!("{prefix}.*"), text),
        Err(_) => {}
    }
}
