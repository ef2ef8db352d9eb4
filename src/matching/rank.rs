//! Ranking and "why it matched": a score per (reader, paper) that blends text relevance
//! (title above abstract, rarer words within the batch count more) with popularity
//! (Hugging Face upvotes), the fair shares that choose which of a reader's matches the
//! email shows, and the spans of the title and abstract to highlight.

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

impl QueryScore {
    /// Whether the query found its words in the title or among the authors: such a match
    /// outranks one found only in the abstract or the categories.
    pub fn strong(&self) -> bool {
        self.matched
            .fields
            .iter()
            .any(|f| matches!(f, Field::Title | Field::Author))
    }

    /// The query's value of the paper for the email's choice: a title or author match a
    /// whole step above an abstract-only one, relevance within the step, upvotes only a
    /// tie-break, and the learned taste (`taste`, a similarity in -1..1) free to cross steps.
    pub fn value(&self, upvotes: Option<i64>, taste: f32) -> f64 {
        let strong = if self.strong() { STRONG_MATCH } else { 0.0 };
        let relevance = RELEVANCE_SPAN * self.score / (self.score + RELEVANCE_HALF);
        let popularity = POPULARITY_SPAN
            * ((1.0 + upvotes.unwrap_or(0).max(0) as f64).ln() / POPULARITY_FULL.ln()).min(1.0);
        strong + relevance + popularity + TASTE_WEIGHT * f64::from(taste)
    }
}

/// A title or author match of a query is worth this much more than an abstract-only one.
const STRONG_MATCH: f64 = 1.0;
/// Text relevance moves a paper at most this much within its step …
const RELEVANCE_SPAN: f64 = 0.8;
/// … reaching half of it at this relevance (about two rare title words).
const RELEVANCE_HALF: f64 = 6.0;
/// Upvotes add at most this (at [`POPULARITY_FULL`] upvotes or more): enough to break ties
/// between papers of similar relevance, never enough to cross a step.
const POPULARITY_SPAN: f64 = 0.1;
const POPULARITY_FULL: f64 = 501.0;
/// How far the learned taste moves a paper per unit of similarity: a paper half as alike
/// as a copy of a liked one climbs a step and a half.
pub const TASTE_WEIGHT: f64 = 3.0;
/// Each place a query has already won lowers its next paper's claim by this much, so one
/// broad query cannot take most of the email.
const SHARE_STEP: f64 = 0.3;
/// A paper several queries match is worth this much more per extra query.
const MORE_QUERIES: f64 = 0.05;

/// A reader's match as the email's choice sees it: each of its queries (by index in the
/// reader's list) with that query's value of the paper.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    pub values: Vec<(usize, f64)>,
}

impl Candidate {
    /// The paper's value: its best query's, plus a little for each other query.
    pub fn value(&self) -> f64 {
        let best = self
            .values
            .iter()
            .map(|(_, v)| *v)
            .fold(f64::NEG_INFINITY, f64::max);
        best + MORE_QUERIES * self.values.len().saturating_sub(1) as f64
    }
}

/// Chooses the `shown` matches an email lists, with fair shares across queries: first each
/// matched query's best paper (the queries whose best match is strongest first; a query
/// already represented by a paper another query chose is not given a second), then, place
/// by place, the best remaining claim, where each place a query has won lowers its next
/// claim by [`SHARE_STEP`]. Returns every candidate (by index): the chosen ones first, by
/// value, with the query that won each its place, then the others by value. Ties go to
/// the lower index, so callers sort candidates by a stable order first.
pub fn fair_shares(candidates: &[Candidate], shown: usize) -> Vec<(usize, Option<usize>)> {
    let queries = candidates
        .iter()
        .flat_map(|c| c.values.iter().map(|(q, _)| q + 1))
        .max()
        .unwrap_or(0);
    // Each query's papers, best first.
    let mut lists: Vec<Vec<(usize, f64)>> = vec![Vec::new(); queries];
    for (i, c) in candidates.iter().enumerate() {
        for &(q, v) in &c.values {
            lists[q].push((i, v));
        }
    }
    for list in &mut lists {
        list.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    }
    let mut picks = Picks {
        taken: vec![false; candidates.len()],
        won: vec![0; queries],
        represented: vec![false; queries],
        chosen: Vec::with_capacity(shown),
    };
    // First round: the queries in order of their best match.
    let mut by_best: Vec<usize> = (0..queries).filter(|&q| !lists[q].is_empty()).collect();
    by_best.sort_by(|&a, &b| lists[b][0].1.total_cmp(&lists[a][0].1).then(a.cmp(&b)));
    for q in by_best {
        if picks.chosen.len() >= shown {
            break;
        }
        if picks.represented[q] {
            continue;
        }
        if let Some(&(i, _)) = lists[q].iter().find(|(i, _)| !picks.taken[*i]) {
            picks.take(candidates, q, i);
        }
    }
    // Then the best claim, place by place.
    let mut head = vec![0usize; queries];
    while picks.chosen.len() < shown {
        let mut best: Option<(usize, usize, f64)> = None;
        for q in 0..queries {
            while head[q] < lists[q].len() && picks.taken[lists[q][head[q]].0] {
                head[q] += 1;
            }
            let Some(&(i, v)) = lists[q].get(head[q]) else {
                continue;
            };
            let claim = v - SHARE_STEP * picks.won[q] as f64;
            let better = match best {
                None => true,
                Some((bi, _, bc)) => claim > bc || (claim == bc && i < bi),
            };
            if better {
                best = Some((i, q, claim));
            }
        }
        let Some((i, q, _)) = best else { break };
        picks.take(candidates, q, i);
    }
    let Picks {
        taken, mut chosen, ..
    } = picks;
    let values: Vec<f64> = candidates.iter().map(Candidate::value).collect();
    let by_value = |a: &usize, b: &usize| values[*b].total_cmp(&values[*a]).then(a.cmp(b));
    chosen.sort_by(|a, b| by_value(&a.0, &b.0));
    let mut rest: Vec<usize> = (0..candidates.len()).filter(|&i| !taken[i]).collect();
    rest.sort_by(by_value);
    chosen
        .into_iter()
        .map(|(i, q)| (i, Some(q)))
        .chain(rest.into_iter().map(|i| (i, None)))
        .collect()
}

/// The email's places as [`fair_shares`] fills them.
struct Picks {
    taken: Vec<bool>,
    /// How many places each query has won.
    won: Vec<usize>,
    /// Whether a chosen paper matches the query.
    represented: Vec<bool>,
    /// (candidate, the query that won it its place), in the order chosen.
    chosen: Vec<(usize, usize)>,
}

impl Picks {
    fn take(&mut self, candidates: &[Candidate], q: usize, i: usize) {
        self.taken[i] = true;
        self.won[q] += 1;
        for &(other, _) in &candidates[i].values {
            self.represented[other] = true;
        }
        self.chosen.push((i, q));
    }
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
/// valued as the digest values it (see [`QueryScore::value`] and [`Candidate::value`]), so
/// `papers search` and the previews rank as the email does. The explanation names the
/// queries and fields; its spans are [`highlight`]'s to fill, for the papers that are shown.
pub fn combine(parts: &[QueryScore], upvotes: Option<i64>) -> Scored {
    let candidate = Candidate {
        values: parts
            .iter()
            .enumerate()
            .map(|(q, part)| (q, part.value(upvotes, 0.0)))
            .collect(),
    };
    Scored {
        score: if parts.is_empty() {
            0.0
        } else {
            candidate.value()
        },
        explanation: explain(parts),
    }
}

/// The explanation of a paper the `parts` matched: each query with the fields its words
/// were found in (spans, the winning query and the taste are filled in later).
pub fn explain<'a>(parts: impl IntoIterator<Item = &'a QueryScore>) -> Explanation {
    Explanation {
        queries: parts.into_iter().map(|p| p.matched.clone()).collect(),
        ..Explanation::default()
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

#[cfg(test)]
mod tests {
    use super::*;

    fn part(score: f64, fields: &[Field]) -> QueryScore {
        QueryScore {
            score,
            matched: MatchedQuery {
                query: String::new(),
                fields: fields.to_vec(),
            },
        }
    }

    fn title(score: f64) -> QueryScore {
        part(score, &[Field::Title, Field::Abstract])
    }

    fn abstract_only(score: f64) -> QueryScore {
        part(score, &[Field::Abstract])
    }

    fn one(q: usize, value: f64) -> Candidate {
        Candidate {
            values: vec![(q, value)],
        }
    }

    fn won(order: &[(usize, Option<usize>)], shown: usize, q: usize) -> usize {
        order[..shown].iter().filter(|(_, w)| *w == Some(q)).count()
    }

    #[test]
    fn every_matched_query_gets_a_place_when_there_are_enough() {
        // Query 0 is broad: 30 title matches. Queries 1 to 6 each match one paper, in the
        // abstract only, with fewer upvotes.
        let mut candidates: Vec<Candidate> = (0..30)
            .map(|i| one(0, title(12.0 - i as f64 * 0.1).value(Some(100), 0.0)))
            .collect();
        for q in 1..=6 {
            candidates.push(one(q, abstract_only(2.0).value(Some(0), 0.0)));
        }
        let order = fair_shares(&candidates, 15);
        assert_eq!(order.len(), candidates.len());
        for q in 0..=6 {
            assert!(won(&order, 15, q) >= 1, "query {q} has no place: {order:?}");
        }
        assert!(won(&order, 15, 0) <= 9, "{order:?}");
        // Every candidate once.
        let mut seen: Vec<usize> = order.iter().map(|(i, _)| *i).collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..candidates.len()).collect::<Vec<_>>());
        // Only the emailed ones name the query that won them their place.
        assert!(order[15..].iter().all(|(_, w)| w.is_none()));
    }

    #[test]
    fn with_fewer_places_than_queries_the_strongest_best_matches_go_first() {
        let candidates = vec![
            one(0, 1.2),
            one(1, 0.4),
            one(2, 1.9),
            one(0, 1.1),
            one(3, 0.9),
        ];
        let order = fair_shares(&candidates, 2);
        let chosen: Vec<usize> = order[..2].iter().map(|(i, _)| *i).collect();
        assert_eq!(chosen, [2, 0]);
        assert_eq!(order[0].1, Some(2));
        assert_eq!(order[1].1, Some(0));
    }

    #[test]
    fn a_paper_two_queries_match_represents_both() {
        let candidates = vec![
            Candidate {
                values: vec![(0, 1.5), (1, 1.4)],
            },
            one(0, 1.3),
            one(1, 0.2),
            one(2, 0.3),
        ];
        let order = fair_shares(&candidates, 3);
        let chosen: Vec<usize> = order[..3].iter().map(|(i, _)| *i).collect();
        // Query 1 is represented by the shared paper, so query 2 gets the second place
        // before any query gets a second paper.
        assert!(chosen.contains(&0) && chosen.contains(&3), "{order:?}");
    }

    #[test]
    fn title_and_author_matches_outrank_abstract_only_whatever_the_upvotes() {
        let weak_title = title(0.5).value(Some(0), 0.0);
        let author = part(0.5, &[Field::Author]).value(None, 0.0);
        let popular_abstract = abstract_only(40.0).value(Some(100_000), 0.0);
        assert!(weak_title > popular_abstract);
        assert!(author > popular_abstract);
        // Upvotes break ties between similar relevance.
        assert!(title(5.0).value(Some(300), 0.0) > title(5.0).value(Some(3), 0.0));
        assert!(title(5.0).value(Some(10_000), 0.0) < title(9.0).value(Some(0), 0.0) + 0.1);
    }

    #[test]
    fn the_learned_taste_may_lift_an_abstract_match_over_a_title_match() {
        let liked_abstract = abstract_only(2.0).value(None, 0.5);
        let plain_title = title(2.0).value(None, 0.0);
        let disliked_title = title(2.0).value(None, -0.4);
        assert!(liked_abstract > plain_title);
        assert!(disliked_title < abstract_only(2.0).value(None, 0.0));
    }

    #[test]
    fn fair_shares_of_nothing_is_nothing() {
        assert!(fair_shares(&[], 15).is_empty());
        let order = fair_shares(&[one(0, 1.0)], 0);
        assert_eq!(order, [(0, None)]);
    }
}
