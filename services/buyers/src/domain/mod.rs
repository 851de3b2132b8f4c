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

use onestop_platform::Violations;

/// Removes repeats, keeping the first of each.
pub fn dedupe<T: PartialEq>(items: &mut Vec<T>) {
    let mut seen: Vec<T> = Vec::with_capacity(items.len());
    for item in items.drain(..) {
        if !seen.contains(&item) {
            seen.push(item);
        }
    }
    *items = seen;
}

/// Parses each entry with `parse`, reporting failures as `field[i]`.
pub fn parse_list<T: PartialEq, E: std::fmt::Display>(
    field: &str,
    entries: &[String],
    parse: impl Fn(&str) -> Result<T, E>,
    violations: &mut Violations,
) -> Vec<T> {
    let mut parsed: Vec<T> = entries
        .iter()
        .enumerate()
        .filter_map(|(i, entry)| violations.check(format!("{field}[{i}]"), parse(entry)))
        .collect();
    dedupe(&mut parsed);
    parsed
}

/// A free-text field that may be empty: at most `max` characters, no
/// control characters; returned trimmed.
pub fn optional_text(field: &str, text: &str, max: usize, violations: &mut Violations) -> String {
    let trimmed = text.trim();
    if trimmed.chars().count() > max {
        violations.add(field, format!("at most {max} characters"));
    } else if trimmed.chars().any(char::is_control) {
        violations.add(field, "no control characters");
    }
    trimmed.to_owned()
}

/// As [`optional_text`], and an empty (or blank) field is refused.
pub fn required_text(field: &str, text: &str, max: usize, violations: &mut Violations) -> String {
    if text.trim().is_empty() {
        violations.add(field, "required");
        return String::new();
    }
    optional_text(field, text, max, violations)
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
