//! Buyer discovery rules, free of I/O: what a valid buyer is, how a buyer
//! scores for a company, which match moves are legal, where consultation
//! slots fall, and when trade-show leads are due for follow-up. Each RPC's
//! request becomes one of the validated commands defined here.

pub mod buyer;
pub mod followup;
pub mod lifecycle;
pub mod markets;
pub mod matches;
pub mod matching;
pub mod sample;
pub mod slots;

use std::hash::Hash;

use onestop_platform::{Violations, limits};

pub use onestop_platform::limits::{optional_text, required_text};

/// Parses each entry with `parse`, reporting failures as `field[i]`; more
/// than [`limits::MAX_CODES`] entries are refused before any is parsed.
pub fn parse_list<T: Eq + Hash + Clone, E: std::fmt::Display>(
    field: &str,
    entries: &[String],
    parse: impl Fn(&str) -> Result<T, E>,
    violations: &mut Violations,
) -> Vec<T> {
    let mut parsed: Vec<T> = limits::bounded(field, entries, limits::MAX_CODES, violations)
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| violations.check(format!("{field}[{i}]"), parse(entry)))
        .collect();
    limits::dedupe(&mut parsed);
    parsed
}

/// A filter field: None when the request left it empty.
pub fn optional(text: &str) -> Option<String> {
    (!text.is_empty()).then(|| text.to_owned())
}

/// A count the request may leave at 0 for `default`; above `max` is a
/// violation under `field`.
pub fn bounded_count(
    field: &str,
    value: u32,
    default: u32,
    max: u32,
    violations: &mut Violations,
) -> u32 {
    match value {
        0 => default,
        n if n > max => {
            violations.add(field, format!("1 to {max}"));
            n
        }
        n => n,
    }
}
