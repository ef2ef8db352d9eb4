//! Matching: the percolator index that finds each paper's subscribers, the naive reference
//! evaluator, ranking with fair shares across queries, the learned taste and explanations.
//! Pure computation: it reads papers and queries handed to it and touches no storage or
//! network.

pub mod document;
pub mod eval;
pub mod percolator;
pub mod rank;
pub mod taste;

pub use document::Doc;
pub use eval::naive_matches;
pub use percolator::{
    BatchMatches, Percolator, QueryMask, SubscriberId, SubscriberMatches, TermStats,
};
pub use rank::{BatchStats, Scored};

// The query language lives in `domain`, where a subscriber's queries are checked as they
// enter; it is re-exported here as the language this engine matches.
pub use crate::domain::query::{self, Field, Query, QueryError, QueryListError, parse_lines};
pub use crate::domain::{Explanation, analysis};

use crate::domain::Paper;

/// One paper found by [`search`].
#[derive(Debug, Clone)]
pub struct Hit<'a> {
    pub paper: &'a Paper,
    pub scored: Scored,
}

/// Runs one query over `papers` with the production engine (percolator, ranking,
/// explanation): what `paperboy papers search` shows, best first.
pub fn search<'a>(query: &Query, papers: &'a [Paper]) -> Vec<Hit<'a>> {
    let docs: Vec<Doc> = papers.iter().map(Doc::from_paper).collect();
    let stats = BatchStats::new(&docs);
    ranked(&[query], papers, &docs, &stats)
        .pop()
        .unwrap_or_default()
}

/// Papers analysed once for many queries: [`search`] without analysing the papers again
/// for every query (the live preview of the queries a reader types).
#[derive(Debug, Default)]
pub struct Corpus {
    papers: Vec<Paper>,
    docs: Vec<Doc>,
    stats: BatchStats,
}

impl Corpus {
    pub fn new(papers: Vec<Paper>) -> Corpus {
        let docs: Vec<Doc> = papers.iter().map(Doc::from_paper).collect();
        let stats = BatchStats::new(&docs);
        Corpus {
            papers,
            docs,
            stats,
        }
    }

    /// How many papers it holds.
    pub fn len(&self) -> usize {
        self.papers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.papers.is_empty()
    }

    /// What [`search`] finds for each of `queries` among these papers, best first, in one
    /// pass over the papers.
    pub fn search_each(&self, queries: &[&Query]) -> Vec<Vec<Hit<'_>>> {
        ranked(queries, &self.papers, &self.docs, &self.stats)
    }
}

/// For each query, the papers it matches, scored and ranked best first; `docs` are the
/// analysed `papers`, in the same order, and `stats` their word statistics. Each query is
/// filed in one percolator as a subscriber of its own, so the papers are read once.
fn ranked<'a>(
    queries: &[&Query],
    papers: &'a [Paper],
    docs: &[Doc],
    stats: &BatchStats,
) -> Vec<Vec<Hit<'a>>> {
    let mut percolator = Percolator::new();
    for (i, query) in queries.iter().enumerate() {
        percolator.set_subscriber(i as SubscriberId, [*query]);
    }
    let batch = percolator.match_batch(docs);
    let mut found: Vec<Vec<Hit<'a>>> = vec![Vec::new(); queries.len()];
    for m in percolator.subscribers_matching(&batch) {
        let Some((slot, query)) = usize::try_from(m.subscriber)
            .ok()
            .and_then(|i| Some((found.get_mut(i)?, queries[i])))
        else {
            continue;
        };
        *slot = m
            .papers
            .into_iter()
            .map(|(i, _)| {
                let paper = &papers[i as usize];
                Hit {
                    paper,
                    scored: rank::score(&[query], &docs[i as usize], paper.upvotes, stats),
                }
            })
            .collect();
        slot.sort_by(|a, b| {
            rank::compare(
                (a.scored.score, a.paper.upvotes, a.paper.key.as_str()),
                (b.scored.score, b.paper.upvotes, b.paper.key.as_str()),
            )
        });
    }
    found
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::PaperKey;

    fn paper(key: &str, title: &str, abstract_text: &str, upvotes: Option<i64>) -> Paper {
        let mut p = Paper::new(PaperKey::parse(key).unwrap(), title);
        p.abstract_text = abstract_text.into();
        p.upvotes = upvotes;
        p
    }

    #[test]
    fn a_corpus_finds_and_ranks_exactly_what_search_does() {
        let papers = vec![
            paper("arxiv:2411.00001", "Graph diffusion", "a study", None),
            paper(
                "arxiv:2411.00002",
                "Images",
                "latent diffusion at scale",
                Some(40),
            ),
            paper("arxiv:2411.00003", "Proteins", "nothing related", None),
            paper(
                "arxiv:2411.00004",
                "Diffusion for diffusion",
                "diffusion",
                None,
            ),
        ];
        let corpus = Corpus::new(papers.clone());
        assert_eq!(corpus.len(), 4);
        let texts = [
            "diffusion",
            "title:diffusion",
            "latent OR proteins",
            "zebra",
            "diffusion",
        ];
        let queries: Vec<Query> = texts.iter().map(|q| Query::parse(q).unwrap()).collect();
        let refs: Vec<&Query> = queries.iter().collect();
        let each = corpus.search_each(&refs);
        let keys = |hits: &[Hit<'_>]| -> Vec<(String, f64)> {
            hits.iter()
                .map(|h| (h.paper.key.as_str().to_string(), h.scored.score))
                .collect()
        };
        assert_eq!(each.len(), texts.len());
        for ((q, query), hits) in texts.iter().zip(&queries).zip(&each) {
            assert_eq!(keys(hits), keys(&search(query, &papers)), "{q}");
        }
        assert_eq!(each[0].len(), 3);
        assert!(each[3].is_empty());
    }
}
