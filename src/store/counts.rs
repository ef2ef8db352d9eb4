//! Counts of what the database holds, as they stand: what `paperboy stats` prints and
//! `/metrics` reports.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{Store, StoreResult, on_pool};

/// Counts for `paperboy stats`.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    pub papers: i64,
    pub subscribers: Vec<(String, i64)>,
    pub digests: Vec<(String, i64)>,
    pub deliveries: Vec<(String, i64)>,
    pub suppressed: i64,
}

/// What `/metrics` reads from the database when scraped.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub papers: i64,
    /// Readers by status.
    pub subscribers: Vec<(String, i64)>,
    /// Deliveries by status.
    pub deliveries: Vec<(String, i64)>,
    /// Deliveries queued or waiting to retry.
    pub queue_depth: i64,
    /// When the oldest of those was queued.
    pub queue_oldest_at: Option<DateTime<Utc>>,
    /// When each feed, by name, last fetched successfully (feeds that never did are left
    /// out).
    pub feeds_last_success: Vec<(String, DateTime<Utc>)>,
    /// Bounce and complaint events by kind.
    pub bounces: Vec<(String, i64)>,
}

/// The rows of a table counted by status, in status order.
macro_rules! by_status {
    ($table:literal) => {
        concat!(
            "SELECT status, COUNT(*) FROM ",
            $table,
            " GROUP BY status ORDER BY status"
        )
    };
}

impl Store {
    /// Everything `stats` shows.
    pub async fn stats(&self) -> StoreResult<Stats> {
        Ok(Stats {
            papers: self.count_papers().await?,
            subscribers: self.count_by_status(by_status!("subscribers")).await?,
            digests: self.count_by_status(by_status!("digests")).await?,
            deliveries: self.delivery_counts().await?,
            suppressed: on_pool!(self, pool => {
                sqlx::query_scalar("SELECT COUNT(*) FROM suppressions")
                    .fetch_one(pool)
                    .await?
            }),
        })
    }

    /// Everything `/metrics` reports of the database.
    pub async fn snapshot(&self) -> StoreResult<Snapshot> {
        let papers = self.count_papers().await?;
        let subscribers = self.count_by_status(by_status!("subscribers")).await?;
        let deliveries = self.delivery_counts().await?;
        let (queue_depth, queue_oldest_at) = self.queue_depth().await?;
        let feeds_last_success = self
            .list_feeds()
            .await?
            .into_iter()
            .filter_map(|f| Some((f.name, f.health.last_success_at?)))
            .collect();
        Ok(Snapshot {
            papers,
            subscribers,
            deliveries,
            queue_depth,
            queue_oldest_at,
            feeds_last_success,
            bounces: self.bounce_counts().await?,
        })
    }

    pub async fn count_papers(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM papers").fetch_one(pool).await?
        }))
    }

    /// How many deliveries are in each state.
    pub async fn delivery_counts(&self) -> StoreResult<Vec<(String, i64)>> {
        self.count_by_status(by_status!("deliveries")).await
    }

    /// Deliveries queued or waiting to retry, and when the oldest of them was queued.
    pub async fn queue_depth(&self) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT COUNT(*), MIN(created_at) FROM deliveries WHERE status IN ('queued', 'retry')",
            )
            .fetch_one(pool)
            .await?
        }))
    }

    /// Deliveries held under a lease that has not run out at `now` (a run still sending,
    /// or one that crashed): how many, and when the last of those leases ends.
    pub async fn leased_deliveries(
        &self,
        now: DateTime<Utc>,
    ) -> StoreResult<(i64, Option<DateTime<Utc>>)> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT COUNT(*), MAX(lease_until) FROM deliveries \
                 WHERE status = 'sending' AND lease_until > $1",
            )
            .bind(now)
            .fetch_one(pool)
            .await?
        }))
    }

    /// Runs one of the [`by_status!`] counts.
    async fn count_by_status(&self, sql: &'static str) -> StoreResult<Vec<(String, i64)>> {
        Ok(on_pool!(self, pool => sqlx::query_as(sql).fetch_all(pool).await?))
    }
}
