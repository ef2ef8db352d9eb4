//! Why a paper is in a subscriber's digest: the queries that matched it, the fields their
//! words were found in, and the spans of the title and abstract to highlight. Matching
//! computes it; digests store it and emails show it.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::query::Field;

/// Why a paper is in a reader's digest.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Explanation {
    /// Each of the reader's queries that matched, with the fields its words were found in.
    pub queries: Vec<MatchedQuery>,
    /// Byte ranges of the title to highlight, sorted and merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub title_spans: Vec<Range<usize>>,
    /// Byte ranges of the abstract to highlight, sorted and merged.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub abstract_spans: Vec<Range<usize>>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchedQuery {
    pub query: String,
    pub fields: Vec<Field>,
}
