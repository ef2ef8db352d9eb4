//! The Store: every read and write of paperboy's data, on SQLite (embedded default) or
//! PostgreSQL (several instances), chosen from the database URL. The SQL is shared where the
//! two dialects agree; callers never see which backend they talk to.
//!
//! It knows nothing of HTTP, feeds formats or email: it stores domain values.

mod admin;
mod bounces;
mod counts;
mod digests;
mod feeds;
mod papers;
mod ratings;
mod subscribers;
mod suppression;

use std::collections::HashMap;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::{Arc, Mutex as StdMutex, OnceLock};
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use sqlx::{Database, Transaction};

use crate::config::DatabaseUrl;
use crate::domain::EmailAddress;

pub use admin::NewSubscriber;
pub use bounces::{
    BounceEvent, NewBounce, Recorded, SOFT_LIMIT, SOFT_WINDOW_DAYS, SuppressionLift,
};
pub use counts::{Snapshot, Stats};
pub use digests::{Claimed, DigestEntry, DigestRecord, NewDigest, Outcome, SentEntry, StoredEntry};
pub use feeds::{FeedHealth, FeedRecord, FetchOutcome};
pub use papers::{PaperSource, StoredPaper, UpsertCounts};
pub use ratings::{RatedPaper, RatingChange, RatingRecord, StoredTaste};
pub use subscribers::{
    ClientInfo, ConsentRecord, ConsentText, RequestOutcome, SubscriptionRequest,
};
pub use suppression::suppression_hash;

/// Why the store failed. A variant that wraps another error keeps it as its source and
/// leaves it out of its own message: print it with [`crate::error::chain`].
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("database error")]
    Database(#[from] sqlx::Error),
    #[error("migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    #[error("{0}")]
    Conflict(String),
    #[error("{0}")]
    NotFound(String),
    #[error("stored data is unreadable: {0}")]
    Corrupt(String),
    /// Connecting failed, or the SQLite file or its folder could not be made.
    #[error("cannot open the database: {detail}")]
    Open {
        /// The file, or the PostgreSQL URL without its password, and what paperboy could
        /// tell of the problem.
        detail: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    fn open(detail: String, source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        StoreError::Open {
            detail,
            source: source.into(),
        }
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// A handle to the database; cheap to clone (it wraps a pool).
#[derive(Clone, Debug)]
pub enum Store {
    Sqlite(SqlitePool),
    Postgres(PgPool),
}

/// Runs the same body against whichever pool the store holds. The body is compiled once
/// per backend, so queries bind and decode with each backend's own types.
macro_rules! on_pool {
    ($store:expr, $pool:ident => $body:expr) => {
        match $store {
            $crate::store::Store::Sqlite($pool) => $body,
            $crate::store::Store::Postgres($pool) => $body,
        }
    };
}
pub(crate) use on_pool;

/// Opens a transaction meant to write. SQLite takes the write lock up front
/// (`BEGIN IMMEDIATE`) so two writers queue on the busy timeout instead of failing when a
/// read transaction tries to upgrade; within one process, writers to a SQLite file first
/// take turns on an in-process lock, so they wake as soon as the writer before them
/// finishes instead of sleeping in SQLite's busy handler.
pub(crate) trait BeginWrite {
    type Db: Database;
    async fn begin_write(&self) -> sqlx::Result<WriteTx<Self::Db>>;

    /// A write transaction that holds the papers lock until it ends, so two feeds carrying
    /// the same paper merge one after the other instead of overwriting each other. SQLite
    /// has one writer anyway; PostgreSQL takes a transaction-level advisory lock, which
    /// also serialises ingestion across instances.
    async fn begin_papers_write(&self) -> sqlx::Result<WriteTx<Self::Db>>;

    /// A write transaction for delivery bookkeeping (claims, leases, outcomes). On
    /// PostgreSQL its commit does not wait for the WAL to reach the disk, as SQLite's
    /// commits in WAL mode with `synchronous = NORMAL` do not: it survives a crash of
    /// paperboy, and a crash of the database server can forget the last fraction of a
    /// second of it (those messages are then sent again with the same Message-ID). Without
    /// this, every send slot waits for a disk flush.
    async fn begin_bookkeeping(&self) -> sqlx::Result<WriteTx<Self::Db>>;

    /// A write transaction that holds one mailbox's lock until it ends (`mailbox_hash`,
    /// see `suppression.rs`), so two requests for two spellings of one mailbox, which touch
    /// different reader rows, still count its mail one after the other. SQLite has one
    /// writer anyway; PostgreSQL takes a transaction-level advisory lock.
    async fn begin_mailbox_write(&self, mailbox_hash: &str) -> sqlx::Result<WriteTx<Self::Db>>;

    /// `for_update` on PostgreSQL, where a read that decides a write must lock its rows;
    /// `plain` on SQLite, whose write transactions already exclude each other.
    fn locking(&self, plain: &'static str, for_update: &'static str) -> &'static str;
}

/// A write transaction: statements run on it as on its connection (`&mut *tx`). On SQLite
/// it holds this process's turn to write until it is committed or dropped.
pub(crate) struct WriteTx<DB: Database> {
    tx: Transaction<'static, DB>,
    _turn: Option<tokio::sync::OwnedMutexGuard<()>>,
}

impl<DB: Database> WriteTx<DB> {
    pub(crate) async fn commit(self) -> sqlx::Result<()> {
        self.tx.commit().await
    }
}

impl<DB: Database> std::ops::Deref for WriteTx<DB> {
    type Target = DB::Connection;
    fn deref(&self) -> &DB::Connection {
        &self.tx
    }
}

impl<DB: Database> std::ops::DerefMut for WriteTx<DB> {
    fn deref_mut(&mut self) -> &mut DB::Connection {
        &mut self.tx
    }
}

/// Each SQLite file's turn to write, shared by the pools of this process that open it.
fn write_turn(path: &std::path::Path) -> Arc<tokio::sync::Mutex<()>> {
    static TURNS: OnceLock<StdMutex<HashMap<PathBuf, Arc<tokio::sync::Mutex<()>>>>> =
        OnceLock::new();
    let mut turns = TURNS
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if let Some(turn) = turns.get(path) {
        return Arc::clone(turn);
    }
    Arc::clone(turns.entry(path.to_path_buf()).or_default())
}

/// How long a writer waits for its turn before going ahead anyway and leaving the wait to
/// SQLite's busy timeout (a transaction that began another would otherwise wait forever).
const TURN_WAIT: Duration = Duration::from_secs(10);

impl BeginWrite for SqlitePool {
    type Db = sqlx::Sqlite;
    async fn begin_write(&self) -> sqlx::Result<WriteTx<sqlx::Sqlite>> {
        let turn = write_turn(self.connect_options().get_filename());
        let turn = tokio::time::timeout(TURN_WAIT, turn.lock_owned())
            .await
            .ok();
        Ok(WriteTx {
            tx: self.begin_with("BEGIN IMMEDIATE").await?,
            _turn: turn,
        })
    }

    async fn begin_papers_write(&self) -> sqlx::Result<WriteTx<sqlx::Sqlite>> {
        self.begin_write().await
    }

    async fn begin_bookkeeping(&self) -> sqlx::Result<WriteTx<sqlx::Sqlite>> {
        self.begin_write().await
    }

    async fn begin_mailbox_write(
        &self,
        _mailbox_hash: &str,
    ) -> sqlx::Result<WriteTx<sqlx::Sqlite>> {
        self.begin_write().await
    }

    fn locking(&self, plain: &'static str, _for_update: &'static str) -> &'static str {
        plain
    }
}

impl BeginWrite for PgPool {
    type Db = sqlx::Postgres;

    fn locking(&self, _plain: &'static str, for_update: &'static str) -> &'static str {
        for_update
    }

    async fn begin_write(&self) -> sqlx::Result<WriteTx<sqlx::Postgres>> {
        Ok(WriteTx {
            tx: self.begin().await?,
            _turn: None,
        })
    }

    async fn begin_bookkeeping(&self) -> sqlx::Result<WriteTx<sqlx::Postgres>> {
        let mut tx = self.begin_write().await?;
        sqlx::query("SET LOCAL synchronous_commit = off")
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn begin_mailbox_write(
        &self,
        mailbox_hash: &str,
    ) -> sqlx::Result<WriteTx<sqlx::Postgres>> {
        // The two-key form, whose keys never meet the one-key locks above; 32 bits of the
        // hash, so two mailboxes rarely share a lock (and then only wait for each other).
        let key = mailbox_hash
            .get(..8)
            .and_then(|h| u32::from_str_radix(h, 16).ok())
            .map_or(0, |k| k as i32);
        let mut tx = self.begin_write().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1, $2)")
            .bind(MAILBOX_LOCK_CLASS)
            .bind(key)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }

    async fn begin_papers_write(&self) -> sqlx::Result<WriteTx<sqlx::Postgres>> {
        let mut tx = self.begin_write().await?;
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(PAPERS_LOCK)
            .execute(&mut *tx)
            .await?;
        Ok(tx)
    }
}

/// The advisory lock key that serialises paper upserts on PostgreSQL ("pbpapers").
const PAPERS_LOCK: i64 = 0x7062_7061_7065_7273;

/// The class of the two-key advisory locks of mailboxes ("pbmb").
const MAILBOX_LOCK_CLASS: i32 = 0x7062_6d62;

/// The advisory lock key held by the instance that runs the schedule ("pbschedu").
const SCHEDULER_LOCK: i64 = 0x7062_7363_6865_6475;

/// The right to run the schedule. On PostgreSQL it is a session advisory lock held on a
/// connection of its own: when the process dies or the connection drops, another instance
/// can take it. On SQLite it is always granted: only one `serve` may open the file.
pub enum Leadership {
    Sqlite,
    Postgres(sqlx::PgConnection),
}

impl Leadership {
    /// Whether the lock is still held (its connection still answers).
    pub async fn holds(&mut self) -> bool {
        match self {
            Leadership::Sqlite => true,
            Leadership::Postgres(conn) => sqlx::query("SELECT 1").execute(&mut *conn).await.is_ok(),
        }
    }
}

impl Store {
    /// Connects, creating the SQLite file (and its folder) when missing. Does not migrate.
    #[tracing::instrument(skip_all, fields(db = %url.redacted()))]
    pub async fn connect(url: &DatabaseUrl) -> StoreResult<Store> {
        let raw = url.expose();
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            let options =
                PgConnectOptions::from_str(raw).map_err(|e| StoreError::open(url.redacted(), e))?;
            let pool = PgPoolOptions::new()
                .max_connections(10)
                .acquire_timeout(Duration::from_secs(10))
                .connect_with(options)
                .await
                .map_err(|e| StoreError::open(url.redacted(), e))?;
            return Ok(Store::Postgres(pool));
        }
        let options = SqliteConnectOptions::from_str(raw)
            .map_err(|e| StoreError::open(raw.to_string(), e))?;
        let path = options.get_filename().to_path_buf();
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent)
                .map_err(|e| StoreError::open(format!("cannot create {}", parent.display()), e))?;
        }
        let options = options
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(Duration::from_secs(10))
            // SQLite's default page cache is 2 MB: a database of a few hundred thousand
            // digests then reads most B-tree pages back through the kernel on every write.
            // 32 MiB of cache per connection and the file mapped into memory instead.
            .pragma("cache_size", "-32768")
            .pragma("mmap_size", "268435456");
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| {
                StoreError::open(format!("{}{}", path.display(), write_problem(&path)), e)
            })?;
        Ok(Store::Sqlite(pool))
    }

    /// Refreshes the planner's statistics of the digest tables after many rows were
    /// written at once (a digest run for a whole community). PostgreSQL would otherwise
    /// plan delivery's reads on an empty table's figures until autovacuum catches up;
    /// SQLite's plans here do not depend on statistics.
    pub async fn refresh_statistics(&self) -> StoreResult<()> {
        if let Store::Postgres(pool) = self {
            sqlx::query("ANALYZE subscribers, digests, digest_papers, deliveries")
                .execute(pool)
                .await?;
        }
        Ok(())
    }

    /// Connects and applies every pending migration: what `serve` and each command do.
    pub async fn open(url: &DatabaseUrl) -> StoreResult<Store> {
        let store = Self::connect(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    #[tracing::instrument(skip_all)]
    pub async fn migrate(&self) -> StoreResult<()> {
        match self {
            Store::Sqlite(pool) => sqlx::migrate!("migrations/sqlite").run(pool).await?,
            Store::Postgres(pool) => sqlx::migrate!("migrations/postgres").run(pool).await?,
        }
        Ok(())
    }

    pub fn backend(&self) -> &'static str {
        match self {
            Store::Sqlite(_) => "sqlite",
            Store::Postgres(_) => "postgres",
        }
    }

    /// Tries to become the instance that runs the schedule; `None` while another holds it.
    pub async fn try_lead(&self) -> StoreResult<Option<Leadership>> {
        match self {
            Store::Sqlite(_) => Ok(Some(Leadership::Sqlite)),
            Store::Postgres(pool) => {
                // Detached from the pool, so the session lock never travels with a pooled
                // connection to some other use.
                let mut conn = pool.acquire().await?.detach();
                let got: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
                    .bind(SCHEDULER_LOCK)
                    .fetch_one(&mut conn)
                    .await?;
                Ok(got.then_some(Leadership::Postgres(conn)))
            }
        }
    }

    /// The database file, on SQLite.
    pub fn sqlite_file(&self) -> Option<std::path::PathBuf> {
        match self {
            Store::Sqlite(pool) => Some(pool.connect_options().get_filename().to_path_buf()),
            Store::Postgres(_) => None,
        }
    }

    /// Answers when the database does: the health check.
    pub async fn ping(&self) -> StoreResult<()> {
        on_pool!(self, pool => {
            sqlx::query("SELECT 1").execute(pool).await?;
        });
        Ok(())
    }

    pub async fn close(&self) {
        on_pool!(self, pool => pool.close().await)
    }
}

/// Why SQLite may have failed to open `path`, which it reports only as "unable to open
/// database file": the file, or the folder where it keeps its journal, cannot be written
/// (a read-only mount, permissions). Empty when both can.
fn write_problem(path: &std::path::Path) -> String {
    if path.exists()
        && let Err(e) = std::fs::OpenOptions::new().append(true).open(path)
    {
        return format!(" (it cannot be written: {e})");
    }
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(std::path::Path::new("."));
    let probe = dir.join(format!(".paperboy-write-check-{}", std::process::id()));
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
    {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            String::new()
        }
        Err(e) => format!(
            " (the folder {} cannot be written, and SQLite keeps its journal there: {e})",
            dir.display()
        ),
    }
}

/// The key under which an address is unique: `Ann@Example.org` and `ann@example.org` are
/// one reader (and one entry on the suppression list).
pub fn email_key(email: &EmailAddress) -> String {
    email.as_str().to_lowercase()
}

/// Binds `ids` as the list of an `IN (` the query ends with, and closes it.
fn push_id_list<DB>(q: &mut sqlx::QueryBuilder<DB>, ids: impl IntoIterator<Item = i64>)
where
    DB: Database,
    for<'q> i64: sqlx::Encode<'q, DB> + sqlx::Type<DB>,
{
    let mut list = q.separated(", ");
    for id in ids {
        list.push_bind(id);
    }
    list.push_unseparated(")");
}

/// Decodes a JSON array column written by the store itself.
fn json_list(column: &str, raw: &str) -> StoreResult<Vec<String>> {
    serde_json::from_str(raw).map_err(|e| StoreError::Corrupt(format!("{column}: {e}")))
}

fn to_json(list: &[String]) -> String {
    // Serialising a list of strings cannot fail.
    serde_json::to_string(list).unwrap_or_else(|_| "[]".into())
}
