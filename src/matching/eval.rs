//! Evaluating a query's tree against one paper. The boolean structure is written once;
//! what counts as a word, phrase or prefix being present comes from an [`Evidence`]:
//! the indexed one the percolator verifies with, or the naive one of the reference
//! evaluator.

use super::document::Doc;
use crate::domain::query::{Field, Node, Term, TermKind};

/// Whether a term occurs in one concrete field of a paper.
pub trait Evidence {
    fn word(&self, field: Field, word: &str) -> bool;
    fn phrase(&self, field: Field, words: &[String]) -> bool;
    fn prefix(&self, field: Field, prefix: &str) -> bool;
}

pub fn eval(node: &Node, ev: &impl Evidence) -> bool {
    match node {
        Node::Term(term) => term_present(term, ev),
        Node::And(items) => items.iter().all(|n| eval(n, ev)),
        Node::Or(items) => items.iter().any(|n| eval(n, ev)),
        Node::Not(inner) => !eval(inner, ev),
    }
}

/// A term is present when it occurs in any field it covers; a phrase must lie within
/// one field (a title's last word and the abstract's first are not a phrase).
pub fn term_present(term: &Term, ev: &impl Evidence) -> bool {
    term.field.concrete().iter().any(|&f| in_field(term, f, ev))
}

pub fn in_field(term: &Term, field: Field, ev: &impl Evidence) -> bool {
    match &term.kind {
        TermKind::Word(w) => ev.word(field, w),
        TermKind::Phrase(ws) => ev.phrase(field, ws),
        TermKind::Prefix(p) => ev.prefix(field, p),
    }
}

/// Prefixes are a scan of the unstemmed words for both evidences: they are rare in
/// queries and have no position map.
fn prefix_in(doc: &Doc, field: Field, prefix: &str) -> bool {
    match doc.text(field) {
        Some(text) => text.surface.iter().any(|w| w.starts_with(prefix)),
        None => author_or_category(doc, field, |ws| ws.iter().any(|w| w.starts_with(prefix))),
    }
}

/// Author and category checks are the same for both evidences: a handful of short lists.
fn author_or_category(doc: &Doc, field: Field, check: impl Fn(&[String]) -> bool) -> bool {
    match field {
        Field::Author => doc.authors.iter().any(|a| check(a)),
        Field::Category => check(&doc.categories),
        _ => false,
    }
}

fn contains_run(haystack: &[String], needle: &[String]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

/// Fast evidence: stems looked up in each field's position map.
pub struct Indexed<'a>(pub &'a Doc);

impl Evidence for Indexed<'_> {
    fn word(&self, field: Field, word: &str) -> bool {
        match self.0.text(field) {
            Some(text) => !text.positions(word).is_empty(),
            None => author_or_category(self.0, field, |ws| ws.iter().any(|w| w == word)),
        }
    }

    fn phrase(&self, field: Field, words: &[String]) -> bool {
        match self.0.text(field) {
            Some(text) => !text.phrase_starts(words).is_empty(),
            None => author_or_category(self.0, field, |ws| {
                field == Field::Author && contains_run(ws, words)
            }),
        }
    }

    fn prefix(&self, field: Field, prefix: &str) -> bool {
        prefix_in(self.0, field, prefix)
    }
}

/// Reference evidence: plain scans of the word lists, obviously right and slow.
pub struct Naive<'a>(pub &'a Doc);

impl Evidence for Naive<'_> {
    fn word(&self, field: Field, word: &str) -> bool {
        match self.0.text(field) {
            Some(text) => text.stems.iter().any(|w| w == word),
            None => author_or_category(self.0, field, |ws| ws.iter().any(|w| w == word)),
        }
    }

    fn phrase(&self, field: Field, words: &[String]) -> bool {
        match self.0.text(field) {
            Some(text) => contains_run(&text.stems, words),
            None => author_or_category(self.0, field, |ws| {
                field == Field::Author && contains_run(ws, words)
            }),
        }
    }

    fn prefix(&self, field: Field, prefix: &str) -> bool {
        prefix_in(self.0, field, prefix)
    }
}

/// The reference evaluator: one query, one paper, no index.
pub fn naive_matches(node: &Node, doc: &Doc) -> bool {
    eval(node, &Naive(doc))
}
