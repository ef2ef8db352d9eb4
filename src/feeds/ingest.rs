//! One poll of a set of feeds: fetch, parse, store, and keep each feed's health. A feed
//! that fails fails alone; the others in the same run are still ingested.

use std::fmt;

use chrono::Utc;
use serde::Serialize;
use std::sync::Arc;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use super::{FeedError, Fetched, Fetcher, parse};
use crate::domain::FeedKind;
use crate::error::chain;
use crate::store::{FeedRecord, FetchOutcome, Store, UpsertCounts};

#[derive(Debug, Clone, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum FeedStatus {
    Ingested {
        #[serde(flatten)]
        counts: UpsertCounts,
        skipped: usize,
        /// Read only by repairing or assuming something: the feed is degraded.
        #[serde(skip_serializing_if = "Option::is_none")]
        warning: Option<String>,
    },
    /// 304: nothing changed since the last successful fetch.
    NotModified,
    Error {
        error: String,
    },
}

/// How one feed's poll went: the line `paperboy fetch` prints.
#[derive(Debug, Clone, Serialize)]
pub struct FeedReport {
    pub feed: String,
    #[serde(flatten)]
    pub status: FeedStatus,
}

impl FeedReport {
    pub fn failed(&self) -> bool {
        matches!(self.status, FeedStatus::Error { .. })
    }
}

impl fmt::Display for FeedReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.feed, self.status)
    }
}

/// In words: `3 new, 0 updated, 5 unchanged`, `unchanged (not modified)`, `error: …`.
impl fmt::Display for FeedStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeedStatus::Ingested {
                counts,
                skipped,
                warning,
            } => {
                write!(
                    f,
                    "{} new, {} updated, {} unchanged",
                    counts.new, counts.updated, counts.unchanged
                )?;
                if *skipped > 0 {
                    write!(f, ", {skipped} skipped (no title or id)")?;
                }
                if let Some(warning) = warning {
                    write!(f, "; degraded: {warning}")?;
                }
                Ok(())
            }
            FeedStatus::NotModified => f.write_str("unchanged (not modified)"),
            FeedStatus::Error { error } => write!(f, "error: {error}"),
        }
    }
}

/// Polls `feeds` concurrently (politeness per host is the fetcher's job) and returns one
/// report per feed, in the order given. Downloads and parsing overlap; writes to the store
/// take turns, so no feed waits on a database lock long enough to time out and none holds
/// a pooled connection while it waits.
pub async fn fetch_feeds(
    store: &Store,
    fetcher: &Fetcher,
    feeds: Vec<FeedRecord>,
) -> Vec<FeedReport> {
    let mut tasks = JoinSet::new();
    let count = feeds.len();
    let writer = Arc::new(Semaphore::new(1));
    for (index, feed) in feeds.into_iter().enumerate() {
        let store = store.clone();
        let fetcher = fetcher.clone();
        let writer = writer.clone();
        tasks.spawn(async move { (index, fetch_one(&store, &fetcher, &writer, &feed).await) });
    }
    let mut reports: Vec<Option<FeedReport>> = vec![None; count];
    while let Some(joined) = tasks.join_next().await {
        match joined {
            Ok((index, report)) => reports[index] = Some(report),
            Err(e) => tracing::error!(error = %e, "feed task failed"),
        }
    }
    reports.into_iter().flatten().collect()
}

#[tracing::instrument(skip_all, fields(feed = %feed.name, kind = %feed.kind))]
async fn fetch_one(
    store: &Store,
    fetcher: &Fetcher,
    writer: &Semaphore,
    feed: &FeedRecord,
) -> FeedReport {
    let started = std::time::Instant::now();
    let status = match ingest(store, fetcher, writer, feed).await {
        Ok(status) => status,
        Err(error) => {
            let error = chain(&error).to_string();
            let outcome = FetchOutcome::Failure {
                error: error.clone(),
            };
            if let Err(e) = store.record_fetch(feed.id, &outcome, Utc::now()).await {
                tracing::error!(error = %chain(&e), "could not record the feed's failure");
            }
            FeedStatus::Error { error }
        }
    };
    let elapsed_ms = started.elapsed().as_millis() as u64;
    let metrics = crate::metrics::global();
    metrics
        .fetch_seconds
        .with_label_values(&[feed.name.as_str()])
        .observe(started.elapsed().as_secs_f64());
    match &status {
        FeedStatus::Error { error } => {
            metrics
                .feed_errors
                .with_label_values(&[feed.name.as_str()])
                .inc();
            tracing::warn!(elapsed_ms, %error, "feed failed")
        }
        other => {
            if let FeedStatus::Ingested { counts, .. } = other {
                for (change, n) in [("new", counts.new), ("updated", counts.updated)] {
                    metrics
                        .papers_ingested
                        .with_label_values(&[feed.name.as_str(), change])
                        .inc_by(n as u64);
                }
            }
            tracing::info!(elapsed_ms, outcome = %other, "feed fetched")
        }
    }
    FeedReport {
        feed: feed.name.clone(),
        status,
    }
}

#[derive(Debug, thiserror::Error)]
enum IngestError {
    #[error(transparent)]
    Feed(#[from] FeedError),
    #[error("could not store the papers")]
    Store(#[from] crate::store::StoreError),
}

async fn ingest(
    store: &Store,
    fetcher: &Fetcher,
    writer: &Semaphore,
    feed: &FeedRecord,
) -> Result<FeedStatus, IngestError> {
    let fetched = fetcher
        .get(
            &feed.url,
            feed.etag.as_deref(),
            feed.last_modified.as_deref(),
        )
        .await?;
    let (status, body, content_type, etag, last_modified) = match fetched {
        Fetched::NotModified => {
            store
                .record_fetch(feed.id, &FetchOutcome::NotModified, Utc::now())
                .await?;
            return Ok(FeedStatus::NotModified);
        }
        Fetched::Response {
            status,
            body,
            content_type,
            etag,
            last_modified,
        } => (status, body, content_type, etag, last_modified),
    };
    if !(200..300).contains(&status) {
        return Err(FeedError::Status {
            status,
            detail: error_detail(feed.kind, &body),
        }
        .into());
    }
    let parsed = parse(feed.kind, &body, content_type.as_deref(), Some(&feed.url))?;
    // The semaphore is never closed, so acquiring cannot fail; if it did, writing anyway
    // would only mean waiting on the database lock as before.
    let _turn = writer.acquire().await.ok();
    let counts = store
        .upsert_papers(feed.id, &parsed.entries, Utc::now())
        .await?;
    // Validators are kept only once the body was ingested, so a 304 never hides a failure.
    if !parsed.notes.is_empty() {
        tracing::warn!(notes = ?parsed.notes, "feed read in a degraded way");
    }
    let warning = (!parsed.notes.is_empty()).then(|| parsed.notes.join("; "));
    let outcome = FetchOutcome::Success {
        etag,
        last_modified,
        warning: warning.clone(),
    };
    store.record_fetch(feed.id, &outcome, Utc::now()).await?;
    Ok(FeedStatus::Ingested {
        counts,
        skipped: parsed.skipped,
        warning,
    })
}

/// arXiv's API explains a 400 in an error feed; other servers get their status alone.
pub(super) fn error_detail(kind: FeedKind, body: &[u8]) -> Option<String> {
    if kind != FeedKind::ArxivApi {
        return None;
    }
    match parse(kind, body, None, None) {
        Err(FeedError::ArxivApi(message)) => Some(message),
        _ => None,
    }
}
