//! The percolator: every reader's queries compiled into one index, so a batch of papers
//! finds its readers without evaluating every query against every paper.
//!
//! As in Lucene's Monitor, each distinct query is indexed under the keys of its most
//! selective required clause (a word, a category, a 3-letter prefix): any paper that
//! matches the query must carry one of those keys. A paper collects the queries filed under
//! its own keys (the candidates) and only those are verified. Readers who hold the same
//! query share one compiled copy, and a query is verified once per paper however many
//! readers hold it.

use std::collections::HashSet;

use rustc_hash::FxHashMap;

use super::document::Doc;
use super::eval::{Indexed, eval};
use crate::domain::query::{Field, MIN_PREFIX, Node, Query, Term, TermKind};

/// Readers are identified by the store's id.
pub type SubscriberId = i64;

/// Keys are strings tagged by kind: what a paper offers to the index, and what a query is
/// filed under.
mod tag {
    /// A stem in the title or abstract.
    pub const TEXT: char = 't';
    /// The first three letters of a title or abstract word.
    pub const TEXT_PREFIX: char = 'x';
    pub const AUTHOR: char = 'a';
    pub const AUTHOR_PREFIX: char = 'b';
    pub const CATEGORY: char = 'c';
    /// The first letter of a category.
    pub const CATEGORY_PREFIX: char = 'd';
}

fn key(buf: &mut String, tag: char, text: &str, max_chars: usize) {
    buf.clear();
    buf.push(tag);
    buf.extend(text.chars().take(max_chars));
}

/// Calls `f` with every key a paper carries (some more than once).
fn for_each_doc_key(doc: &Doc, buf: &mut String, mut f: impl FnMut(&str)) {
    for field in [&doc.title, &doc.abstract_text] {
        for s in &field.stems {
            key(buf, tag::TEXT, s, usize::MAX);
            f(buf);
        }
        for w in field
            .surface
            .iter()
            .filter(|w| w.chars().nth(MIN_PREFIX - 1).is_some())
        {
            key(buf, tag::TEXT_PREFIX, w, MIN_PREFIX);
            f(buf);
        }
    }
    for author in &doc.authors {
        for w in author {
            key(buf, tag::AUTHOR, w, usize::MAX);
            f(buf);
            if w.chars().nth(MIN_PREFIX - 1).is_some() {
                key(buf, tag::AUTHOR_PREFIX, w, MIN_PREFIX);
                f(buf);
            }
        }
    }
    for c in &doc.categories {
        key(buf, tag::CATEGORY, c, usize::MAX);
        f(buf);
        key(buf, tag::CATEGORY_PREFIX, c, 1);
        f(buf);
    }
}

/// The key that any paper matching a word or prefix `term` must carry.
fn term_key(field: Field, kind: &TermKind) -> String {
    let mut buf = String::new();
    match kind {
        TermKind::Word(w) => {
            let t = match field {
                Field::Author => tag::AUTHOR,
                Field::Category => tag::CATEGORY,
                _ => tag::TEXT,
            };
            key(&mut buf, t, w, usize::MAX);
        }
        TermKind::Prefix(p) => match field {
            Field::Author => key(&mut buf, tag::AUTHOR_PREFIX, p, MIN_PREFIX),
            Field::Category => key(&mut buf, tag::CATEGORY_PREFIX, p, 1),
            _ => key(&mut buf, tag::TEXT_PREFIX, p, MIN_PREFIX),
        },
        // Phrases are split into one clause per word by `TermStats::clauses`.
        TermKind::Phrase(ws) => {
            return term_key(
                field,
                &TermKind::Word(ws.first().cloned().unwrap_or_default()),
            );
        }
    }
    buf
}

/// How common each key is in a sample of papers (yesterday's, say), so that queries are
/// filed under their rarest required keys. Without a sample, rough defaults by kind.
#[derive(Debug, Clone, Default)]
pub struct TermStats {
    papers: u32,
    df: FxHashMap<Box<str>, u32>,
}

impl TermStats {
    pub fn from_docs<'a>(docs: impl IntoIterator<Item = &'a Doc>) -> TermStats {
        let mut stats = TermStats::default();
        let mut buf = String::new();
        let mut seen: HashSet<Box<str>> = HashSet::new();
        for doc in docs {
            stats.papers += 1;
            seen.clear();
            for_each_doc_key(doc, &mut buf, |k| {
                if !seen.contains(k) {
                    seen.insert(k.into());
                }
            });
            for k in seen.drain() {
                *stats.df.entry(k).or_default() += 1;
            }
        }
        stats
    }

    /// Expected number of papers carrying `key`, per thousand papers.
    fn cost(&self, key: &str) -> u64 {
        if self.papers > 0 {
            let df = u64::from(self.df.get(key).copied().unwrap_or(0));
            return (df * 1000 + 500) / u64::from(self.papers) + 1;
        }
        let len = key.len() as u64;
        match key.chars().next() {
            Some(tag::AUTHOR) => 2,
            Some(tag::TEXT) => 2 + 40 / len.max(1),
            Some(tag::AUTHOR_PREFIX) => 20,
            Some(tag::TEXT_PREFIX) => 60,
            Some(tag::CATEGORY) => 300,
            _ => 900,
        }
    }

    /// What any matching paper must carry: a list of clauses, each a set of keys of which
    /// the paper holds at least one. AND joins its children's clauses, an OR needs every
    /// branch to require something and yields one clause, and NOT requires nothing.
    fn clauses(&self, node: &Node) -> Vec<Clause> {
        match node {
            Node::Term(Term {
                field,
                kind: TermKind::Phrase(ws),
            }) => ws
                .iter()
                .map(|w| self.clause(vec![term_key(*field, &TermKind::Word(w.clone()))]))
                .collect(),
            Node::Term(term) => vec![self.clause(vec![term_key(term.field, &term.kind)])],
            Node::And(items) => items.iter().flat_map(|n| self.clauses(n)).collect(),
            Node::Or(items) => {
                let mut keys = Vec::new();
                for item in items {
                    let Some(best) = self.clauses(item).into_iter().min_by_key(|c| c.cost) else {
                        return Vec::new();
                    };
                    keys.extend(best.keys);
                }
                keys.sort();
                keys.dedup();
                vec![self.clause(keys)]
            }
            Node::Not(_) => Vec::new(),
        }
    }

    fn clause(&self, keys: Vec<String>) -> Clause {
        let cost = keys.iter().map(|k| self.cost(k)).sum();
        Clause { keys, cost }
    }
}

/// Keys of which a matching paper carries at least one.
#[derive(Debug, Clone)]
struct Clause {
    keys: Vec<String>,
    cost: u64,
}

/// A word that a key decides on its own: a paper carrying the key contains the word.
fn decided_by_key(node: &Node) -> bool {
    matches!(
        node,
        Node::Term(Term {
            field: Field::Text | Field::Author | Field::Category,
            kind: TermKind::Word(_),
        })
    )
}

/// Whether carrying the keys of every clause is the same as matching: true for a word,
/// and for an AND or an OR of such words.
fn decided_by_clauses(node: &Node) -> bool {
    match node {
        Node::And(items) | Node::Or(items) => items.iter().all(decided_by_key),
        other => decided_by_key(other),
    }
}

struct Slot {
    query: Query,
    /// Key ids of the clause the query is filed under.
    anchor: Vec<u32>,
    holders: u32,
}

/// What matching reads for each query, kept apart from the cold [`Slot`] so the hot loop
/// touches little memory.
#[derive(Default)]
struct Check {
    /// Key ids of the other required clauses, checked against the paper's keys first.
    filters: Box<[Box<[u32]>]>,
    /// Passing the clauses is matching: no verification needed.
    decided: bool,
}

/// Set in a posting when the query is one key-decided word: its paper matches outright.
const OUTRIGHT: u32 = 1 << 31;

/// The compiled queries of every active reader.
#[derive(Default)]
pub struct Percolator {
    slots: Vec<Option<Slot>>,
    checks: Vec<Check>,
    free: Vec<u32>,
    by_canonical: FxHashMap<Box<str>, u32>,
    /// Key string → key id; ids index `postings`.
    keys: FxHashMap<Box<str>, u32>,
    postings: Vec<Vec<u32>>,
    subscribers: FxHashMap<SubscriberId, Vec<u32>>,
    stats: TermStats,
}

/// One reader's matches in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriberMatches {
    pub subscriber: SubscriberId,
    /// Matching papers (indexes into the batch, ascending), each with bit `i` set when the
    /// `i`-th query given to [`Percolator::set_reader`] matched it. Callers explain matches
    /// with their own copy of the reader's queries, in the reader's own wording.
    pub papers: Vec<(u32, QueryMask)>,
}

/// Bit `i` stands for the reader's query `i` (a reader holds at most 20).
pub type QueryMask = u32;

/// What a batch produced, per distinct query.
pub struct BatchMatches {
    /// Papers matched by query `q`: `papers[offsets[q]..offsets[q + 1]]`, ascending.
    offsets: Vec<u32>,
    papers: Vec<u32>,
    /// Queries fully checked against a paper: they shared a key with it and passed the
    /// pre-check of their other required keys.
    pub candidates_verified: u64,
    /// (distinct query, paper) pairs that matched.
    pub query_matches: u64,
}

impl BatchMatches {
    fn of_query(&self, q: u32) -> &[u32] {
        match (
            self.offsets.get(q as usize),
            self.offsets.get(q as usize + 1),
        ) {
            (Some(&a), Some(&b)) => &self.papers[a as usize..b as usize],
            _ => &[],
        }
    }
}

/// One thread's share of a batch: (query, paper) pairs and counters.
struct Partial {
    pairs: Vec<(u32, u32)>,
    verified: u64,
}

/// How many threads to split work into; small jobs stay on one.
fn threads_for(items: usize, min_per_thread: usize) -> usize {
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1);
    cores.min(items / min_per_thread.max(1)).max(1)
}

impl Percolator {
    pub fn new() -> Percolator {
        Percolator::default()
    }

    /// An index that files queries by how common their keys were in `stats`' sample.
    pub fn with_stats(stats: TermStats) -> Percolator {
        Percolator {
            stats,
            ..Percolator::default()
        }
    }

    /// Distinct compiled queries.
    pub fn query_count(&self) -> usize {
        self.by_canonical.len()
    }

    /// Sets a reader's queries (a new reader, or an edit); an empty list removes them.
    pub fn set_subscriber<'q>(
        &mut self,
        subscriber: SubscriberId,
        queries: impl IntoIterator<Item = &'q Query>,
    ) {
        self.remove_subscriber(subscriber);
        // One id per query given, repeats included, so that mask bit `i` is the caller's
        // query `i`; the shared copy is counted once per holding.
        let ids: Vec<u32> = queries.into_iter().map(|q| self.acquire(q)).collect();
        if !ids.is_empty() {
            self.subscribers.insert(subscriber, ids);
        }
    }

    pub fn remove_subscriber(&mut self, subscriber: SubscriberId) {
        if let Some(ids) = self.subscribers.remove(&subscriber) {
            for id in ids {
                self.release(id);
            }
        }
    }

    fn key_id(&mut self, key: &str) -> u32 {
        if let Some(&id) = self.keys.get(key) {
            return id;
        }
        let id = self.postings.len() as u32;
        self.postings.push(Vec::new());
        self.keys.insert(key.into(), id);
        id
    }

    fn acquire(&mut self, query: &Query) -> u32 {
        if let Some(&id) = self.by_canonical.get(query.canonical()) {
            if let Some(slot) = self.slots[id as usize].as_mut() {
                slot.holders += 1;
            }
            return id;
        }
        // Accepted queries always require a key (the parser refuses exclusion-only ones).
        let mut clauses = self.stats.clauses(query.root());
        clauses.sort_by_key(|c| c.cost);
        let mut clauses = clauses
            .into_iter()
            .map(|c| c.keys.iter().map(|k| self.key_id(k)).collect::<Vec<u32>>());
        let anchor = clauses.next().unwrap_or_default();
        let filters: Box<[Box<[u32]>]> = clauses.map(Vec::into_boxed_slice).collect();
        let decided = decided_by_clauses(query.root());
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(None);
                self.checks.push(Check::default());
                (self.slots.len() - 1) as u32
            }
        };
        let posting = if decided && filters.is_empty() {
            id | OUTRIGHT
        } else {
            id
        };
        for &k in &anchor {
            self.postings[k as usize].push(posting);
        }
        self.checks[id as usize] = Check { filters, decided };
        self.slots[id as usize] = Some(Slot {
            query: query.clone(),
            anchor,
            holders: 1,
        });
        self.by_canonical.insert(query.canonical().into(), id);
        id
    }

    fn release(&mut self, id: u32) {
        let Some(slot) = self.slots.get_mut(id as usize).and_then(Option::as_mut) else {
            return;
        };
        slot.holders -= 1;
        if slot.holders > 0 {
            return;
        }
        let Some(slot) = self.slots[id as usize].take() else {
            return;
        };
        for &k in &slot.anchor {
            self.postings[k as usize].retain(|&q| q & !OUTRIGHT != id);
        }
        self.checks[id as usize] = Check::default();
        self.by_canonical.remove(slot.query.canonical());
        self.free.push(id);
    }

    /// Matches every paper of a batch against every compiled query, on every core.
    pub fn match_batch(&self, docs: &[Doc]) -> BatchMatches {
        let threads = threads_for(docs.len(), 64);
        let chunk = docs.len().div_ceil(threads).max(1);
        let partials: Vec<Partial> = std::thread::scope(|scope| {
            let handles: Vec<_> = docs
                .chunks(chunk)
                .enumerate()
                .map(|(i, part)| scope.spawn(move || self.match_docs(part, (i * chunk) as u32)))
                .collect();
            handles
                .into_iter()
                .map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        // Counting sort of the pairs by query: papers stay ascending within a query.
        let mut offsets = vec![0u32; self.slots.len() + 1];
        for p in &partials {
            for &(q, _) in &p.pairs {
                offsets[q as usize + 1] += 1;
            }
        }
        for i in 1..offsets.len() {
            offsets[i] += offsets[i - 1];
        }
        let total = offsets.last().copied().unwrap_or(0) as usize;
        let mut papers = vec![0u32; total];
        let mut next = offsets.clone();
        for p in &partials {
            for &(q, d) in &p.pairs {
                papers[next[q as usize] as usize] = d;
                next[q as usize] += 1;
            }
        }
        BatchMatches {
            offsets,
            papers,
            candidates_verified: partials.iter().map(|p| p.verified).sum(),
            query_matches: total as u64,
        }
    }

    /// Matches `docs`, whose first paper has index `first` in the batch.
    fn match_docs(&self, docs: &[Doc], first: u32) -> Partial {
        let mut seen: Vec<u32> = vec![u32::MAX; self.slots.len()];
        // The paper (index) that last carried each key.
        let mut carried: Vec<u32> = vec![u32::MAX; self.postings.len()];
        let mut doc_keys: Vec<u32> = Vec::new();
        let mut buf = String::new();
        let mut out = Partial {
            pairs: Vec::new(),
            verified: 0,
        };
        for (i, doc) in docs.iter().enumerate() {
            let d = first + i as u32;
            doc_keys.clear();
            for_each_doc_key(doc, &mut buf, |k| {
                if let Some(&id) = self.keys.get(k)
                    && carried[id as usize] != d
                {
                    carried[id as usize] = d;
                    doc_keys.push(id);
                }
            });
            let evidence = Indexed(doc);
            for &k in &doc_keys {
                for &posting in &self.postings[k as usize] {
                    let q = posting & !OUTRIGHT;
                    if seen[q as usize] == d {
                        continue;
                    }
                    seen[q as usize] = d;
                    if posting & OUTRIGHT != 0 {
                        out.verified += 1;
                        out.pairs.push((q, d));
                        continue;
                    }
                    let check = &self.checks[q as usize];
                    // Cheap pre-check: every other required clause must have a key here.
                    let passes = check
                        .filters
                        .iter()
                        .all(|c| c.iter().any(|&k| carried[k as usize] == d));
                    if !passes {
                        continue;
                    }
                    out.verified += 1;
                    let matches = check.decided
                        || self.slots[q as usize]
                            .as_ref()
                            .is_some_and(|slot| eval(slot.query.root(), &evidence));
                    if matches {
                        out.pairs.push((q, d));
                    }
                }
            }
        }
        out
    }

    /// Turns per-query matches into per-reader matches (readers with none are left out),
    /// ordered by reader id.
    pub fn subscribers_matching(&self, batch: &BatchMatches) -> Vec<SubscriberMatches> {
        let subscribers: Vec<(&SubscriberId, &Vec<u32>)> = self.subscribers.iter().collect();
        let threads = threads_for(subscribers.len(), 10_000);
        let chunk = subscribers.len().div_ceil(threads).max(1);
        let mut out: Vec<SubscriberMatches> = std::thread::scope(|scope| {
            let handles: Vec<_> = subscribers
                .chunks(chunk)
                .map(|part| {
                    scope.spawn(move || {
                        part.iter()
                            .filter_map(|(r, ids)| subscriber_matches(**r, ids, batch))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().unwrap_or_else(|e| std::panic::resume_unwind(e)))
                .collect()
        });
        out.sort_unstable_by_key(|r| r.subscriber);
        out
    }
}

fn subscriber_matches(
    subscriber: SubscriberId,
    ids: &[u32],
    batch: &BatchMatches,
) -> Option<SubscriberMatches> {
    let mut papers: Vec<(u32, QueryMask)> = Vec::new();
    for (i, &q) in ids.iter().enumerate().take(QueryMask::BITS as usize) {
        papers.extend(batch.of_query(q).iter().map(|&p| (p, 1 << i)));
    }
    if papers.is_empty() {
        return None;
    }
    papers.sort_unstable_by_key(|&(p, _)| p);
    papers.dedup_by(|next, kept| {
        let same = next.0 == kept.0;
        if same {
            kept.1 |= next.1;
        }
        same
    });
    Some(SubscriberMatches { subscriber, papers })
}
