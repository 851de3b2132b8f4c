//! OneStop's shared vocabulary as validated types. Parsing is the only way
//! in, so a value of one of these types is always valid; each parse error
//! reads as the description of a field violation.

pub mod checks;
mod codes;
mod ladder;
pub mod wire;

pub use codes::{
    BusinessRegistrationNumber, CountryCode, CurrencyCode, HsCode, HsInterest, KsicCode,
    LanguageCode, Money, Province,
};
pub use ladder::{GrowthStage, NeedCategory, NeedOwner};
pub use wire::{EventTypeFilter, decode_page_token, encode_page_token, parse_time_zone};

/// Why a value was refused; reads as a field-violation description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    fn new(message: impl Into<String>) -> Self {
        Self(message.into())
    }
}
