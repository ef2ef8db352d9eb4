//! Ratings ("more / less like this") and the learned taste kept beside them: every change
//! to a reader's ratings and the rebuild of their taste happen in one transaction.

use chrono::{DateTime, Utc};

use super::papers::{PaperRow, select_papers};
use super::{BeginWrite, Store, StoreError, StoreResult, on_pool, push_id_list};
use crate::domain::{PaperKey, Rating, RatingSource};

/// One of a reader's ratings, with the paper's key and title to show it by.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RatingRecord {
    pub paper_id: i64,
    pub key: PaperKey,
    pub title: String,
    pub rating: Rating,
    pub source: RatingSource,
    pub rated_at: DateTime<Utc>,
}

/// What to change in a reader's ratings.
#[derive(Debug, Clone)]
pub enum RatingChange<'a> {
    /// Rate these papers (a paper rated before gets the new rating).
    Rate {
        paper_ids: &'a [i64],
        rating: Rating,
        source: RatingSource,
    },
    /// Forget the rating of one paper.
    Remove(i64),
    /// Forget them all.
    Clear,
}

/// A rated paper as the taste learns from it.
#[derive(Debug, Clone)]
pub struct RatedPaper {
    pub paper: super::StoredPaper,
    pub rating: Rating,
}

/// A learned taste in its stored form.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredTaste {
    pub subscriber_id: i64,
    pub model: String,
    /// How many "more" ratings it was learned from.
    pub more: i64,
}

#[derive(sqlx::FromRow)]
struct RatingRow {
    paper_id: i64,
    key: String,
    title: String,
    more: bool,
    source: String,
    rated_at: DateTime<Utc>,
}

impl RatingRow {
    fn into_record(self) -> StoreResult<RatingRecord> {
        let corrupt = |e: &dyn std::fmt::Display| {
            StoreError::Corrupt(format!("rating of paper {}: {e}", self.paper_id))
        };
        Ok(RatingRecord {
            paper_id: self.paper_id,
            key: PaperKey::parse(&self.key).map_err(|e| corrupt(&e))?,
            rating: Rating::from_more(self.more),
            source: self.source.parse().map_err(|e| corrupt(&e))?,
            title: self.title,
            rated_at: self.rated_at,
        })
    }
}

impl Store {
    /// Changes a reader's ratings and, in the same transaction, stores the taste `learn`
    /// makes of all of them afterwards (`None`: nothing to learn, any stored taste goes).
    /// Returns how many ratings the change touched.
    #[tracing::instrument(skip_all, fields(subscriber = subscriber_id))]
    pub async fn change_ratings<F>(
        &self,
        subscriber_id: i64,
        change: RatingChange<'_>,
        now: DateTime<Utc>,
        learn: F,
    ) -> StoreResult<u64>
    where
        F: FnOnce(&[RatedPaper]) -> Option<StoredTaste>,
    {
        Ok(on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            // On PostgreSQL, two changes for one reader take turns on the reader's row, so
            // the taste stored last is learned from every rating.
            sqlx::query(pool.locking(
                "SELECT id FROM subscribers WHERE id = $1",
                "SELECT id FROM subscribers WHERE id = $1 FOR UPDATE",
            ))
            .bind(subscriber_id)
            .execute(&mut *tx)
            .await?;
            let touched = match change {
                RatingChange::Rate { paper_ids, rating, source } => {
                    // One row per paper: PostgreSQL refuses to upsert a row twice in one
                    // statement.
                    let mut paper_ids = paper_ids.to_vec();
                    paper_ids.sort_unstable();
                    paper_ids.dedup();
                    let mut touched = 0;
                    for chunk in paper_ids.chunks(500) {
                        let mut q = sqlx::QueryBuilder::new(
                            "INSERT INTO ratings (subscriber_id, paper_id, more, source, rated_at) ",
                        );
                        q.push_values(chunk, |mut row, &paper_id| {
                            row.push_bind(subscriber_id)
                                .push_bind(paper_id)
                                .push_bind(rating.is_more())
                                .push_bind(source.as_str())
                                .push_bind(now);
                        });
                        q.push(
                            " ON CONFLICT (subscriber_id, paper_id) DO UPDATE SET \
                             more = excluded.more, source = excluded.source, \
                             rated_at = excluded.rated_at",
                        );
                        touched += q.build().execute(&mut *tx).await?.rows_affected();
                    }
                    touched
                }
                RatingChange::Remove(paper_id) => {
                    sqlx::query("DELETE FROM ratings WHERE subscriber_id = $1 AND paper_id = $2")
                        .bind(subscriber_id)
                        .bind(paper_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                }
                RatingChange::Clear => {
                    sqlx::query("DELETE FROM ratings WHERE subscriber_id = $1")
                        .bind(subscriber_id)
                        .execute(&mut *tx)
                        .await?
                        .rows_affected()
                }
            };
            let rated: Vec<(i64, bool)> = sqlx::query_as(
                "SELECT paper_id, more FROM ratings WHERE subscriber_id = $1 ORDER BY paper_id",
            )
            .bind(subscriber_id)
            .fetch_all(&mut *tx)
            .await?;
            let mut papers = Vec::with_capacity(rated.len());
            for chunk in rated.chunks(500) {
                let mut q = sqlx::QueryBuilder::new(select_papers!("WHERE id IN ("));
                push_id_list(&mut q, chunk.iter().map(|(id, _)| *id));
                let rows: Vec<PaperRow> = q.build_query_as().fetch_all(&mut *tx).await?;
                papers.extend(rows);
            }
            let mut by_id: std::collections::HashMap<i64, bool> = rated.into_iter().collect();
            let mut learned_from = Vec::with_capacity(papers.len());
            for row in papers {
                let paper = row.into_stored()?;
                if let Some(more) = by_id.remove(&paper.id) {
                    learned_from.push(RatedPaper {
                        paper,
                        rating: Rating::from_more(more),
                    });
                }
            }
            learned_from.sort_by_key(|r| r.paper.id);
            match learn(&learned_from) {
                Some(taste) => {
                    sqlx::query(
                        "INSERT INTO tastes (subscriber_id, model, more, updated_at) \
                         VALUES ($1, $2, $3, $4) ON CONFLICT (subscriber_id) DO UPDATE SET \
                         model = excluded.model, more = excluded.more, \
                         updated_at = excluded.updated_at",
                    )
                    .bind(subscriber_id)
                    .bind(&taste.model)
                    .bind(taste.more)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                None => {
                    sqlx::query("DELETE FROM tastes WHERE subscriber_id = $1")
                        .bind(subscriber_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
            tx.commit().await?;
            touched
        }))
    }

    /// A reader's ratings, newest first.
    pub async fn ratings_of(&self, subscriber_id: i64) -> StoreResult<Vec<RatingRecord>> {
        let rows: Vec<RatingRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT r.paper_id, p.key, p.title, r.more, r.source, r.rated_at \
                 FROM ratings r JOIN papers p ON p.id = r.paper_id \
                 WHERE r.subscriber_id = $1 ORDER BY r.rated_at DESC, r.paper_id DESC",
            )
            .bind(subscriber_id)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(RatingRow::into_record).collect()
    }

    /// The stored tastes of these readers (readers without one are left out).
    pub async fn tastes_of(&self, subscriber_ids: &[i64]) -> StoreResult<Vec<StoredTaste>> {
        let mut out = Vec::new();
        for chunk in subscriber_ids.chunks(500) {
            let rows: Vec<(i64, String, i64)> = on_pool!(self, pool => {
                let mut q = sqlx::QueryBuilder::new(
                    "SELECT subscriber_id, model, CAST(more AS BIGINT) FROM tastes \
                     WHERE subscriber_id IN (",
                );
                push_id_list(&mut q, chunk.iter().copied());
                q.build_query_as().fetch_all(pool).await?
            });
            out.extend(
                rows.into_iter()
                    .map(|(subscriber_id, model, more)| StoredTaste {
                        subscriber_id,
                        model,
                        more,
                    }),
            );
        }
        Ok(out)
    }

    /// The key and title of each of these papers, for naming them in explanations.
    pub async fn paper_titles(&self, ids: &[i64]) -> StoreResult<Vec<(i64, String, String)>> {
        let mut out = Vec::new();
        for chunk in ids.chunks(500) {
            let rows: Vec<(i64, String, String)> = on_pool!(self, pool => {
                let mut q =
                    sqlx::QueryBuilder::new("SELECT id, key, title FROM papers WHERE id IN (");
                push_id_list(&mut q, chunk.iter().copied());
                q.build_query_as().fetch_all(pool).await?
            });
            out.extend(rows);
        }
        Ok(out)
    }
}
