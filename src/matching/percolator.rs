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

    /// The keys that any paper matching `term` must carry one of (one key, in fact).
    fn of_term(term: &Term, stats: &TermStats) -> Key {
        let word_key = |w: &str| match term.field {
            Field::Author => Key::Author(w.into()),
            Field::Category => Key::Category(w.into()),
            _ => Key::Text(w.into()),
        };
        match &term.kind {
            TermKind::Word(w) => word_key(w),
            // Every word of a phrase is required: file it under the rarest.
            TermKind::Phrase(ws) => ws
                .iter()
                .map(|w| word_key(w))
                .min_by_key(|k| stats.cost(k))
                .unwrap_or_else(|| word_key("")),
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

    /// The keys under which `node` is filed, and their summed cost: for AND the cheapest
    /// child, for OR every child, and nothing for NOT (it cannot require a key).
    fn anchors(&self, node: &Node) -> Option<(Vec<Key>, u64)> {
        match node {
            Node::Term(term) => {
                let key = Key::of_term(term, self);
                let cost = self.cost(&key);
                Some((vec![key], cost))
            }
            Node::And(items) => items
                .iter()
                .filter_map(|n| self.anchors(n))
                .min_by_key(|(_, cost)| *cost),
            Node::Or(items) => {
                let mut keys = Vec::new();
                let mut cost = 0;
                for item in items {
                    let (k, c) = self.anchors(item)?;
                    keys.extend(k);
                    cost += c;
                }
                let mut seen = HashSet::new();
                keys.retain(|k| seen.insert(k.clone()));
                Some((keys, cost))
            }
            Node::Not(_) => None,
        }
    }
}

struct Slot {
    query: Query,
    anchors: Vec<Key>,
    holders: u32,
}

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
    /// Matching papers (indexes into the batch), each with the indexes of the reader's
    /// queries that matched it.
    pub papers: Vec<(u32, Vec<u16>)>,
}

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
    pub fn set_reader(&mut self, reader: ReaderId, queries: &[Query]) {
        self.remove_reader(reader);
        if queries.is_empty() {
            return;
        }
        let mut ids: Vec<u32> = Vec::with_capacity(queries.len());
        for q in queries {
            let id = self.acquire(q);
            if ids.contains(&id) {
                // The same query twice: hold it once.
                self.release(id);
            } else {
                ids.push(id);
            }
        }
        self.readers.insert(reader, ids);
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
        let canonical = query.canonical();
        if let Some(&id) = self.by_canonical.get(&canonical) {
            if let Some(slot) = self.slots[id as usize].as_mut() {
                slot.holders += 1;
            }
            return id;
        }
        // Accepted queries always require a key (the parser refuses exclusion-only ones).
        let anchors = self
            .stats
            .anchors(query.root())
            .map(|(k, _)| k)
            .unwrap_or_default();
        let id = match self.free.pop() {
            Some(id) => id,
            None => {
                self.slots.push(None);
                (self.slots.len() - 1) as u32
            }
        };
        for key in &anchors {
            self.postings.entry(key.clone()).or_default().push(id);
        }
        self.slots[id as usize] = Some(Slot {
            query: query.clone(),
            anchors,
            holders: 1,
        });
        self.by_canonical.insert(canonical, id);
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
        for key in &slot.anchors {
            if let Some(list) = self.postings.get_mut(key) {
                list.retain(|&q| q != id);
                if list.is_empty() {
                    self.postings.remove(key);
                }
            }
        }
        self.by_canonical.remove(&slot.query.canonical());
        self.free.push(id);
    }

    /// Matches every paper of a batch against every compiled query.
    pub fn match_batch(&self, docs: &[Doc]) -> BatchMatches {
        let mut per_query: Vec<Vec<u32>> = vec![Vec::new(); self.slots.len()];
        let mut seen: Vec<u32> = vec![u32::MAX; self.slots.len()];
        let mut candidates: Vec<u32> = Vec::new();
        let mut verified = 0u64;
        let mut matched = 0u64;
        for (d, doc) in docs.iter().enumerate() {
            let d = d as u32;
            candidates.clear();
            for key in Key::of_doc(doc) {
                if let Some(list) = self.postings.get(&key) {
                    for &q in list {
                        if seen[q as usize] != d {
                            seen[q as usize] = d;
                            candidates.push(q);
                        }
                    }
                }
            }
            let evidence = Indexed(doc);
            for &q in &candidates {
                let Some(slot) = self.slots[q as usize].as_ref() else {
                    continue;
                };
                verified += 1;
                if eval(slot.query.root(), &evidence) {
                    matched += 1;
                    per_query[q as usize].push(d);
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
        let mut hits: Vec<(u32, u16)> = Vec::new();
        for (&reader, ids) in &self.readers {
            hits.clear();
            for (i, &q) in ids.iter().enumerate() {
                if let Some(papers) = batch.per_query.get(q as usize) {
                    hits.extend(papers.iter().map(|&p| (p, i as u16)));
                }
            }
            if hits.is_empty() {
                continue;
            }
            hits.sort_unstable();
            let mut papers: Vec<(u32, Vec<u16>)> = Vec::new();
            for &(p, qi) in &hits {
                match papers.last_mut() {
                    Some((last, qs)) if *last == p => qs.push(qi),
                    _ => papers.push((p, vec![qi])),
                }
            }
            out.push(ReaderMatches { reader, papers });
        }
        out.sort_unstable_by_key(|r| r.reader);
        out
    }
}
