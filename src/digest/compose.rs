//! Composing digests: for each due subscriber, the papers of their window that match their
//! queries, ranked by the matching engine; for a subscriber without queries, the window's
//! most popular papers. Pure computation over papers and subscribers handed in.

use rustc_hash::FxHashMap;

use chrono::{DateTime, Utc};

use crate::domain::Subscriber;
use crate::matching::{BatchStats, Doc, Percolator, Query, TermStats, rank};
use crate::store::{DigestEntry, StoredPaper};

/// How many query-paper shares of a score are kept for reuse before starting afresh.
const SHARES_KEPT: usize = 200_000;

/// How many papers a trending digest keeps (its archive page shows them all).
pub const TRENDING_KEEP: usize = 100;

/// One reader's digest for one window, not yet stored.
#[derive(Debug, Clone)]
pub struct Composed {
    pub subscriber: Subscriber,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub papers_after: i64,
    pub papers_upto: i64,
    /// Every match, best first.
    pub entries: Vec<DigestEntry>,
    pub trending: bool,
}

/// Where a reader's current window starts: the end of the last one, or confirmation.
pub fn window_start(s: &Subscriber) -> DateTime<Utc> {
    s.last_window_end.or(s.confirmed_at).unwrap_or(s.created_at)
}

/// The papers of a run, analysed once for every slice of readers composed over them:
/// each paper with how many feeds carried it, its analysed text, and the batch's word
/// statistics for ranking and for filing queries.
pub struct Window {
    papers: Vec<(StoredPaper, i64)>,
    docs: Vec<Doc>,
    stats: BatchStats,
    terms: TermStats,
    upto: i64,
}

impl Window {
    /// `papers` must hold every paper with an id above the lowest cursor of the readers
    /// to be composed, up to `upto`.
    pub fn new(papers: Vec<(StoredPaper, i64)>, upto: i64) -> Window {
        let docs: Vec<Doc> = papers
            .iter()
            .map(|(p, _)| Doc::from_paper(&p.paper))
            .collect();
        let stats = BatchStats::new(&docs);
        let terms = TermStats::from_docs(&docs);
        Window {
            papers,
            docs,
            stats,
            terms,
            upto,
        }
    }

    pub fn papers(&self) -> &[(StoredPaper, i64)] {
        &self.papers
    }
}

/// Composes the digests of `subscribers` for the window ending at `at`, over the papers
/// of `window`.
pub fn compose(subscribers: &[Subscriber], window: &Window, at: DateTime<Utc>) -> Vec<Composed> {
    let compiled: Vec<Vec<Query>> = subscribers
        .iter()
        .map(|s| s.preferences.queries.compile())
        .collect();
    let matches = percolate(&compiled, window);
    // A query's share of a paper's score, shared by the subscribers who hold that query.
    let mut shares = Shares::default();
    subscribers
        .iter()
        .zip(compiled.iter().zip(&matches))
        .map(|(subscriber, (queries, matches))| {
            let fresh = |idx: usize| window.papers[idx].0.id > subscriber.paper_cursor;
            let trending = queries.is_empty();
            let entries = if trending {
                trending_entries(&window.papers, &fresh)
            } else {
                let shown = usize::from(subscriber.preferences.max_papers.get());
                ranked_entries(queries, matches, window, &fresh, shown, &mut shares)
            };
            Composed {
                subscriber: subscriber.clone(),
                window_start: window_start(subscriber),
                window_end: at,
                papers_after: subscriber.paper_cursor,
                papers_upto: window.upto.max(subscriber.paper_cursor),
                entries,
                trending,
            }
        })
        .collect()
}

/// A query's share of a paper's score, by query text and paper.
type Shares<'q> = FxHashMap<(&'q str, usize), rank::QueryScore>;

/// Which papers of the window each subscriber's queries match: for each subscriber (in
/// order), the papers' indexes with the mask of the queries that matched.
fn percolate(compiled: &[Vec<Query>], window: &Window) -> Vec<Vec<(u32, u32)>> {
    // Queries are filed under their rarest key in this very batch, so each paper looks at
    // as few candidate queries as possible.
    let mut percolator = Percolator::with_stats(window.terms.clone());
    for (i, queries) in compiled.iter().enumerate() {
        if !queries.is_empty() {
            percolator.set_subscriber(i as i64, queries.iter());
        }
    }
    let batch = percolator.match_batch(&window.docs);
    let mut matches: Vec<Vec<(u32, u32)>> = vec![Vec::new(); compiled.len()];
    for m in percolator.subscribers_matching(&batch) {
        if let Some(slot) = usize::try_from(m.subscriber)
            .ok()
            .and_then(|i| matches.get_mut(i))
        {
            *slot = m.papers;
        }
    }
    matches
}

/// One subscriber's matches that are new to them, scored and ranked best first; the
/// first `shown` (what the email shows) are highlighted now, the archive page highlights
/// the rest when it is opened.
fn ranked_entries<'q>(
    queries: &'q [Query],
    matches: &[(u32, u32)],
    window: &Window,
    fresh: &dyn Fn(usize) -> bool,
    shown: usize,
    shares: &mut Shares<'q>,
) -> Vec<DigestEntry> {
    let papers = &window.papers;
    let mut scored: Vec<(usize, u32, rank::Scored)> = matches
        .iter()
        .map(|&(idx, mask)| (idx as usize, mask))
        .filter(|&(idx, _)| fresh(idx))
        .map(|(idx, mask)| {
            let parts: Vec<rank::QueryScore> = matched(queries, mask)
                .map(|q| {
                    shares
                        .entry((q.text(), idx))
                        .or_insert_with(|| rank::query_score(q, &window.docs[idx], &window.stats))
                        .clone()
                })
                .collect();
            if shares.len() > SHARES_KEPT {
                shares.clear();
            }
            (
                idx,
                mask,
                rank::combine(&parts, papers[idx].0.paper.upvotes),
            )
        })
        .collect();
    let order = |idx: usize, s: &rank::Scored| {
        let paper = &papers[idx].0.paper;
        (s.score, paper.upvotes, paper.key.as_str())
    };
    scored.sort_by(|(a, _, sa), (b, _, sb)| rank::compare(order(*a, sa), order(*b, sb)));
    scored
        .into_iter()
        .enumerate()
        .map(|(place, (idx, mask, mut s))| {
            if place < shown {
                rank::highlight(
                    &mut s.explanation,
                    matched(queries, mask),
                    &window.docs[idx],
                );
            }
            DigestEntry {
                paper_id: papers[idx].0.id,
                score: s.score,
                explanation: s.explanation,
            }
        })
        .collect()
}

/// The queries of a reader whose bits are set in `mask`.
fn matched(queries: &[Query], mask: u32) -> impl Iterator<Item = &Query> {
    queries
        .iter()
        .enumerate()
        .filter(move |(q, _)| mask & (1 << q) != 0)
        .map(|(_, q)| q)
}

/// The window's most popular papers: by upvotes, then by how many feeds carried them,
/// then by key so the order never depends on arrival.
fn trending_entries(
    papers: &[(StoredPaper, i64)],
    fresh: &dyn Fn(usize) -> bool,
) -> Vec<DigestEntry> {
    let mut idx: Vec<usize> = (0..papers.len()).filter(|&i| fresh(i)).collect();
    idx.sort_by(|&a, &b| {
        let (pa, sa) = &papers[a];
        let (pb, sb) = &papers[b];
        pb.paper
            .upvotes
            .unwrap_or(0)
            .cmp(&pa.paper.upvotes.unwrap_or(0))
            .then(sb.cmp(sa))
            .then_with(|| pa.paper.key.as_str().cmp(pb.paper.key.as_str()))
    });
    idx.into_iter()
        .take(TRENDING_KEEP)
        .map(|i| DigestEntry {
            paper_id: papers[i].0.id,
            score: papers[i].0.paper.upvotes.unwrap_or(0) as f64,
            explanation: Default::default(),
        })
        .collect()
}
