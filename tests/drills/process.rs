//! Reliability drills: process faults. The real `paperboy` binary is killed with SIGKILL
//! while it stores a feed, while it composes digests and while it delivers them; its
//! database runs out of disk space, or turns read-only, under a write. Every drill then
//! runs the work again and ends by checking that nothing was lost or stored twice.
//!
//! Kill moments are drawn from a seed (`PAPERBOY_DRILL_SEED`, printed in every figures
//! line), so a failing run can be replayed.

#[path = "../api/helpers.rs"]
mod helpers;
#[path = "report.rs"]
mod report;

use std::collections::{HashMap, HashSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Output, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use helpers::{FeedServer, Reply, SmtpSink, TestDb, databases, paperboy};
use paperboy::store::Store;
use serde_json::json;
use sqlx::Connection;

/// Drills run one at a time: each times its kill against the binary's progress, and two
/// binaries sharing the two cores would blur that.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

// ---------------------------------------------------------------------------------------
// Seeded choices

const DEFAULT_SEED: u64 = 20_260_107;

fn seed() -> u64 {
    std::env::var("PAPERBOY_DRILL_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SEED)
}

/// SplitMix64 over the seed, the drill and the backend: the same seed replays the same
/// kill moments.
struct Rng(u64);

impl Rng {
    fn new(drill: &str, backend: &str) -> Rng {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in drill.bytes().chain([b'/']).chain(backend.bytes()) {
            h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
        }
        Rng(seed() ^ h)
    }

    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A number in `lo..hi`.
    fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo)
    }
}

// ---------------------------------------------------------------------------------------
// Feeds

/// The arXiv id of generated paper `n`.
fn arxiv_id(n: u32) -> String {
    format!("2601.{n:05}")
}

/// An arXiv RSS feed in rss.arxiv.org's format listing generated papers `ids`.
fn arxiv_rss(category: &str, ids: impl Iterator<Item = u32>) -> Vec<u8> {
    let mut out = format!(
        "<?xml version='1.0' encoding='UTF-8'?>\n\
         <rss xmlns:arxiv=\"http://arxiv.org/schemas/atom\" \
         xmlns:dc=\"http://purl.org/dc/elements/1.1/\" version=\"2.0\">\n  <channel>\n    \
         <title>{category} updates on arXiv.org</title>\n    \
         <link>http://rss.arxiv.org/rss/{category}</link>\n    \
         <description>{category} updates on the arXiv.org e-print archive.</description>\n"
    );
    for n in ids {
        let id = arxiv_id(n);
        let _ = write!(
            out,
            "    <item>\n      <title>Generated study {n} of sparse estimators</title>\n      \
             <link>https://arxiv.org/abs/{id}</link>\n      \
             <description>arXiv:{id}v1 Announce Type: new \nAbstract: We study estimator {n} \
             under heavy-tailed noise, derive a bound of order $\\sqrt{{n}}$ &amp; a matching \
             lower bound, and report experiments on {n} synthetic tasks. Long abstracts make \
             the rows of a real feed; this one keeps writing for a while so that the stored \
             row has the size of a real one.</description>\n      \
             <guid isPermaLink=\"false\">oai:arXiv.org:{id}v1</guid>\n      \
             <category>{category}</category>\n      <category>stat.ML</category>\n      \
             <pubDate>Mon, 05 Jan 2026 00:00:00 -0500</pubDate>\n      \
             <arxiv:announce_type>new</arxiv:announce_type>\n      \
             <dc:rights>http://creativecommons.org/licenses/by/4.0/</dc:rights>\n      \
             <dc:creator>Ada Lovelace, Alan Turing, Author {n}</dc:creator>\n    </item>\n"
        );
    }
    out.push_str("  </channel>\n</rss>\n");
    out.into_bytes()
}

/// A set of feeds served by a local HTTP server: name, path and the papers each lists.
struct Feeds {
    server: FeedServer,
    feeds: Vec<(String, String, Vec<u32>)>,
}

impl Feeds {
    async fn serve(feeds: Vec<(&str, Vec<u32>)>) -> Feeds {
        let server = FeedServer::start().await;
        let feeds = feeds
            .into_iter()
            .map(|(name, ids)| {
                let path = format!("/rss/{name}");
                server.serve(
                    &path,
                    vec![Reply::ok(
                        "application/rss+xml",
                        arxiv_rss("cs.LG", ids.iter().copied()),
                    )],
                );
                (name.to_string(), path, ids)
            })
            .collect();
        Feeds { server, feeds }
    }

    /// Every distinct arXiv id of the feeds.
    fn all_ids(&self) -> HashSet<String> {
        self.feeds
            .iter()
            .flat_map(|(_, _, ids)| ids.iter().map(|n| arxiv_id(*n)))
            .collect()
    }

    fn ids_of(&self, names: &[String]) -> HashSet<String> {
        self.feeds
            .iter()
            .filter(|(name, _, _)| names.contains(name))
            .flat_map(|(_, _, ids)| ids.iter().map(|n| arxiv_id(*n)))
            .collect()
    }

    /// Whether every feed has been requested at least once.
    fn all_requested(&self) -> bool {
        self.feeds
            .iter()
            .all(|(_, path, _)| !self.server.seen(path).is_empty())
    }

    /// Registers the feeds in the store, with none of the default (internet) ones, so that
    /// a plain `paperboy fetch` polls exactly these.
    async fn register(&self, store: &Store) {
        use paperboy::domain::{FeedKind, FeedName, FeedUrl};
        store
            .seed_default_feeds(chrono::Utc::now())
            .await
            .expect("seed default feeds");
        for feed in store.list_feeds().await.expect("list feeds") {
            store
                .remove_feed(&FeedName::parse(&feed.name).expect("feed name"))
                .await
                .expect("remove feed");
        }
        for (name, path, _) in &self.feeds {
            store
                .add_feed(
                    &FeedName::parse(name).expect("feed name"),
                    &FeedUrl::parse(&self.server.url(path)).expect("feed url"),
                    FeedKind::ArxivRss,
                    chrono::Utc::now(),
                )
                .await
                .expect("add feed");
        }
    }
}

// ---------------------------------------------------------------------------------------
// The binary and its settings

/// Writes `paperboy.toml` in `dir`: the database, fast fetches, and the SMTP sink when given
/// (the file outbox otherwise).
fn configure(dir: &Path, database_url: &str, smtp_port: Option<u16>) {
    let mut text = format!(
        "database_url = \"{database_url}\"\nfrom = \"paperboy <digest@papers.example.org>\"\n"
    );
    if let Some(port) = smtp_port {
        let _ = writeln!(text, "smtp_url = \"smtp://127.0.0.1:{port}?tls=none\"");
    }
    text.push_str(
        "[fetch]\nretries = 0\ntimeout_secs = 30\nbackoff_ms = 10\nhost_interval_ms = 0\n\
         arxiv_interval_ms = 0\n\
         [delivery]\nconcurrency = 4\nmessages_per_second = 500\nlease_secs = 2\n\
         retry_base_secs = 1\nretry_max_secs = 1\n",
    );
    std::fs::write(dir.join("paperboy.toml"), text).expect("write paperboy.toml");
}

fn run(dir: &Path, args: &[&str]) -> Output {
    paperboy(dir)
        .args(args)
        .output()
        .expect("run the paperboy binary")
}

fn spawn_quiet(dir: &Path, args: &[&str]) -> Child {
    paperboy(dir)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the paperboy binary")
}

fn text(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// SIGKILL, and the exit reaped.
fn kill9(child: &mut Child) {
    // `Child::kill` sends SIGKILL on Unix.
    child.kill().expect("SIGKILL");
    let status = child.wait().expect("reap the killed process");
    assert!(!status.success(), "the process was killed: {status}");
}

/// Sums a counter over `paperboy fetch --json`'s reports.
fn fetched(out: &Output, field: &str) -> u64 {
    let reports: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(out)));
    reports
        .as_array()
        .expect("a list of reports")
        .iter()
        .map(|r| r[field].as_u64().unwrap_or(0))
        .sum()
}

// ---------------------------------------------------------------------------------------
// Looking into the database

async fn count(store: &Store, sql: &str) -> i64 {
    let query = sqlx::AssertSqlSafe(sql.to_string());
    let got = match store {
        Store::Sqlite(pool) => sqlx::query_scalar(query).fetch_one(pool).await,
        Store::Postgres(pool) => sqlx::query_scalar(query).fetch_one(pool).await,
    };
    got.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn strings(store: &Store, sql: &str) -> Vec<String> {
    let query = sqlx::AssertSqlSafe(sql.to_string());
    let got = match store {
        Store::Sqlite(pool) => sqlx::query_scalar(query).fetch_all(pool).await,
        Store::Postgres(pool) => sqlx::query_scalar(query).fetch_all(pool).await,
    };
    got.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn pairs(store: &Store, sql: &str) -> Vec<(String, String)> {
    let query = sqlx::AssertSqlSafe(sql.to_string());
    let got = match store {
        Store::Sqlite(pool) => sqlx::query_as(query).fetch_all(pool).await,
        Store::Postgres(pool) => sqlx::query_as(query).fetch_all(pool).await,
    };
    got.unwrap_or_else(|e| panic!("{sql}: {e}"))
}

async fn named_counts(store: &Store, sql: &str) -> HashMap<String, i64> {
    let query = sqlx::AssertSqlSafe(sql.to_string());
    let got: Result<Vec<(String, i64)>, _> = match store {
        Store::Sqlite(pool) => sqlx::query_as(query).fetch_all(pool).await,
        Store::Postgres(pool) => sqlx::query_as(query).fetch_all(pool).await,
    };
    got.unwrap_or_else(|e| panic!("{sql}: {e}"))
        .into_iter()
        .collect()
}

/// Tells whether another process is writing to the database right now: on SQLite someone
/// holds the write lock (a `BEGIN IMMEDIATE` that may not wait fails); on PostgreSQL some
/// session is in a transaction that has written, or holds the papers advisory lock, which
/// a paper upsert takes before its first write and keeps until it commits.
enum Probe {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl Probe {
    async fn open(db: &TestDb) -> Probe {
        let url = db.url.expose();
        if db.backend == "sqlite" {
            let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)
                .expect("sqlite url")
                .busy_timeout(Duration::ZERO);
            Probe::Sqlite(
                sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .expect("probe connection"),
            )
        } else {
            Probe::Postgres(
                sqlx::PgConnection::connect(url)
                    .await
                    .expect("probe connection"),
            )
        }
    }

    async fn writer_busy(&mut self) -> bool {
        match self {
            Probe::Sqlite(conn) => {
                if sqlx::raw_sql("BEGIN IMMEDIATE")
                    .execute(&mut *conn)
                    .await
                    .is_err()
                {
                    return true;
                }
                sqlx::raw_sql("ROLLBACK")
                    .execute(&mut *conn)
                    .await
                    .expect("rollback the probe");
                false
            }
            Probe::Postgres(conn) => {
                // A session of this database in a transaction that has written (it has a
                // transaction id), or holding the papers lock: the key 0x7062706170657273
                // ("pbpapers") as pg_locks shows a bigint lock.
                let busy: i64 = sqlx::query_scalar(
                    "SELECT (SELECT COUNT(*) FROM pg_stat_activity WHERE datname = current_database() \
                     AND pid <> pg_backend_pid() AND backend_xid IS NOT NULL) \
                     + (SELECT COUNT(*) FROM pg_locks WHERE locktype = 'advisory' AND granted \
                     AND classid = 1885499489 AND objid = 1885696627 \
                     AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))",
                )
                .fetch_one(&mut *conn)
                .await
                .expect("read pg_stat_activity and pg_locks");
                busy > 0
            }
        }
    }
}

/// What the papers tables hold, checked for whole feeds only: every stored paper is
/// complete and linked, no paper is stored twice, and each feed's links are all there or
/// none are. Returns the feeds stored in full and the arXiv ids stored.
async fn papers_state(store: &Store, feeds: &Feeds) -> (Vec<String>, HashSet<String>) {
    let rows = count(store, "SELECT COUNT(*) FROM papers").await;
    let ids: Vec<String> = strings(
        store,
        "SELECT COALESCE(arxiv_id, key) FROM papers ORDER BY id",
    )
    .await;
    let distinct: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(distinct.len() as i64, rows, "a paper stored twice");
    let keys = count(store, "SELECT COUNT(DISTINCT key) FROM papers").await;
    assert_eq!(keys, rows, "a key stored twice");
    let partial = count(
        store,
        "SELECT COUNT(*) FROM papers WHERE title = '' OR abstract = '' OR authors = '[]' \
         OR abs_url IS NULL OR arxiv_id IS NULL",
    )
    .await;
    assert_eq!(partial, 0, "a paper stored without all its fields");
    let unlinked = count(
        store,
        "SELECT COUNT(*) FROM papers p WHERE NOT EXISTS \
         (SELECT 1 FROM paper_sources s WHERE s.paper_id = p.id)",
    )
    .await;
    assert_eq!(
        unlinked, 0,
        "a paper stored without the feed that carried it"
    );
    let links = named_counts(
        store,
        "SELECT f.name, COUNT(*) FROM paper_sources s JOIN feeds f ON f.id = s.feed_id \
         GROUP BY f.name",
    )
    .await;
    let mut complete = Vec::new();
    for (name, _, items) in &feeds.feeds {
        match links.get(name).copied().unwrap_or(0) {
            0 => {}
            n if n == items.len() as i64 => complete.push(name.clone()),
            n => panic!("feed {name} stored in part: {n} of {} links", items.len()),
        }
    }
    assert_eq!(
        distinct,
        feeds.ids_of(&complete),
        "the papers stored are exactly those of the feeds stored"
    );
    (complete, distinct)
}

/// `PRAGMA integrity_check` on SQLite; amcheck over every B-tree index (with the table
/// rows each must hold) on PostgreSQL.
async fn integrity(store: &Store) -> String {
    match store {
        Store::Sqlite(pool) => {
            let rows: Vec<String> = sqlx::query_scalar("PRAGMA integrity_check")
                .fetch_all(pool)
                .await
                .expect("integrity_check");
            rows.join("; ")
        }
        Store::Postgres(pool) => {
            sqlx::raw_sql("CREATE EXTENSION IF NOT EXISTS amcheck")
                .execute(pool)
                .await
                .expect("amcheck (PostgreSQL contrib)");
            let checked: i64 = sqlx::query_scalar(
                "SELECT COUNT(bt_index_check(c.oid, true)) FROM pg_index i \
                 JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am am ON am.oid = c.relam \
                 WHERE am.amname = 'btree' AND c.relnamespace = 'public'::regnamespace",
            )
            .fetch_one(pool)
            .await
            .expect("bt_index_check");
            assert!(checked > 5, "only {checked} indexes checked");
            "ok".into()
        }
    }
}

// ---------------------------------------------------------------------------------------
// Readers and digests

const TOPICS: [&str; 4] = ["diffusion", "transformer", "graph", "bandit"];
/// Papers per topic in the digest drills.
const PER_TOPIC: usize = 6;

/// A confirmed daily reader at 08:00 UTC asking for `query`, added as `subscribers add
/// --confirmed` does.
async fn add_subscriber(store: &Store, email: &str, query: &str) {
    use paperboy::domain::token::random_token;
    use paperboy::domain::{EmailAddress, MaxPapers, Preferences, QueryList, SendHour};
    use paperboy::store::{ConsentText, NewSubscriber};
    let preferences = Preferences {
        queries: QueryList::parse(query).expect("query"),
        frequency: "daily".parse().expect("frequency"),
        send_hour: SendHour::new(8).expect("hour"),
        timezone: "UTC".parse().expect("time zone"),
        max_papers: MaxPapers::DEFAULT,
        layout: Default::default(),
    };
    let link_key = random_token().expect("token");
    store
        .add_subscriber(
            &NewSubscriber {
                email: &EmailAddress::parse(email).expect("email"),
                preferences: &preferences,
                confirmed: true,
                link_key: &link_key,
                token_hash: "",
                token_ttl: chrono::Duration::hours(48),
                consent: ConsentText {
                    version: "drill",
                    text: "drill consent",
                },
            },
            chrono::Utc::now(),
        )
        .await
        .expect("add reader");
}

/// Adds `n` confirmed daily readers, reader `i` asking for `TOPICS[i % 4]`, then the
/// papers of every topic. Returns the emails.
async fn subscribers_and_papers(store: &Store, n: usize) -> Vec<String> {
    let emails: Vec<String> = (0..n).map(|i| format!("reader{i}@example.org")).collect();
    // Four writers at once: PostgreSQL takes them in parallel, SQLite queues them.
    let mut tasks = tokio::task::JoinSet::new();
    for lane in 0..4 {
        let store = store.clone();
        let emails = emails.clone();
        tasks.spawn(async move {
            for (i, email) in emails.iter().enumerate().skip(lane).step_by(4) {
                add_subscriber(&store, email, TOPICS[i % TOPICS.len()]).await;
            }
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("adding readers");
    }
    let mut papers = Vec::new();
    for (t, topic) in TOPICS.iter().enumerate() {
        for j in 0..PER_TOPIC {
            let n = 50_000 + (t * 100 + j) as u32;
            papers.push(helpers::arxiv_paper(
                &arxiv_id(n),
                &format!("A {topic} paper, number {j}"),
                &format!("We study {topic} in setting {j}."),
                Some(j as i64),
            ));
        }
    }
    helpers::store_full_papers(store, papers).await;
    emails
}

/// The papers reader `email` must get: those of their topic.
fn expected_papers(emails: &[String]) -> HashMap<String, HashSet<String>> {
    emails
        .iter()
        .enumerate()
        .map(|(i, email)| {
            let t = i % TOPICS.len();
            let ids = (0..PER_TOPIC)
                .map(|j| arxiv_id(50_000 + (t * 100 + j) as u32))
                .collect();
            (email.clone(), ids)
        })
        .collect()
}

/// A day ahead: every reader's daily send instant has passed.
fn tomorrow() -> String {
    (chrono::Utc::now() + chrono::Duration::hours(25)).to_rfc3339()
}

/// Digests as stored are whole: each has its papers (no paper twice) and one delivery,
/// and each reader whose window moved has exactly one digest. Returns how many there are.
async fn digests_whole(store: &Store) -> i64 {
    let digests = count(store, "SELECT COUNT(*) FROM digests").await;
    let torn = count(
        store,
        &format!(
            "SELECT COUNT(*) FROM digests d WHERE d.total <> {PER_TOPIC} \
             OR (SELECT COUNT(*) FROM digest_papers p WHERE p.digest_id = d.id) <> {PER_TOPIC} \
             OR (SELECT COUNT(DISTINCT p.paper_id) FROM digest_papers p WHERE p.digest_id = d.id) \
                <> {PER_TOPIC} \
             OR (SELECT COUNT(*) FROM deliveries v WHERE v.digest_id = d.id) <> 1"
        ),
    )
    .await;
    assert_eq!(
        torn, 0,
        "a digest stored without all its papers or its delivery"
    );
    let moved = count(
        store,
        "SELECT COUNT(*) FROM subscribers WHERE paper_cursor <> 0",
    )
    .await;
    assert_eq!(
        moved, digests,
        "a window moved without its digest, or the reverse"
    );
    let subscribers = count(store, "SELECT COUNT(DISTINCT subscriber_id) FROM digests").await;
    assert_eq!(subscribers, digests, "a reader with two digests");
    digests
}

/// Each reader has exactly one digest for the window, holding each paper of their topic
/// once, over the whole window (no paper left between two windows).
async fn one_digest_each(store: &Store, emails: &[String]) -> usize {
    assert_eq!(digests_whole(store).await, emails.len() as i64);
    let wrong_window = count(
        store,
        "SELECT COUNT(*) FROM digests WHERE papers_after <> 0 \
         OR papers_upto <> (SELECT MAX(id) FROM papers) OR status <> 'composed'",
    )
    .await;
    assert_eq!(wrong_window, 0, "a digest over another window");
    let rows = pairs(
        store,
        "SELECT s.email, p.arxiv_id FROM digest_papers dp JOIN digests d ON d.id = dp.digest_id \
         JOIN subscribers s ON s.id = d.subscriber_id JOIN papers p ON p.id = dp.paper_id",
    )
    .await;
    let mut got: HashMap<String, HashSet<String>> = HashMap::new();
    for (email, id) in &rows {
        assert!(
            got.entry(email.clone()).or_default().insert(id.clone()),
            "{email} got {id} twice"
        );
    }
    assert_eq!(
        got,
        expected_papers(emails),
        "each reader got their topic's papers"
    );
    rows.len()
}

/// What the sink received, per reader: every Message-ID and how often each came.
fn received_by_subscriber(sink: &SmtpSink) -> HashMap<String, HashMap<String, usize>> {
    let mut by_subscriber: HashMap<String, HashMap<String, usize>> = HashMap::new();
    for file in sink.received_files() {
        let raw = std::fs::read_to_string(&file).expect("read a received message");
        let header = |name: &str| {
            raw.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .unwrap_or_default()
        };
        *by_subscriber
            .entry(header("To: "))
            .or_default()
            .entry(header("Message-ID: "))
            .or_insert(0) += 1;
    }
    by_subscriber
}

/// Waits until the sink holds `n` messages (or 30 s passed), then a little longer so that
/// anything extra would show.
fn settle(sink: &SmtpSink, n: usize) {
    let started = Instant::now();
    while sink.received_files().len() < n && started.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
}

/// Every reader got their digest: returns (messages, duplicates, in-flight duplicates),
/// where a duplicate is a second, different message to one reader (never allowed) and an
/// in-flight duplicate is the same message (same Message-ID) arriving again.
fn mail_once_each(sink: &SmtpSink, emails: &[String]) -> (usize, usize, usize) {
    let by_subscriber = received_by_subscriber(sink);
    let expected: HashSet<&String> = emails.iter().collect();
    let got: HashSet<&String> = by_subscriber.keys().collect();
    assert_eq!(got, expected, "every reader and only they got mail");
    let messages: usize = by_subscriber.values().flat_map(|ids| ids.values()).sum();
    let duplicates: usize = by_subscriber.values().map(|ids| ids.len() - 1).sum();
    let in_flight: usize = by_subscriber
        .values()
        .flat_map(|ids| ids.values())
        .map(|c| c - 1)
        .sum();
    let ids: HashSet<&String> = by_subscriber.values().flat_map(|ids| ids.keys()).collect();
    assert_eq!(
        ids.len(),
        emails.len(),
        "a Message-ID shared by two readers"
    );
    (messages, duplicates, in_flight)
}

async fn all_sent(store: &Store, n: usize) {
    let counts: HashMap<String, i64> = store
        .delivery_counts()
        .await
        .expect("delivery counts")
        .into_iter()
        .collect();
    assert_eq!(counts.get("sent").copied(), Some(n as i64), "{counts:?}");
    assert_eq!(counts.len(), 1, "nothing left in another state: {counts:?}");
}

// ---------------------------------------------------------------------------------------
// A small file system of our own

/// A tmpfs mounted for one drill, unmounted on drop.
struct Tmpfs {
    path: PathBuf,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size` at `path`; `None` (with a message) when this machine does
    /// not allow it, which in CI is a failure.
    fn mount(path: &Path, size: &str, extra: &str) -> Option<Tmpfs> {
        std::fs::create_dir_all(path).expect("mount point");
        let options = format!("size={size}{extra}");
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(path)
            .output();
        match out {
            Ok(out) if out.status.success() => Some(Tmpfs {
                path: path.to_path_buf(),
            }),
            other => {
                let why = match other {
                    Ok(out) => String::from_utf8_lossy(&out.stderr).into_owned(),
                    Err(e) => e.to_string(),
                };
                if in_ci() {
                    panic!("CI=true but a tmpfs cannot be mounted (run as root): {why}");
                }
                eprintln!("cannot mount a tmpfs ({why}): drill skipped; run as root");
                None
            }
        }
    }

    fn remount(&self, mode: &str) {
        let out = std::process::Command::new("mount")
            .args(["-o", &format!("remount,{mode}")])
            .arg(&self.path)
            .output()
            .expect("run mount");
        assert!(out.status.success(), "remount {mode}: {}", text(&out));
    }

    /// Fills the file system with a file, then gives back `leave` bytes of it.
    fn fill(&self, leave: u64) -> PathBuf {
        use std::io::Write;
        let path = self.path.join("filler");
        let mut file = std::fs::File::create(&path).expect("filler");
        let block = vec![0xa5u8; 64 * 1024];
        let mut written: u64 = 0;
        loop {
            match file.write(&block) {
                Ok(0) => break,
                Ok(n) => written += n as u64,
                Err(e) if e.raw_os_error() == Some(28) => break,
                Err(e) => panic!("filling the disk: {e}"),
            }
        }
        let _ = file.flush();
        file.set_len(written.saturating_sub(leave))
            .expect("shrink the filler");
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let ok = std::process::Command::new("umount")
            .arg(&self.path)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.path)
                .status();
        }
    }
}

/// A PostgreSQL tablespace on a [`Tmpfs`] that a test database creates its tables in;
/// dropped (with the database) on drop.
struct Tablespace {
    base: String,
    name: String,
    database: String,
}

impl Tablespace {
    async fn create(base: &str, db: &TestDb, location: &Path) -> Tablespace {
        let database = url::Url::parse(db.url.expose())
            .expect("database url")
            .path()
            .trim_start_matches('/')
            .to_string();
        let name = format!("{database}_ts");
        let mut conn = sqlx::PgConnection::connect(base)
            .await
            .expect("connect to PostgreSQL");
        for sql in [
            format!("CREATE TABLESPACE {name} LOCATION '{}'", location.display()),
            format!("ALTER DATABASE {database} SET default_tablespace = {name}"),
        ] {
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
        }
        Tablespace {
            base: base.to_string(),
            name,
            database,
        }
    }
}

impl Drop for Tablespace {
    fn drop(&mut self) {
        let (base, name, database) = (self.base.clone(), self.name.clone(), self.database.clone());
        // Drop runs inside the test's runtime: do the async clean-up on a thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&base).await {
                    for sql in [
                        format!("DROP DATABASE IF EXISTS {database} WITH (FORCE)"),
                        format!("DROP TABLESPACE IF EXISTS {name}"),
                    ] {
                        let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(sql))
                            .execute(&mut conn)
                            .await;
                    }
                }
            });
        })
        .join();
    }
}

fn postgres_base() -> String {
    std::env::var("PAPERBOY_TEST_POSTGRES_URL").expect("PostgreSQL url")
}

/// The uid and gid PostgreSQL's server runs as, so that it may write to our mount.
fn postgres_owner() -> (String, String) {
    let id = |flag: &str| {
        let out = std::process::Command::new("id")
            .args([flag, "postgres"])
            .output()
            .expect("run id");
        assert!(
            out.status.success(),
            "no postgres user: the server is not local"
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    };
    (id("-u"), id("-g"))
}

/// A temp dir the postgres user may walk through.
fn open_tempdir() -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))
        .expect("chmod temp dir");
    dir
}

// ---------------------------------------------------------------------------------------
// 1. SIGKILL while storing a feed

const INGEST_FEEDS: u32 = 4;
const INGEST_ITEMS: u32 = 1200;
/// Feed `f` lists papers `f * STRIDE ..`: neighbours share `ITEMS - STRIDE` papers, as
/// arXiv's category feeds share cross-lists.
const INGEST_STRIDE: u32 = 1000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_storing_a_feed_then_a_rerun_stores_every_paper_once() {
    let _serial = SERIAL.lock().await;
    let feeds = Feeds::serve(
        (0..INGEST_FEEDS)
            .map(|f| {
                let first = 10_000 + f * INGEST_STRIDE;
                (
                    ["cs-lg", "cs-ai", "cs-cl", "stat-ml"][f as usize],
                    (first..first + INGEST_ITEMS).collect(),
                )
            })
            .collect(),
    )
    .await;
    let total = feeds.all_ids().len();
    for db in databases().await {
        let mut rng = Rng::new("sigkill_ingest", db.backend);
        // Kill while the papers of feed number `after + 1` are being stored, `delay` ms
        // after the write was seen to start.
        let after = rng.range(0, u64::from(INGEST_FEEDS)) as i64;
        let delay = rng.range(0, 40);
        let dir = tempfile::tempdir().expect("temp dir");
        configure(dir.path(), db.url.expose(), None);
        let store = db.store().await;
        feeds.register(&store).await;
        let mut probe = Probe::open(&db).await;

        let mut child = spawn_quiet(dir.path(), &["fetch"]);
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("fetch ended ({status}) before the kill");
            }
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the write never started"
            );
            let links = count(&store, "SELECT COUNT(*) FROM paper_sources").await;
            if feeds.all_requested()
                && links >= after * i64::from(INGEST_ITEMS)
                && probe.writer_busy().await
            {
                break;
            }
            tokio::time::sleep(Duration::from_millis(3)).await;
        }
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let in_write = probe.writer_busy().await;
        kill9(&mut child);

        let (stored_feeds, stored) = papers_state(&store, &feeds).await;
        let at_kill = stored.len();
        let feeds_at_kill = stored_feeds.len();
        let check = integrity(&store).await;
        assert_eq!(check, "ok", "{}: database damaged by the kill", db.backend);
        eprintln!(
            "{}: killed {} ms into a write with {} of {INGEST_FEEDS} feeds stored ({at_kill} papers)",
            db.backend, delay, feeds_at_kill
        );
        assert!(at_kill < total, "the kill came after everything was stored");

        let rerun = run(dir.path(), &["fetch", "--json"]);
        assert!(rerun.status.success(), "{}", text(&rerun));
        assert_eq!(
            fetched(&rerun, "new") as usize,
            total - at_kill,
            "the rerun stores exactly what the kill lost: {}",
            text(&rerun)
        );
        let (stored_feeds, stored) = papers_state(&store, &feeds).await;
        assert_eq!(stored_feeds.len(), INGEST_FEEDS as usize);
        assert_eq!(stored, feeds.all_ids());
        assert_eq!(
            count(&store, "SELECT COUNT(*) FROM papers").await as usize,
            total
        );
        let links = count(&store, "SELECT COUNT(*) FROM paper_sources").await;
        assert_eq!(links, i64::from(INGEST_FEEDS * INGEST_ITEMS));
        report::report(
            "process.sigkill_ingest",
            json!({
                "backend": db.backend,
                "seed": seed(),
                "feed_items": INGEST_FEEDS * INGEST_ITEMS,
                "killed_after": {
                    "ms_into_write": delay,
                    "write_in_progress": in_write,
                    "feeds_stored": feeds_at_kill,
                    "papers_stored": at_kill,
                },
                "checked": total,
                "links_checked": links,
                "integrity": check,
                "duplicates": 0,
                "in_flight_duplicates": 0,
            }),
        );
        drop(probe);
        store.close().await;
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// 2. SIGKILL while composing digests

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_composing_digests_then_a_rerun_gives_each_subscriber_one_digest() {
    let _serial = SERIAL.lock().await;
    for db in databases().await {
        let n = if db.backend == "sqlite" { 2000 } else { 800 };
        let mut rng = Rng::new("sigkill_compose", db.backend);
        // Kill once this many digests are stored (between 10% and 70% of them),
        // then `delay` ms into the next write.
        let kill_at = rng.range(n as u64 / 10, n as u64 * 7 / 10) as i64;
        let delay = rng.range(0, 20);
        let dir = tempfile::tempdir().expect("temp dir");
        let Some(sink) = SmtpSink::start(dir.path()) else {
            return;
        };
        configure(dir.path(), db.url.expose(), Some(sink.port));
        let store = db.store().await;
        let setup = Instant::now();
        let emails = subscribers_and_papers(&store, n).await;
        eprintln!("{}: {n} readers added in {:?}", db.backend, setup.elapsed());
        let at = tomorrow();
        let mut probe = Probe::open(&db).await;

        let mut child = spawn_quiet(dir.path(), &["digest", "run", "--at", &at]);
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("digest run ended ({status}) before the kill");
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "composition never got far enough"
            );
            if count(&store, "SELECT COUNT(*) FROM digests").await >= kill_at {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        // Then into the write of the next digests.
        while !probe.writer_busy().await {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("digest run ended ({status}) before the kill");
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "no next write"
            );
        }
        tokio::time::sleep(Duration::from_millis(delay)).await;
        let in_write = probe.writer_busy().await;
        kill9(&mut child);
        drop(probe);
        let at_kill = digests_whole(&store).await;
        let sent_at_kill = sink.received_files().len();
        eprintln!(
            "{}: killed with {at_kill} of {n} digests stored, {sent_at_kill} sent",
            db.backend
        );
        assert!(
            at_kill > 0 && at_kill < n as i64,
            "the kill came outside composition"
        );
        assert_eq!(sent_at_kill, 0, "delivery starts once composition is done");

        let rerun_started = Instant::now();
        let rerun = run(dir.path(), &["digest", "run", "--at", &at, "--json"]);
        eprintln!("{}: rerun took {:?}", db.backend, rerun_started.elapsed());
        assert!(rerun.status.success(), "{}", text(&rerun));
        let report: serde_json::Value = serde_json::from_slice(&rerun.stdout).expect("JSON");
        assert_eq!(
            report["report"]["composed"].as_i64(),
            Some(n as i64 - at_kill),
            "the rerun composes exactly the readers the kill left: {report}"
        );
        assert_eq!(report["delivered"]["sent"].as_u64(), Some(n as u64));
        // A third run finds nothing left to do.
        let again = run(dir.path(), &["digest", "run", "--at", &at, "--json"]);
        assert!(again.status.success(), "{}", text(&again));
        let again: serde_json::Value = serde_json::from_slice(&again.stdout).expect("JSON");
        assert_eq!(again["report"]["composed"].as_u64(), Some(0), "{again}");
        assert_eq!(again["delivered"]["sent"].as_u64(), Some(0), "{again}");

        let entries = one_digest_each(&store, &emails).await;
        all_sent(&store, n).await;
        settle(&sink, n);
        let (messages, duplicates, in_flight) = mail_once_each(&sink, &emails);
        assert_eq!(
            (messages, duplicates, in_flight),
            (n, 0, 0),
            "nothing was in flight"
        );
        report::report(
            "process.sigkill_compose",
            json!({
                "backend": db.backend,
                "seed": seed(),
                "readers": n,
                "killed_after": {
                    "digests_stored": at_kill,
                    "ms_into_write": delay,
                    "messages_sent": sent_at_kill,
                    "write_in_progress": in_write,
                },
                "checked": {"digests": n, "digest_papers": entries, "messages": messages},
                "duplicates": duplicates,
                "in_flight_duplicates": in_flight,
            }),
        );
        store.close().await;
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// 3. SIGKILL while delivering

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_while_delivering_then_a_rerun_delivers_each_digest_once() {
    let _serial = SERIAL.lock().await;
    for db in databases().await {
        let n = if db.backend == "sqlite" { 800 } else { 400 };
        let mut rng = Rng::new("sigkill_deliver", db.backend);
        // Kill once this many messages arrived: between 10% and 70% of them.
        let kill_at = rng.range(n as u64 / 10, n as u64 * 7 / 10) as usize;
        let dir = tempfile::tempdir().expect("temp dir");
        let Some(sink) = SmtpSink::start(dir.path()) else {
            return;
        };
        configure(dir.path(), db.url.expose(), Some(sink.port));
        let store = db.store().await;
        let setup = Instant::now();
        let emails = subscribers_and_papers(&store, n).await;
        eprintln!("{}: {n} readers added in {:?}", db.backend, setup.elapsed());
        let at = tomorrow();

        let mut child = spawn_quiet(dir.path(), &["digest", "run", "--at", &at]);
        let started = Instant::now();
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                panic!("digest run ended ({status}) before the kill");
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "delivery never got far enough"
            );
            if sink.received_files().len() >= kill_at {
                break;
            }
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        kill9(&mut child);
        // Messages the relay was still taking in at the kill land a moment later.
        std::thread::sleep(Duration::from_millis(200));
        let sent_at_kill = sink.received_files().len();
        let counts = named_counts(
            &store,
            "SELECT status, COUNT(*) FROM deliveries GROUP BY status",
        )
        .await;
        eprintln!(
            "{}: killed after {sent_at_kill} of {n} messages; deliveries {counts:?}",
            db.backend
        );
        assert!(
            sent_at_kill < n,
            "the kill came after every message was sent"
        );

        // The leases of the sends in flight run out (2 s); the rerun takes them over.
        std::thread::sleep(Duration::from_millis(2500));
        let rerun_started = Instant::now();
        let rerun = run(dir.path(), &["digest", "run", "--at", &at, "--json"]);
        eprintln!("{}: rerun took {:?}", db.backend, rerun_started.elapsed());
        assert!(rerun.status.success(), "{}", text(&rerun));
        let report: serde_json::Value = serde_json::from_slice(&rerun.stdout).expect("JSON");
        assert_eq!(
            report["report"]["composed"].as_u64(),
            Some(0),
            "no window composed twice: {report}"
        );
        let resent = report["delivered"]["sent"].as_u64().unwrap_or(0) as usize;

        let entries = one_digest_each(&store, &emails).await;
        all_sent(&store, n).await;
        settle(&sink, n);
        let (messages, duplicates, in_flight) = mail_once_each(&sink, &emails);
        assert_eq!(duplicates, 0, "a reader got two different messages");
        assert_eq!(messages, n + in_flight);
        // Only sends in flight at the kill repeat: at most one per connection.
        assert!(in_flight <= 4, "{in_flight} messages repeated");
        report::report(
            "process.sigkill_deliver",
            json!({
                "backend": db.backend,
                "seed": seed(),
                "readers": n,
                "killed_after": {"messages_received": sent_at_kill},
                "resent_by_rerun": resent,
                "checked": {"digests": n, "digest_papers": entries, "messages": messages},
                "duplicates": duplicates,
                "in_flight_duplicates": in_flight,
            }),
        );
        store.close().await;
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// 4 and 5. The database's disk fills up, or turns read-only, under a write

/// The feeds of the disk drills: a small one stored before the fault, a large one whose
/// write meets it.
async fn disk_feeds() -> Feeds {
    Feeds::serve(vec![
        ("small", (20_000..20_300).collect()),
        ("large", (30_000..33_000).collect()),
    ])
    .await
}

/// Where a drill's database lives: a SQLite file on the tmpfs, or a PostgreSQL test
/// database whose tables are in a tablespace on it. Fields drop in reverse order: the
/// tablespace before the mount.
struct SmallDisk {
    url: paperboy::config::DatabaseUrl,
    disk: Tmpfs,
    _tablespace: Option<Tablespace>,
}

async fn small_disk(db: &TestDb, mount: &Path) -> Option<SmallDisk> {
    if db.backend == "sqlite" {
        let disk = Tmpfs::mount(mount, "8m", "")?;
        let url = format!("sqlite://{}", mount.join("paperboy.db").display());
        Some(SmallDisk {
            url: paperboy::config::DatabaseUrl::new(url),
            disk,
            _tablespace: None,
        })
    } else {
        let (uid, gid) = postgres_owner();
        let disk = Tmpfs::mount(mount, "8m", &format!(",mode=0700,uid={uid},gid={gid}"))?;
        let tablespace = Tablespace::create(&postgres_base(), db, mount).await;
        Some(SmallDisk {
            url: db.url.clone(),
            disk,
            _tablespace: Some(tablespace),
        })
    }
}

/// The error as the operator sees it: the `error:` line the binary ends with on stderr
/// (the log lines before it aside), lower-cased.
fn error_line(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr)
        .lines()
        .rev()
        .find(|l| l.starts_with("error: "))
        .unwrap_or_else(|| panic!("no error line: {}", text(out)))
        .to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_disk_fails_the_write_with_a_clear_error_and_a_rerun_recovers() {
    let _serial = SERIAL.lock().await;
    let feeds = disk_feeds().await;
    for db in databases().await {
        let dir = open_tempdir();
        let Some(disk) = small_disk(&db, &dir.path().join("disk")).await else {
            return;
        };
        configure(dir.path(), disk.url.expose(), None);
        let store = Store::open(&disk.url).await.expect("open store");
        feeds.register(&store).await;
        let first = run(dir.path(), &["fetch", "--feed", "small"]);
        assert!(first.status.success(), "{}", text(&first));
        let (before, _) = papers_state(&store, &feeds).await;
        assert_eq!(before, ["small"]);

        let leave = 256 * 1024;
        let filler = disk.disk.fill(leave);
        let full = run(dir.path(), &["fetch"]);
        let error = error_line(&full);
        assert_eq!(full.status.code(), Some(1), "{}", text(&full));
        assert!(
            error.contains("full") || error.contains("no space left"),
            "the error says the disk is full: {}",
            text(&full)
        );
        assert!(!text(&full).contains("panicked"), "{}", text(&full));
        let check = integrity(&store).await;
        assert_eq!(check, "ok", "{}: database damaged", db.backend);
        let (during, _) = papers_state(&store, &feeds).await;
        assert_eq!(during, ["small"], "nothing lost, nothing half-stored");

        std::fs::remove_file(&filler).expect("remove the filler");
        let rerun = run(dir.path(), &["fetch", "--json"]);
        assert!(rerun.status.success(), "{}", text(&rerun));
        assert_eq!(fetched(&rerun, "new"), 3000, "{}", text(&rerun));
        let (after, stored) = papers_state(&store, &feeds).await;
        assert_eq!(after.len(), 2);
        assert_eq!(stored, feeds.all_ids());
        assert_eq!(integrity(&store).await, "ok");
        report::report(
            "process.disk_full",
            json!({
                "backend": db.backend,
                "fault": format!("8 MiB tmpfs filled to {} KiB free", leave / 1024),
                "killed_after": null,
                "exit_code": full.status.code(),
                "error": error,
                "integrity": check,
                "checked": stored.len(),
                "duplicates": 0,
                "in_flight_duplicates": 0,
            }),
        );
        store.close().await;
        drop(disk);
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_read_only_database_fails_the_write_with_a_clear_error_and_a_rerun_recovers() {
    let _serial = SERIAL.lock().await;
    let feeds = disk_feeds().await;
    for db in databases().await {
        let dir = open_tempdir();
        let sqlite = db.backend == "sqlite";
        let disk = if sqlite {
            match small_disk(&db, &dir.path().join("disk")).await {
                Some(disk) => Some(disk),
                None => return,
            }
        } else {
            None
        };
        let url = disk.as_ref().map_or(db.url.clone(), |d| d.url.clone());
        configure(dir.path(), url.expose(), None);
        let store = Store::open(&url).await.expect("open store");
        feeds.register(&store).await;
        let first = run(dir.path(), &["fetch", "--feed", "small"]);
        assert!(first.status.success(), "{}", text(&first));

        let database = url::Url::parse(url.expose())
            .expect("url")
            .path()
            .trim_start_matches('/')
            .to_string();
        let fault = if let Some(disk) = &disk {
            // Nothing may hold the file open for writing while the file system turns
            // read-only.
            store.close().await;
            disk.disk.remount("ro");
            "file system remounted read-only"
        } else {
            alter_database(&database, "SET default_transaction_read_only = on").await;
            "default_transaction_read_only = on"
        };
        let refused = run(dir.path(), &["fetch"]);
        let error = error_line(&refused);
        if let Some(disk) = &disk {
            disk.disk.remount("rw");
        } else {
            alter_database(&database, "RESET default_transaction_read_only").await;
        }
        assert_ne!(refused.status.code(), Some(0), "{}", text(&refused));
        assert_eq!(refused.status.code(), Some(1), "{}", text(&refused));
        assert!(
            error.contains("read-only") || error.contains("readonly"),
            "the error says the database is read-only: {}",
            text(&refused)
        );
        assert!(!text(&refused).contains("panicked"), "{}", text(&refused));

        let store = Store::open(&url).await.expect("open store");
        let (during, _) = papers_state(&store, &feeds).await;
        assert_eq!(during, ["small"], "nothing lost, nothing half-stored");
        let rerun = run(dir.path(), &["fetch", "--json"]);
        assert!(rerun.status.success(), "{}", text(&rerun));
        assert_eq!(fetched(&rerun, "new"), 3000, "{}", text(&rerun));
        let (after, stored) = papers_state(&store, &feeds).await;
        assert_eq!(after.len(), 2);
        assert_eq!(stored, feeds.all_ids());
        let check = integrity(&store).await;
        assert_eq!(check, "ok");
        report::report(
            "process.read_only",
            json!({
                "backend": db.backend,
                "fault": fault,
                "killed_after": null,
                "exit_code": refused.status.code(),
                "error": error,
                "integrity": check,
                "checked": stored.len(),
                "duplicates": 0,
                "in_flight_duplicates": 0,
            }),
        );
        store.close().await;
        drop(disk);
        db.cleanup().await;
    }
}

/// `ALTER DATABASE <database> <change>`, from a connection to the server's base database.
async fn alter_database(database: &str, change: &str) {
    let mut conn = sqlx::PgConnection::connect(&postgres_base())
        .await
        .expect("connect to PostgreSQL");
    let sql = format!("ALTER DATABASE {database} {change}");
    sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
        .execute(&mut conn)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
}

// ---------------------------------------------------------------------------------------
// 6. The scheduler's leader killed in the middle of a digest tick

/// `serve` (web, scheduler and delivery worker) on the drill's settings, its log in `dir`.
fn serve_instance(dir: &Path, name: &str) -> (Child, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let child = paperboy(dir)
        .env("PAPERBOY_LOG", "info")
        .env(
            "PAPERBOY_BIND",
            format!("127.0.0.1:{}", helpers::free_port()),
        )
        // No feed is polled during the drill.
        .env("PAPERBOY_FETCH_SCHEDULE", "0 0 0 1 1 * 2099")
        .env("PAPERBOY_FETCH_ARXIV_SCHEDULE", "0 0 0 1 1 * 2099")
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create the log"))
        .spawn()
        .expect("start serve");
    (child, log)
}

/// The `serve` instances of a drill, each with its log; on drop (the drill ended, or
/// failed) those still running get SIGTERM and are reaped, so none outlives the drill.
struct Instances(Vec<(Child, PathBuf)>);

impl Drop for Instances {
    fn drop(&mut self) {
        for (child, _) in &mut self.0 {
            if let Ok(None) = child.try_wait() {
                let _ = std::process::Command::new("kill")
                    .args(["-TERM", &child.id().to_string()])
                    .status();
                let _ = child.wait();
            }
        }
    }
}

fn leads(log: &Path) -> bool {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains("this instance runs the schedule")
}

const LEADER_READERS: usize = 5000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_schedulers_leader_killed_mid_tick_and_the_others_finish_the_day() {
    let _serial = SERIAL.lock().await;
    let Some(db) = helpers::postgres_database().await else {
        assert!(!in_ci(), "CI=true but no PostgreSQL");
        return;
    };
    let n = LEADER_READERS;
    let dir = tempfile::tempdir().expect("temp dir");
    let Some(sink) = SmtpSink::start(dir.path()) else {
        return;
    };
    configure(dir.path(), db.url.expose(), Some(sink.port));
    let store = db.store().await;
    let setup = Instant::now();
    let emails = subscribers_and_papers(&store, n).await;
    // Confirmed two days ago: every reader's 08:00 UTC digest is due at the next tick.
    count(
        &store,
        "WITH moved AS (UPDATE subscribers SET confirmed_at = NOW() - INTERVAL '2 days', \
         last_window_end = NOW() - INTERVAL '2 days', created_at = NOW() - INTERVAL '2 days' \
         RETURNING 1) SELECT COUNT(*) FROM moved",
    )
    .await;
    for feed in ["arxiv-cs", "hf-daily"] {
        let out = run(dir.path(), &["feeds", "remove", feed]);
        assert!(out.status.success(), "{}", text(&out));
    }
    eprintln!("postgres: {n} readers added in {:?}", setup.elapsed());
    let dry = run(dir.path(), &["digest", "run", "--dry-run", "--json"]);
    let due: serde_json::Value = serde_json::from_slice(&dry.stdout).expect("JSON");
    assert_eq!(
        due["report"]["due"],
        n,
        "every reader is due: {}",
        text(&dry)
    );

    let mut instances = Instances(
        (0..3)
            .map(|i| serve_instance(dir.path(), &format!("serve-{i}")))
            .collect(),
    );
    let started = Instant::now();
    let leader = loop {
        if let Some(i) = instances.0.iter().position(|(_, log)| leads(log)) {
            break i;
        }
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "no instance took the schedule"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    // The digest tick comes at the next full minute; kill the leader inside its writes.
    let digests_at_kill = loop {
        let digests = count(&store, "SELECT COUNT(*) FROM digests").await as usize;
        if digests > 0 {
            assert!(
                digests < n,
                "the whole tick was written before the kill could land: raise the readers"
            );
            kill9(&mut instances.0[leader].0);
            break digests;
        }
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "the leader never composed:\n{}",
            std::fs::read_to_string(&instances.0[leader].1).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    };
    let killed = Instant::now();
    eprintln!(
        "postgres: leader serve-{leader} killed with {digests_at_kill} of {n} digests stored"
    );

    // Another instance takes the schedule over.
    let successor = loop {
        if let Some(i) = instances
            .0
            .iter()
            .enumerate()
            .position(|(i, (_, log))| i != leader && leads(log))
        {
            break i;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(30),
            "no instance took over the schedule"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let takeover = killed.elapsed();
    let others: Vec<usize> = (0..3).filter(|i| *i != leader).collect();
    assert!(
        others.iter().filter(|i| leads(&instances.0[**i].1)).count() == 1,
        "two instances ran the schedule"
    );

    // The day completes: every reader's digest composed and delivered.
    loop {
        let sent = count(
            &store,
            "SELECT COUNT(*) FROM deliveries WHERE status = 'sent'",
        )
        .await as usize;
        if sent == n {
            break;
        }
        assert!(
            killed.elapsed() < Duration::from_secs(240),
            "only {sent} of {n} delivered {:?} after the kill",
            killed.elapsed()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let completed = killed.elapsed();
    drop(instances);
    let entries = one_digest_each(&store, &emails).await;
    all_sent(&store, n).await;
    settle(&sink, n);
    let (messages, duplicates, in_flight) = mail_once_each(&sink, &emails);
    assert_eq!(duplicates, 0, "a reader got two different digests");
    assert_eq!(messages, n + in_flight);
    assert!(in_flight <= 4, "{in_flight} messages repeated");
    report::report(
        "process.leader_killed",
        json!({
            "backend": "postgres",
            "instances": 3,
            "readers": n,
            "killed": {"leader": format!("serve-{leader}"), "digests_stored": digests_at_kill},
            "takeover_secs": (takeover.as_secs_f64() * 100.0).round() / 100.0,
            "successor": format!("serve-{successor}"),
            "day_completed_secs_after_kill": (completed.as_secs_f64() * 10.0).round() / 10.0,
            "checked": {"digests": n, "digest_papers": entries, "messages": messages},
            "duplicates": duplicates,
            "in_flight_duplicates": in_flight,
        }),
    );
    store.close().await;
    db.cleanup().await;
}
