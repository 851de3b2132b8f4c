//! How much one request may carry, in one place for every service, and the
//! checks that enforce it. A list or a text is measured before any entry is
//! parsed, so an oversized request costs no more than reading its length:
//! the request timeout cannot interrupt a worker busy in a loop.

use std::collections::HashSet;
use std::hash::Hash;

use crate::Violations;

/// Codes in one list: HS codes, KSIC codes, countries, languages,
/// certifications. A company registers at most this many products.
pub const MAX_CODES: usize = 50;
/// Ids in one list (buyers offered a sample, say).
pub const MAX_IDS: usize = 50;
/// Rows in one import (trade-show leads).
pub const MAX_IMPORT_ROWS: usize = 500;
/// A name, a title, a city, an id given by a caller: one line.
pub const MAX_NAME: usize = 200;
/// A note, a comment, a need's detail.
pub const MAX_NOTE: usize = 2000;
/// The longest free text anywhere (a referral's detail, a directory
/// description).
pub const MAX_TEXT: usize = 4000;
/// Needs in one OpenCase or AddNeeds.
pub const MAX_NEEDS: usize = 20;
/// Contacts of one company, buyer or lead.
pub const MAX_CONTACTS: usize = 10;
/// Certifications a company holds, in one readiness diagnosis.
pub const MAX_CERTIFICATIONS: usize = 30;
/// Topics or follow-up actions of one mentoring session.
pub const MAX_SESSION_ITEMS: usize = 20;
/// A short label: a contact's name or title, a partner's tenant id, a
/// caller's own reference, a directory id.
pub const MAX_LABEL: usize = 100;
/// A code-like string a person types: a certification's name.
pub const MAX_CERTIFICATION_NAME: usize = 60;
/// A version of consent terms, a phone number.
pub const MAX_SHORT: usize = 40;
/// A web address.
pub const MAX_URL: usize = 300;
/// An email address (RFC 5321's limit).
pub const MAX_EMAIL: usize = 254;
/// One line of a mentoring session: a topic, a follow-up action.
pub const MAX_LINE: usize = 500;
/// The note on a change of advisor.
pub const MAX_CHANGE_NOTE: usize = 1000;
/// Event types (or families) one Watch filters on.
pub const MAX_EVENT_TYPES: usize = 64;

/// Every bound above with its name: the proto comments quote these
/// numbers, and a test holds them to this list.
pub const ALL: &[(&str, usize)] = &[
    ("MAX_CODES", MAX_CODES),
    ("MAX_IDS", MAX_IDS),
    ("MAX_IMPORT_ROWS", MAX_IMPORT_ROWS),
    ("MAX_NAME", MAX_NAME),
    ("MAX_NOTE", MAX_NOTE),
    ("MAX_TEXT", MAX_TEXT),
    ("MAX_NEEDS", MAX_NEEDS),
    ("MAX_CONTACTS", MAX_CONTACTS),
    ("MAX_CERTIFICATIONS", MAX_CERTIFICATIONS),
    ("MAX_SESSION_ITEMS", MAX_SESSION_ITEMS),
    ("MAX_LABEL", MAX_LABEL),
    ("MAX_CERTIFICATION_NAME", MAX_CERTIFICATION_NAME),
    ("MAX_SHORT", MAX_SHORT),
    ("MAX_URL", MAX_URL),
    ("MAX_EMAIL", MAX_EMAIL),
    ("MAX_LINE", MAX_LINE),
    ("MAX_CHANGE_NOTE", MAX_CHANGE_NOTE),
    ("MAX_EVENT_TYPES", MAX_EVENT_TYPES),
];

/// False, with a violation under `field`, when `len` entries are more than
/// `max`.
pub fn check_count(field: &str, len: usize, max: usize, violations: &mut Violations) -> bool {
    if len > max {
        violations.add(field, format!("at most {max} entries"));
        return false;
    }
    true
}

/// `items` when there are at most `max` of them; otherwise none, with a
/// violation under `field`, so no entry of an oversized list is looked at.
pub fn bounded<'a, T>(
    field: &str,
    items: &'a [T],
    max: usize,
    violations: &mut Violations,
) -> &'a [T] {
    if check_count(field, items.len(), max, violations) {
        items
    } else {
        &[]
    }
}

/// Removes repeats, keeping the first of each, in linear time.
pub fn dedupe<T: Eq + Hash + Clone>(items: &mut Vec<T>) {
    let mut seen = HashSet::with_capacity(items.len());
    items.retain(|item| seen.insert(item.clone()));
}

/// Whether `c` may appear in free text: anything printable, and line
/// breaks and tabs. NUL and the other control characters are refused here
/// rather than by the database, which would fail the whole call.
pub fn allowed_in_text(c: char) -> bool {
    !c.is_control() || c == '\n' || c == '\t'
}

/// False, with a violation under `field`, when `text` is longer than `max`
/// characters or holds a control character other than a line break or a
/// tab.
pub fn check_text(field: &str, text: &str, max: usize, violations: &mut Violations) -> bool {
    // Four bytes bound a character from above: a cheap check first.
    if text.len() > 4 * max || text.chars().count() > max {
        violations.add(field, format!("at most {max} characters"));
        return false;
    }
    if !text.chars().all(allowed_in_text) {
        violations.add(field, "no control characters");
        return false;
    }
    true
}

/// A free-text field that may be empty, checked by [`check_text`];
/// returned trimmed.
pub fn optional_text(field: &str, text: &str, max: usize, violations: &mut Violations) -> String {
    let trimmed = text.trim();
    if !check_text(field, trimmed, max, violations) {
        return String::new();
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedupe_keeps_the_first_of_each_in_order() {
        let mut items = vec![3, 1, 3, 2, 1];
        dedupe(&mut items);
        assert_eq!(items, vec![3, 1, 2]);
    }

    #[test]
    fn dedupe_of_many_distinct_entries_is_linear() {
        let mut items: Vec<u32> = (0..500_000).collect();
        let started = std::time::Instant::now();
        dedupe(&mut items);
        assert_eq!(items.len(), 500_000);
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }

    #[test]
    fn text_refuses_nul_and_control_characters_but_not_line_breaks() {
        let mut violations = Violations::default();
        assert_eq!(
            optional_text("note", " two\nlines\tand a tab ", 100, &mut violations),
            "two\nlines\tand a tab"
        );
        assert!(violations.is_empty());
        for bad in ["a\0b", "bell\u{7}", "esc\u{1b}[0m", "c\rr", "del\u{7f}"] {
            let mut violations = Violations::default();
            optional_text("note", bad, 100, &mut violations);
            assert_eq!(
                violations.fields().collect::<Vec<_>>(),
                vec!["note"],
                "{bad:?}"
            );
        }
    }

    #[test]
    fn text_over_the_limit_is_refused_by_characters_not_bytes() {
        let mut violations = Violations::default();
        optional_text("name", &"가".repeat(10), 10, &mut violations);
        assert!(violations.is_empty());
        optional_text("name", &"가".repeat(11), 10, &mut violations);
        assert_eq!(violations.fields().collect::<Vec<_>>(), vec!["name"]);
    }

    #[test]
    fn a_list_over_its_limit_is_named() {
        let mut violations = Violations::default();
        assert!(check_count(
            "hs_codes",
            MAX_CODES,
            MAX_CODES,
            &mut violations
        ));
        assert!(!check_count(
            "hs_codes",
            MAX_CODES + 1,
            MAX_CODES,
            &mut violations
        ));
        assert_eq!(violations.fields().collect::<Vec<_>>(), vec!["hs_codes"]);
    }
}
