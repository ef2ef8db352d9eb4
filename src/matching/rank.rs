//! Ranking and "why it matched": a score per (reader, paper) that blends text relevance
//! (title above abstract, rarer words within the batch count more) with popularity
//! (Hugging Face upvotes), and the spans of the title and abstract to highlight.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::ops::Range;

use serde::Serialize;

use super::document::Doc;
use super::eval::{Indexed, in_field};
use crate::domain::query::{Field, Node, Query, Term, TermKind};
use crate::domain::{Explanation, MatchedQuery};

const TITLE_WEIGHT: f64 = 3.0;
const ABSTRACT_WEIGHT: f64 = 1.0;
const AUTHOR_WEIGHT: f64 = 2.5;
const CATEGORY_WEIGHT: f64 = 0.5;
/// Weight of ln(1 + upvotes): 10 upvotes count about as much as a rare title word.
const POPULARITY_WEIGHT: f64 = 1.5;

/// How many papers of the batch contain each title/abstract stem.
#[derive(Debug, Default)]
pub struct BatchStats {
    papers: usize,
    df: HashMap<String, u32>,
}

impl BatchStats {
    pub fn new<'a>(docs: impl IntoIterator<Item = &'a Doc>) -> BatchStats {
        let mut stats = BatchStats::default();
        for doc in docs {
            stats.papers += 1;
            let mut stems: Vec<&str> = doc
                .title
                .stems
                .iter()
                .chain(&doc.abstract_text.stems)
                .map(String::as_str)
                .collect();
            stems.sort_unstable();
            stems.dedup();
            for s in stems {
                *stats.df.entry(s.to_string()).or_default() += 1;
            }
        }
        stats
    }

    /// Inverse document frequency within the batch: rarer words weigh more.
    fn idf(&self, stem: &str) -> f64 {
        let df = f64::from(self.df.get(stem).copied().unwrap_or(0));
        (1.0 + (self.papers as f64 + 1.0) / (df + 1.0)).ln()
    }

    fn term_idf(&self, term: &Term) -> f64 {
        match (&term.kind, term.field.stemmed()) {
            (TermKind::Word(w), true) => self.idf(w),
            // All words of a phrase must be there; the rarest says most about it.
            (TermKind::Phrase(ws), true) => ws.iter().map(|w| self.idf(w)).fold(0.0, f64::max),
            // Names, categories and prefixes: a fixed middle weight.
            _ => 2.0,
        }
    }
}

/// A paper's score for one reader and the explanation behind it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Scored {
    pub score: f64,
    pub explanation: Explanation,
}

/// Scores a paper that matched `queries` (the reader's matching queries), with the spans
/// to highlight.
pub fn score(queries: &[&Query], doc: &Doc, upvotes: Option<i64>, stats: &BatchStats) -> Scored {
    let parts: Vec<QueryScore> = queries.iter().map(|q| query_score(q, doc, stats)).collect();
    let mut scored = combine(&parts, upvotes);
    highlight(&mut scored.explanation, queries.iter().copied(), doc);
    scored
}

/// One query's share of a paper's score: the weight of its words found in the paper, and
/// the fields they were found in. It depends on the query and the paper only, so readers
/// who hold the same query share it.
#[derive(Debug, Clone)]
pub struct QueryScore {
    score: f64,
    matched: MatchedQuery,
}

pub fn query_score(query: &Query, doc: &Doc, stats: &BatchStats) -> QueryScore {
    let evidence = Indexed(doc);
    let mut part = QueryScore {
        score: 0.0,
        matched: MatchedQuery {
            query: query.text().to_string(),
            fields: Vec::new(),
        },
    };
    for term in positive_terms(query.root()) {
        let idf = stats.term_idf(term);
        for &field in term.field.concrete() {
            if !in_field(term, field, &evidence) {
                continue;
            }
            part.score += idf * weight(field);
            if !part.matched.fields.contains(&field) {
                part.matched.fields.push(field);
            }
        }
    }
    part.matched.fields.sort();
    part
}

/// A paper's score for a reader from the shares of the reader's queries that matched it,
/// plus its popularity. The explanation names the queries and fields; its spans are
/// [`highlight`]'s to fill, for the papers that are shown.
pub fn combine(parts: &[QueryScore], upvotes: Option<i64>) -> Scored {
    let mut total = 0.0;
    let mut explanation = Explanation::default();
    for part in parts {
        total += part.score;
        explanation.queries.push(part.matched.clone());
    }
    total += POPULARITY_WEIGHT * (1.0 + upvotes.unwrap_or(0).max(0) as f64).ln();
    Scored {
        score: total,
        explanation,
    }
}

/// Sets the spans of the title and abstract where `queries` found their words in `doc`.
pub fn highlight<'q>(
    explanation: &mut Explanation,
    queries: impl IntoIterator<Item = &'q Query>,
    doc: &Doc,
) {
    let evidence = Indexed(doc);
    let mut title = Vec::new();
    let mut abstract_text = Vec::new();
    for query in queries {
        for term in positive_terms(query.root()) {
            for &field in term.field.concrete() {
                match field {
                    Field::Title if in_field(term, field, &evidence) => {
                        title.extend(spans(term, &doc.title));
                    }
                    Field::Abstract if in_field(term, field, &evidence) => {
                        abstract_text.extend(spans(term, &doc.abstract_text));
                    }
                    _ => {}
                }
            }
        }
    }
    explanation.title_spans = merge(title);
    explanation.abstract_spans = merge(abstract_text);
}

/// Orders scored papers best first; ties go to more upvotes, then to the key, so the
/// order never depends on the order papers arrived in.
pub fn compare(a: (f64, Option<i64>, &str), b: (f64, Option<i64>, &str)) -> Ordering {
    b.0.total_cmp(&a.0)
        .then_with(|| b.1.unwrap_or(0).cmp(&a.1.unwrap_or(0)))
        .then_with(|| a.2.cmp(b.2))
}

fn weight(field: Field) -> f64 {
    match field {
        Field::Title => TITLE_WEIGHT,
        Field::Abstract | Field::Text => ABSTRACT_WEIGHT,
        Field::Author => AUTHOR_WEIGHT,
        Field::Category => CATEGORY_WEIGHT,
    }
}

/// The terms that speak for a paper: every term not under a NOT.
fn positive_terms(node: &Node) -> Vec<&Term> {
    fn walk<'a>(node: &'a Node, out: &mut Vec<&'a Term>) {
        match node {
            Node::Term(t) => out.push(t),
            Node::And(items) | Node::Or(items) => items.iter().for_each(|n| walk(n, out)),
            Node::Not(_) => {}
        }
    }
    let mut out = Vec::new();
    walk(node, &mut out);
    out
}

/// Where `term` occurs in a title or abstract.
fn spans(term: &Term, text: &super::document::TextField) -> Vec<Range<usize>> {
    match &term.kind {
        TermKind::Word(w) => text
            .positions(w)
            .iter()
            .map(|&p| text.spans[p as usize].clone())
            .collect(),
        TermKind::Phrase(ws) => text
            .phrase_starts(ws)
            .iter()
            .map(|&p| {
                let p = p as usize;
                text.spans[p].start..text.spans[p + ws.len() - 1].end
            })
            .collect(),
        TermKind::Prefix(prefix) => text
            .surface
            .iter()
            .zip(&text.spans)
            .filter(|(w, _)| w.starts_with(prefix.as_str()))
            .map(|(_, s)| s.clone())
            .collect(),
    }
}

fn merge(mut spans: Vec<Range<usize>>) -> Vec<Range<usize>> {
    spans.sort_by_key(|s| (s.start, s.end));
    let mut out: Vec<Range<usize>> = Vec::with_capacity(spans.len());
    for s in spans {
        match out.last_mut() {
            Some(last) if s.start <= last.end => last.end = last.end.max(s.end),
            _ => out.push(s),
        }
    }
    out
}
