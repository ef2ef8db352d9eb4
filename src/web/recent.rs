//! The papers of the last days, analysed once and kept for a few minutes, and what each
//! query line finds among them (how many, and the best few, ranked by the matching
//! engine): the live preview under the queries box and the preferences page.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use serde::Serialize;
use tokio::sync::Mutex;

use super::WebError;
use crate::email::digest::web_link;
use crate::matching::{Corpus, Query, QueryError};
use crate::store::Store;

/// How far back the preview looks.
pub const PREVIEW_DAYS: i64 = 7;
/// How many of the best matching titles a query line shows.
const TOP_TITLES: usize = 3;
/// How long the analysed papers are kept before they are read again.
const KEEP_FOR: Duration = Duration::from_secs(300);
/// Lines previewed at most (a reader keeps at most 20 queries).
const MAX_LINES: usize = 20;

/// The recent papers, analysed, shared by every request for a few minutes.
#[derive(Default)]
pub struct RecentPapers {
    corpus: Mutex<Option<(Instant, Arc<Corpus>)>>,
}

/// One of the best matches of a query line.
#[derive(Debug, Clone, Serialize)]
pub struct TopPaper {
    /// As the feed wrote it: escaped where it is shown.
    pub title: String,
    /// The abstract page, only when it is an http(s) address.
    pub url: Option<String>,
}

/// What one query line finds among the recent papers, or why it is not a query.
#[derive(Debug, Clone, Serialize)]
pub struct LinePreview {
    pub query: String,
    /// The parser's message when the line is not a valid query.
    pub error: Option<String>,
    /// Where in the line the parser stopped (1-based), with `error`.
    pub position: Option<usize>,
    pub matches: usize,
    /// How many recent papers there are in all.
    pub papers: usize,
    pub days: i64,
    /// The best matches, best first.
    pub top: Vec<TopPaper>,
}

impl RecentPapers {
    /// The papers first stored in the last [`PREVIEW_DAYS`] days, analysed.
    async fn corpus(&self, store: &Store) -> Result<Arc<Corpus>, WebError> {
        let mut slot = self.corpus.lock().await;
        if let Some((at, corpus)) = slot.as_ref()
            && at.elapsed() < KEEP_FOR
        {
            return Ok(corpus.clone());
        }
        let since = Utc::now() - chrono::Duration::days(PREVIEW_DAYS);
        let papers: Vec<_> = store
            .list_papers(Some(since))
            .await?
            .into_iter()
            .map(|p| p.paper)
            .collect();
        let corpus = Arc::new(tokio::task::spawn_blocking(move || Corpus::new(papers)).await?);
        *slot = Some((Instant::now(), corpus.clone()));
        Ok(corpus)
    }

    /// What each of `lines` finds, in order.
    pub async fn preview(
        &self,
        store: &Store,
        lines: Vec<String>,
    ) -> Result<Vec<LinePreview>, WebError> {
        if lines.is_empty() {
            return Ok(Vec::new());
        }
        let corpus = self.corpus(store).await?;
        // Matching and ranking are CPU work: off the threads that answer requests.
        Ok(tokio::task::spawn_blocking(move || preview_lines(&corpus, &lines)).await?)
    }
}

/// The query lines of a queries box: each non-empty line, trimmed, at most 20.
pub fn query_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(MAX_LINES)
        .map(str::to_string)
        .collect()
}

/// What each of `lines` finds in `corpus`: the count and the best [`TOP_TITLES`], in the
/// matching engine's order, or the parser's message. The valid lines are matched together,
/// in one pass over the papers.
fn preview_lines(corpus: &Corpus, lines: &[String]) -> Vec<LinePreview> {
    let parsed: Vec<Result<Query, QueryError>> = lines.iter().map(|l| Query::parse(l)).collect();
    let valid: Vec<&Query> = parsed.iter().filter_map(|p| p.as_ref().ok()).collect();
    let mut found = corpus.search_each(&valid).into_iter();
    lines
        .iter()
        .zip(&parsed)
        .map(|(line, parsed)| {
            let mut preview = LinePreview {
                query: line.clone(),
                error: None,
                position: None,
                matches: 0,
                papers: corpus.len(),
                days: PREVIEW_DAYS,
                top: Vec::new(),
            };
            match parsed {
                Err(e) => {
                    preview.error = Some(e.to_string());
                    preview.position = Some(e.position);
                }
                Ok(_) => {
                    let hits = found.next().unwrap_or_default();
                    preview.matches = hits.len();
                    preview.top = hits
                        .iter()
                        .take(TOP_TITLES)
                        .map(|h| TopPaper {
                            title: h.paper.title.clone(),
                            url: web_link(&h.paper.links.abs),
                        })
                        .collect();
                }
            }
            preview
        })
        .collect()
}
