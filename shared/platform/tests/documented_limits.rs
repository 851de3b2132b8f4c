//! Every list and text a caller can send is bounded in its proto comment,
//! and the numbers there are bounds `limits.rs` knows: read from the
//! contracts' descriptor set (which keeps the comments), following every
//! message an RPC of any service takes.

use std::collections::{BTreeSet, HashMap};

use onestop_platform::limits;
use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::{DescriptorProto, FileDescriptorSet};

/// Strings that name a format rather than a length: the parser of that
/// format bounds them.
const FORMATS: &[&str] = &[
    "iso 3166", "iso 639", "iso 4217", "iana", "uuid", "yyyy-mm", "digits",
];

/// A message with its comments by field name.
struct Described<'a> {
    message: &'a DescriptorProto,
    comments: HashMap<String, String>,
}

/// Every message of the set by full name (".onestop.intake.v1.Case"), with
/// the leading and trailing comments of its fields.
fn messages(set: &FileDescriptorSet) -> HashMap<String, Described<'_>> {
    let mut found = HashMap::new();
    for file in &set.file {
        let comments: HashMap<Vec<i32>, String> = file
            .source_code_info
            .iter()
            .flat_map(|info| &info.location)
            .map(|location| {
                let text = format!(
                    "{} {}",
                    location.leading_comments(),
                    location.trailing_comments()
                );
                (location.path.clone(), text)
            })
            .collect();
        let mut pending: Vec<(String, Vec<i32>, &DescriptorProto)> = file
            .message_type
            .iter()
            .enumerate()
            .map(|(i, m)| (format!(".{}", file.package()), vec![4, i as i32], m))
            .collect();
        while let Some((scope, path, message)) = pending.pop() {
            let name = format!("{scope}.{}", message.name());
            let mut by_field = HashMap::new();
            for (j, field) in message.field.iter().enumerate() {
                let mut at = path.clone();
                at.extend([2, j as i32]);
                by_field.insert(
                    field.name().to_owned(),
                    comments.get(&at).cloned().unwrap_or_default(),
                );
            }
            for (k, nested) in message.nested_type.iter().enumerate() {
                let mut at = path.clone();
                at.extend([3, k as i32]);
                pending.push((name.clone(), at, nested));
            }
            found.insert(
                name,
                Described {
                    message,
                    comments: by_field,
                },
            );
        }
    }
    found
}

/// The comment's words, lower case, with numbers' thousands commas kept
/// ("2,000") and other punctuation dropped.
fn words(comment: &str) -> Vec<String> {
    comment
        .to_lowercase()
        .split(|c: char| c.is_whitespace() || matches!(c, ';' | '(' | ')' | '"' | ':'))
        .map(|w| w.trim_end_matches(['.', ',']).to_owned())
        .filter(|w| !w.is_empty())
        .collect()
}

fn number(word: &str) -> Option<usize> {
    let digits = word.replace(',', "");
    (!digits.is_empty() && digits.chars().all(|c| c.is_ascii_digit()))
        .then(|| digits.parse().ok())
        .flatten()
}

/// The bounds a comment states: "at most N", "1 to N", "N characters".
fn bounds(comment: &str) -> Vec<usize> {
    let words = words(comment);
    let mut found = Vec::new();
    for (i, word) in words.iter().enumerate() {
        let next = words.get(i + 1).map(String::as_str);
        let after = words.get(i + 2).and_then(|w| number(w));
        match (word.as_str(), next, after) {
            ("at", Some("most"), Some(n)) => found.push(n),
            ("1", Some("to"), Some(n)) => found.push(n),
            _ => {}
        }
        if let (Some(n), Some("characters")) = (number(word), next)
            && !found.contains(&n)
        {
            found.push(n);
        }
    }
    found
}

/// Whether a repeated field's comment bounds its length.
fn bounds_count(comment: &str) -> bool {
    !bounds(comment).is_empty()
}

/// Whether a string field's comment bounds it: a length or a format.
fn bounds_text(comment: &str) -> bool {
    let lower = comment.to_lowercase();
    let words = words(comment);
    words
        .windows(2)
        .any(|pair| number(&pair[0]).is_some() && pair[1] == "characters")
        || FORMATS.iter().any(|format| lower.contains(format))
}

/// Fields whose bound is kept in one place for every RPC, not on each
/// field: ids (a UUID or a slug, each refused past its parser's length),
/// page tokens (only tokens the API handed out are accepted) and
/// idempotency keys (at most 200 printable characters, checked by the
/// platform).
fn bounded_elsewhere(name: &str) -> bool {
    name.ends_with("_id") || name == "page_token" || name == "idempotency_key"
}

#[test]
fn every_list_and_text_a_caller_sends_has_a_documented_bound_that_limits_rs_knows() {
    let set = FileDescriptorSet::decode(onestop_contracts::FILE_DESCRIPTOR_SET)
        .expect("descriptor set decodes");
    let messages = messages(&set);
    let known: BTreeSet<usize> = limits::ALL.iter().map(|(_, n)| *n).collect();

    let mut pending: Vec<String> = set
        .file
        .iter()
        .filter(|file| file.package().starts_with("onestop."))
        .flat_map(|file| &file.service)
        .flat_map(|service| &service.method)
        .map(|method| method.input_type().to_owned())
        .collect();
    let mut seen = BTreeSet::new();
    let mut undocumented = Vec::new();
    let mut unknown_numbers = Vec::new();
    while let Some(name) = pending.pop() {
        if !name.starts_with(".onestop.") || !seen.insert(name.clone()) {
            continue;
        }
        let described = &messages[&name];
        for field in &described.message.field {
            if field.r#type() == Type::Message {
                pending.push(field.type_name().to_owned());
            }
            let repeated = field.label() == Label::Repeated;
            let text = field.r#type() == Type::String;
            if !repeated && !text {
                continue;
            }
            let comment = &described.comments[field.name()];
            let place = format!("{}.{}", &name[1..], field.name());
            if comment.to_lowercase().contains("output only") {
                continue;
            }
            let documented = if repeated {
                bounds_count(comment)
            } else {
                bounded_elsewhere(field.name()) || bounds_text(comment)
            };
            if !documented {
                undocumented.push(place.clone());
            }
            for n in bounds(comment) {
                if !known.contains(&n) {
                    unknown_numbers.push(format!("{place}: {n}"));
                }
            }
        }
    }
    assert!(
        seen.len() > 50,
        "only {} request messages found",
        seen.len()
    );
    assert!(
        undocumented.is_empty(),
        "lists and texts with no bound in their proto comment: {undocumented:#?}"
    );
    assert!(
        unknown_numbers.is_empty(),
        "bounds in proto comments that shared/platform/src/limits.rs does not hold: {unknown_numbers:#?}"
    );
}

#[test]
fn bounds_are_read_from_the_usual_phrasings() {
    assert_eq!(bounds("Required; at most 2,000 characters."), [2000]);
    assert_eq!(bounds("1 to 50, no repeats."), [50]);
    assert_eq!(bounds("At most 30, each 1 to 60 characters."), [30, 60]);
    assert_eq!(bounds("7 to 15 digits; at most 40 characters."), [40]);
    assert!(bounds("0-100.").is_empty());
    assert!(bounds_text("ISO 3166-1 alpha-2; empty means all."));
    assert!(!bounds_text("Free text."));
    assert!(bounds_count("At most 50."));
    assert!(!bounds_count("Empty means all."));
}
