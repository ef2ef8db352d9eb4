//! Why a paper is in a subscriber's digest: the queries that matched it, the fields their
//! words were found in, the spans of the title and abstract to highlight, the query that
//! won the paper its place and what the learned taste did. Matching computes it; digests
//! store it and emails show it.

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
    /// The query that won the paper its place in the email: each matched query is given
    /// at least one place before any query gets a second.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub won_by: Option<String>,
    /// How the reader's learned taste moved the paper, when it did.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taste: Option<TasteNote>,
}

impl Explanation {
    /// The texts of the queries that matched, in the reader's order.
    pub fn query_texts(&self) -> Vec<String> {
        self.queries.iter().map(|q| q.query.clone()).collect()
    }
}

/// The learned taste's part in a paper's place: ranked up or down because it is like a
/// paper the reader rated.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TasteNote {
    /// Ranked up (like a paper marked "more like this") or down ("less like this").
    pub up: bool,
    /// The rated paper it is most like.
    pub like_key: String,
    pub like_title: String,
}

impl TasteNote {
    /// The note in words, for the email and the explanation.
    pub fn describe(&self) -> String {
        if self.up {
            format!(
                "ranked up: like '{}' that you marked more like this",
                self.like_title
            )
        } else {
            format!(
                "ranked down: like '{}' that you marked less like this",
                self.like_title
            )
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MatchedQuery {
    pub query: String,
    pub fields: Vec<Field>,
}
