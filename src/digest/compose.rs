//! Composing digests: for each due reader, the papers of their window that match their
//! queries, ranked by the matching engine; for a reader without queries, the window's most
//! popular papers. Pure computation over papers and readers handed in.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use crate::matching::{BatchStats, Doc, Percolator, Query, TermStats, rank};
use crate::store::{DigestEntry, StoredPaper, Subscriber};

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

/// Composes the digests of `readers` for the window ending at `at`, over `papers` (each
/// with how many feeds carried it), which must hold every paper with an id above the
/// lowest reader cursor up to `upto`.
pub fn compose(
    readers: &[Subscriber],
    papers: &[(StoredPaper, i64)],
    upto: i64,
    at: DateTime<Utc>,
) -> Vec<Composed> {
    let docs: Vec<Doc> = papers
        .iter()
        .map(|(p, _)| Doc::from_paper(&p.paper))
        .collect();
    let stats = BatchStats::new(&docs);
    let compiled: Vec<Vec<Query>> = readers
        .iter()
        .map(|r| r.preferences.queries.compile())
        .collect();
    // Queries are filed under their rarest key in this very batch, so each paper looks at
    // as few candidate queries as possible.
    let mut percolator = Percolator::with_stats(TermStats::from_docs(&docs));
    for (i, queries) in compiled.iter().enumerate() {
        if !queries.is_empty() {
            percolator.set_reader(i as i64, queries.iter());
        }
    }
    let batch = percolator.match_batch(&docs);
    let mut matches: Vec<Vec<(u32, u32)>> = vec![Vec::new(); readers.len()];
    for m in percolator.readers_matching(&batch) {
        if let Some(slot) = usize::try_from(m.reader)
            .ok()
            .and_then(|i| matches.get_mut(i))
        {
            *slot = m.papers;
        }
    }
    // A query's share of a paper's score, shared by the readers who hold that query.
    let mut shares: HashMap<(&str, usize), rank::QueryScore> = HashMap::new();
    readers
        .iter()
        .enumerate()
        .map(|(i, reader)| {
            let fresh = |idx: usize| papers[idx].0.id > reader.paper_cursor;
            let (entries, trending) = if compiled[i].is_empty() {
                (trending_entries(papers, &fresh), true)
            } else {
                let mut scored: Vec<(usize, rank::Scored)> = matches[i]
                    .iter()
                    .map(|&(idx, mask)| (idx as usize, mask))
                    .filter(|&(idx, _)| fresh(idx))
                    .map(|(idx, mask)| {
                        let parts: Vec<rank::QueryScore> = compiled[i]
                            .iter()
                            .enumerate()
                            .filter(|(q, _)| mask & (1 << q) != 0)
                            .map(|(_, q)| {
                                shares
                                    .entry((q.text(), idx))
                                    .or_insert_with(|| rank::query_score(q, &docs[idx], &stats))
                                    .clone()
                            })
                            .collect();
                        if shares.len() > SHARES_KEPT {
                            shares.clear();
                        }
                        let paper = &papers[idx].0.paper;
                        (idx, rank::combine(&parts, paper.upvotes))
                    })
                    .collect();
                scored.sort_by(|(a, sa), (b, sb)| {
                    rank::compare(
                        (
                            sa.score,
                            papers[*a].0.paper.upvotes,
                            papers[*a].0.paper.key.as_str(),
                        ),
                        (
                            sb.score,
                            papers[*b].0.paper.upvotes,
                            papers[*b].0.paper.key.as_str(),
                        ),
                    )
                });
                let entries = scored
                    .into_iter()
                    .map(|(idx, s)| DigestEntry {
                        paper_id: papers[idx].0.id,
                        score: s.score,
                        explanation: s.explanation,
                    })
                    .collect();
                (entries, false)
            };
            Composed {
                subscriber: reader.clone(),
                window_start: window_start(reader),
                window_end: at,
                papers_after: reader.paper_cursor,
                papers_upto: upto.max(reader.paper_cursor),
                entries,
                trending,
            }
        })
        .collect()
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
