//! Digests and their deliveries: the outbox. A digest is written, with its papers and its
//! delivery, in the same transaction that moves the reader's window on, so it exists
//! exactly once per window; deliveries are claimed with a lease and finished only by the
//! worker holding it.

use std::collections::{HashMap, HashSet};

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

use super::{
    BeginWrite, Store, StoreError, StoreResult, StoredPaper, WriteTx, on_pool, push_id_list,
};
use crate::domain::Explanation;

/// One paper of a digest, best first: by id, with its score and why it matched. The
/// suggestions ("You might also like", outside the reader's queries) follow the matches.
#[derive(Debug, Clone)]
pub struct DigestEntry {
    pub paper_id: i64,
    pub score: f64,
    pub explanation: Explanation,
    pub suggested: bool,
}

/// A digest to write: the reader's window and what matched in it.
#[derive(Debug, Clone)]
pub struct NewDigest<'a> {
    pub subscriber_id: i64,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub papers_after: i64,
    pub papers_upto: i64,
    /// Every match, best first, then the suggestions; without a match the window is
    /// recorded as skipped.
    pub entries: &'a [DigestEntry],
    /// How many the email lists.
    pub shown: usize,
    pub trending: bool,
    pub archive_key: &'a str,
    /// How many papers each of the reader's queries matched, in their order.
    pub per_query: &'a [(String, usize)],
    /// The Message-ID of its delivery (without brackets); unused when skipped.
    pub message_id: &'a str,
}

/// A stored digest.
#[derive(Debug, Clone, Serialize, sqlx::FromRow)]
pub struct DigestRecord {
    pub id: i64,
    pub subscriber_id: i64,
    pub window_start: DateTime<Utc>,
    pub window_end: DateTime<Utc>,
    pub papers_after: i64,
    pub papers_upto: i64,
    pub status: String,
    pub total: i32,
    pub shown: i32,
    pub trending: bool,
    #[serde(skip)]
    pub archive_key: String,
    pub created_at: DateTime<Utc>,
    /// JSON: how many papers each query matched; see [`DigestRecord::per_query`].
    #[serde(skip)]
    pub per_query: String,
}

impl DigestRecord {
    /// How many papers of the window each of the reader's queries matched, in their order.
    pub fn per_query(&self) -> Vec<(String, usize)> {
        // Written by the store itself; an unreadable value only loses the counts.
        serde_json::from_str(&self.per_query).unwrap_or_default()
    }
}

/// A digest's paper as stored, with its score and why it matched.
#[derive(Debug, Clone)]
pub struct StoredEntry {
    pub paper: StoredPaper,
    pub score: f64,
    pub explanation: Explanation,
    pub suggested: bool,
}

/// One paper a reader was sent, with the digest that brought it: a row of their feed.
#[derive(Debug, Clone)]
pub struct SentEntry {
    pub digest_id: i64,
    /// The end of the digest's window: when the paper was composed for the reader.
    pub window_end: DateTime<Utc>,
    /// Whether the digest was a trending one (a reader without queries).
    pub trending: bool,
    pub entry: StoredEntry,
}

/// A row of `digest_papers` with its digest's window end.
#[derive(sqlx::FromRow)]
struct SentRow {
    window_end: DateTime<Utc>,
    trending: bool,
    #[sqlx(flatten)]
    entry: EntryRow,
}

/// A row of `digest_papers`.
#[derive(sqlx::FromRow)]
struct EntryRow {
    digest_id: i64,
    rank: i32,
    paper_id: i64,
    score: f64,
    explanation: String,
    suggested: bool,
}

impl EntryRow {
    fn into_entry(self) -> StoreResult<DigestEntry> {
        let explanation = serde_json::from_str(&self.explanation).map_err(|e| {
            StoreError::Corrupt(format!("digest {}: explanation: {e}", self.digest_id))
        })?;
        Ok(DigestEntry {
            paper_id: self.paper_id,
            score: self.score,
            explanation,
            suggested: self.suggested,
        })
    }
}

/// A delivery a worker holds: send it, then finish it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct Claimed {
    pub id: i64,
    pub digest_id: i64,
    pub subscriber_id: i64,
    pub message_id: String,
    pub attempts: i32,
    pub created_at: DateTime<Utc>,
}

/// How a delivery attempt ended.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Accepted by the relay (its reply) or written to the outbox (the file).
    Sent(String),
    /// A temporary failure: try again at this instant.
    Retry { error: String, at: DateTime<Utc> },
    /// Given up after too long: no more attempts.
    Failed(String),
    /// The relay refused the address for good; the reader is marked bounced.
    Bounced(String),
    /// Not sent because the reader may no longer be mailed.
    Suppressed(String),
    /// Not attempted (the worker stopped): back in the queue as it was.
    Released,
}

/// In words, for logs: `sent (250 OK)`, `retry at 2026-12-01T08:00:00Z: 451 …`.
impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Sent(reply) => write!(f, "sent ({reply})"),
            Outcome::Retry { error, at } => write!(
                f,
                "retry at {}: {error}",
                at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
            ),
            Outcome::Failed(error) => write!(f, "failed: {error}"),
            Outcome::Bounced(error) => write!(f, "bounced: {error}"),
            Outcome::Suppressed(why) => write!(f, "suppressed: {why}"),
            Outcome::Released => f.write_str("released unsent"),
        }
    }
}

/// One outcome as written: delivery id, status, error, relay reply, next attempt, and
/// whether the attempt is given back (not counted).
type OutcomeRow<'a> = (
    i64,
    &'a str,
    Option<&'a str>,
    Option<&'a str>,
    Option<DateTime<Utc>>,
    bool,
);

/// How an outcome is written: a release goes back to the queue as due now, its attempt
/// given back.
fn outcome_row(id: i64, outcome: &Outcome, now: DateTime<Utc>) -> OutcomeRow<'_> {
    let (status, error, reply, next) = match outcome {
        Outcome::Sent(reply) => ("sent", None, Some(reply.as_str()), None),
        Outcome::Retry { error, at } => ("retry", Some(error.as_str()), None, Some(*at)),
        Outcome::Failed(e) => ("failed", Some(e.as_str()), None, None),
        Outcome::Bounced(e) => ("bounced", Some(e.as_str()), None, None),
        Outcome::Suppressed(e) => ("suppressed", Some(e.as_str()), None, None),
        Outcome::Released => ("retry", None, None, Some(now)),
    };
    let released = matches!(outcome, Outcome::Released);
    (id, status, error, reply, next, released)
}

macro_rules! select_digests {
    ($rest:literal) => {
        concat!(
            "SELECT id, subscriber_id, window_start, window_end, papers_after, papers_upto, ",
            "status, total, shown, trending, archive_key, created_at, per_query FROM digests ",
            $rest
        )
    };
}

impl Store {
    /// Writes a digest for a reader's window, moving the window on in the same
    /// transaction, and queues its delivery when it has papers: [`Store::save_digests`]
    /// for one reader. `None` when the window is no longer the reader's current one
    /// (another run composed it, or the reader changed status meanwhile): nothing is
    /// written.
    #[tracing::instrument(skip_all, fields(subscriber = d.subscriber_id, papers = d.entries.len()))]
    pub async fn save_digest(
        &self,
        d: &NewDigest<'_>,
        now: DateTime<Utc>,
    ) -> StoreResult<Option<i64>> {
        Ok(self
            .save_digests(std::slice::from_ref(d), now)
            .await?
            .pop()
            .flatten())
    }

    /// Writes many readers' digests in one transaction, each with its papers and, when it
    /// has papers, its delivery. Each reader's window moves on by compare-and-set (the
    /// window rule, in `move_windows`), and only the readers whose window moved get a
    /// digest (`None` for the others, in input order). All or nothing: an error leaves
    /// every window where it was, and the caller may retry one by one. Each reader may
    /// appear once.
    #[tracing::instrument(skip_all, fields(digests = digests.len()))]
    pub async fn save_digests(
        &self,
        digests: &[NewDigest<'_>],
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Option<i64>>> {
        let mut subscribers: Vec<i64> = digests.iter().map(|d| d.subscriber_id).collect();
        subscribers.sort_unstable();
        subscribers.dedup();
        if subscribers.len() != digests.len() {
            return Err(StoreError::Conflict(
                "a reader appears twice in one batch of digests".into(),
            ));
        }
        if digests.is_empty() {
            return Ok(Vec::new());
        }
        let ids: HashMap<i64, i64> = on_pool!(self, pool => {
            let mut tx = pool.begin_write().await?;
            let moved = move_windows(&mut tx, digests).await?;
            let writing: Vec<&NewDigest<'_>> = digests
                .iter()
                .filter(|d| moved.contains(&d.subscriber_id))
                .collect();
            let ids = insert_digests(&mut tx, &writing, now).await?;
            insert_digest_papers(&mut tx, &writing, &ids).await?;
            queue_deliveries(&mut tx, &writing, &ids, now).await?;
            tx.commit().await?;
            ids
        });
        Ok(digests
            .iter()
            .map(|d| ids.get(&d.subscriber_id).copied())
            .collect())
    }

    pub async fn digest(&self, id: i64) -> StoreResult<Option<DigestRecord>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(select_digests!("WHERE id = $1"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        }))
    }

    /// The digests whose window ended on `date` (UTC), oldest first.
    pub async fn digests_on(&self, date: chrono::NaiveDate) -> StoreResult<Vec<DigestRecord>> {
        let from = date.and_time(chrono::NaiveTime::MIN).and_utc();
        let to = from + Duration::days(1);
        Ok(on_pool!(self, pool => {
            sqlx::query_as(select_digests!(
                "WHERE window_end >= $1 AND window_end < $2 ORDER BY id"
            ))
            .bind(from)
            .bind(to)
            .fetch_all(pool)
            .await?
        }))
    }

    /// A reader's digests, newest first.
    pub async fn digests_of(&self, subscriber_id: i64) -> StoreResult<Vec<DigestRecord>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(select_digests!(
                "WHERE subscriber_id = $1 ORDER BY window_end DESC, id DESC"
            ))
            .bind(subscriber_id)
            .fetch_all(pool)
            .await?
        }))
    }

    /// Whether a paper is one of a digest's entries (a match or a suggestion).
    pub async fn digest_holds(&self, digest_id: i64, paper_id: i64) -> StoreResult<bool> {
        let found: Option<i64> = on_pool!(self, pool => {
            sqlx::query_scalar(
                "SELECT paper_id FROM digest_papers WHERE digest_id = $1 AND paper_id = $2 LIMIT 1",
            )
            .bind(digest_id)
            .bind(paper_id)
            .fetch_optional(pool)
            .await?
        });
        Ok(found.is_some())
    }

    /// A digest's papers, best first (the first `limit` when given), then its suggestions.
    #[tracing::instrument(skip_all, fields(digest = id))]
    pub async fn digest_entries(
        &self,
        id: i64,
        limit: Option<usize>,
    ) -> StoreResult<Vec<StoredEntry>> {
        let limit = i64::try_from(limit.unwrap_or(usize::MAX)).unwrap_or(i64::MAX);
        let rows: Vec<EntryRow> = on_pool!(self, pool => {
            let mut rows: Vec<EntryRow> = sqlx::query_as(
                "SELECT digest_id, rank, paper_id, score, explanation, suggested \
                 FROM digest_papers WHERE digest_id = $1 AND NOT suggested ORDER BY rank LIMIT $2",
            )
            .bind(id)
            .bind(limit)
            .fetch_all(pool)
            .await?;
            rows.extend(
                sqlx::query_as::<_, EntryRow>(
                    "SELECT digest_id, rank, paper_id, score, explanation, suggested \
                     FROM digest_papers WHERE digest_id = $1 AND suggested ORDER BY rank",
                )
                .bind(id)
                .fetch_all(pool)
                .await?,
            );
            rows
        });
        self.with_papers(rows).await
    }

    /// The papers that matched in a reader's composed digests whose window ended at or
    /// after `since` (their suggestions left out): newest digest first, in email order
    /// within a digest, each paper once (the newest digest that holds it), at most
    /// `limit`. Read along the `(subscriber_id,
    /// window_end)` key of `digests` and the primary key of `digest_papers`.
    #[tracing::instrument(skip_all, fields(subscriber = subscriber_id))]
    pub async fn sent_entries(
        &self,
        subscriber_id: i64,
        since: DateTime<Utc>,
        limit: usize,
    ) -> StoreResult<Vec<SentEntry>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows: Vec<SentRow> = on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT d.window_end, d.trending, p.digest_id, p.rank, p.paper_id, p.score, \
                 p.explanation, p.suggested FROM digests d \
                 JOIN digest_papers p ON p.digest_id = d.id \
                 WHERE d.subscriber_id = $1 AND d.window_end >= $2 AND d.status = 'composed' \
                 AND NOT p.suggested ORDER BY d.window_end DESC, d.id DESC, p.rank LIMIT $3",
            )
            .bind(subscriber_id)
            .bind(since)
            .bind(limit)
            .fetch_all(pool)
            .await?
        });
        let mut seen = HashSet::new();
        let rows: Vec<SentRow> = rows
            .into_iter()
            .filter(|r| seen.insert(r.entry.paper_id))
            .collect();
        let heads: Vec<(i64, DateTime<Utc>, bool)> = rows
            .iter()
            .map(|r| (r.entry.digest_id, r.window_end, r.trending))
            .collect();
        let entries = self
            .with_papers(rows.into_iter().map(|r| r.entry).collect())
            .await?;
        Ok(heads
            .into_iter()
            .zip(entries)
            .map(|((digest_id, window_end, trending), entry)| SentEntry {
                digest_id,
                window_end,
                trending,
                entry,
            })
            .collect())
    }

    /// Digest rows with their papers, read in one go (a paper two rows share, once).
    async fn with_papers(&self, rows: Vec<EntryRow>) -> StoreResult<Vec<StoredEntry>> {
        let ids: Vec<i64> = rows.iter().map(|r| r.paper_id).collect();
        let papers: HashMap<i64, StoredPaper> = self
            .papers_by_ids(&ids)
            .await?
            .into_iter()
            .map(|p| (p.id, p))
            .collect();
        rows.into_iter()
            .map(|r| {
                let paper = papers.get(&r.paper_id).cloned().ok_or_else(|| {
                    StoreError::Corrupt(format!(
                        "digest {}: paper {} missing",
                        r.digest_id, r.paper_id
                    ))
                })?;
                let entry = r.into_entry()?;
                Ok(StoredEntry {
                    paper,
                    score: entry.score,
                    explanation: entry.explanation,
                    suggested: entry.suggested,
                })
            })
            .collect()
    }

    /// The digests with these ids that exist, each with the entries its email lists (its
    /// top `shown`, best first, by paper id): what a worker renders a batch of deliveries
    /// from, read in two queries per 500 digests. The papers themselves are the caller's
    /// to read ([`Store::papers_by_ids`]): many digests share them.
    pub async fn digests_for_sending(
        &self,
        ids: &[i64],
    ) -> StoreResult<Vec<(DigestRecord, Vec<DigestEntry>)>> {
        let mut digests: Vec<DigestRecord> = Vec::with_capacity(ids.len());
        let mut rows: Vec<EntryRow> = Vec::new();
        for chunk in ids.chunks(500) {
            on_pool!(self, pool => {
                let mut q = sqlx::QueryBuilder::new(select_digests!("WHERE id IN ("));
                push_id_list(&mut q, chunk.iter().copied());
                let found: Vec<DigestRecord> = q.build_query_as().fetch_all(pool).await?;
                if found.is_empty() {
                    continue;
                }
                // One table, read along its primary key up to the most any of these digests
                // shows (a join with the digests lets a planner without fresh statistics
                // scan all of them); each digest's own limit is applied below.
                let most = found.iter().map(|d| d.shown).max().unwrap_or(0);
                let mut q = sqlx::QueryBuilder::new(
                    "SELECT digest_id, rank, paper_id, score, explanation, suggested \
                     FROM digest_papers WHERE rank <= ",
                );
                q.push_bind(most).push(" AND NOT suggested AND digest_id IN (");
                push_id_list(&mut q, found.iter().map(|d| d.id));
                q.push(" ORDER BY digest_id, rank");
                rows.extend(q.build_query_as::<EntryRow>().fetch_all(pool).await?);
                // The suggestions, through their own small index.
                let mut q = sqlx::QueryBuilder::new(
                    "SELECT digest_id, rank, paper_id, score, explanation, suggested \
                     FROM digest_papers WHERE suggested AND digest_id IN (",
                );
                push_id_list(&mut q, found.iter().map(|d| d.id));
                q.push(" ORDER BY digest_id, rank");
                rows.extend(q.build_query_as::<EntryRow>().fetch_all(pool).await?);
                digests.extend(found);
            });
        }
        let shown: HashMap<i64, i32> = digests.iter().map(|d| (d.id, d.shown)).collect();
        let mut entries: HashMap<i64, Vec<DigestEntry>> = HashMap::new();
        for r in rows {
            if !r.suggested && shown.get(&r.digest_id).is_none_or(|&n| r.rank > n) {
                continue;
            }
            entries
                .entry(r.digest_id)
                .or_default()
                .push(r.into_entry()?);
        }
        Ok(digests
            .into_iter()
            .map(|d| {
                let listed = entries.remove(&d.id).unwrap_or_default();
                (d, listed)
            })
            .collect())
    }

    /// Extends the leases `owner` still holds among `ids`; returns those it holds.
    pub async fn renew_leases(
        &self,
        ids: &[i64],
        owner: &str,
        until: DateTime<Utc>,
    ) -> StoreResult<HashSet<i64>> {
        if ids.is_empty() {
            return Ok(Default::default());
        }
        let held: Vec<i64> = on_pool!(self, pool => {
            let mut tx = pool.begin_bookkeeping().await?;
            let mut q = sqlx::QueryBuilder::new("UPDATE deliveries SET lease_until = ");
            q.push_bind(until)
                .push(" WHERE lease_owner = ")
                .push_bind(owner)
                .push(" AND status = 'sending' AND id IN (");
            push_id_list(&mut q, ids.iter().copied());
            q.push(" RETURNING id");
            let held = q.build_query_scalar().fetch_all(&mut *tx).await?;
            tx.commit().await?;
            held
        });
        Ok(held.into_iter().collect())
    }

    /// Takes up to `limit` deliveries that are due (queued, or to retry now, or sending
    /// under a lease that expired) for `owner` until `now + lease`. PostgreSQL skips rows
    /// another worker is claiming; SQLite's write lock makes claims take turns.
    #[tracing::instrument(skip_all, fields(owner, limit))]
    pub async fn claim_deliveries(
        &self,
        owner: &str,
        limit: usize,
        lease: Duration,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<Claimed>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let claimed: Vec<Claimed> = on_pool!(self, pool => {
            let mut tx = pool.begin_bookkeeping().await?;
            // Each status is read in index order and only the oldest of the three lists are
            // taken: one query over the whole queue would sort all of it at every claim.
            let ids: Vec<i64> = sqlx::query_scalar(pool.locking(
                "SELECT id FROM ( \
                 SELECT * FROM (SELECT id, next_attempt_at FROM deliveries \
                   WHERE status = 'queued' AND next_attempt_at <= $1 \
                   ORDER BY next_attempt_at, id LIMIT $2) \
                 UNION ALL SELECT * FROM (SELECT id, next_attempt_at FROM deliveries \
                   WHERE status = 'retry' AND next_attempt_at <= $1 \
                   ORDER BY next_attempt_at, id LIMIT $2) \
                 UNION ALL SELECT * FROM (SELECT id, next_attempt_at FROM deliveries \
                   WHERE status = 'sending' AND lease_until <= $1 \
                   ORDER BY next_attempt_at, id LIMIT $2) \
                 ) ORDER BY next_attempt_at, id LIMIT $2",
                // FOR UPDATE cannot sit under a UNION, so each list is a CTE of its own.
                "WITH queued AS (SELECT id, next_attempt_at FROM deliveries \
                   WHERE status = 'queued' AND next_attempt_at <= $1 \
                   ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
                 retry AS (SELECT id, next_attempt_at FROM deliveries \
                   WHERE status = 'retry' AND next_attempt_at <= $1 \
                   ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED), \
                 expired AS (SELECT id, next_attempt_at FROM deliveries \
                   WHERE status = 'sending' AND lease_until <= $1 \
                   ORDER BY next_attempt_at, id LIMIT $2 FOR UPDATE SKIP LOCKED) \
                 SELECT id FROM (SELECT * FROM queued UNION ALL SELECT * FROM retry \
                   UNION ALL SELECT * FROM expired) AS due \
                 ORDER BY next_attempt_at, id LIMIT $2",
            ))
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
            let mut claimed: Vec<Claimed> = Vec::with_capacity(ids.len());
            if !ids.is_empty() {
                let mut q = sqlx::QueryBuilder::new(
                    "UPDATE deliveries SET status = 'sending', lease_owner = ",
                );
                q.push_bind(owner)
                    .push(", lease_until = ")
                    .push_bind(now + lease)
                    .push(", attempts = attempts + 1, updated_at = ")
                    .push_bind(now)
                    .push(" WHERE id IN (");
                push_id_list(&mut q, ids.iter().copied());
                q.push(" RETURNING id, digest_id, subscriber_id, message_id, attempts, created_at");
                claimed = q.build_query_as().fetch_all(&mut *tx).await?;
                // In the order they were chosen: oldest first.
                claimed.sort_by_key(|c| ids.iter().position(|id| *id == c.id));
            }
            tx.commit().await?;
            claimed
        });
        Ok(claimed)
    }

    /// Records how attempts ended, in one transaction, for the deliveries `owner` still
    /// holds (a worker whose lease ran out and was taken over changes nothing); whether it
    /// held each, in order.
    #[tracing::instrument(skip_all, fields(deliveries = outcomes.len()))]
    pub async fn finish_deliveries(
        &self,
        outcomes: &[(i64, &Outcome)],
        owner: &str,
        now: DateTime<Utc>,
    ) -> StoreResult<Vec<bool>> {
        if outcomes.is_empty() {
            return Ok(Vec::new());
        }
        let rows: Vec<OutcomeRow<'_>> = outcomes
            .iter()
            .map(|(id, outcome)| outcome_row(*id, outcome, now))
            .collect();
        let held: HashSet<i64> = on_pool!(self, pool => {
            let mut tx = pool.begin_bookkeeping().await?;
            let mut held = HashSet::new();
            // A few hundred outcomes per statement.
            for chunk in rows.chunks(500) {
                let mut q = sqlx::QueryBuilder::new(
                    "UPDATE deliveries SET status = v.column2, \
                     last_error = COALESCE(v.column3, deliveries.last_error), \
                     reply = COALESCE(v.column4, deliveries.reply), \
                     next_attempt_at = COALESCE(v.column5, deliveries.next_attempt_at), \
                     attempts = CASE WHEN v.column6 THEN deliveries.attempts - 1 \
                     ELSE deliveries.attempts END, \
                     lease_owner = NULL, lease_until = NULL, updated_at = ",
                );
                q.push_bind(now)
                    .push(", sent_at = CASE WHEN v.column2 = 'sent' THEN ")
                    .push_bind(now)
                    .push(" ELSE deliveries.sent_at END FROM (");
                q.push_values(chunk, |mut row, (id, status, error, reply, next, released)| {
                    row.push_bind(*id)
                        .push_bind(*status)
                        .push_bind(*error)
                        .push_bind(*reply)
                        .push_bind(*next)
                        .push_bind(*released);
                });
                q.push(") AS v WHERE deliveries.id = v.column1 AND deliveries.lease_owner = ")
                    .push_bind(owner)
                    .push(" AND deliveries.status = 'sending' RETURNING deliveries.id");
                held.extend(q.build_query_scalar::<i64>().fetch_all(&mut *tx).await?);
            }
            // A hard bounce is recorded as an event and marks the reader, if we still
            // held the delivery.
            for (id, outcome) in outcomes {
                if let Outcome::Bounced(error) = outcome
                    && held.contains(id)
                {
                    sqlx::query(
                        "INSERT INTO bounce_events (at, delivery_id, subscriber_id, kind, \
                         status, diagnostic, source, recorded_at) \
                         SELECT $2, id, subscriber_id, 'hard', $3, $4, 'smtp', $2 \
                         FROM deliveries WHERE id = $1",
                    )
                    .bind(id)
                    .bind(now)
                    .bind(crate::domain::enhanced_status(error))
                    .bind(error.as_str())
                    .execute(&mut *tx)
                    .await?;
                    sqlx::query(
                        "UPDATE subscribers SET status = 'bounced', updated_at = $2 \
                         WHERE id = (SELECT subscriber_id FROM deliveries WHERE id = $1) \
                         AND status IN ('pending', 'active', 'paused')",
                    )
                    .bind(id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            tx.commit().await?;
            held
        });
        Ok(outcomes.iter().map(|(id, _)| held.contains(id)).collect())
    }

    /// Every delivery of a digest: `(id, status, message_id, attempts)`, oldest first.
    pub async fn deliveries_of(
        &self,
        digest_id: i64,
    ) -> StoreResult<Vec<(i64, String, String, i32)>> {
        Ok(on_pool!(self, pool => {
            sqlx::query_as(
                "SELECT id, status, message_id, attempts FROM deliveries \
                 WHERE digest_id = $1 ORDER BY id",
            )
            .bind(digest_id)
            .fetch_all(pool)
            .await?
        }))
    }
}

// The steps of `save_digests`, each a few multi-row statements in its transaction.

/// Moves each reader's window on by compare-and-set: from where it stood, forward in time,
/// for a reader still active, so of two runs composing a window one wins. Returns the
/// readers whose window moved; the others were taken by another run (or left meanwhile).
async fn move_windows<DB>(
    tx: &mut WriteTx<DB>,
    digests: &[NewDigest<'_>],
) -> StoreResult<HashSet<i64>>
where
    DB: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Decode<'q, DB> + sqlx::Type<DB>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64,): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
{
    let mut q = sqlx::QueryBuilder::<DB>::new(
        "UPDATE subscribers SET paper_cursor = v.column3, last_window_end = v.column4 FROM (",
    );
    q.push_values(digests, |mut row, d| {
        row.push_bind(d.subscriber_id)
            .push_bind(d.papers_after)
            .push_bind(d.papers_upto)
            .push_bind(d.window_end);
    });
    q.push(
        ") AS v WHERE subscribers.id = v.column1 AND subscribers.paper_cursor = v.column2 \
         AND subscribers.status = 'active' \
         AND (subscribers.last_window_end IS NULL OR subscribers.last_window_end < v.column4) \
         RETURNING subscribers.id",
    );
    let moved = q.build_query_scalar::<i64>().fetch_all(&mut **tx).await?;
    Ok(moved.into_iter().collect())
}

/// Writes the digests of the readers whose window just moved: a digest without papers is
/// recorded as skipped. Returns each one's id by reader.
async fn insert_digests<DB>(
    tx: &mut WriteTx<DB>,
    writing: &[&NewDigest<'_>],
    now: DateTime<Utc>,
) -> StoreResult<HashMap<i64, i64>>
where
    DB: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    (i64, i64): for<'r> sqlx::FromRow<'r, DB::Row>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
{
    if writing.is_empty() {
        return Ok(HashMap::new());
    }
    let mut q = sqlx::QueryBuilder::<DB>::new(
        "INSERT INTO digests (subscriber_id, window_start, window_end, papers_after, \
         papers_upto, status, total, shown, trending, archive_key, created_at, per_query) ",
    );
    q.push_values(writing, |mut row, d| {
        let matches = d.entries.iter().filter(|e| !e.suggested).count();
        let status = if matches == 0 { "skipped" } else { "composed" };
        row.push_bind(d.subscriber_id)
            .push_bind(d.window_start)
            .push_bind(d.window_end)
            .push_bind(d.papers_after)
            .push_bind(d.papers_upto)
            .push_bind(status)
            .push_bind(i32::try_from(matches).unwrap_or(i32::MAX))
            .push_bind(i32::try_from(d.shown.min(matches)).unwrap_or(i32::MAX))
            .push_bind(d.trending)
            .push_bind(d.archive_key)
            .push_bind(now)
            .push_bind(serde_json::to_string(d.per_query).unwrap_or_else(|_| "[]".into()));
    });
    q.push(" ON CONFLICT (subscriber_id, window_end) DO NOTHING RETURNING subscriber_id, id");
    let ids: HashMap<i64, i64> = q
        .build_query_as::<(i64, i64)>()
        .fetch_all(&mut **tx)
        .await?
        .into_iter()
        .collect();
    if let Some(d) = writing.iter().find(|d| !ids.contains_key(&d.subscriber_id)) {
        // The window just moved for us, so nobody else can have written it.
        return Err(StoreError::Conflict(format!(
            "reader {} already has a digest ending at {}",
            d.subscriber_id, d.window_end
        )));
    }
    Ok(ids)
}

/// Writes the digests' papers with their rank, a few thousand rows per statement.
async fn insert_digest_papers<DB>(
    tx: &mut WriteTx<DB>,
    writing: &[&NewDigest<'_>],
    ids: &HashMap<i64, i64>,
) -> StoreResult<()>
where
    DB: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> i32: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> f64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> bool: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> String: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
{
    let mut rows: Vec<(i64, i32, &DigestEntry)> = Vec::new();
    for d in writing {
        let id = ids[&d.subscriber_id];
        for (i, e) in d.entries.iter().enumerate() {
            rows.push((id, i32::try_from(i + 1).unwrap_or(i32::MAX), e));
        }
    }
    for chunk in rows.chunks(2_000) {
        let mut explanations = Vec::with_capacity(chunk.len());
        for (_, _, e) in chunk {
            explanations.push(
                serde_json::to_string(&e.explanation)
                    .map_err(|err| StoreError::Corrupt(format!("explanation: {err}")))?,
            );
        }
        let mut q = sqlx::QueryBuilder::<DB>::new(
            "INSERT INTO digest_papers (digest_id, rank, paper_id, score, explanation, \
             suggested) ",
        );
        q.push_values(
            chunk.iter().zip(explanations),
            |mut row, ((id, rank, e), x)| {
                row.push_bind(*id)
                    .push_bind(*rank)
                    .push_bind(e.paper_id)
                    .push_bind(e.score)
                    .push_bind(x)
                    .push_bind(e.suggested);
            },
        );
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}

/// Queues a delivery for each digest that has papers, a thousand per statement.
async fn queue_deliveries<DB>(
    tx: &mut WriteTx<DB>,
    writing: &[&NewDigest<'_>],
    ids: &HashMap<i64, i64>,
    now: DateTime<Utc>,
) -> StoreResult<()>
where
    DB: sqlx::Database,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> &'q str: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    for<'q> DateTime<Utc>: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
    DB::Arguments: sqlx::IntoArguments<DB>,
    for<'e> &'e mut DB::Connection: sqlx::Executor<'e, Database = DB>,
{
    let queued: Vec<&&NewDigest<'_>> = writing
        .iter()
        .filter(|d| d.entries.iter().any(|e| !e.suggested))
        .collect();
    for chunk in queued.chunks(1_000) {
        let mut q = sqlx::QueryBuilder::<DB>::new(
            "INSERT INTO deliveries (digest_id, subscriber_id, message_id, status, \
             next_attempt_at, created_at, updated_at) ",
        );
        q.push_values(chunk, |mut row, d| {
            row.push_bind(ids[&d.subscriber_id])
                .push_bind(d.subscriber_id)
                .push_bind(d.message_id)
                .push_bind("queued")
                .push_bind(now)
                .push_bind(now)
                .push_bind(now);
        });
        q.build().execute(&mut **tx).await?;
    }
    Ok(())
}
