//! Types that validate once at the edge (feeds, forms, CLI); code further in trusts them.
//! Nothing here does I/O.

mod email;
mod feed;
mod paper;
mod subscriber;
pub mod token;

pub use email::EmailAddress;
pub use feed::{FeedKind, FeedName, FeedUrl};
pub use paper::{AnnounceType, ArxivId, Ingested, Paper, PaperKey, PaperLinks, normalise_doi};
pub use subscriber::{
    Frequency, MaxPapers, Preferences, QueryList, SendHour, SubscriberStatus, TimeZone,
    parse_weekday, weekday_code, weekday_name, weekdays,
};

/// A value from outside was refused; the message says what was wrong, for a person.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

impl Invalid {
    pub fn new(msg: impl Into<String>) -> Self {
        Self(msg.into())
    }
}
