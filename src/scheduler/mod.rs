//! The clock of the service: cron schedules for recurring jobs, each job a plain async
//! function from the flow: polling the feeds (at once, at the start, for those behind
//! their schedule), every minute composing the digests that have come due, and a daily
//! clean-up of expired links and readers who never confirmed.

use std::str::FromStr;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::config::Settings;
use crate::delivery::Mailer;
use crate::digest;
use crate::error::chain;
use crate::feeds::{Fetcher, fetch_feeds};
use crate::store::{FeedRecord, Store};

/// How long an instance that does not run the schedule waits before trying again.
const STANDBY_RETRY: std::time::Duration = std::time::Duration::from_secs(5);

#[derive(Clone)]
pub struct Schedules {
    fetch: cron::Schedule,
    arxiv: cron::Schedule,
    digests: cron::Schedule,
    cleanup: cron::Schedule,
}

impl Schedules {
    pub fn from_settings(settings: &Settings) -> anyhow::Result<Self> {
        let fetch = cron::Schedule::from_str(&settings.fetch.schedule)
            .with_context(|| format!("fetch schedule {:?}", settings.fetch.schedule))?;
        let arxiv = cron::Schedule::from_str(&settings.fetch.arxiv_schedule)
            .with_context(|| format!("arXiv schedule {:?}", settings.fetch.arxiv_schedule))?;
        let digests = cron::Schedule::from_str("0 * * * * *").context("digest schedule")?;
        let cleanup = cron::Schedule::from_str("0 30 3 * * *").context("cleanup schedule")?;
        Ok(Self {
            fetch,
            arxiv,
            digests,
            cleanup,
        })
    }
}

/// Runs the schedule on exactly one instance: the one that holds the scheduler lock (on
/// PostgreSQL; on SQLite there is only one). The others stand by and take over when the
/// holder stops or loses its connection.
pub async fn lead(schedules: Schedules, store: Store, fetcher: Fetcher, mailer: Mailer) {
    let mut announced = false;
    loop {
        match store.try_lead().await {
            Ok(Some(mut leadership)) => {
                tracing::info!("this instance runs the schedule");
                announced = false;
                let running = run(
                    schedules.clone(),
                    store.clone(),
                    fetcher.clone(),
                    mailer.clone(),
                );
                let watching = async {
                    loop {
                        tokio::time::sleep(std::time::Duration::from_secs(15)).await;
                        if !leadership.holds().await {
                            break;
                        }
                    }
                };
                tokio::select! {
                    _ = running => {}
                    _ = watching => tracing::warn!("lost the scheduler lock; standing by"),
                }
            }
            Ok(None) => {
                if !announced {
                    tracing::info!("another instance runs the schedule; standing by");
                    announced = true;
                }
            }
            Err(e) => {
                tracing::error!(error = %chain(&e), "cannot take the scheduler lock")
            }
        }
        tokio::time::sleep(STANDBY_RETRY).await;
    }
}

/// Runs forever: at each tick of the fetch schedule, polls every feed; every minute,
/// composes the digests due. The next tick is always counted from now, so ticks missed
/// during a long job or a sleep are skipped, not run back to back (a digest due meanwhile
/// is still due at the next tick).
pub async fn run(schedules: Schedules, store: Store, fetcher: Fetcher, mailer: Mailer) {
    let poll = |schedule: &cron::Schedule, arxiv: bool| {
        let (schedule, store, fetcher) = (schedule.clone(), store.clone(), fetcher.clone());
        async move {
            // At the start (a first `serve`, or after a stop), feeds that have missed a
            // tick of their schedule are polled at once instead of at the next tick,
            // which for arXiv can be a day away.
            let now = Utc::now();
            let missed =
                |f: &FeedRecord| f.kind.is_arxiv() == arxiv && missed_a_tick(&schedule, f, now);
            if let Err(e) = fetch_job(&store, &fetcher, missed).await {
                tracing::error!(error = %chain(e.as_ref()), "catch-up fetch failed");
            }
            while let Some(next) = schedule.after(&Utc::now()).next() {
                let wait = (next - Utc::now()).to_std().unwrap_or_default();
                tracing::debug!(at = %next, arxiv, "next feed poll");
                tokio::time::sleep(wait).await;
                if let Err(e) = fetch_job(&store, &fetcher, |f| f.kind.is_arxiv() == arxiv).await {
                    tracing::error!(error = %chain(e.as_ref()), "scheduled fetch failed");
                }
            }
        }
    };
    let feeds = poll(&schedules.fetch, false);
    let arxiv = poll(&schedules.arxiv, true);
    let digests = async {
        // The first run is at once: an instance that takes the schedule over from one
        // that died mid-tick finishes that tick's readers now, not at the next minute.
        let mut at = Utc::now();
        loop {
            let wait = (at - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            match digest::compose_due(&store, &mailer.message_ids(), Utc::now(), false).await {
                Ok((report, _)) if report.due > 0 => tracing::info!(
                    due = report.due,
                    composed = report.composed,
                    skipped = report.skipped,
                    "digests composed"
                ),
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(error = %chain(e.as_ref()), "composing digests failed")
                }
            }
            match schedules.digests.after(&Utc::now()).next() {
                Some(next) => at = next,
                None => break,
            }
        }
    };
    let cleanup = async {
        while let Some(next) = schedules.cleanup.after(&Utc::now()).next() {
            let wait = (next - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(wait).await;
            match store.clean_up(Utc::now()).await {
                Ok((tokens, subscribers)) => tracing::info!(
                    expired_links = tokens,
                    unconfirmed_subscribers = subscribers,
                    "daily clean-up"
                ),
                Err(e) => tracing::error!(error = %chain(&e), "clean-up failed"),
            }
        }
    };
    tokio::join!(feeds, arxiv, digests, cleanup);
}

/// True when `feed` has never been fetched, or a tick of `schedule` has passed since its
/// last success: it is behind its schedule.
fn missed_a_tick(schedule: &cron::Schedule, feed: &FeedRecord, now: DateTime<Utc>) -> bool {
    match feed.health.last_success_at {
        None => true,
        Some(last) => schedule.after(&last).next().is_some_and(|tick| tick <= now),
    }
}

/// A feed poll: every feed `wanted` picks, one report each in the log.
pub async fn fetch_job(
    store: &Store,
    fetcher: &Fetcher,
    wanted: impl Fn(&FeedRecord) -> bool,
) -> anyhow::Result<()> {
    let mut feeds = store.list_feeds().await.context("listing feeds")?;
    feeds.retain(|f| wanted(f));
    if feeds.is_empty() {
        return Ok(());
    }
    let reports = fetch_feeds(store, fetcher, feeds).await;
    let failed = reports.iter().filter(|r| r.failed()).count();
    tracing::info!(feeds = reports.len(), failed, "feed poll finished");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn feed_last_fetched(at: Option<&str>) -> FeedRecord {
        let t = |s: &str| DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc);
        FeedRecord {
            id: 1,
            name: "arxiv".into(),
            url: "https://export.arxiv.org/rss/cs.LG".into(),
            kind: crate::domain::FeedKind::ArxivRss,
            etag: None,
            last_modified: None,
            health: crate::store::FeedHealth {
                last_attempt_at: at.map(t),
                last_success_at: at.map(t),
                last_error: None,
                consecutive_failures: 0,
                warning: None,
            },
            created_at: t("2026-11-01T00:00:00Z"),
        }
    }

    #[test]
    fn a_feed_never_fetched_or_past_a_tick_is_polled_at_the_start() {
        let s = Schedules::from_settings(&Settings::default()).unwrap();
        let now = DateTime::parse_from_rfc3339("2026-12-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        // arXiv ticks at 00:05 and 01:05 on weekdays.
        assert!(missed_a_tick(&s.arxiv, &feed_last_fetched(None), now));
        assert!(!missed_a_tick(
            &s.arxiv,
            &feed_last_fetched(Some("2026-12-01T01:05:30Z")),
            now
        ));
        assert!(missed_a_tick(
            &s.arxiv,
            &feed_last_fetched(Some("2026-11-30T01:05:30Z")),
            now
        ));
        // Friday's fetch is not behind on Sunday: arXiv announces nothing at weekends.
        let sunday = DateTime::parse_from_rfc3339("2026-11-29T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert!(!missed_a_tick(
            &s.arxiv,
            &feed_last_fetched(Some("2026-11-27T01:05:30Z")),
            sunday
        ));
    }

    #[test]
    fn arxiv_is_polled_after_each_announcement_and_the_rest_hourly() {
        let s = Schedules::from_settings(&Settings::default()).unwrap();
        let friday_night = chrono::DateTime::parse_from_rfc3339("2026-11-27T02:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        let arxiv: Vec<String> = s
            .arxiv
            .after(&friday_night)
            .take(3)
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(
            arxiv,
            [
                "2026-11-30T00:05:00+00:00",
                "2026-11-30T01:05:00+00:00",
                "2026-12-01T00:05:00+00:00"
            ],
            "none on the weekend, when arXiv announces nothing"
        );
        let other: Vec<String> = s
            .fetch
            .after(&friday_night)
            .take(2)
            .map(|t| t.to_rfc3339())
            .collect();
        assert_eq!(
            other,
            ["2026-11-27T02:10:00+00:00", "2026-11-27T03:10:00+00:00"]
        );
    }
}
