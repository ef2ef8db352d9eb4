//! Composing digests: for each due subscriber, the papers of their window that match their
//! queries, ranked by the matching engine with fair shares across queries and the
//! reader's learned taste blended in, then up to 3 suggestions from that taste; for a
//! subscriber without queries, the window's most popular papers. Pure computation over
//! papers, subscribers and tastes handed in.

use std::sync::OnceLock;

use rustc_hash::{FxHashMap, FxHashSet};

use chrono::{DateTime, Utc};

use crate::domain::{Subscriber, TasteNote};
use crate::matching::rank::{self, TASTE_WEIGHT};
use crate::matching::taste::{SUGGEST_AFTER, Similarity, Taste, TasteIndex};
use crate::matching::{BatchStats, Doc, Percolator, Query, TermStats};
use crate::store::{DigestEntry, StoredPaper};

/// How many query-paper shares of a score are kept for reuse before starting afresh.
const SHARES_KEPT: usize = 200_000;

/// How many papers a trending digest keeps (its archive page shows them all).
pub const TRENDING_KEEP: usize = 100;

/// How many "You might also like" papers a digest suggests, at most.
pub const SUGGESTIONS: usize = 3;

/// The least similarity to the taste for a paper to be suggested.
const SUGGEST_FROM: f32 = 0.05;

/// The least move (in steps of the ranking) for the taste to be named in an explanation.
const NOTE_FROM: f64 = 0.25;

/// The learned tastes of the readers being composed, with the key and title of each
/// rated paper a taste names (to say "like 'Title'").
#[derive(Debug, Default)]
pub struct Tastes {
    by_subscriber: FxHashMap<i64, Taste>,
    titles: FxHashMap<i64, (String, String)>,
}

impl Tastes {
    pub fn new(
        tastes: impl IntoIterator<Item = (i64, Taste)>,
        titles: impl IntoIterator<Item = (i64, String, String)>,
    ) -> Tastes {
        Tastes {
            by_subscriber: tastes.into_iter().collect(),
            titles: titles
                .into_iter()
                .map(|(id, key, title)| (id, (key, title)))
                .collect(),
        }
    }

    /// The note for a paper the taste moved by `moved` steps, naming the rated paper it is
    /// most like; `None` when it moved too little to say, or the paper cannot be named.
    fn note(&self, taste: &Taste, index: &TasteIndex, doc: u32, moved: f64) -> Option<TasteNote> {
        if moved.abs() < NOTE_FROM {
            return None;
        }
        let up = moved > 0.0;
        let id = index.most_like(taste, doc, up)?;
        let (key, title) = self.titles.get(&id)?;
        Some(TasteNote {
            up,
            like_key: key.clone(),
            like_title: title.clone(),
        })
    }
}

/// One reader's taste, ready for their window.
struct Steer<'a> {
    tastes: &'a Tastes,
    taste: &'a Taste,
    index: &'a TasteIndex,
    similarity: Similarity,
}
/// One reader's digest for one window, not yet stored.
#[derive(Debug, Clone)]
pub struct Composed {
    pub subscriber: Subscriber,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub papers_after: i64,
    pub papers_upto: i64,
    /// Every match, the emailed ones first, then the suggestions.
    pub entries: Vec<DigestEntry>,
    pub trending: bool,
    /// How many new papers each of the reader's queries matched, in their order.
    pub per_query: Vec<(String, usize)>,
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
    /// Built the first time a reader with a taste is composed.
    taste_index: OnceLock<TasteIndex>,
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
            taste_index: OnceLock::new(),
        }
    }

    fn taste_index(&self) -> &TasteIndex {
        self.taste_index.get_or_init(|| TasteIndex::new(&self.docs))
    }

    pub fn papers(&self) -> &[(StoredPaper, i64)] {
        &self.papers
    }
}

/// Composes the digests of `subscribers` for the window ending at `at`, over the papers
/// of `window`, steered by their `tastes`.
pub fn compose(
    subscribers: &[Subscriber],
    window: &Window,
    tastes: &Tastes,
    at: DateTime<Utc>,
) -> Vec<Composed> {
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
            // A trending digest is ranked by popularity alone: no taste to weigh.
            let taste = tastes
                .by_subscriber
                .get(&subscriber.id)
                .filter(|_| !trending);
            let steer = taste.map(|taste| {
                let index = window.taste_index();
                Steer {
                    tastes,
                    taste,
                    index,
                    similarity: index.similarity(taste),
                }
            });
            let entries = if trending {
                trending_entries(&window.papers, &fresh)
            } else {
                let shown = usize::from(subscriber.preferences.max_papers.get());
                let mut entries = ranked_entries(
                    queries,
                    matches,
                    window,
                    &fresh,
                    shown,
                    steer.as_ref(),
                    &mut shares,
                );
                if let Some(steer) = &steer
                    && subscriber.preferences.layout.suggestions
                    && steer.taste.more() >= SUGGEST_AFTER
                    && !entries.is_empty()
                {
                    entries.extend(suggestions(matches, window, &fresh, steer));
                }
                entries
            };
            Composed {
                subscriber: subscriber.clone(),
                window_start: window_start(subscriber),
                window_end: at,
                papers_after: subscriber.paper_cursor,
                papers_upto: window.upto.max(subscriber.paper_cursor),
                entries,
                trending,
                per_query: per_query(queries, matches, &fresh),
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

/// A new match of a reader: the paper's index, its query mask, and each matching query's
/// place in the reader's list with its share of the score.
type Found = (usize, u32, Vec<(usize, rank::QueryScore)>);

/// One subscriber's matches that are new to them, the email's choice first (fair shares
/// across queries, see [`rank::fair_shares`]), then the rest best first; the emailed ones
/// are highlighted now, the archive page highlights the rest when it is opened.
fn ranked_entries<'q>(
    queries: &'q [Query],
    matches: &[(u32, u32)],
    window: &Window,
    fresh: &dyn Fn(usize) -> bool,
    shown: usize,
    steer: Option<&Steer<'_>>,
    shares: &mut Shares<'q>,
) -> Vec<DigestEntry> {
    let papers = &window.papers;
    let mut found: Vec<Found> = matches
        .iter()
        .map(|&(idx, mask)| (idx as usize, mask))
        .filter(|&(idx, _)| fresh(idx))
        .map(|(idx, mask)| {
            let parts = matched(queries, mask)
                .map(|(q, query)| {
                    let part = shares
                        .entry((query.text(), idx))
                        .or_insert_with(|| {
                            rank::query_score(query, &window.docs[idx], &window.stats)
                        })
                        .clone();
                    (q, part)
                })
                .collect();
            if shares.len() > SHARES_KEPT {
                shares.clear();
            }
            (idx, mask, parts)
        })
        .collect();
    // A stable order first, so ties never depend on the order papers arrived in.
    found.sort_by(|a, b| {
        papers[a.0]
            .0
            .paper
            .key
            .as_str()
            .cmp(papers[b.0].0.paper.key.as_str())
    });
    let similarity = |idx: usize| steer.map_or(0.0, |s| s.similarity.of(idx as u32));
    let candidates: Vec<rank::Candidate> = found
        .iter()
        .map(|(idx, _, parts)| {
            let upvotes = papers[*idx].0.paper.upvotes;
            rank::Candidate {
                values: parts
                    .iter()
                    .map(|(q, part)| (*q, part.value(upvotes, similarity(*idx))))
                    .collect(),
            }
        })
        .collect();
    rank::fair_shares(&candidates, shown)
        .into_iter()
        .enumerate()
        .map(|(place, (c, won_by))| {
            let (idx, mask, parts) = &found[c];
            let mut explanation = rank::explain(parts.iter().map(|(_, p)| p));
            if place < shown {
                rank::highlight(
                    &mut explanation,
                    matched(queries, *mask).map(|(_, q)| q),
                    &window.docs[*idx],
                );
                explanation.won_by = won_by.map(|q| queries[q].text().to_string());
                explanation.taste = steer.and_then(|s| {
                    let moved = TASTE_WEIGHT * f64::from(similarity(*idx));
                    s.tastes.note(s.taste, s.index, *idx as u32, moved)
                });
            }
            DigestEntry {
                paper_id: papers[*idx].0.id,
                score: candidates[c].value(),
                explanation,
                suggested: false,
            }
        })
        .collect()
}

/// Up to [`SUGGESTIONS`] new papers of the window that none of the reader's queries
/// matched, most like their taste first.
fn suggestions(
    matches: &[(u32, u32)],
    window: &Window,
    fresh: &dyn Fn(usize) -> bool,
    steer: &Steer<'_>,
) -> Vec<DigestEntry> {
    let matched: FxHashSet<u32> = matches.iter().map(|&(idx, _)| idx).collect();
    steer
        .similarity
        .best(
            |d| !matched.contains(&d) && fresh(d as usize),
            SUGGESTIONS * 4,
        )
        .into_iter()
        .filter(|&(_, s)| s >= SUGGEST_FROM)
        .filter_map(|(d, s)| {
            let note = steer.tastes.note(steer.taste, steer.index, d, f64::MAX)?;
            Some(DigestEntry {
                paper_id: window.papers[d as usize].0.id,
                score: f64::from(s),
                explanation: crate::domain::Explanation {
                    taste: Some(note),
                    ..Default::default()
                },
                suggested: true,
            })
        })
        .take(SUGGESTIONS)
        .collect()
}

/// How many of the new papers each query matched.
fn per_query(
    queries: &[Query],
    matches: &[(u32, u32)],
    fresh: &dyn Fn(usize) -> bool,
) -> Vec<(String, usize)> {
    queries
        .iter()
        .enumerate()
        .map(|(q, query)| {
            let n = matches
                .iter()
                .filter(|&&(idx, mask)| mask & (1 << q) != 0 && fresh(idx as usize))
                .count();
            (query.text().to_string(), n)
        })
        .collect()
}

/// The queries of a reader whose bits are set in `mask`, with their places in the list.
fn matched(queries: &[Query], mask: u32) -> impl Iterator<Item = (usize, &Query)> {
    queries
        .iter()
        .enumerate()
        .filter(move |(q, _)| mask & (1 << q) != 0)
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
            suggested: false,
        })
        .collect()
}
