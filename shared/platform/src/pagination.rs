//! Cursor pagination after Google AIP-158: requests carry `page_size` and
//! `page_token`, responses `next_page_token`. A token is opaque to callers
//! and names the last row of the previous page (its sort key), so pages stay
//! stable while rows are added. Every List RPC parses it here, so a token
//! that this API did not hand out is INVALID_ARGUMENT everywhere.

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::error::Violations;

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;
/// Separates the parts of a composite key; never part of a key itself.
const SEPARATOR: char = '\u{1f}';

/// A sort key a page can continue after.
pub trait PageKey: Sized {
    fn encode(&self) -> String;
    fn decode(text: &str) -> Option<Self>;
}

impl PageKey for String {
    fn encode(&self) -> String {
        self.replace(SEPARATOR, "")
    }
    fn decode(text: &str) -> Option<Self> {
        Some(text.to_owned())
    }
}

impl PageKey for Uuid {
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(text: &str) -> Option<Self> {
        Uuid::parse_str(text).ok()
    }
}

impl PageKey for i64 {
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

impl PageKey for i32 {
    fn encode(&self) -> String {
        self.to_string()
    }
    fn decode(text: &str) -> Option<Self> {
        text.parse().ok()
    }
}

/// Microseconds, Postgres' own precision, so a key read back compares
/// equal to the stored value.
impl PageKey for DateTime<Utc> {
    fn encode(&self) -> String {
        self.timestamp_micros().to_string()
    }
    fn decode(text: &str) -> Option<Self> {
        DateTime::from_timestamp_micros(text.parse().ok()?)
    }
}

impl<A: PageKey, B: PageKey> PageKey for (A, B) {
    fn encode(&self) -> String {
        format!("{}{SEPARATOR}{}", self.0.encode(), self.1.encode())
    }
    fn decode(text: &str) -> Option<Self> {
        let (a, b) = text.split_once(SEPARATOR)?;
        Some((A::decode(a)?, B::decode(b)?))
    }
}

impl<A: PageKey, B: PageKey, C: PageKey> PageKey for (A, B, C) {
    fn encode(&self) -> String {
        format!(
            "{}{SEPARATOR}{}{SEPARATOR}{}",
            self.0.encode(),
            self.1.encode(),
            self.2.encode()
        )
    }
    fn decode(text: &str) -> Option<Self> {
        let (a, rest) = text.split_once(SEPARATOR)?;
        let (b, c) = rest.split_once(SEPARATOR)?;
        Some((A::decode(a)?, B::decode(b)?, C::decode(c)?))
    }
}

/// A validated page request: how many rows, and the key to continue after.
#[derive(Debug, Clone)]
pub struct Page<K> {
    pub size: u32,
    pub after: Option<K>,
}

impl<K: PageKey> Page<K> {
    /// Validates a request's `page_size` and `page_token`, recording any
    /// problem under those field names. A size above the maximum is lowered
    /// to it (AIP-158); a negative size or a foreign token is a violation.
    pub fn parse(page_size: i32, page_token: &str, violations: &mut Violations) -> Self {
        let size = match page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n < 0 => {
                violations.add("page_size", "must not be negative");
                DEFAULT_PAGE_SIZE
            }
            n => (n as u32).min(MAX_PAGE_SIZE),
        };
        let after = if page_token.is_empty() {
            None
        } else {
            let key = decode_token(page_token).and_then(|key| K::decode(&key));
            if key.is_none() {
                violations.add("page_token", "not a next_page_token returned by this API");
            }
            key
        };
        Page { size, after }
    }

    /// Rows to fetch: one more than the page, to know whether a next page exists.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.size) + 1
    }

    /// Trims `rows` to the page and returns the token for the next one
    /// (empty at the end).
    pub fn finish<T>(&self, rows: &mut Vec<T>, key: impl Fn(&T) -> K) -> String {
        if rows.len() > self.size as usize {
            rows.truncate(self.size as usize);
            rows.last()
                .map(|row| encode_token(&key(row)))
                .unwrap_or_default()
        } else {
            String::new()
        }
    }
}

pub fn encode_token<K: PageKey>(key: &K) -> String {
    onestop_domain::encode_page_token(&key.encode())
}

fn decode_token(token: &str) -> Option<String> {
    onestop_domain::decode_page_token(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse<K: PageKey>(size: i32, token: &str) -> (Page<K>, Vec<String>) {
        let mut violations = Violations::default();
        let page = Page::parse(size, token, &mut violations);
        (page, violations.fields().map(str::to_owned).collect())
    }

    #[test]
    fn sizes_default_and_are_capped() {
        assert_eq!(parse::<Uuid>(0, "").0.size, DEFAULT_PAGE_SIZE);
        assert_eq!(parse::<Uuid>(7, "").0.size, 7);
        assert_eq!(parse::<Uuid>(100_000, "").0.size, MAX_PAGE_SIZE);
        assert_eq!(parse::<Uuid>(-1, "").1, ["page_size"]);
    }

    #[test]
    fn tokens_round_trip_and_foreign_ones_are_refused() {
        let at = DateTime::from_timestamp_micros(1_790_000_000_123_456).unwrap();
        let key = (at, Uuid::now_v7());
        let token = encode_token(&key);
        let (page, violations) = parse::<(DateTime<Utc>, Uuid)>(10, &token);
        assert!(violations.is_empty());
        assert_eq!(page.after, Some(key));

        for foreign in [
            "garbage",
            "djE6bm90LWEtdXVpZA",
            &encode_token(&"kotra".to_owned()),
        ] {
            let (page, violations) = parse::<Uuid>(10, foreign);
            assert_eq!(violations, ["page_token"], "{foreign}");
            assert!(page.after.is_none());
        }
    }

    #[test]
    fn finish_returns_a_token_only_when_more_rows_exist() {
        let (page, _) = parse::<i64>(2, "");
        let mut rows = vec![1_i64, 2, 3];
        let token = page.finish(&mut rows, |row| *row);
        assert_eq!(rows, [1, 2]);
        let (next, _) = parse::<i64>(2, &token);
        assert_eq!(next.after, Some(2));
        let mut last = vec![3_i64];
        assert_eq!(next.finish(&mut last, |row| *row), "");
    }
}
