//! Feeds and their health: what to poll, the validators for conditional GETs, and how the
//! last attempts went.

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{BeginWrite, Store, StoreError, StoreResult, on_pool};
use crate::domain::{FeedKind, FeedName, FeedUrl};

/// The feeds a fresh database starts with: the busiest machine-learning categories in one
/// arXiv listing (one request instead of four) and the Hugging Face daily papers.
pub const DEFAULT_FEEDS: [(&str, &str, FeedKind); 2] = [
    (
        "arxiv-cs",
        "https://rss.arxiv.org/rss/cs.LG+cs.AI+cs.CL+cs.CV",
        FeedKind::ArxivRss,
    ),
    (
        "hf-daily",
        "https://huggingface.co/api/daily_papers",
        FeedKind::HfDaily,
    ),
];

#[derive(Debug, Clone, Serialize)]
pub struct FeedHealth {
    pub last_attempt_at: Option<DateTime<Utc>>,
    pub last_success_at: Option<DateTime<Utc>>,
    pub last_error: Option<String>,
    pub consecutive_failures: i64,
    /// What the last ingested response needed repaired or assumed to be read; `Some`
    /// means the feed is degraded.
    pub warning: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct FeedRecord {
    pub id: i64,
    pub name: String,
    pub url: String,
    pub kind: FeedKind,
    pub etag: Option<String>,
    pub last_modified: Option<String>,
    pub health: FeedHealth,
    pub created_at: DateTime<Utc>,
}

/// How one poll of a feed ended, as kept in its health.
#[derive(Debug, Clone)]
pub enum FetchOutcome {
    /// The feed answered and was ingested (or had not changed). New validators replace the
    /// old ones only when the server sent some.
    Success {
        etag: Option<String>,
        last_modified: Option<String>,
        /// What reading the body needed repaired or assumed (`None`: nothing).
        warning: Option<String>,
    },
    /// 304: the feed has not changed, and so neither has its warning.
    NotModified,
    Failure {
        error: String,
    },
}

#[derive(sqlx::FromRow)]
struct FeedRow {
    id: i64,
    name: String,
    url: String,
    kind: String,
    etag: Option<String>,
    last_modified: Option<String>,
    last_attempt_at: Option<DateTime<Utc>>,
    last_success_at: Option<DateTime<Utc>>,
    last_error: Option<String>,
    consecutive_failures: i64,
    last_warning: Option<String>,
    created_at: DateTime<Utc>,
}

impl TryFrom<FeedRow> for FeedRecord {
    type Error = StoreError;

    fn try_from(r: FeedRow) -> StoreResult<Self> {
        let kind = r
            .kind
            .parse()
            .map_err(|e| StoreError::Corrupt(format!("feed {}: {e}", r.name)))?;
        Ok(FeedRecord {
            id: r.id,
            name: r.name,
            url: r.url,
            kind,
            etag: r.etag,
            last_modified: r.last_modified,
            health: FeedHealth {
                last_attempt_at: r.last_attempt_at,
                last_success_at: r.last_success_at,
                last_error: r.last_error,
                consecutive_failures: r.consecutive_failures,
                warning: r.last_warning,
            },
            created_at: r.created_at,
        })
    }
}

macro_rules! select_feeds {
    ($rest:literal) => {
        concat!(
            "SELECT id, name, url, kind, etag, last_modified, last_attempt_at, ",
            "last_success_at, last_error, consecutive_failures, last_warning, created_at ",
            "FROM feeds ",
            $rest
        )
    };
}

impl Store {
    #[tracing::instrument(skip_all)]
    pub async fn list_feeds(&self) -> StoreResult<Vec<FeedRecord>> {
        let rows: Vec<FeedRow> = on_pool!(self, pool => {
            sqlx::query_as(select_feeds!("ORDER BY name")).fetch_all(pool).await?
        });
        rows.into_iter().map(FeedRecord::try_from).collect()
    }

    #[tracing::instrument(skip_all, fields(feed = %name))]
    pub async fn feed(&self, name: &FeedName) -> StoreResult<Option<FeedRecord>> {
        let row: Option<FeedRow> = on_pool!(self, pool => {
            sqlx::query_as(select_feeds!("WHERE name = $1"))
                .bind(name.as_str())
                .fetch_optional(pool)
                .await?
        });
        row.map(FeedRecord::try_from).transpose()
    }

    /// Adds a feed; a name already in use is a conflict.
    #[tracing::instrument(skip_all, fields(feed = %name))]
    pub async fn add_feed(
        &self,
        name: &FeedName,
        url: &FeedUrl,
        kind: FeedKind,
        now: DateTime<Utc>,
    ) -> StoreResult<FeedRecord> {
        let inserted = on_pool!(self, pool => {
            sqlx::query(
                "INSERT INTO feeds (name, url, kind, created_at) VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(name.as_str())
            .bind(url.as_str())
            .bind(kind.as_str())
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if inserted == 0 {
            return Err(StoreError::Conflict(format!(
                "a feed named {name} already exists"
            )));
        }
        self.feed(name)
            .await?
            .ok_or_else(|| StoreError::NotFound(format!("feed {name} vanished after insert")))
    }

    /// Removes a feed and its links to papers; the papers stay. Returns whether it existed.
    #[tracing::instrument(skip_all, fields(feed = %name))]
    pub async fn remove_feed(&self, name: &FeedName) -> StoreResult<bool> {
        let removed = on_pool!(self, pool => {
            sqlx::query("DELETE FROM feeds WHERE name = $1")
                .bind(name.as_str())
                .execute(pool)
                .await?
                .rows_affected()
        });
        Ok(removed > 0)
    }

    /// Keeps how a poll ended: validators, success time and any warning, or the error and
    /// one more consecutive failure.
    #[tracing::instrument(skip_all, fields(feed_id))]
    pub async fn record_fetch(
        &self,
        feed_id: i64,
        outcome: &FetchOutcome,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        on_pool!(self, pool => {
            match outcome {
                FetchOutcome::Success { etag, last_modified, warning } => {
                    sqlx::query(
                        "UPDATE feeds SET last_attempt_at = $2, last_success_at = $2, \
                         last_error = NULL, consecutive_failures = 0, \
                         etag = COALESCE($3, etag), last_modified = COALESCE($4, last_modified), \
                         last_warning = $5 WHERE id = $1",
                    )
                    .bind(feed_id)
                    .bind(at)
                    .bind(etag.as_deref())
                    .bind(last_modified.as_deref())
                    .bind(warning.as_deref())
                    .execute(pool)
                    .await?;
                }
                FetchOutcome::NotModified => {
                    sqlx::query(
                        "UPDATE feeds SET last_attempt_at = $2, last_success_at = $2, \
                         last_error = NULL, consecutive_failures = 0 WHERE id = $1",
                    )
                    .bind(feed_id)
                    .bind(at)
                    .execute(pool)
                    .await?;
                }
                FetchOutcome::Failure { error } => {
                    sqlx::query(
                        "UPDATE feeds SET last_attempt_at = $2, last_error = $3, \
                         consecutive_failures = consecutive_failures + 1 WHERE id = $1",
                    )
                    .bind(feed_id)
                    .bind(at)
                    .bind(error.as_str())
                    .execute(pool)
                    .await?;
                }
            }
        });
        Ok(())
    }

    /// Gives a fresh database the default feeds, once: an operator who removes them later
    /// does not see them come back.
    #[tracing::instrument(skip_all)]
    pub async fn seed_default_feeds(&self, now: DateTime<Utc>) -> StoreResult<()> {
        on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let claimed = sqlx::query(
                "INSERT INTO settings (name, value) VALUES ('default_feeds_seeded', $1) \
                 ON CONFLICT (name) DO NOTHING",
            )
            .bind(now.to_rfc3339())
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if claimed > 0 {
                for (name, url, kind) in DEFAULT_FEEDS {
                    sqlx::query(
                        "INSERT INTO feeds (name, url, kind, created_at) VALUES ($1, $2, $3, $4) \
                         ON CONFLICT (name) DO NOTHING",
                    )
                    .bind(name)
                    .bind(url)
                    .bind(kind.as_str())
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
        });
        Ok(())
    }
}
