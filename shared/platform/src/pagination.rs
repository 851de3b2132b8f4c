//! Cursor pagination: page tokens are opaque to callers and name the last
//! row of the previous page, so pages stay stable while rows are added.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use onestop_contracts::common::v1::PageRequest;

use crate::error::{ApiError, Violations};

pub const DEFAULT_PAGE_SIZE: u32 = 50;
pub const MAX_PAGE_SIZE: u32 = 500;

/// A validated page request: how many rows, and the key to continue after.
#[derive(Debug, Clone)]
pub struct Page {
    pub size: u32,
    pub after: Option<String>,
}

impl Page {
    /// Validates `page` and records any problem under `field` (e.g. "page").
    pub fn parse(page: Option<&PageRequest>, field: &str, violations: &mut Violations) -> Page {
        let Some(page) = page else {
            return Page {
                size: DEFAULT_PAGE_SIZE,
                after: None,
            };
        };
        let size = match page.page_size {
            0 => DEFAULT_PAGE_SIZE,
            n if n > MAX_PAGE_SIZE => {
                violations.add(
                    format!("{field}.page_size"),
                    format!("at most {MAX_PAGE_SIZE}"),
                );
                MAX_PAGE_SIZE
            }
            n => n,
        };
        let after = if page.page_token.is_empty() {
            None
        } else {
            match decode_token(&page.page_token) {
                Some(key) => Some(key),
                None => {
                    violations.add(
                        format!("{field}.page_token"),
                        "not a token returned by this API",
                    );
                    None
                }
            }
        };
        Page { size, after }
    }

    /// Rows to fetch: one more than the page, to know whether a next page exists.
    pub fn fetch_limit(&self) -> i64 {
        i64::from(self.size) + 1
    }

    /// Trims `rows` to the page and returns the token for the next one.
    pub fn finish<T>(&self, rows: &mut Vec<T>, key: impl Fn(&T) -> String) -> String {
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

pub fn encode_token(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("v1:{key}"))
}

fn decode_token(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix("v1:").map(str::to_owned)
}

impl From<Violations> for ApiError {
    fn from(violations: Violations) -> Self {
        ApiError::InvalidArgument(violations)
    }
}
