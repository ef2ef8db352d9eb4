//! Papers and the sources that carried them: deduplicating upserts and the listings that
//! read them back.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{BeginWrite, Store, StoreResult, json_list, on_pool, to_json};
use crate::domain::{Ingested, Paper, PaperKey, PaperLinks};

/// What one batch did to the papers table.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct UpsertCounts {
    /// Papers stored for the first time: these reach readers.
    pub new: usize,
    /// Known papers that this batch changed (new version, upvotes, links filled in).
    pub updated: usize,
    pub unchanged: usize,
}

/// A paper as stored, with when paperboy first saw it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredPaper {
    pub id: i64,
    #[serde(flatten)]
    pub paper: Paper,
    pub first_seen_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// One feed that carried a paper.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct PaperSource {
    pub feed: String,
    pub entry_id: String,
    pub version: Option<i64>,
    pub announce_type: Option<String>,
    pub first_seen_at: DateTime<Utc>,
    pub last_seen_at: DateTime<Utc>,
}

#[derive(sqlx::FromRow)]
struct PaperRow {
    id: i64,
    key: String,
    arxiv_id: Option<String>,
    version: Option<i64>,
    doi: Option<String>,
    title: String,
    #[sqlx(rename = "abstract")]
    abstract_text: String,
    authors: String,
    categories: String,
    abs_url: Option<String>,
    pdf_url: Option<String>,
    discussion_url: Option<String>,
    thumbnail_url: Option<String>,
    published_at: Option<DateTime<Utc>>,
    upvotes: Option<i64>,
    comments: Option<i64>,
    first_seen_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl PaperRow {
    fn into_stored(self) -> StoreResult<StoredPaper> {
        let key = PaperKey::parse(&self.key)
            .map_err(|e| super::StoreError::Corrupt(format!("paper {}: {e}", self.id)))?;
        Ok(StoredPaper {
            id: self.id,
            paper: Paper {
                key,
                arxiv_id: self.arxiv_id,
                version: self.version.and_then(|v| u32::try_from(v).ok()),
                doi: self.doi,
                title: self.title,
                abstract_text: self.abstract_text,
                authors: json_list("authors", &self.authors)?,
                categories: json_list("categories", &self.categories)?,
                links: PaperLinks {
                    abs: self.abs_url,
                    pdf: self.pdf_url,
                    discussion: self.discussion_url,
                },
                published: self.published_at,
                upvotes: self.upvotes,
                comments: self.comments,
                thumbnail: self.thumbnail_url,
            },
            first_seen_at: self.first_seen_at,
            updated_at: self.updated_at,
        })
    }
}

macro_rules! select_papers {
    ($rest:literal) => {
        concat!(
            "SELECT id, key, arxiv_id, version, doi, title, abstract, authors, categories, ",
            "abs_url, pdf_url, discussion_url, thumbnail_url, published_at, upvotes, comments, ",
            "first_seen_at, updated_at FROM papers ",
            $rest
        )
    };
}

/// Binds a paper's fields as `$2` to `$15`, in the order both the INSERT and the UPDATE
/// of [`Store::upsert_papers`] name them.
macro_rules! bind_paper_fields {
    ($query:expr, $p:expr) => {
        $query
            .bind($p.arxiv_id.as_deref())
            .bind($p.version.map(i64::from))
            .bind($p.doi.as_deref())
            .bind($p.title.as_str())
            .bind($p.abstract_text.as_str())
            .bind(to_json(&$p.authors))
            .bind(to_json(&$p.categories))
            .bind($p.links.abs.as_deref())
            .bind($p.links.pdf.as_deref())
            .bind($p.links.discussion.as_deref())
            .bind($p.thumbnail.as_deref())
            .bind($p.published)
            .bind($p.upvotes)
            .bind($p.comments)
    };
}

/// Folds entries for the same paper within one batch (a feed listing a paper twice, or
/// under two versions) so that each paper is written once.
fn dedupe(batch: &[Ingested]) -> Vec<Ingested> {
    let mut out: Vec<Ingested> = Vec::with_capacity(batch.len());
    let mut seen: HashMap<PaperKey, usize> = HashMap::with_capacity(batch.len());
    for item in batch {
        match seen.get(&item.paper.key) {
            Some(&i) => {
                out[i].paper.merge(&item.paper);
            }
            None => {
                seen.insert(item.paper.key.clone(), out.len());
                out.push(item.clone());
            }
        }
    }
    out
}

impl Store {
    /// Stores a feed's papers in one transaction: a paper already known (by key, arXiv id
    /// or DOI) is merged into its row and keeps its `first_seen_at`, so a new version or a
    /// second source never makes it new to readers again.
    #[tracing::instrument(skip_all, fields(feed_id, entries = batch.len()))]
    pub async fn upsert_papers(
        &self,
        feed_id: i64,
        batch: &[Ingested],
        now: DateTime<Utc>,
    ) -> StoreResult<UpsertCounts> {
        let batch = dedupe(batch);
        let mut counts = UpsertCounts::default();
        on_pool!(self, pool => {
            let mut tx = pool.begin_papers_write().await?;
            for item in &batch {
                let incoming = &item.paper;
                let existing: Option<PaperRow> = sqlx::query_as(select_papers!(
                    "WHERE key = $1 OR arxiv_id = $2 OR doi = $3 \
                     ORDER BY CASE WHEN key = $1 THEN 0 ELSE 1 END, id LIMIT 1"
                ))
                .bind(incoming.key.as_str())
                .bind(incoming.arxiv_id.as_deref())
                .bind(incoming.doi.as_deref())
                .fetch_optional(&mut *tx)
                .await?;
                let paper_id = match existing {
                    Some(row) => {
                        let mut stored = row.into_stored()?;
                        if stored.paper.merge(incoming) {
                            let p = &stored.paper;
                            let query = sqlx::query(
                                "UPDATE papers SET arxiv_id = $2, version = $3, doi = $4, \
                                 title = $5, abstract = $6, authors = $7, categories = $8, \
                                 abs_url = $9, pdf_url = $10, discussion_url = $11, \
                                 thumbnail_url = $12, published_at = $13, upvotes = $14, \
                                 comments = $15, updated_at = $16 WHERE id = $1",
                            )
                            .bind(stored.id);
                            bind_paper_fields!(query, p)
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                            counts.updated += 1;
                        } else {
                            counts.unchanged += 1;
                        }
                        stored.id
                    }
                    None => {
                        let p = incoming;
                        let query = sqlx::query_scalar(
                            "INSERT INTO papers (key, arxiv_id, version, doi, title, abstract, \
                             authors, categories, abs_url, pdf_url, discussion_url, thumbnail_url, \
                             published_at, upvotes, comments, first_seen_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, \
                             $15, $16, $16) RETURNING id",
                        )
                        .bind(p.key.as_str());
                        let id: i64 = bind_paper_fields!(query, p)
                        .bind(now)
                        .fetch_one(&mut *tx)
                        .await?;
                        counts.new += 1;
                        id
                    }
                };
                sqlx::query(
                    "INSERT INTO paper_sources (paper_id, feed_id, entry_id, version, announce_type, \
                     first_seen_at, last_seen_at) VALUES ($1, $2, $3, $4, $5, $6, $6) \
                     ON CONFLICT (paper_id, feed_id) DO UPDATE SET entry_id = excluded.entry_id, \
                     version = excluded.version, announce_type = excluded.announce_type, \
                     last_seen_at = excluded.last_seen_at",
                )
                .bind(paper_id)
                .bind(feed_id)
                .bind(item.entry_id.as_str())
                .bind(incoming.version.map(i64::from))
                .bind(item.announce_type.map(|a| a.as_str()))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
        });
        Ok(counts)
    }

    /// Papers first stored at or after `since` (all when `None`), oldest first.
    #[tracing::instrument(skip_all)]
    pub async fn list_papers(&self, since: Option<DateTime<Utc>>) -> StoreResult<Vec<StoredPaper>> {
        let rows: Vec<PaperRow> = on_pool!(self, pool => {
            match since {
                Some(since) => sqlx::query_as(select_papers!(
                    "WHERE first_seen_at >= $1 ORDER BY first_seen_at, id"
                ))
                .bind(since)
                .fetch_all(pool)
                .await?,
                None => sqlx::query_as(select_papers!("ORDER BY first_seen_at, id"))
                    .fetch_all(pool)
                    .await?,
            }
        });
        rows.into_iter().map(PaperRow::into_stored).collect()
    }

    /// One paper by key, with every feed that carried it.
    #[tracing::instrument(skip_all, fields(key = %key))]
    pub async fn paper(
        &self,
        key: &PaperKey,
    ) -> StoreResult<Option<(StoredPaper, Vec<PaperSource>)>> {
        let row: Option<PaperRow> = on_pool!(self, pool => {
            sqlx::query_as(select_papers!("WHERE key = $1"))
                .bind(key.as_str())
                .fetch_optional(pool)
                .await?
        });
        let Some(row) = row else { return Ok(None) };
        let stored = row.into_stored()?;
        let sources: Vec<PaperSource> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT f.name AS feed, s.entry_id, s.version, s.announce_type, s.first_seen_at, \
                 s.last_seen_at FROM paper_sources s JOIN feeds f ON f.id = s.feed_id \
                 WHERE s.paper_id = $1 ORDER BY s.first_seen_at, f.name",
            )
            .bind(stored.id)
            .fetch_all(pool)
            .await?
        });
        Ok(Some((stored, sources)))
    }

    pub async fn count_papers(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COUNT(*) FROM papers").fetch_one(pool).await?
        }))
    }
}
