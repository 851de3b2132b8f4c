//! Parsers of what callers send besides the vocabulary itself: page
//! tokens, event-type filters and time zones. They live here, with no
//! dependency on the server, so the fuzz targets (`fuzz/`) and the corpus
//! replay test reach them cheaply.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::Invalid;

/// The page-token format's version, so a future format can tell old
/// tokens apart.
const TOKEN_VERSION: &str = "v1";

/// The opaque token for a page that continues after `key` (the sort key
/// of the previous page's last row, as text).
pub fn encode_page_token(key: &str) -> String {
    URL_SAFE_NO_PAD.encode(format!("{TOKEN_VERSION}:{key}"))
}

/// The key text inside a token this API handed out; None for anything
/// else.
pub fn decode_page_token(token: &str) -> Option<String> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    let text = String::from_utf8(bytes).ok()?;
    text.strip_prefix(TOKEN_VERSION)?
        .strip_prefix(':')
        .map(str::to_owned)
}

/// Longest event type (or family prefix) a filter may name.
pub const MAX_EVENT_TYPE_LEN: usize = 100;

/// One entry of a feed's type filter: an event type ("need.opened") or a
/// family ("referral.*", every type under "referral.").
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventTypeFilter {
    Exact(String),
    /// The family's prefix, without the trailing ".*".
    Family(String),
}

fn valid_event_type(text: &str) -> bool {
    !text.is_empty()
        && text.len() <= MAX_EVENT_TYPE_LEN
        && text
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '_')
}

impl EventTypeFilter {
    pub fn parse(text: &str) -> Result<Self, Invalid> {
        match text.strip_suffix(".*") {
            Some(prefix) if valid_event_type(prefix) => Ok(Self::Family(prefix.to_owned())),
            None if valid_event_type(text) => Ok(Self::Exact(text.to_owned())),
            _ => Err(Invalid::new(
                "an event type such as \"need.opened\" or a family such as \"referral.*\"",
            )),
        }
    }
}

/// An IANA time zone ("America/New_York").
pub fn parse_time_zone(text: &str) -> Result<chrono_tz::Tz, Invalid> {
    text.parse::<chrono_tz::Tz>()
        .map_err(|_| Invalid::new("an IANA time zone, e.g. America/New_York"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn page_tokens_round_trip_and_foreign_ones_are_refused() {
        let token = encode_page_token("1790000000123456\u{1f}abc");
        assert_eq!(
            decode_page_token(&token).as_deref(),
            Some("1790000000123456\u{1f}abc")
        );
        for foreign in ["", "garbage", "djI6eA", "!!!"] {
            assert_eq!(decode_page_token(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn event_type_filters_name_a_type_or_a_family() {
        assert_eq!(
            EventTypeFilter::parse("need.opened"),
            Ok(EventTypeFilter::Exact("need.opened".into()))
        );
        assert_eq!(
            EventTypeFilter::parse("referral.*"),
            Ok(EventTypeFilter::Family("referral".into()))
        );
        for bad in ["", ".*", "Need.Opened", "a b", "x.**", &"a".repeat(101)] {
            assert!(EventTypeFilter::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn time_zones_are_iana_names() {
        assert!(parse_time_zone("America/New_York").is_ok());
        assert!(parse_time_zone("Mars/Olympus").is_err());
    }
}
