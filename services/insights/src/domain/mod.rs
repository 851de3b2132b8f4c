//! Insights' rules, without SQL or transport: what each event on a feed
//! means for the projections (`facts`), what a request asks for
//! (`filter`), deal values in USD (`money`) and the CSV report (`report`).

pub mod facts;
pub mod filter;
pub mod money;
pub mod report;
pub mod source;

/// An enum value's proto name without its prefix: `VETTING_STATUS_VERIFIED`
/// with prefix `VETTING_STATUS_` is "VERIFIED".
pub fn short_name<'a>(name: &'a str, prefix: &str) -> &'a str {
    name.strip_prefix(prefix).unwrap_or(name)
}
