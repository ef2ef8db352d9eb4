//! The percolator: every reader's queries compiled into one index, so a batch of papers
//! finds its readers without evaluating every query against every paper.
//!
//! As in Lucene's Monitor, each distinct query is indexed under the keys of its most
//! selective required clause (a word, a category, a 3-letter prefix): any paper that
//! matches the query must carry one of those keys. A paper collects the queries filed under
//! its own keys (the candidates) and only those are verified. Readers who hold the same
//! query share one compiled copy, and a query is verified once per paper however many
//! readers hold it.

use std::collections::{HashMap, HashSet};

use super::document::Doc;
use super::eval::{Indexed, eval};
use super::query::{Field, Node, Query, Term, TermKind};

/// Readers are identified by the store's id.
pub type ReaderId = i64;

/// What a paper offers to the index, and what a query is filed under.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    /// A stem in the title or abstract.
    Text(Box<str>),
    /// The first three letters of a title or abstract word.
    TextPrefix(Box<str>),
    Author(Box<str>),
    AuthorPrefix(Box<str>),
    Category(Box<str>),
    /// The first letter of a category.
    CategoryPrefix(Box<str>),
}

fn head(s: &str, n: usize) -> Box<str> {
    s.chars().take(n).collect::<String>().into_boxed_str()
}

const PREFIX_KEY_CHARS: usize = super::query::MIN_PREFIX;

impl Key {
    /// Every key a paper carries.
    pub fn of_doc(doc: &Doc) -> HashSet<Key> {
        let mut keys = HashSet::new();
        for field in [&doc.title, &doc.abstract_text] {
            for s in &field.stems {
                keys.insert(Key::Text(s.as_str().into()));
            }
            for w in field
                .surface
                .iter()
                .filter(|w| w.chars().count() >= PREFIX_KEY_CHARS)
            {
                keys.insert(Key::TextPrefix(head(w, PREFIX_KEY_CHARS)));
            }
        }
        for author in &doc.authors {
            for w in author {
                keys.insert(Key::Author(w.as_str().into()));
                if w.chars().count() >= PREFIX_KEY_CHARS {
                    keys.insert(Key::AuthorPrefix(head(w, PREFIX_KEY_CHARS)));
                }
            }
        }
        for c in &doc.categories {
            keys.insert(Key::Category(c.as_str().into()));
            keys.insert(Key::CategoryPrefix(head(c, 1)));
        }
        keys
    }

    /// The key that any paper matching a word or prefix `term` must carry.
    fn of_term(term: &Term) -> Key {
        let word_key = |w: &str| match term.field {
            Field::Author => Key::Author(w.into()),
            Field::Category => Key::Category(w.into()),
            _ => Key::Text(w.into()),
        };
        match &term.kind {
            TermKind::Word(w) => word_key(w),
            // Phrases are split into one clause per word by `TermStats::clauses`.
            TermKind::Phrase(ws) => word_key(ws.first().map(String::as_str).unwrap_or_default()),
            TermKind::Prefix(p) => match term.field {
                Field::Author => Key::AuthorPrefix(head(p, PREFIX_KEY_CHARS)),
                Field::Category => Key::CategoryPrefix(head(p, 1)),
                _ => Key::TextPrefix(head(p, PREFIX_KEY_CHARS)),
            },
        }
    }
}

/// How common each key is in a sample of papers (yesterday's, say), so that queries are
/// filed under their rarest required key. Without a sample, rough defaults by kind.
#[derive(Debug, Clone, Default)]
pub struct TermStats {
    papers: u32,
    df: HashMap<Key, u32>,
}

impl TermStats {
    pub fn from_docs<'a>(docs: impl IntoIterator<Item = &'a Doc>) -> TermStats {
        let mut stats = TermStats::default();
        for doc in docs {
            stats.papers += 1;
            for key in Key::of_doc(doc) {
                *stats.df.entry(key).or_default() += 1;
            }
        }
        stats
    }

    /// Expected number of papers carrying `key`, scaled to a thousand papers.
    fn cost(&self, key: &Key) -> u64 {
        if self.papers > 0 {
            let df = u64::from(self.df.get(key).copied().unwrap_or(0));
            return (df * 1000 + 500) / u64::from(self.papers) + 1;
        }
        match key {
            Key::Author(_) => 2,
            Key::Text(w) => 2 + 40 / (w.len() as u64).max(1),
            Key::AuthorPrefix(_) => 20,
            Key::TextPrefix(_) => 60,
            Key::Category(_) => 300,
            Key::CategoryPrefix(_) => 900,
        }
    }

    /// What any matching paper must carry: a list of clauses, each a set of keys of which
    /// the paper holds at least one. AND joins its children's clauses, an OR needs every
    /// branch to require something and yields one clause, and NOT requires nothing.
    fn clauses(&self, node: &Node) -> Vec<Clause> {
        match node {
            Node::Term(term) => match &term.kind {
                // Every word of a phrase is required.
                TermKind::Phrase(ws) => ws
                    .iter()
                    .map(|w| {
                        let word = Term {
                            field: term.field,
                            kind: TermKind::Word(w.clone()),
                        };
                        self.clause(vec![Key::of_term(&word)])
                    })
                    .collect(),
                _ => vec![self.clause(vec![Key::of_term(term)])],
            },
            Node::And(items) => items.iter().flat_map(|n| self.clauses(n)).collect(),
            Node::Or(items) => {
                let mut keys = Vec::new();
                for item in items {
                    let Some(best) = self.clauses(item).into_iter().min_by_key(|c| c.cost) else {
                        return Vec::new();
                    };
                    keys.extend(best.keys);
                }
                let mut seen = HashSet::new();
                keys.retain(|k| seen.insert(k.clone()));
                vec![self.clause(keys)]
            }
            Node::Not(_) => Vec::new(),
        }
    }

    fn clause(&self, keys: Vec<Key>) -> Clause {
        let cost = keys.iter().map(|k| self.cost(k)).sum();
        Clause { keys, cost }
    }
}

/// Keys of which a matching paper carries at least one.
#[derive(Debug, Clone)]
struct Clause {
    keys: Vec<Key>,
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
    /// The clause the query is filed under.
    anchor: Vec<Key>,
    /// The other clauses, checked against the paper's keys before verifying.
    filters: Vec<Vec<Key>>,
    /// Passing the clauses is matching: no verification needed.
    decided: bool,
    holders: u32,
}

/// Set in a posting when the query is one key-decided word: its paper matches outright.
const OUTRIGHT: u32 = 1 << 31;

/// The compiled queries of every active reader.
#[derive(Default)]
pub struct Percolator {
    slots: Vec<Option<Slot>>,
    free: Vec<u32>,
    by_canonical: HashMap<String, u32>,
    postings: HashMap<Key, Vec<u32>>,
    readers: HashMap<ReaderId, Vec<u32>>,
    stats: TermStats,
}

/// One reader's matches in a batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReaderMatches {
    pub reader: ReaderId,
    /// Matching papers (indexes into the batch, ascending), each with a bit set for every
    /// one of the reader's queries (in [`Percolator::reader_queries`] order) that matched.
    pub papers: Vec<(u32, QueryMask)>,
}

/// Bit `i` stands for the reader's query `i` (a reader holds at most 20).
pub type QueryMask = u32;

/// What a batch produced, per distinct query.
pub struct BatchMatches {
    per_query: Vec<Vec<u32>>,
    /// Queries checked against a paper because they shared a key with it.
    pub candidates_verified: u64,
    /// (distinct query, paper) pairs that matched.
    pub query_matches: u64,
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

    pub fn reader_count(&self) -> usize {
        self.readers.len()
    }

    /// Distinct compiled queries.
    pub fn query_count(&self) -> usize {
        self.by_canonical.len()
    }

    /// Sets a reader's queries (a new reader, or an edit); an empty list removes them.
    pub fn set_reader<'q>(
        &mut self,
        reader: ReaderId,
        queries: impl IntoIterator<Item = &'q Query>,
    ) {
        self.remove_reader(reader);
        let mut ids: Vec<u32> = Vec::new();
        for q in queries {
            let id = self.acquire(q);
            if ids.contains(&id) {
                // The same query twice: hold it once.
                self.release(id);
            } else {
                ids.push(id);
            }
        }
        if !ids.is_empty() {
            self.readers.insert(reader, ids);
        }
    }

    pub fn remove_reader(&mut self, reader: ReaderId) {
        if let Some(ids) = self.readers.remove(&reader) {
            for id in ids {
                self.release(id);
            }
        }
    }

    /// The queries a reader holds, in the order given (duplicates dropped).
    pub fn reader_queries(&self, reader: ReaderId) -> Vec<&Query> {
        self.readers
            .get(&reader)
            .map(|ids| ids.iter().filter_map(|&id| self.query(id)).collect())
            .unwrap_or_default()
    }

    fn query(&self, id: u32) -> Option<&Query> {
        self.slots.get(id as usize)?.as_ref().map(|s| &s.query)
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
        let mut clauses = clauses.into_iter().map(|c| c.keys);
        let anchor = clauses.next().unwrap_or_default();
        let filters: Vec<Vec<Key>> = clauses.collect();
        let decided = decided_by_clauses(query.root());
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        let posting = if decided && filters.is_empty() {
            id | OUTRIGHT
        } else {
            id
        };
        for key in &anchor {
            self.postings.entry(key.clone()).or_default().push(posting);
        }
        self.slots[id as usize] = Some(Slot {
            query: query.clone(),
            anchor,
            filters,
            decided,
            holders: 1,
        });
        self.by_canonical.insert(query.canonical().to_string(), id);
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
        for key in &slot.anchor {
            if let Some(list) = self.postings.get_mut(key) {
                list.retain(|&q| q & !OUTRIGHT != id);
                if list.is_empty() {
                    self.postings.remove(key);
                }
            }
        }
        self.by_canonical.remove(slot.query.canonical());
        self.free.push(id);
    }

    /// Matches every paper of a batch against every compiled query.
    pub fn match_batch(&self, docs: &[Doc]) -> BatchMatches {
        let mut per_query: Vec<Vec<u32>> = vec![Vec::new(); self.slots.len()];
        let mut seen: Vec<u32> = vec![u32::MAX; self.slots.len()];
        let mut verified = 0u64;
        let mut matched = 0u64;
        for (d, doc) in docs.iter().enumerate() {
            let d = d as u32;
            let keys = Key::of_doc(doc);
            let evidence = Indexed(doc);
            for key in &keys {
                let Some(list) = self.postings.get(key) else {
                    continue;
                };
                for &posting in list {
                    let q = posting & !OUTRIGHT;
                    if seen[q as usize] == d {
                        continue;
                    }
                    seen[q as usize] = d;
                    if posting & OUTRIGHT != 0 {
                        verified += 1;
                        matched += 1;
                        per_query[q as usize].push(d);
                        continue;
                    }
                    let Some(slot) = self.slots[q as usize].as_ref() else {
                        continue;
                    };
                    // Cheap pre-check: every other required clause must have a key here.
                    if !slot
                        .filters
                        .iter()
                        .all(|c| c.iter().any(|k| keys.contains(k)))
                    {
                        continue;
                    }
                    verified += 1;
                    if slot.decided || eval(slot.query.root(), &evidence) {
                        matched += 1;
                        per_query[q as usize].push(d);
                    }
                }
            }
        }
        BatchMatches {
            per_query,
            candidates_verified: verified,
            query_matches: matched,
        }
    }

    /// Turns per-query matches into per-reader matches (readers with none are left out),
    /// ordered by reader id.
    pub fn readers_matching(&self, batch: &BatchMatches) -> Vec<ReaderMatches> {
        let mut out = Vec::new();
        for (&reader, ids) in &self.readers {
            let mut papers: Vec<(u32, QueryMask)> = Vec::new();
            for (i, &q) in ids.iter().enumerate().take(QueryMask::BITS as usize) {
                if let Some(list) = batch.per_query.get(q as usize) {
                    papers.extend(list.iter().map(|&p| (p, 1 << i)));
                }
            }
            if papers.is_empty() {
                continue;
            }
            papers.sort_unstable_by_key(|&(p, _)| p);
            papers.dedup_by(|next, kept| {
                let same = next.0 == kept.0;
                if same {
                    kept.1 |= next.1;
                }
                same
            });
            out.push(ReaderMatches { reader, papers });
        }
        out.sort_unstable_by_key(|r| r.reader);
        out
    }
}
