//! Buyer discovery rules, free of I/O: what a valid buyer is, how a buyer
//! scores for a company, which match moves are legal, where consultation
//! slots fall, and when trade-show leads are due for follow-up.

pub mod buyer;
pub mod followup;
pub mod lifecycle;
pub mod markets;
pub mod matching;
pub mod sample;
pub mod slots;

use onestop_platform::Violations;
use uuid::Uuid;

/// Parses a UUID field, recording a violation when it is not one.
pub fn uuid_field(field: &str, text: &str, violations: &mut Violations) -> Option<Uuid> {
    if text.is_empty() {
        violations.add(field, "required");
        return None;
    }
    violations.check(
        field,
        Uuid::parse_str(text).map_err(|_| "a UUID returned by this API"),
    )
}

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

/// Checks a free-text field's length; `required` refuses an empty one.
pub fn text_field(
    field: &str,
    text: &str,
    required: bool,
    max: usize,
    violations: &mut Violations,
) -> String {
    let trimmed = text.trim();
    if required && trimmed.is_empty() {
        violations.add(field, "required");
    } else if trimmed.chars().count() > max {
        violations.add(field, format!("at most {max} characters"));
    } else if trimmed.chars().any(char::is_control) {
        violations.add(field, "no control characters");
    }
    trimmed.to_owned()
}
