//! Types that validate once at the edge (feeds, forms, CLI); code further in trusts them.
//! Nothing here does I/O. The query language lives here too (its parser and the text
//! analysis both sides share), so a subscriber's queries are checked where they enter.

pub mod analysis;
mod bounce;
mod email;
mod explanation;
mod feed;
mod paper;
pub mod query;
mod seed;
mod subscriber;
pub mod token;
mod verp;

pub use bounce::{BounceKind, enhanced_status, is_enhanced_status};
pub use email::EmailAddress;
pub use explanation::{Explanation, MatchedQuery, TasteNote};
pub use feed::{FeedKind, FeedName, FeedUrl};
pub use paper::{AnnounceType, ArxivId, Ingested, Paper, PaperKey, PaperLinks, normalise_doi};
pub use seed::{MAX_SEED_ENTRIES, SeedEntry, SeedError, SeedFormat, SeedId, SeedList};
pub use subscriber::{
    DigestLayout, Frequency, MaxPapers, Preferences, QueryList, Rating, RatingSource, SendHour,
    Subscriber, SubscriberStatus, TimeZone, parse_weekday, weekday_code, weekday_name, weekdays,
};
pub use verp::Verp;

/// `value` quoted and escaped for a message, cut after 200 characters (with `…` after the
/// closing quote): a refused value may be megabytes long, and a message is one line.
pub fn quoted(value: &str) -> String {
    const MAX: usize = 200;
    match value.char_indices().nth(MAX) {
        Some((at, _)) => format!("{:?}…", &value[..at]),
        None => format!("{value:?}"),
    }
}

/// A value from outside was refused; the message says what was wrong, for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

#[cfg(test)]
#[test]
fn quoted_values_are_cut_at_200_characters() {
    assert_eq!(quoted("a\"b"), "\"a\\\"b\"");
    let long = "é".repeat(5_000_000);
    let shown = quoted(&long);
    assert_eq!(
        shown.chars().count(),
        203,
        "200 characters, two quotes, one ellipsis"
    );
    assert!(shown.ends_with("\"…"));
}

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}
