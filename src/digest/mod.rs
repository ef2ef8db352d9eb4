//! Digests: which subscribers are due, composing each one's window with the matching
//! engine, and writing the digest and its delivery (the outbox) before anything is sent;
//! reading a stored digest back as a view. Rendering the email is the email module's job,
//! sending it the delivery module's.

pub mod compose;
pub mod schedule;
pub mod taste;

use std::sync::Arc;
use std::time::Instant;

use anyhow::Context;
use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::domain::Subscriber;
use crate::domain::token::{Links, random_token};
use crate::email::MessageIds;
use crate::email::digest::{DigestFacts, DigestView, view_for, view_of_record};
use crate::error::chain;
use crate::matching::taste::Taste;
use crate::store::{DigestRecord, NewDigest, Store, StoredEntry};

pub use compose::Composed;

/// What one digest run did.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RunReport {
    /// Readers whose send instant had passed.
    pub due: usize,
    /// Digests written with papers (and queued for delivery).
    pub composed: usize,
    /// Windows recorded as skipped: nothing matched.
    pub skipped: usize,
    /// Windows another run had already taken (nothing written).
    pub already_done: usize,
    /// Digests that could not be stored (logged; the readers stay due).
    pub failed: usize,
    /// The papers looked at.
    pub papers: usize,
    /// Where the run's time went.
    pub seconds: StageSeconds,
}

/// Seconds spent in each stage of a digest run.
#[derive(Debug, Default, Clone, Serialize)]
pub struct StageSeconds {
    /// Listing the readers and choosing those due.
    pub due: f64,
    /// Reading the papers of the windows.
    pub papers: f64,
    /// Matching the papers against every due reader's queries and ranking each digest.
    pub matching: f64,
    /// Writing the digests and their deliveries (while the next readers are matched: the
    /// two overlap).
    pub store: f64,
}

/// How many digests one run writes before the database's statistics are refreshed.
const ANALYZE_AFTER: usize = 1_000;

/// How many readers' digests are composed, then written, at a time.
const COMPOSE_SLICE: usize = 10_000;

/// Composes the digest of every reader due at `at` and, unless `dry_run`, writes each with
/// its delivery. Running it again for the same instant writes nothing new. Returns the
/// digests composed only for a dry run (a real run has written them).
#[tracing::instrument(skip_all, fields(at = %at, dry_run))]
pub async fn compose_due(
    store: &Store,
    ids: &MessageIds,
    at: DateTime<Utc>,
    dry_run: bool,
) -> anyhow::Result<(RunReport, Vec<Composed>)> {
    let started = Instant::now();
    let subscribers = store
        .active_subscribers()
        .await
        .context("listing readers")?;
    let due: Vec<Subscriber> = subscribers
        .into_iter()
        .filter(|r| schedule::is_due(&r.preferences, compose::window_start(r), at))
        .collect();
    let mut report = RunReport {
        due: due.len(),
        ..RunReport::default()
    };
    report.seconds.due = started.elapsed().as_secs_f64();
    let Some(lowest) = due.iter().map(|r| r.paper_cursor).min() else {
        return Ok((report, Vec::new()));
    };
    let started = Instant::now();
    let upto = store
        .max_paper_id()
        .await
        .context("reading the newest paper")?;
    let papers = store
        .papers_between(lowest, upto)
        .await
        .context("reading the window's papers")?;
    let window = Arc::new(compose::Window::new(papers, upto));
    report.papers = window.papers().len();
    report.seconds.papers = started.elapsed().as_secs_f64();
    // A slice of the readers at a time, so only two slices' digests are ever held; the
    // next slice is matched (on a thread of its own) while this one is written.
    let mut slices = Vec::new();
    let mut subscribers = due.into_iter();
    loop {
        let slice: Vec<Subscriber> = subscribers.by_ref().take(COMPOSE_SLICE).collect();
        if slice.is_empty() {
            break;
        }
        slices.push(slice);
    }
    let start = |subscribers: Vec<Subscriber>, tastes: compose::Tastes| {
        let window = Arc::clone(&window);
        tokio::task::spawn_blocking(move || {
            let started = Instant::now();
            let composed = compose::compose(&subscribers, &window, &tastes, at);
            (composed, started.elapsed().as_secs_f64())
        })
    };
    let mut slices = slices.into_iter();
    let mut next = None;
    if let Some(slice) = slices.next() {
        let tastes = load_tastes(store, &slice).await?;
        next = Some(start(slice, tastes));
    }
    let mut kept = Vec::new();
    while let Some(matching) = next.take() {
        // The next slice's tastes are read while this one is matched.
        let following = match slices.next() {
            Some(slice) => {
                let tastes = load_tastes(store, &slice).await?;
                Some((slice, tastes))
            }
            None => None,
        };
        let (composed, seconds) = matching.await.context("composing digests")?;
        report.seconds.matching += seconds;
        next = following.map(|(slice, tastes)| start(slice, tastes));
        if dry_run {
            report.composed += composed.iter().filter(|c| !c.entries.is_empty()).count();
            report.skipped += composed.iter().filter(|c| c.entries.is_empty()).count();
            kept.extend(composed);
            continue;
        }
        let started = Instant::now();
        save_all(store, ids, &composed, &mut report).await?;
        report.seconds.store += started.elapsed().as_secs_f64();
    }
    if report.composed + report.skipped >= ANALYZE_AFTER {
        let started = Instant::now();
        if let Err(e) = store.refresh_statistics().await {
            tracing::warn!(error = %chain(&e), "could not refresh the database's statistics");
        }
        report.seconds.store += started.elapsed().as_secs_f64();
    }
    Ok((report, kept))
}

/// The learned tastes of `subscribers` that have one, with the titles of the rated papers
/// they name. A stored taste that cannot be read is logged and left out: that reader's
/// digest is composed without it.
async fn load_tastes(store: &Store, subscribers: &[Subscriber]) -> anyhow::Result<compose::Tastes> {
    let ids: Vec<i64> = subscribers.iter().map(|s| s.id).collect();
    let stored = store
        .tastes_of(&ids)
        .await
        .context("reading the readers' tastes")?;
    if stored.is_empty() {
        return Ok(compose::Tastes::default());
    }
    let tastes: Vec<(i64, Taste)> = stored
        .into_iter()
        .filter_map(|t| match Taste::from_text(&t.model) {
            Ok(taste) => Some((t.subscriber_id, taste)),
            Err(e) => {
                tracing::warn!(subscriber = t.subscriber_id, error = %e, "a stored taste is unreadable; composing without it");
                None
            }
        })
        .collect();
    let mut exemplars: Vec<i64> = tastes
        .iter()
        .flat_map(|(_, t)| t.exemplars().iter().copied())
        .collect();
    exemplars.sort_unstable();
    exemplars.dedup();
    let titles = store
        .paper_titles(&exemplars)
        .await
        .context("reading the titles of rated papers")?;
    Ok(compose::Tastes::new(tastes, titles))
}

/// How many digests are written per transaction.
const SAVE_BATCH: usize = 500;

/// Writes composed digests, each with its delivery, a batch per transaction. A batch that
/// fails is written again one digest at a time, so one reader's failure is logged and
/// counted and the others go on (that reader stays due).
async fn save_all(
    store: &Store,
    ids: &MessageIds,
    composed: &[Composed],
    report: &mut RunReport,
) -> anyhow::Result<()> {
    let now = Utc::now();
    for batch in composed.chunks(SAVE_BATCH) {
        let keys = batch
            .iter()
            .map(|_| Ok((random_token()?, ids.next())))
            .collect::<anyhow::Result<Vec<(String, String)>>>()?;
        let digests: Vec<NewDigest<'_>> = batch
            .iter()
            .zip(&keys)
            .map(|(c, (archive_key, message_id))| NewDigest {
                subscriber_id: c.subscriber.id,
                window_start: c.window_start,
                window_end: c.window_end,
                papers_after: c.papers_after,
                papers_upto: c.papers_upto,
                entries: &c.entries,
                shown: usize::from(c.subscriber.preferences.max_papers.get()),
                trending: c.trending,
                archive_key,
                per_query: &c.per_query,
                message_id,
            })
            .collect();
        match store.save_digests(&digests, now).await {
            Ok(ids) => {
                for (c, id) in batch.iter().zip(ids) {
                    tally(c, Ok(id), report);
                }
            }
            Err(e) => {
                tracing::warn!(error = %chain(&e), digests = batch.len(), "a batch of digests could not be stored at once; storing them one by one");
                for (c, d) in batch.iter().zip(&digests) {
                    tally(c, store.save_digest(d, now).await, report);
                }
            }
        }
    }
    Ok(())
}

/// Counts (and logs) how writing one digest went.
fn tally(c: &Composed, saved: crate::store::StoreResult<Option<i64>>, report: &mut RunReport) {
    match saved {
        // One reader's failure is logged and the others go on; the reader is still due at
        // the next run.
        Err(e) => {
            report.failed += 1;
            tracing::error!(subscriber = c.subscriber.id, error = %chain(&e), "could not store a digest");
        }
        Ok(None) => report.already_done += 1,
        Ok(Some(_)) if c.entries.is_empty() => {
            report.skipped += 1;
            crate::metrics::global()
                .digests
                .with_label_values(&["skipped"])
                .inc();
        }
        Ok(Some(id)) => {
            report.composed += 1;
            crate::metrics::global()
                .digests
                .with_label_values(&["composed"])
                .inc();
            tracing::debug!(
                digest = id,
                subscriber = c.subscriber.id,
                papers = c.entries.len(),
                "digest composed"
            );
        }
    }
}

/// Composes and writes one reader's digest for the window ending at `at`, whether or not
/// their send instant has come (the demo's first digest). Returns how many papers it holds.
pub async fn compose_for(
    store: &Store,
    ids: &MessageIds,
    subscriber: &Subscriber,
    at: DateTime<Utc>,
) -> anyhow::Result<usize> {
    let (composed, _) = compose_one(store, subscriber, at).await?;
    let mut report = RunReport::default();
    save_all(store, ids, std::slice::from_ref(&composed), &mut report).await?;
    if report.failed > 0 {
        anyhow::bail!("the digest of reader {} could not be stored", subscriber.id);
    }
    Ok(composed.entries.len())
}

/// One reader's digest for the window ending at `at`, with the window's papers.
async fn compose_one(
    store: &Store,
    subscriber: &Subscriber,
    at: DateTime<Utc>,
) -> anyhow::Result<(Composed, compose::Window)> {
    let upto = store.max_paper_id().await?;
    let papers = store.papers_between(subscriber.paper_cursor, upto).await?;
    let window = compose::Window::new(papers, upto);
    let tastes = load_tastes(store, std::slice::from_ref(subscriber)).await?;
    let composed = compose::compose(std::slice::from_ref(subscriber), &window, &tastes, at)
        .into_iter()
        .next()
        .context("composition returned no digest")?;
    Ok((composed, window))
}

/// The view of a stored digest: its top papers for the email, or all of them (`all`) for
/// the archive page.
pub async fn stored_view(
    store: &Store,
    links: &Links,
    digest: &DigestRecord,
    subscriber: &Subscriber,
    all: bool,
) -> anyhow::Result<DigestView> {
    let shown = usize::try_from(digest.shown).unwrap_or(0);
    let mut entries = store
        .digest_entries(digest.id, (!all).then_some(shown))
        .await
        .context("reading the digest's papers")?;
    // Only the papers the email showed were highlighted when the digest was composed.
    for entry in entries.iter_mut().skip(shown) {
        highlight(entry);
    }
    Ok(view_of_record(digest, &entries, subscriber, links))
}

/// Works out where a stored entry's queries found their words in its paper (what the
/// archive page marks), from the query texts it keeps.
pub fn highlight(entry: &mut StoredEntry) {
    let queries: Vec<crate::matching::Query> = entry
        .explanation
        .queries
        .iter()
        .filter_map(|m| crate::matching::Query::parse(&m.query).ok())
        .collect();
    let doc = crate::matching::Doc::from_paper(&entry.paper.paper);
    crate::matching::rank::highlight(&mut entry.explanation, &queries, &doc);
}

/// One paper of a previewed digest, as `paperboy digest preview --format json` prints it.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewPaper {
    pub key: String,
    pub title: String,
    pub score: f64,
    /// The reader's queries that matched it.
    pub queries: Vec<String>,
    /// Why it has its place (the query that won it, the taste), for emailed papers.
    pub reason: String,
    pub in_email: bool,
}

/// A previewed digest as data: every match in email order, then the suggestions.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewData {
    pub papers: Vec<PreviewPaper>,
    pub suggestions: Vec<PreviewPaper>,
}

/// What `subscriber` would get if their digest were composed at `at` (the email's view,
/// and every match as data): nothing is stored.
pub async fn preview(
    store: &Store,
    links: &Links,
    subscriber: &Subscriber,
    at: DateTime<Utc>,
) -> anyhow::Result<(DigestView, PreviewData)> {
    let (c, window) = compose_one(store, subscriber, at).await?;
    let shown = usize::from(subscriber.preferences.max_papers.get());
    let by_id: std::collections::HashMap<i64, &crate::store::StoredPaper> =
        window.papers().iter().map(|(p, _)| (p.id, p)).collect();
    let mut data = PreviewData {
        papers: Vec::new(),
        suggestions: Vec::new(),
    };
    let mut entries: Vec<StoredEntry> = Vec::new();
    for (place, e) in c.entries.iter().enumerate() {
        let Some(paper) = by_id.get(&e.paper_id) else {
            continue;
        };
        let in_email = place < shown || e.suggested;
        let row = PreviewPaper {
            key: paper.paper.key.as_str().to_string(),
            title: paper.paper.title.clone(),
            score: e.score,
            queries: e.explanation.query_texts(),
            reason: crate::email::digest::reason(&e.explanation),
            in_email,
        };
        if e.suggested {
            data.suggestions.push(row);
        } else {
            data.papers.push(row);
        }
        if in_email {
            entries.push(StoredEntry {
                paper: (*paper).clone(),
                score: e.score,
                explanation: e.explanation.clone(),
                suggested: e.suggested,
            });
        }
    }
    let facts = DigestFacts {
        total: data.papers.len(),
        trending: c.trending,
        window: (c.window_start, c.window_end),
        per_query: c.per_query,
    };
    Ok((view_for(&entries, &facts, subscriber, None, links), data))
}
