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
    let mut percolator = Percolator::new();
    percolator.set_subscriber(0, [query]);
    let batch = percolator.match_batch(&docs);
    let stats = BatchStats::new(&docs);
    let mut hits: Vec<Hit<'a>> = percolator
        .subscribers_matching(&batch)
        .into_iter()
        .flat_map(|r| r.papers)
        .map(|(i, _)| {
            let paper = &papers[i as usize];
            Hit {
                paper,
                scored: rank::score(&[query], &docs[i as usize], paper.upvotes, &stats),
            }
        })
        .collect();
    hits.sort_by(|a, b| {
        rank::compare(
            (a.scored.score, a.paper.upvotes, a.paper.key.as_str()),
            (b.scored.score, b.paper.upvotes, b.paper.key.as_str()),
        )
    });
    hits
}
