//! Papers and the sources that carried them: deduplicating upserts and the listings that
//! read them back.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::{BeginWrite, Store, StoreResult, WriteTx, json_list, on_pool, push_id_list, to_json};
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
pub(super) struct PaperRow {
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
    listed: bool,
}

impl PaperRow {
    pub(super) fn into_stored(self) -> StoreResult<StoredPaper> {
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
            "first_seen_at, updated_at, listed FROM papers ",
            $rest
        )
    };
}
pub(super) use select_papers;

/// Binds a paper's fields as `$2` to `$15`, in the order both the INSERT and the UPDATE
/// of `merge_or_insert` name them.
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

/// Keys looked up per query when reading the rows a batch may touch (three lists of at
/// most this many parameters).
const LOOKUP_CHUNK: usize = 300;
/// Feed links written per statement (seven parameters each).
const LINK_CHUNK: usize = 500;

/// The stored papers a batch may touch, found by key, arXiv id or DOI.
#[derive(Default)]
struct Known {
    papers: Vec<StoredPaper>,
    ids: HashSet<i64>,
    /// Those no feed has carried yet.
    unlisted: HashSet<i64>,
    by_key: HashMap<String, usize>,
    by_arxiv: HashMap<String, usize>,
    by_doi: HashMap<String, usize>,
    /// Rows merged into another during this batch, and the row they live on in.
    merged_into: HashMap<i64, i64>,
}

impl Known {
    fn add(&mut self, paper: StoredPaper) {
        if !self.ids.insert(paper.id) {
            return;
        }
        self.papers.push(paper);
        self.reindex(self.papers.len() - 1);
    }

    /// Files paper `at` under its identifiers; an identifier already filed under an older
    /// row (lower id) stays with it, as the database lookup used to prefer it.
    fn reindex(&mut self, at: usize) {
        let p = &self.papers[at];
        let id = p.id;
        let file = |map: &mut HashMap<String, usize>, value: &str| {
            let keep = map
                .get(value)
                .is_some_and(|&other| self.papers[other].id < id);
            if !keep {
                map.insert(value.to_string(), at);
            }
        };
        file(&mut self.by_key, p.paper.key.as_str());
        if let Some(a) = &p.paper.arxiv_id {
            file(&mut self.by_arxiv, a);
        }
        if let Some(d) = &p.paper.doi {
            file(&mut self.by_doi, d);
        }
    }

    /// The stored rows `paper` is: same key, same arXiv id or same DOI, oldest (lowest id)
    /// first. More than one means that `paper` shows them to be one paper. A DOI alone does
    /// not join two different arXiv preprints (two may cite one journal DOI): a row found
    /// only by DOI whose arXiv id differs from the entry's is another paper.
    fn find_all(&self, paper: &Paper) -> Vec<usize> {
        let by_doi = paper
            .doi
            .as_ref()
            .and_then(|d| self.by_doi.get(d))
            .copied()
            .filter(|&at| {
                let stored = &self.papers[at].paper.arxiv_id;
                !matches!((stored, &paper.arxiv_id), (Some(a), Some(b)) if a != b)
            });
        let mut found: Vec<usize> = [
            self.by_key.get(paper.key.as_str()).copied(),
            paper
                .arxiv_id
                .as_ref()
                .and_then(|a| self.by_arxiv.get(a))
                .copied(),
            by_doi,
        ]
        .into_iter()
        .flatten()
        .collect();
        found.sort_by_key(|&at| self.papers[at].id);
        found.dedup();
        found
    }

    /// The row that paper `id` lives in now.
    fn resolve(&self, mut id: i64) -> i64 {
        while let Some(&into) = self.merged_into.get(&id) {
            id = into;
        }
        id
    }

    /// Files everything filed under row `from` under row `into` instead (`from` was merged
    /// into it and deleted).
    fn refile(&mut self, from: usize, into: usize) {
        for map in [&mut self.by_key, &mut self.by_arxiv, &mut self.by_doi] {
            for at in map.values_mut() {
                if *at == from {
                    *at = into;
                }
            }
        }
    }
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
    ///
    /// The rows the batch may touch are read in a few queries up front, and the links to
    /// the feed are written in a few multi-row statements, so a batch costs about one round
    /// trip per new or changed paper.
    #[tracing::instrument(skip_all, fields(feed_id, entries = batch.len()))]
    pub async fn upsert_papers(
        &self,
        feed_id: i64,
        batch: &[Ingested],
        now: DateTime<Utc>,
    ) -> StoreResult<UpsertCounts> {
        self.upsert(Some(feed_id), batch, now).await
    }

    /// Stores papers that no feed carried (fetched because a reader said they like them),
    /// merged as [`Store::upsert_papers`] merges. A new one is stored unlisted, so it
    /// never counts as new: [`Store::papers_between`] leaves it out of every digest
    /// window until a feed carries it.
    #[tracing::instrument(skip_all, fields(entries = batch.len()))]
    pub async fn store_unlisted_papers(
        &self,
        batch: &[Ingested],
        now: DateTime<Utc>,
    ) -> StoreResult<UpsertCounts> {
        self.upsert(None, batch, now).await
    }

    async fn upsert(
        &self,
        feed_id: Option<i64>,
        batch: &[Ingested],
        now: DateTime<Utc>,
    ) -> StoreResult<UpsertCounts> {
        let batch = dedupe(batch);
        let mut counts = UpsertCounts::default();
        on_pool!(self, pool => {
            let mut tx = pool.begin_papers_write().await?;
            let mut known = read_known(&mut tx, &batch).await?;
            let listed = feed_id.is_some();
            let mut links: Vec<(i64, &Ingested)> = Vec::with_capacity(batch.len());
            for item in &batch {
                let paper_id =
                    merge_or_insert(&mut tx, &mut known, &item.paper, listed, now, &mut counts)
                        .await?;
                links.push((paper_id, item));
            }
            // An entry may have shown that an earlier entry's paper is an older one.
            for (paper_id, _) in &mut links {
                *paper_id = known.resolve(*paper_id);
            }
            if let Some(feed_id) = feed_id {
                relist(&mut tx, &known, &links).await?;
                link_sources(&mut tx, feed_id, links, now).await?;
            }
            tx.commit().await?;
        });
        Ok(counts)
    }

    /// Papers feeds carried, first stored at or after `since` (all when `None`), oldest
    /// first. Papers stored only because a reader listed them as liked are left out: they
    /// are no one's new papers, and they would show one reader's library to everyone.
    #[tracing::instrument(skip_all)]
    pub async fn list_papers(&self, since: Option<DateTime<Utc>>) -> StoreResult<Vec<StoredPaper>> {
        let rows: Vec<PaperRow> = on_pool!(self, pool => {
            match since {
                Some(since) => sqlx::query_as(select_papers!(
                    "WHERE listed AND first_seen_at >= $1 ORDER BY first_seen_at, id"
                ))
                .bind(since)
                .fetch_all(pool)
                .await?,
                None => sqlx::query_as(select_papers!("WHERE listed ORDER BY first_seen_at, id"))
                    .fetch_all(pool)
                    .await?,
            }
        });
        rows.into_iter().map(PaperRow::into_stored).collect()
    }

    /// One paper by key, with every feed that carried it. A paper merged into another row
    /// (its arXiv id or DOI now on a row keyed otherwise) is still found by its own key.
    #[tracing::instrument(skip_all, fields(key = %key))]
    pub async fn paper(
        &self,
        key: &PaperKey,
    ) -> StoreResult<Option<(StoredPaper, Vec<PaperSource>)>> {
        let k = key.as_str();
        let (column_query, value) = if let Some(id) = k.strip_prefix("arxiv:") {
            (
                select_papers!(
                    "WHERE key = $1 OR arxiv_id = $2 ORDER BY (key = $1) DESC, id LIMIT 1"
                ),
                id,
            )
        } else if let Some(doi) = k.strip_prefix("doi:") {
            (
                select_papers!("WHERE key = $1 OR doi = $2 ORDER BY (key = $1) DESC, id LIMIT 1"),
                doi,
            )
        } else {
            (select_papers!("WHERE key = $1 AND $2 = $2"), k)
        };
        let row: Option<PaperRow> = on_pool!(self, pool => {
            sqlx::query_as(column_query)
                .bind(k)
                .bind(value)
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

    /// The highest paper id: papers are numbered in commit order (one writer at a time),
    /// so everything committed later has a higher id.
    pub async fn max_paper_id(&self) -> StoreResult<i64> {
        Ok(on_pool!(self, pool => {
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) FROM papers")
                .fetch_one(pool)
                .await?
        }))
    }

    /// The listed papers with `after < id <= upto`, in id order, each with how many feeds
    /// carried it. A paper stored only because a reader said they like it
    /// ([`Store::store_unlisted_papers`]) is not new to anyone and is left out.
    #[tracing::instrument(skip_all, fields(after, upto))]
    pub async fn papers_between(
        &self,
        after: i64,
        upto: i64,
    ) -> StoreResult<Vec<(StoredPaper, i64)>> {
        let (rows, counts): (Vec<PaperRow>, Vec<(i64, i64)>) = on_pool!(self, pool => {
            let rows = sqlx::query_as(select_papers!(
                "WHERE id > $1 AND id <= $2 AND listed ORDER BY id"
            ))
                .bind(after)
                .bind(upto)
                .fetch_all(pool)
                .await?;
            let counts = sqlx::query_as(
                "SELECT paper_id, COUNT(*) FROM paper_sources \
                 WHERE paper_id > $1 AND paper_id <= $2 GROUP BY paper_id",
            )
            .bind(after)
            .bind(upto)
            .fetch_all(pool)
            .await?;
            (rows, counts)
        });
        let counts: HashMap<i64, i64> = counts.into_iter().collect();
        rows.into_iter()
            .map(|r| {
                let p = r.into_stored()?;
                let n = counts.get(&p.id).copied().unwrap_or(0);
                Ok((p, n))
            })
            .collect()
    }

    /// The stored papers with one of `keys` (an arXiv key also finds the paper its arXiv
    /// id was merged into), or with one of `dois` (lowercased) as their DOI whatever their
    /// key, a few queries per few hundred values.
    #[tracing::instrument(skip_all, fields(keys = keys.len(), dois = dois.len()))]
    pub async fn papers_by_keys_or_dois(
        &self,
        keys: &[PaperKey],
        dois: &[&str],
    ) -> StoreResult<Vec<StoredPaper>> {
        let mut found: Vec<StoredPaper> = Vec::new();
        let mut seen = HashSet::new();
        let keys: Vec<&str> = keys.iter().map(PaperKey::as_str).collect();
        let arxiv_ids: Vec<&str> = keys
            .iter()
            .filter_map(|k| k.strip_prefix("arxiv:"))
            .collect();
        for (column, values) in [
            ("key", keys.as_slice()),
            ("arxiv_id", arxiv_ids.as_slice()),
            ("doi", dois),
        ] {
            for chunk in values.chunks(LOOKUP_CHUNK) {
                let rows: Vec<PaperRow> = on_pool!(self, pool => {
                    let mut q = sqlx::QueryBuilder::new(select_papers!("WHERE "));
                    q.push(column).push(" IN (");
                    let mut list = q.separated(", ");
                    for value in chunk {
                        list.push_bind(*value);
                    }
                    list.push_unseparated(")");
                    q.build_query_as().fetch_all(pool).await?
                });
                for row in rows {
                    if seen.insert(row.id) {
                        found.push(row.into_stored()?);
                    }
                }
            }
        }
        Ok(found)
    }

    /// Papers by id, in the order asked; ids not stored are left out.
    #[tracing::instrument(skip_all, fields(n = ids.len()))]
    pub async fn papers_by_ids(&self, ids: &[i64]) -> StoreResult<Vec<StoredPaper>> {
        let mut found: HashMap<i64, StoredPaper> = HashMap::new();
        for chunk in ids.chunks(500) {
            let rows: Vec<PaperRow> = on_pool!(self, pool => {
                let mut q = sqlx::QueryBuilder::new(select_papers!("WHERE id IN ("));
                push_id_list(&mut q, chunk.iter().copied());
                q.build_query_as().fetch_all(pool).await?
            });
            for r in rows {
                let p = r.into_stored()?;
                found.insert(p.id, p);
            }
        }
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }
}

// The steps of `upsert_papers`, in its transaction.

/// Reads the stored papers a batch may touch (same key, arXiv id or DOI as one of its
/// entries), a few queries per batch.
async fn read_known<DB>(tx: &mut WriteTx<DB>, batch: &[Ingested]) -> StoreResult<Known>
where
    DB: sqlx::Database,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    PaperRow: for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
{
    let mut known = Known::default();
    for chunk in batch.chunks(LOOKUP_CHUNK) {
        let mut query = sqlx::QueryBuilder::<DB>::new(select_papers!("WHERE FALSE"));
        let columns: [(&str, Vec<&str>); 3] = [
            ("key", chunk.iter().map(|i| i.paper.key.as_str()).collect()),
            (
                "arxiv_id",
                chunk
                    .iter()
                    .filter_map(|i| i.paper.arxiv_id.as_deref())
                    .collect(),
            ),
            (
                "doi",
                chunk
                    .iter()
                    .filter_map(|i| i.paper.doi.as_deref())
                    .collect(),
            ),
        ];
        for (column, values) in columns {
            if values.is_empty() {
                continue;
            }
            query.push(" OR ").push(column).push(" IN (");
            let mut list = query.separated(", ");
            for value in values {
                list.push_bind(value);
            }
            list.push_unseparated(")");
        }
        let rows: Vec<PaperRow> = query.build_query_as().fetch_all(&mut **tx).await?;
        for row in rows {
            if !row.listed {
                known.unlisted.insert(row.id);
            }
            known.add(row.into_stored()?);
        }
    }
    Ok(known)
}

/// Writes one incoming paper: merged into the stored row it matches (written only when
/// the merge changed it), or inserted as new, `listed` or not. Returns its id and counts
/// what it did.
async fn merge_or_insert<DB>(
    tx: &mut WriteTx<DB>,
    known: &mut Known,
    incoming: &Paper,
    listed: bool,
    now: DateTime<Utc>,
    counts: &mut UpsertCounts,
) -> StoreResult<i64>
where
    DB: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<DateTime<Utc>>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Decode<'q, DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
    (i64, String): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
{
    let found = known.find_all(incoming);
    let Some((&at, newer_rows)) = found.split_first() else {
        let query = sqlx::query_scalar::<DB, i64>(
            "INSERT INTO papers (key, arxiv_id, version, doi, title, abstract, authors, \
             categories, abs_url, pdf_url, discussion_url, thumbnail_url, published_at, \
             upvotes, comments, first_seen_at, updated_at, listed) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, \
             $16, $17) RETURNING id",
        )
        .bind(incoming.key.as_str());
        let id = bind_paper_fields!(query, incoming)
            .bind(now)
            .bind(listed)
            .fetch_one(&mut **tx)
            .await?;
        counts.new += 1;
        if !listed {
            known.unlisted.insert(id);
        }
        known.add(StoredPaper {
            id,
            paper: incoming.clone(),
            first_seen_at: now,
            updated_at: now,
        });
        return Ok(id);
    };
    let mut merged_rows = false;
    for &newer in newer_rows {
        merge_rows(tx, known, at, newer).await?;
        merged_rows = true;
    }
    let stored = &mut known.papers[at];
    if stored.paper.merge(incoming) || merged_rows {
        let query = sqlx::query::<DB>(
            "UPDATE papers SET arxiv_id = $2, version = $3, doi = $4, title = $5, \
             abstract = $6, authors = $7, categories = $8, abs_url = $9, pdf_url = $10, \
             discussion_url = $11, thumbnail_url = $12, published_at = $13, upvotes = $14, \
             comments = $15, updated_at = $16 WHERE id = $1",
        )
        .bind(stored.id);
        bind_paper_fields!(query, stored.paper)
            .bind(now)
            .execute(&mut **tx)
            .await?;
        stored.updated_at = now;
        counts.updated += 1;
    } else {
        counts.unchanged += 1;
    }
    let id = stored.id;
    known.reindex(at);
    Ok(id)
}

/// Merges stored row `newer` into the older row `at`, which a new entry has shown to be the
/// same paper (an arXiv preprint that gives the DOI its journal entry was stored under):
/// what `newer` knew fills `at`, everything that refers to `newer` (feed sources, digest
/// entries, ratings, tastes) is repointed to `at`, and `newer` is deleted, all in the
/// caller's transaction. Where both rows have a row of their own in a table keyed by paper
/// (the same feed carried both, the reader rated both), the older row's is kept. The
/// caller writes the merged fields of `at`.
async fn merge_rows<DB>(
    tx: &mut WriteTx<DB>,
    known: &mut Known,
    at: usize,
    newer: usize,
) -> StoreResult<()>
where
    DB: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    (i64, String): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
{
    let (keep, gone) = (known.papers[at].id, known.papers[newer].id);
    tracing::info!(
        kept = %known.papers[at].paper.key,
        merged = %known.papers[newer].paper.key,
        "two stored papers are one; merging into the older"
    );
    let other = known.papers[newer].paper.clone();
    known.papers[at].paper.merge(&other);
    for statement in [
        "UPDATE paper_sources SET paper_id = $1 WHERE paper_id = $2 AND feed_id NOT IN \
         (SELECT feed_id FROM paper_sources WHERE paper_id = $1)",
        "UPDATE ratings SET paper_id = $1 WHERE paper_id = $2 AND subscriber_id NOT IN \
         (SELECT subscriber_id FROM ratings WHERE paper_id = $1)",
        "UPDATE digest_papers SET paper_id = $1 WHERE paper_id = $2",
        // What was not moved (a feed or a rating both rows had) goes with the row.
        "DELETE FROM paper_sources WHERE paper_id = $2",
        "DELETE FROM ratings WHERE paper_id = $2",
        "DELETE FROM papers WHERE id = $2",
    ] {
        sqlx::query::<DB>(statement)
            .bind(keep)
            .bind(gone)
            .execute(&mut **tx)
            .await?;
    }
    // A taste names the rated papers it learned from by id (its second line).
    let tastes: Vec<(i64, String)> =
        sqlx::query_as::<DB, (i64, String)>("SELECT subscriber_id, model FROM tastes")
            .fetch_all(&mut **tx)
            .await?;
    for (subscriber, model) in tastes {
        if let Some(model) = repoint_exemplars(&model, gone, keep) {
            sqlx::query::<DB>("UPDATE tastes SET model = $2 WHERE subscriber_id = $1")
                .bind(subscriber)
                .bind(model)
                .execute(&mut **tx)
                .await?;
        }
    }
    // Listed if either was: a feed carried one of them.
    if known.unlisted.contains(&keep) && !known.unlisted.contains(&gone) {
        sqlx::query::<DB>("UPDATE papers SET listed = TRUE WHERE id = $1")
            .bind(keep)
            .execute(&mut **tx)
            .await?;
        known.unlisted.remove(&keep);
    }
    known.unlisted.remove(&gone);
    known.merged_into.insert(gone, keep);
    known.refile(newer, at);
    Ok(())
}

/// A stored taste with paper `from` replaced by `to` among its exemplars (the
/// comma-separated ids of its second line); `None` when it does not name `from`.
fn repoint_exemplars(model: &str, from: i64, to: i64) -> Option<String> {
    let mut lines: Vec<&str> = model.split('\n').collect();
    let ids = lines.get(1)?;
    let from = from.to_string();
    if !ids.split(',').any(|id| id == from) {
        return None;
    }
    let to = to.to_string();
    let repointed: Vec<&str> = ids
        .split(',')
        .map(|id| if id == from { to.as_str() } else { id })
        .collect();
    let joined = repointed.join(",");
    lines[1] = &joined;
    Some(lines.join("\n"))
}

/// Lists the papers of a feed's batch that were stored unlisted (a reader liked them before
/// any feed carried them): from now on they are papers like any other. Usually none.
async fn relist<DB>(
    tx: &mut WriteTx<DB>,
    known: &Known,
    links: &[(i64, &Ingested)],
) -> StoreResult<()>
where
    DB: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
{
    let ids: Vec<i64> = links
        .iter()
        .map(|(id, _)| *id)
        .filter(|id| known.unlisted.contains(id))
        .collect();
    for chunk in ids.chunks(LINK_CHUNK) {
        let mut query =
            sqlx::QueryBuilder::<DB>::new("UPDATE papers SET listed = TRUE WHERE id IN (");
        push_id_list(&mut query, chunk.iter().copied());
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Links each paper to the feed that carried it, keeping the entry's id, version and
/// announcement, a few hundred links per statement.
async fn link_sources<DB>(
    tx: &mut WriteTx<DB>,
    feed_id: i64,
    mut links: Vec<(i64, &Ingested)>,
    now: DateTime<Utc>,
) -> StoreResult<()>
where
    DB: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<i64>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> Option<&'q str>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
{
    // Two entries of one batch can resolve to the same paper (an arXiv id and its DOI);
    // one statement may not touch a row twice, so keep the last link.
    let mut linked = HashSet::new();
    links.reverse();
    links.retain(|(id, _)| linked.insert(*id));
    links.reverse();
    for chunk in links.chunks(LINK_CHUNK) {
        let mut query = sqlx::QueryBuilder::<DB>::new(
            "INSERT INTO paper_sources (paper_id, feed_id, entry_id, version, announce_type, \
             first_seen_at, last_seen_at) ",
        );
        query.push_values(chunk, |mut row, (paper_id, item)| {
            row.push_bind(*paper_id)
                .push_bind(feed_id)
                .push_bind(item.entry_id.as_str())
                .push_bind(item.paper.version.map(i64::from))
                .push_bind(item.announce_type.map(|a| a.as_str()))
                .push_bind(now)
                .push_bind(now);
        });
        query.push(
            " ON CONFLICT (paper_id, feed_id) DO UPDATE SET entry_id = excluded.entry_id, \
             version = excluded.version, announce_type = excluded.announce_type, \
             last_seen_at = excluded.last_seen_at",
        );
        query.build().execute(&mut **tx).await?;
    }
    Ok(())
}
