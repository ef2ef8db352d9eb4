//! Reliability drills: feeds. Each drill serves real-format feeds over real HTTP, injects
//! one kind of fault (a 5xx, a 429, a server that never answers, a body that never ends, a
//! 50 MB body, a truncated document, an HTML page, re-keyed items), runs the production
//! fetch and ingest path into a real database, and ends with an exact check of what is
//! stored: every expected paper once, nothing from the failed responses.
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "report.rs"]
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use chrono::Utc;
use helpers::{FeedServer, Reply, TestDb, databases};
use paperboy::config::FetchSettings;
use paperboy::domain::{FeedKind, FeedName, FeedUrl, PaperKey};
use paperboy::feeds::{FeedReport, FeedStatus, Fetcher, fetch_feeds};
use paperboy::store::{Store, UpsertCounts};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// The drills run one at a time: the memory and timing checks must not see another drill's
/// work, and the raw servers must not compete for the two cores.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Longest any single poll may take before the drill calls it hung.
const HANG: Duration = Duration::from_secs(60);

const MIB: u64 = 1024 * 1024;

const RSS: &str = "application/rss+xml; charset=utf-8";
const JSON: &str = "application/json; charset=utf-8";

/// The four-item multi-category arXiv listing (two new, one cross, one replace).
const ARXIV_RSS: &str =
    "arxiv-rss/layareader-2026-09-24-cs.LG+cs.AI+cs.CL+stat.ML-4items-trimmed.xml";
/// Three cs.LG items, re-serialised without an XML declaration.
const ARXIV_RSS_SMALL: &str = "arxiv-rss/distill-2026-04-27-cs.LG-3items-trimmed-reserialized.xml";
/// A raw `api/daily_papers` body, 30 entries.
const HF_DAILY: &str = "hf-daily-papers/sotawhat-daily-papers-2026-06-12.json";
/// An arXiv API search page, 20 entries.
const ARXIV_API: &str = "arxiv-api-atom/brevio-2026-04-query-cat_cs.LG_OR_cs.AI-20.xml";
/// A third-party RSS rendering of Hugging Face's daily papers, 22 items linking to arXiv.
const HF_THIRD_PARTY_RSS: &str =
    "hf-daily-papers/brevio-third-party-hf-daily-papers-rss-2026-04-30.xml";
/// A real blog's Atom feed: 20 entries with `tag:` ids and relative links.
const BLOG_ATOM: &str = "atom/nodefeedparser-intertwingly-real-atom.atom";

// ---------------------------------------------------------------------------------------
// Shared helpers
// ---------------------------------------------------------------------------------------

/// A real-world sample from the shared fixtures folder.
fn shared(relative: &str) -> Vec<u8> {
    let dir = helpers::shared_fixtures()
        .expect("the feed drills need the shared samples (set PAPERBOY_FIXTURES_DIR)");
    let path = dir.join(relative);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn shared_text(relative: &str) -> String {
    String::from_utf8(shared(relative)).expect("the sample is UTF-8")
}

/// Fetch settings for the drills: the production code with short caps so faults show fast.
fn drill_fetch() -> FetchSettings {
    FetchSettings {
        timeout_secs: 2,
        retries: 2,
        backoff_ms: 10,
        max_retry_after_secs: 5,
        max_bytes: MIB,
        arxiv_interval_ms: 0,
        host_interval_ms: 0,
        ..FetchSettings::default()
    }
}

fn fetcher(settings: FetchSettings) -> Fetcher {
    Fetcher::new(settings, "paperboy-drills").expect("build the fetcher")
}

async fn add_feed(store: &Store, name: &str, url: &str, kind: FeedKind) {
    store
        .add_feed(
            &FeedName::parse(name).expect("feed name"),
            &FeedUrl::parse(url).expect("feed url"),
            kind,
            Utc::now(),
        )
        .await
        .expect("add the feed");
}

/// One poll of one feed through the production path (`fetch_feeds`, as the scheduler and
/// `paperboy fetch` run it), with the feed's current validators read from the store.
async fn poll(store: &Store, fetcher: &Fetcher, name: &str) -> FeedReport {
    let feed = store
        .feed(&FeedName::parse(name).expect("feed name"))
        .await
        .expect("read the feed")
        .unwrap_or_else(|| panic!("no feed {name}"));
    let reports = tokio::time::timeout(HANG, fetch_feeds(store, fetcher, vec![feed]))
        .await
        .unwrap_or_else(|_| panic!("polling {name} did not return within {HANG:?}"));
    assert_eq!(reports.len(), 1, "one report per feed");
    reports.into_iter().next().expect("one report")
}

fn counts(report: &FeedReport) -> (UpsertCounts, usize) {
    match &report.status {
        FeedStatus::Ingested {
            counts, skipped, ..
        } => (*counts, *skipped),
        other => panic!(
            "{}: expected the feed to be ingested, got {other:?}",
            report.feed
        ),
    }
}

fn new_count(report: &FeedReport) -> usize {
    counts(report).0.new
}

fn error_of(report: &FeedReport) -> String {
    match &report.status {
        FeedStatus::Error { error } => error.clone(),
        other => panic!("{}: expected an error, got {other:?}", report.feed),
    }
}

/// The feed's health after a failed poll: the error is kept, and `failures` in a row.
async fn assert_failed_health(store: &Store, name: &str, failures: i64, needle: &str) {
    let feed = store
        .feed(&FeedName::parse(name).expect("feed name"))
        .await
        .expect("read the feed")
        .expect("feed exists");
    assert_eq!(
        feed.health.consecutive_failures, failures,
        "{name}: consecutive failures"
    );
    let last = feed.health.last_error.unwrap_or_default();
    assert!(
        last.contains(needle),
        "{name}: the last error {last:?} should say {needle:?}"
    );
}

async fn assert_healthy(store: &Store, name: &str) {
    let feed = store
        .feed(&FeedName::parse(name).expect("feed name"))
        .await
        .expect("read the feed")
        .expect("feed exists");
    assert_eq!(
        feed.health.consecutive_failures, 0,
        "{name} is healthy again"
    );
    assert_eq!(feed.health.last_error, None, "{name}: the error is cleared");
    assert!(
        feed.health.last_success_at.is_some(),
        "{name}: a success is recorded"
    );
}

/// How many values occur more than once (each extra occurrence counts).
fn extra_occurrences<'a>(values: impl Iterator<Item = &'a str>) -> usize {
    let mut seen = BTreeMap::<&str, usize>::new();
    for v in values {
        *seen.entry(v).or_default() += 1;
    }
    seen.values().map(|n| n - 1).sum()
}

/// The exact check each drill ends with: the stored papers are exactly the keys of
/// `expected`, no key, arXiv id or DOI is stored twice, and each paper was carried by the
/// expected number of feeds. Returns (papers checked, duplicates found).
async fn assert_stored(store: &Store, expected: &BTreeMap<String, usize>) -> (usize, usize) {
    let papers = store.list_papers(None).await.expect("list papers");
    let duplicates = extra_occurrences(papers.iter().map(|p| p.paper.key.as_str()))
        + extra_occurrences(papers.iter().filter_map(|p| p.paper.arxiv_id.as_deref()))
        + extra_occurrences(papers.iter().filter_map(|p| p.paper.doi.as_deref()));
    assert_eq!(duplicates, 0, "a paper is stored twice");
    let stored: BTreeSet<&str> = papers.iter().map(|p| p.paper.key.as_str()).collect();
    let wanted: BTreeSet<&str> = expected.keys().map(String::as_str).collect();
    let missing: Vec<_> = wanted.difference(&stored).collect();
    let unexpected: Vec<_> = stored.difference(&wanted).collect();
    assert!(
        missing.is_empty() && unexpected.is_empty(),
        "stored papers differ: missing {missing:?}, unexpected {unexpected:?}"
    );
    assert_eq!(
        store.count_papers().await.expect("count papers"),
        expected.len() as i64,
        "the papers table holds exactly the expected rows"
    );
    for (key, sources) in expected {
        let (_, got) = store
            .paper(&PaperKey::parse(key).expect("paper key"))
            .await
            .expect("read the paper")
            .unwrap_or_else(|| panic!("{key} not stored"));
        assert_eq!(got.len(), *sources, "{key}: carried by {got:?}");
    }
    (papers.len(), duplicates)
}

fn each_once(keys: &BTreeSet<String>) -> BTreeMap<String, usize> {
    keys.iter().map(|k| (k.clone(), 1)).collect()
}

/// `2609.26811v1` → `2609.26811`.
fn strip_version(id: &str) -> &str {
    match id.rfind('v') {
        Some(at) if at > 0 && id[at + 1..].bytes().all(|b| b.is_ascii_digit()) => &id[..at],
        _ => id,
    }
}

/// The arXiv keys a document names after each `marker` (read here, independently of the
/// parsers under test): `oai:arXiv.org:2609.26811v1` → `arxiv:2609.26811`.
fn arxiv_keys_after(text: &str, marker: &str) -> BTreeSet<String> {
    text.match_indices(marker)
        .map(|(at, _)| {
            let rest = &text[at + marker.len()..];
            let end = rest
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '/' || c == '-'))
                .unwrap_or(rest.len());
            format!("arxiv:{}", strip_version(&rest[..end]))
        })
        .collect()
}

/// The keys of a Hugging Face daily papers body: one per `paper.id`.
fn hf_keys(body: &[u8]) -> BTreeSet<String> {
    let items: Vec<serde_json::Value> = serde_json::from_slice(body).expect("HF JSON");
    items
        .iter()
        .map(|i| {
            let id = i["paper"]["id"].as_str().expect("paper.id");
            format!("arxiv:{}", strip_version(id))
        })
        .collect()
}

fn arxiv_rss_keys(text: &str) -> BTreeSet<String> {
    let keys = arxiv_keys_after(text, "<guid isPermaLink=\"false\">oai:arXiv.org:");
    assert_eq!(
        keys.len(),
        text.matches("<item>").count(),
        "one guid per item in the sample"
    );
    keys
}

/// A field of `/proc/self/status` in kB (`VmRSS`, `VmHWM`).
fn proc_status_kb(field: &str) -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Runs `work` and returns how far the process's peak resident memory rose above its
/// resident memory before, in kB. The peak is reset first where the kernel allows it
/// (`/proc/self/clear_refs`), else the old peak is the baseline.
async fn peak_growth_kb<T>(work: impl std::future::Future<Output = T>) -> (T, u64) {
    let reset = std::fs::write("/proc/self/clear_refs", "5").is_ok();
    let before = if reset {
        proc_status_kb("VmRSS")
    } else {
        proc_status_kb("VmHWM")
    }
    .expect("/proc/self/status has VmRSS and VmHWM");
    let out = work.await;
    let peak = proc_status_kb("VmHWM").expect("VmHWM");
    (out, peak.saturating_sub(before))
}

// ---------------------------------------------------------------------------------------
// A raw HTTP server for the faults axum will not produce: silence, endless and huge bodies
// ---------------------------------------------------------------------------------------

#[derive(Clone)]
enum Act {
    /// Reads the request and never answers.
    Silent,
    /// Sends the status line and headers, then nothing.
    HeadersOnly,
    /// 200 with a chunked body that never ends, as fast as the client reads.
    Endless,
    /// 200 with a chunked body that never ends, one small chunk every `gap`.
    Trickle { gap: Duration },
    /// 200 with `len` bytes of feed-looking body, declared in Content-Length or chunked.
    Huge { len: u64, declare_length: bool },
    /// 200 with `Content-Encoding: gzip` and this (compressed) body.
    Gzip(Arc<Vec<u8>>),
    /// 200 declaring the whole body's length, then the connection drops after `cut` bytes.
    CutShort { body: Arc<Vec<u8>>, cut: usize },
    /// A complete, ordinary answer.
    Complete {
        content_type: &'static str,
        body: Arc<Vec<u8>>,
    },
}

#[derive(Default)]
struct RawStats {
    connections: AtomicU64,
    finished: AtomicU64,
    body_bytes: AtomicU64,
    largest_body: AtomicU64,
}

struct RawServer {
    addr: SocketAddr,
    act: Arc<Mutex<Act>>,
    stats: Arc<RawStats>,
}

impl RawServer {
    async fn start(act: Act) -> RawServer {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let act = Arc::new(Mutex::new(act));
        let stats = Arc::new(RawStats::default());
        let (a, s) = (act.clone(), stats.clone());
        tokio::spawn(async move {
            while let Ok((socket, _)) = listener.accept().await {
                s.connections.fetch_add(1, Ordering::SeqCst);
                let act = a.lock().expect("lock").clone();
                let s = s.clone();
                tokio::spawn(async move {
                    let sent = answer_raw(socket, act).await;
                    s.body_bytes.fetch_add(sent, Ordering::SeqCst);
                    s.largest_body.fetch_max(sent, Ordering::SeqCst);
                    s.finished.fetch_add(1, Ordering::SeqCst);
                });
            }
        });
        RawServer { addr, act, stats }
    }

    fn set(&self, act: Act) {
        *self.act.lock().expect("lock") = act;
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    fn connections(&self) -> u64 {
        self.stats.connections.load(Ordering::SeqCst)
    }

    fn body_bytes(&self) -> u64 {
        self.stats.body_bytes.load(Ordering::SeqCst)
    }

    fn largest_body(&self) -> u64 {
        self.stats.largest_body.load(Ordering::SeqCst)
    }

    /// Waits until the client has closed every connection it opened: a fetch that gave up
    /// must not leave a socket (and a server still writing into it) behind.
    async fn assert_all_closed(&self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let (opened, done) = (
                self.stats.connections.load(Ordering::SeqCst),
                self.stats.finished.load(Ordering::SeqCst),
            );
            if opened == done {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the client left {} of {opened} connection(s) open",
                opened - done
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

/// Serves one connection as `act` says; returns the body bytes written before the client
/// went away (or the body ended).
async fn answer_raw(mut socket: TcpStream, act: Act) -> u64 {
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        match socket.read(&mut buf).await {
            Ok(0) | Err(_) => return 0,
            Ok(n) => request.extend_from_slice(&buf[..n]),
        }
    }
    let head = |extra: &str| {
        format!("HTTP/1.1 200 OK\r\nContent-Type: {RSS}\r\nConnection: close\r\n{extra}\r\n")
    };
    match act {
        Act::Silent => {
            wait_for_hangup(&mut socket).await;
            0
        }
        Act::HeadersOnly => {
            if socket
                .write_all(head("Content-Length: 100000\r\n").as_bytes())
                .await
                .is_ok()
            {
                wait_for_hangup(&mut socket).await;
            }
            0
        }
        Act::Endless => {
            let chunk = endless_items(64 * 1024);
            chunked_forever(
                &mut socket,
                &head("Transfer-Encoding: chunked\r\n"),
                &chunk,
                None,
            )
            .await
        }
        Act::Trickle { gap } => {
            let chunk = endless_items(512);
            chunked_forever(
                &mut socket,
                &head("Transfer-Encoding: chunked\r\n"),
                &chunk,
                Some(gap),
            )
            .await
        }
        Act::Huge {
            len,
            declare_length,
        } => {
            let header = if declare_length {
                head(&format!("Content-Length: {len}\r\n"))
            } else {
                head("Transfer-Encoding: chunked\r\n")
            };
            if socket.write_all(header.as_bytes()).await.is_err() {
                return 0;
            }
            let piece = endless_items(64 * 1024);
            let mut sent = 0u64;
            while sent < len {
                let n = (len - sent).min(piece.len() as u64) as usize;
                let wrote = if declare_length {
                    socket.write_all(&piece[..n]).await
                } else {
                    write_chunk(&mut socket, &piece[..n]).await
                };
                if wrote.is_err() {
                    return sent;
                }
                sent += n as u64;
            }
            if !declare_length {
                let _ = socket.write_all(b"0\r\n\r\n").await;
            }
            sent
        }
        Act::Gzip(body) => {
            let header = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {RSS}\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if socket.write_all(header.as_bytes()).await.is_err() {
                return 0;
            }
            write_counting(&mut socket, &body).await
        }
        Act::CutShort { body, cut } => {
            let header = head(&format!("Content-Length: {}\r\n", body.len()));
            if socket.write_all(header.as_bytes()).await.is_err() {
                return 0;
            }
            let sent = write_counting(&mut socket, &body[..cut]).await;
            let _ = socket.shutdown().await;
            sent
        }
        Act::Complete { content_type, body } => {
            let header = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                body.len()
            );
            if socket.write_all(header.as_bytes()).await.is_err() {
                return 0;
            }
            write_counting(&mut socket, &body).await
        }
    }
}

/// Writes `body` in 64 KiB pieces; returns the bytes written before an error.
async fn write_counting(socket: &mut TcpStream, body: &[u8]) -> u64 {
    let mut sent = 0u64;
    for piece in body.chunks(64 * 1024) {
        if socket.write_all(piece).await.is_err() {
            break;
        }
        sent += piece.len() as u64;
    }
    sent
}

async fn wait_for_hangup(socket: &mut TcpStream) {
    let mut buf = [0u8; 1024];
    while let Ok(n) = socket.read(&mut buf).await {
        if n == 0 {
            break;
        }
    }
}

async fn write_chunk(socket: &mut TcpStream, data: &[u8]) -> std::io::Result<()> {
    socket
        .write_all(format!("{:x}\r\n", data.len()).as_bytes())
        .await?;
    socket.write_all(data).await?;
    socket.write_all(b"\r\n").await
}

/// Sends the RSS preamble, then `chunk` again and again (every `gap`, when given) until
/// the client goes away, or ten minutes pass; returns the body bytes written.
async fn chunked_forever(
    socket: &mut TcpStream,
    head: &str,
    chunk: &[u8],
    gap: Option<Duration>,
) -> u64 {
    let preamble = b"<?xml version='1.0' encoding='UTF-8'?>\n<rss version=\"2.0\"><channel><title>endless</title>";
    if socket.write_all(head.as_bytes()).await.is_err()
        || write_chunk(socket, preamble).await.is_err()
    {
        return 0;
    }
    let mut sent = preamble.len() as u64;
    let until = Instant::now() + Duration::from_secs(600);
    while Instant::now() < until {
        if write_chunk(socket, chunk).await.is_err() {
            break;
        }
        sent += chunk.len() as u64;
        if let Some(gap) = gap {
            tokio::time::sleep(gap).await;
        }
    }
    sent
}

/// About `len` bytes of complete RSS items naming real-looking arXiv papers: if a fetch
/// ever kept part of an endless body, these would show up in the papers table.
fn endless_items(len: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(len + 256);
    let mut n = 0;
    while out.len() < len {
        n += 1;
        out.extend_from_slice(
            format!(
                "<item><title>Endless paper {n}</title><link>https://arxiv.org/abs/2601.{:05}</link><description>x</description></item>\n",
                n % 100_000
            )
            .as_bytes(),
        );
    }
    out
}

/// `body` gzip-compressed, by Python's gzip module (no compression crate in the tree).
fn gzip(body: &[u8]) -> Vec<u8> {
    use std::io::Write;
    let mut child = std::process::Command::new("python3")
        .args([
            "-c",
            "import gzip, sys; sys.stdout.buffer.write(gzip.compress(sys.stdin.buffer.read(), 9))",
        ])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("python3 is needed to build the gzip body");
    let mut stdin = child.stdin.take().expect("stdin");
    let input = body.to_vec();
    let writer = std::thread::spawn(move || stdin.write_all(&input));
    let out = child.wait_with_output().expect("python3 gzip");
    writer.join().expect("writer").expect("write to python3");
    assert!(out.status.success(), "python3 gzip failed");
    out.stdout
}

// ---------------------------------------------------------------------------------------
// 1. HTTP 500, then a good reply on a later run (through the `paperboy fetch` binary)
// ---------------------------------------------------------------------------------------

/// Runs the binary in `dir` against `db`; returns (exit code, stdout, stderr).
/// It runs on the blocking pool, so the feed server on this runtime can answer it.
async fn cli(dir: &Path, db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let mut cmd = helpers::paperboy(dir);
    cmd.env("PAPERBOY_DATABASE_URL", db.url.expose()).args(args);
    let out = tokio::task::spawn_blocking(move || cmd.output())
        .await
        .expect("join")
        .expect("run paperboy");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test]
async fn http_500_stores_nothing_and_the_next_run_stores_every_paper_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sample = shared(ARXIV_RSS);
    let expected = arxiv_rss_keys(&shared_text(ARXIV_RSS));
    assert_eq!(expected.len(), 4);
    for db in databases().await {
        let dir = tempfile::tempdir().expect("temp dir");
        // The operator's settings file: three attempts per poll, short backoff.
        std::fs::write(
            dir.path().join("paperboy.toml"),
            "[fetch]\ntimeout_secs = 5\nretries = 2\nbackoff_ms = 20\nhost_interval_ms = 0\narxiv_interval_ms = 0\n",
        )
        .expect("write paperboy.toml");
        let server = FeedServer::start().await;
        let error_page = "<html><body><h1>500 Internal Server Error</h1></body></html>";
        let url = server.serve(
            "/rss",
            vec![
                Reply::status(500, "text/html", error_page),
                Reply::status(502, "text/html", "<html><body>Bad gateway</body></html>"),
                Reply::status(500, "text/html", error_page),
                Reply::ok(RSS, sample.clone()),
            ],
        );
        // A second feed whose first attempt fails and whose retry succeeds, in one run.
        let flaky = server.serve(
            "/flaky",
            vec![
                Reply::status(503, "text/plain", "overloaded"),
                Reply::ok(RSS, shared(ARXIV_RSS_SMALL)),
            ],
        );
        let small = arxiv_rss_keys(&shared_text(ARXIV_RSS_SMALL));
        let (code, _, err) = cli(
            dir.path(),
            &db,
            &["feeds", "add", "listing", &url, "--kind", "arxiv-rss"],
        )
        .await;
        assert_eq!(code, 0, "feeds add: {err}");
        let (code, _, err) = cli(
            dir.path(),
            &db,
            &["feeds", "add", "flaky", &flaky, "--kind", "arxiv-rss"],
        )
        .await;
        assert_eq!(code, 0, "feeds add: {err}");

        // Run 1: every attempt gets a 5xx.
        let (code, out, err) = cli(dir.path(), &db, &["fetch", "--feed", "listing"]).await;
        assert_eq!(code, 1, "a failed feed makes fetch exit 1: {out} {err}");
        assert!(
            out.contains("listing: error: HTTP 500"),
            "the summary line names the failure: {out:?}"
        );
        assert_eq!(server.seen("/rss").len(), 3, "one attempt and two retries");
        let store = db.store().await;
        assert_eq!(
            store.count_papers().await.expect("count"),
            0,
            "nothing is stored from a failed poll"
        );
        assert_failed_health(&store, "listing", 1, "HTTP 500").await;

        // Run 2: the server is back; run 3: the same listing again.
        let (code, out, err) = cli(dir.path(), &db, &["fetch", "--feed", "listing"]).await;
        assert_eq!(code, 0, "{out} {err}");
        assert!(
            out.contains("listing: 4 new, 0 updated, 0 unchanged"),
            "{out:?}"
        );
        let (code, out, err) = cli(dir.path(), &db, &["fetch", "--feed", "listing"]).await;
        assert_eq!(code, 0, "{out} {err}");
        assert!(
            out.contains("listing: 0 new, 0 updated, 4 unchanged"),
            "{out:?}"
        );
        assert_healthy(&store, "listing").await;

        // The flaky feed: a 503, then the retry in the same run succeeds.
        let (code, out, err) = cli(dir.path(), &db, &["fetch", "--feed", "flaky", "--json"]).await;
        assert_eq!(code, 0, "{out} {err}");
        let reports: serde_json::Value = serde_json::from_str(&out).expect("fetch --json");
        assert_eq!(reports[0]["status"], "ingested", "{out}");
        assert_eq!(reports[0]["new"], 3, "{out}");
        assert_eq!(server.seen("/flaky").len(), 2, "one 503 and one retry");

        let mut want = each_once(&expected);
        want.extend(each_once(&small));
        let (checked, duplicates) = assert_stored(&store, &want).await;
        report::report(
            "feeds.http_500",
            json!({
                "backend": db.backend,
                "requests": server.seen("/rss").len() + server.seen("/flaky").len(),
                "faults_injected": 4,
                "papers_checked": checked,
                "duplicates": duplicates,
            }),
        );
        store.close().await;
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// 2. 429 with Retry-After
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn retry_after_is_honoured_within_the_cap_and_nothing_is_lost_or_doubled() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sample = shared(HF_DAILY);
    let expected = hf_keys(&sample);
    assert_eq!(expected.len(), 30);
    let listing = shared(ARXIV_RSS);
    let listing_keys = arxiv_rss_keys(&shared_text(ARXIV_RSS));
    for db in databases().await {
        let store = db.store().await;
        let server = FeedServer::start().await;
        let fetcher = fetcher(drill_fetch());

        // Within the cap: a 429 asking for 2 s, then a 503 asking to come back at a date
        // (4 s from now, so 1 to 2 s after the first wait), then the body.
        let date = (Utc::now() + chrono::Duration::seconds(4)).to_rfc2822();
        let date = date.replace("+0000", "GMT");
        let url = server.serve(
            "/hf",
            vec![
                Reply::status(429, "text/plain", "slow down").with_header("retry-after", "2"),
                Reply::status(503, "text/plain", "later").with_header("retry-after", &date),
                Reply::ok(JSON, sample.clone()),
            ],
        );
        add_feed(&store, "hf", &url, FeedKind::HfDaily).await;
        let started = Instant::now();
        let report = poll(&store, &fetcher, "hf").await;
        let waited = started.elapsed();
        assert_eq!(new_count(&report), 30, "{report}");
        assert_eq!(server.seen("/hf").len(), 3);
        assert!(
            waited >= Duration::from_secs(3),
            "2 s for the first Retry-After and at least 1 s for the dated one: waited {waited:?}"
        );
        assert!(
            waited < Duration::from_secs(7),
            "the waits are the server's, not longer: waited {waited:?}"
        );

        // Beyond the cap (an hour): the run fails at once, saying so, and stores nothing.
        let busy = server.serve(
            "/busy",
            vec![
                Reply::status(429, "text/plain", "").with_header("retry-after", "3600"),
                Reply::ok(RSS, listing.clone()),
            ],
        );
        add_feed(&store, "busy", &busy, FeedKind::ArxivRss).await;
        let started = Instant::now();
        let report = poll(&store, &fetcher, "busy").await;
        assert!(
            error_of(&report).contains("rate limited") && error_of(&report).contains("3600"),
            "{report}"
        );
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "no waiting for a Retry-After beyond the cap: {:?}",
            started.elapsed()
        );
        assert_eq!(
            server.seen("/busy").len(),
            1,
            "no retry against the server's wish"
        );
        assert_failed_health(&store, "busy", 1, "3600").await;
        assert_eq!(store.count_papers().await.expect("count"), 30);

        // The next run is allowed through.
        let report = poll(&store, &fetcher, "busy").await;
        assert_eq!(new_count(&report), 4, "{report}");
        assert_healthy(&store, "busy").await;
        // And polling both again changes nothing.
        assert_eq!(counts(&poll(&store, &fetcher, "hf").await).0.unchanged, 30);
        assert_eq!(counts(&poll(&store, &fetcher, "busy").await).0.unchanged, 4);

        let mut want = each_once(&expected);
        want.extend(each_once(&listing_keys));
        let (checked, duplicates) = assert_stored(&store, &want).await;
        report::report(
            "feeds.retry_after",
            json!({
                "backend": db.backend,
                "requests": server.seen("/hf").len() + server.seen("/busy").len(),
                "faults_injected": 3,
                "waited_ms": waited.as_millis() as u64,
                "papers_checked": checked,
                "duplicates": duplicates,
            }),
        );
        store.close().await;
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// 3. A server that accepts and never answers in time
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_silent_server_times_out_within_the_limit_and_the_next_run_recovers() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sample = Arc::new(shared(ARXIV_RSS_SMALL));
    let expected = arxiv_rss_keys(&shared_text(ARXIV_RSS_SMALL));
    assert_eq!(expected.len(), 3);
    let settings = FetchSettings {
        timeout_secs: 1,
        retries: 1,
        ..drill_fetch()
    };
    // Two attempts of at most 1 s each, plus the backoff and slack for a busy machine.
    let bound = Duration::from_millis(2 * 1000 + 10 + 2500);
    for db in databases().await {
        let store = db.store().await;
        let fetcher = fetcher(settings.clone());
        let server = RawServer::start(Act::Silent).await;
        add_feed(&store, "silent", &server.url("/rss"), FeedKind::ArxivRss).await;

        let mut faults = 0;
        for (act, what) in [
            (Act::Silent, "no answer at all"),
            (Act::HeadersOnly, "headers, then no body"),
        ] {
            server.set(act);
            let before = server.connections();
            let started = Instant::now();
            let report = poll(&store, &fetcher, "silent").await;
            let took = started.elapsed();
            faults += 1;
            let error = error_of(&report);
            assert!(
                error.contains("timed out after 1 s"),
                "{what}: a clear timeout error, got {error:?}"
            );
            assert!(
                took >= Duration::from_secs(2) && took < bound,
                "{what}: two attempts of 1 s each, took {took:?}"
            );
            assert_eq!(
                server.connections() - before,
                2,
                "{what}: one attempt, one retry"
            );
            server.assert_all_closed().await;
            assert_eq!(store.count_papers().await.expect("count"), 0);
            assert_failed_health(&store, "silent", faults, "timed out").await;
        }

        server.set(Act::Complete {
            content_type: RSS,
            body: sample.clone(),
        });
        let report = poll(&store, &fetcher, "silent").await;
        assert_eq!(new_count(&report), 3, "{report}");
        assert_healthy(&store, "silent").await;
        let report = poll(&store, &fetcher, "silent").await;
        assert_eq!(counts(&report).0.unchanged, 3, "{report}");
        server.assert_all_closed().await;

        let (checked, duplicates) = assert_stored(&store, &each_once(&expected)).await;
        report::report(
            "feeds.timeout",
            json!({
                "backend": db.backend,
                "requests": server.connections(),
                "faults_injected": faults,
                "timeout_secs": settings.timeout_secs,
                "papers_checked": checked,
                "duplicates": duplicates,
            }),
        );
        store.close().await;
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// 4. A body that never ends
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_never_ending_body_is_cut_at_the_size_cap_or_the_timeout() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let sample = Arc::new(shared(ARXIV_RSS));
    let expected = arxiv_rss_keys(&shared_text(ARXIV_RSS));
    let settings = FetchSettings {
        timeout_secs: 1,
        retries: 1,
        max_bytes: MIB,
        ..drill_fetch()
    };
    for db in databases().await {
        let store = db.store().await;
        let fetcher = fetcher(settings.clone());
        let server = RawServer::start(Act::Endless).await;
        add_feed(&store, "endless", &server.url("/rss"), FeedKind::ArxivRss).await;

        // As fast as it can be read: the size cap stops it (before the timeout, or the
        // error would say so), at once and for good.
        let started = Instant::now();
        let (report, growth_kb) = peak_growth_kb(poll(&store, &fetcher, "endless")).await;
        let took_cap = started.elapsed();
        let error = error_of(&report);
        assert!(
            error.contains("larger than the 1048576-byte limit"),
            "the size cap names itself: {error:?}"
        );
        assert_eq!(
            server.connections(),
            1,
            "an oversized body is not fetched again"
        );
        server.assert_all_closed().await;
        let sent_fast = server.largest_body();
        assert!(
            sent_fast < 32 * MIB,
            "the client stopped reading: the server wrote {sent_fast} bytes"
        );
        assert!(
            growth_kb < 24 * 1024,
            "reading stopped at the cap: peak memory grew by {growth_kb} kB"
        );
        assert_eq!(
            store.count_papers().await.expect("count"),
            0,
            "nothing partial"
        );
        assert_failed_health(&store, "endless", 1, "larger than").await;

        // A trickle that stays under the cap: the whole-request timeout stops it.
        server.set(Act::Trickle {
            gap: Duration::from_millis(50),
        });
        let started = Instant::now();
        let report = poll(&store, &fetcher, "endless").await;
        let took = started.elapsed();
        let error = error_of(&report);
        assert!(error.contains("timed out after 1 s"), "{error:?}");
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_millis(4500),
            "two attempts cut at 1 s each: {took:?}"
        );
        assert_eq!(server.connections(), 3, "one attempt and one retry");
        server.assert_all_closed().await;
        assert_eq!(
            store.count_papers().await.expect("count"),
            0,
            "nothing partial"
        );
        assert_failed_health(&store, "endless", 2, "timed out").await;

        server.set(Act::Complete {
            content_type: RSS,
            body: sample.clone(),
        });
        let report = poll(&store, &fetcher, "endless").await;
        assert_eq!(new_count(&report), 4, "{report}");
        assert_healthy(&store, "endless").await;
        server.assert_all_closed().await;

        let (checked, duplicates) = assert_stored(&store, &each_once(&expected)).await;
        report::report(
            "feeds.endless_body",
            json!({
                "backend": db.backend,
                "requests": server.connections(),
                "faults_injected": 2,
                "bytes_sent_before_cut": sent_fast,
                "cut_after_ms": took_cap.as_millis() as u64,
                "peak_rss_growth_kb": growth_kb,
                "papers_checked": checked,
                "duplicates": duplicates,
            }),
        );
        store.close().await;
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// 5. A 50 MB body
// ---------------------------------------------------------------------------------------

#[tokio::test]
async fn a_50_mb_body_is_refused_at_the_cap_without_reading_it_all() {
    let _turn = ONE_AT_A_TIME.lock().await;
    const FIFTY_MB: u64 = 50 * 1000 * 1000;
    let sample = Arc::new(shared(ARXIV_API));
    let expected = arxiv_keys_after(&shared_text(ARXIV_API), "<id>http://arxiv.org/abs/");
    assert_eq!(expected.len(), 20);
    // 50 MB of feed-looking text that compresses to well under the cap (built in a block
    // so the uncompressed copy is freed before memory is measured).
    let bomb = {
        let mut raw = Vec::with_capacity(FIFTY_MB as usize);
        raw.extend_from_slice(
            b"<?xml version='1.0' encoding='UTF-8'?>\n<rss version=\"2.0\"><channel><title>big</title>",
        );
        // Repeats closer together than deflate's 32 KiB window, so it compresses well.
        let items = endless_items(8 * 1024);
        while (raw.len() as u64) < FIFTY_MB {
            raw.extend_from_slice(&items);
        }
        raw.truncate(FIFTY_MB as usize);
        Arc::new(gzip(&raw))
    };
    assert!(
        (bomb.len() as u64) < MIB,
        "the compressed body fits under the cap"
    );
    let settings = FetchSettings {
        max_bytes: MIB,
        ..drill_fetch()
    };
    for db in databases().await {
        let store = db.store().await;
        let fetcher = fetcher(settings.clone());
        let server = RawServer::start(Act::Silent).await;
        add_feed(&store, "api", &server.url("/api"), FeedKind::ArxivApi).await;

        let mut growths = Vec::new();
        let mut bytes_sent = Vec::new();
        for (failures, (act, what)) in [
            (
                Act::Huge {
                    len: FIFTY_MB,
                    declare_length: true,
                },
                "declared in Content-Length",
            ),
            (
                Act::Huge {
                    len: FIFTY_MB,
                    declare_length: false,
                },
                "chunked, length unknown",
            ),
            (Act::Gzip(bomb.clone()), "gzip, 50 MB once decompressed"),
        ]
        .into_iter()
        .enumerate()
        {
            server.set(act);
            let (before, sent_before) = (server.connections(), server.body_bytes());
            let (report, growth_kb) = peak_growth_kb(poll(&store, &fetcher, "api")).await;
            let error = error_of(&report);
            assert!(
                error.contains("larger than the 1048576-byte limit"),
                "{what}: {error:?}"
            );
            assert_eq!(
                server.connections() - before,
                1,
                "{what}: not fetched again"
            );
            server.assert_all_closed().await;
            let sent = server.body_bytes() - sent_before;
            bytes_sent.push(sent);
            assert!(
                sent < FIFTY_MB / 2,
                "{what}: the client hung up early, yet the server wrote {sent} bytes"
            );
            assert!(
                growth_kb < 24 * 1024,
                "{what}: refused without reading 50 MB, yet peak memory grew by {growth_kb} kB"
            );
            growths.push(growth_kb);
            assert_eq!(store.count_papers().await.expect("count"), 0, "{what}");
            assert_failed_health(&store, "api", failures as i64 + 1, "larger than").await;
        }

        server.set(Act::Complete {
            content_type: "application/atom+xml",
            body: sample.clone(),
        });
        let report = poll(&store, &fetcher, "api").await;
        assert_eq!(new_count(&report), 20, "{report}");
        assert_healthy(&store, "api").await;

        let (checked, duplicates) = assert_stored(&store, &each_once(&expected)).await;
        report::report(
            "feeds.fifty_mb_body",
            json!({
                "backend": db.backend,
                "requests": server.connections(),
                "faults_injected": 3,
                "max_bytes": settings.max_bytes,
                "bytes_sent": bytes_sent,
                "peak_rss_growth_kb": growths,
                "papers_checked": checked,
                "duplicates": duplicates,
            }),
        );
        store.close().await;
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// 6. Truncated XML (and JSON)
// ---------------------------------------------------------------------------------------

/// The sample cut at revealing places: right after a complete item (what a naive parser
/// would half-accept), inside an item's text, inside a tag, before the closing tags.
fn cuts_of(text: &str) -> Vec<(&'static str, usize)> {
    let item_ends: Vec<usize> = text
        .match_indices("</item>")
        .map(|(at, m)| at + m.len())
        .collect();
    let third_item = text.match_indices("<item>").nth(2).expect("a third item").0;
    let in_description = text[third_item..].find("Abstract:").expect("abstract") + third_item + 40;
    let in_tag = text[third_item..].find("<guid").expect("guid") + third_item + 3;
    let channel_close = text.rfind("</channel>").expect("channel close");
    let rss_close = text.rfind("</rss>").expect("rss close");
    vec![
        ("after the second complete item", item_ends[1]),
        ("after the last complete item", item_ends[3]),
        ("inside the third item's abstract", in_description),
        ("inside a tag name", in_tag),
        ("before </channel>", channel_close),
        ("inside </rss>", rss_close + 3),
    ]
}

#[tokio::test]
async fn truncated_documents_are_refused_whole_and_the_next_fetch_stores_everything_once() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let text = shared_text(ARXIV_RSS);
    let body = text.as_bytes().to_vec();
    let rss_keys = arxiv_rss_keys(&text);
    let hf = shared(HF_DAILY);
    let hf_keys = hf_keys(&hf);
    let cuts = cuts_of(&text);
    for db in databases().await {
        let store = db.store().await;
        let fetcher = fetcher(drill_fetch());
        let server = FeedServer::start().await;
        // Every reply carries the day's ETag, as a server does whose transfer a proxy cut:
        // were the ETag of a refused body kept, the good body would never come (304).
        let mut replies: Vec<Reply> = cuts
            .iter()
            .map(|(_, at)| Reply::ok(RSS, body[..*at].to_vec()).with_etag("\"day\""))
            .collect();
        replies.push(Reply::ok(RSS, body.clone()).with_etag("\"day\""));
        let url = server.serve("/rss", replies);
        add_feed(&store, "listing", &url, FeedKind::ArxivRss).await;

        for (n, (what, _)) in cuts.iter().enumerate() {
            let report = poll(&store, &fetcher, "listing").await;
            let error = error_of(&report);
            assert!(
                error.starts_with("malformed feed"),
                "cut {what}: refused as malformed, got {error:?}"
            );
            assert_eq!(
                store.count_papers().await.expect("count"),
                0,
                "cut {what}: nothing half-parsed is stored"
            );
            assert_failed_health(&store, "listing", n as i64 + 1, "malformed").await;
        }
        let report = poll(&store, &fetcher, "listing").await;
        assert_eq!(new_count(&report), 4, "{report}");
        let seen = server.seen("/rss");
        assert!(
            seen.iter().all(|s| s.if_none_match.is_none()),
            "no validator from a refused body is ever sent"
        );
        // Now the validator is kept: the next poll is a 304 and changes nothing.
        let report = poll(&store, &fetcher, "listing").await;
        assert!(matches!(report.status, FeedStatus::NotModified), "{report}");
        assert_eq!(
            server
                .seen("/rss")
                .last()
                .and_then(|s| s.if_none_match.clone()),
            Some("\"day\"".to_string())
        );

        // The connection drops mid-item although Content-Length promised the whole body.
        let raw = RawServer::start(Act::CutShort {
            body: Arc::new(body.clone()),
            cut: cuts[2].1,
        })
        .await;
        add_feed(&store, "dropped", &raw.url("/rss"), FeedKind::ArxivRss).await;
        let report = poll(&store, &fetcher, "dropped").await;
        let error = error_of(&report);
        assert!(error.starts_with("request failed"), "{error:?}");
        assert_eq!(raw.connections(), 3, "a dropped transfer is retried");
        assert_eq!(store.count_papers().await.expect("count"), 4);
        raw.set(Act::Complete {
            content_type: RSS,
            body: Arc::new(body.clone()),
        });
        let report = poll(&store, &fetcher, "dropped").await;
        assert_eq!(counts(&report).0.unchanged, 4, "{report}");

        // A Hugging Face body cut in the middle, and right after a complete entry.
        let after_entry = hf
            .windows(3)
            .enumerate()
            .filter(|(_, w)| w == b"},{")
            .map(|(at, _)| at + 2)
            .nth(10)
            .expect("an entry boundary");
        let url = server.serve(
            "/hf",
            vec![
                Reply::ok(JSON, hf[..hf.len() / 2].to_vec()),
                Reply::ok(JSON, hf[..after_entry].to_vec()),
                Reply::ok(JSON, hf.clone()),
            ],
        );
        add_feed(&store, "hf", &url, FeedKind::HfDaily).await;
        for what in ["cut in the middle", "cut after a complete object"] {
            let report = poll(&store, &fetcher, "hf").await;
            assert!(
                error_of(&report).starts_with("malformed feed"),
                "{what}: {report}"
            );
        }
        assert_eq!(store.count_papers().await.expect("count"), 4);
        let report = poll(&store, &fetcher, "hf").await;
        assert_eq!(new_count(&report), 30, "{report}");

        let mut want: BTreeMap<String, usize> = rss_keys.iter().map(|k| (k.clone(), 2)).collect();
        want.extend(each_once(&hf_keys));
        let (checked, duplicates) = assert_stored(&store, &want).await;
        report::report(
            "feeds.truncated",
            json!({
                "backend": db.backend,
                "requests": server.seen("/rss").len() + server.seen("/hf").len() + raw.connections() as usize,
                "faults_injected": cuts.len() + 1 + 2,
                "papers_checked": checked,
                "duplicates": duplicates,
            }),
        );
        store.close().await;
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// 7. An HTML page served with 200
// ---------------------------------------------------------------------------------------

/// HTML that portals, CDNs and proxies answer with, as (what, content type, body).
fn html_pages() -> Vec<(&'static str, &'static str, String)> {
    let cloudflare = r#"<!DOCTYPE html><html lang="en-US"><head><title>Just a moment...</title><meta http-equiv="Content-Type" content="text/html; charset=UTF-8"><meta http-equiv="X-UA-Compatible" content="IE=Edge"><meta name="robots" content="noindex,nofollow"><meta name="viewport" content="width=device-width,initial-scale=1"><style>*{box-sizing:border-box;margin:0;padding:0}</style></head><body class="no-js"><div class="main-wrapper" role="main"><div class="main-content"><h1 class="zone-name-title h1">rss.arxiv.org</h1><h2 class="h2" id="challenge-running">Checking if the site connection is secure</h2><noscript><div id="challenge-error-title"><div class="h2"><span class="icon-wrapper"><div class="heading-icon warning-icon"></div></span><span id="challenge-error-text">Enable JavaScript and cookies to continue</span></div></div></noscript></div></div><script>(function(){window._cf_chl_opt={cvId: '2',cType: 'managed'};}());</script></body></html>"#;
    let portal = "<HTML>\r\n<HEAD><TITLE>Hotel WiFi - Sign in</TITLE>\r\n<META HTTP-EQUIV=\"refresh\" CONTENT=\"0;URL=http://10.0.0.1/login?dst=http%3A%2F%2Frss.arxiv.org%2Frss%2Fcs.LG\">\r\n</HEAD>\r\n<BODY>Redirecting to the <A HREF=\"http://10.0.0.1/login\">login page</A>...</BODY>\r\n</HTML>\r\n";
    let commented = "\u{feff}\n  <!-- Generated by the proxy at 10.0.0.1 -->\n<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Access denied</title></head><body><p>Your request was blocked.</body></html>";
    let xhtml = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 Strict//EN\" \"http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd\">\n<html xmlns=\"http://www.w3.org/1999/xhtml\"><head><title>Maintenance</title></head><body><p>Back soon.</p></body></html>";
    let well_formed_with_comment = "<!-- maintenance page -->\n<html><head><title>Down for maintenance</title></head><body><p>Back at 06:00 UTC.</p></body></html>";
    vec![
        (
            "a Cloudflare challenge",
            "text/html; charset=UTF-8",
            cloudflare.into(),
        ),
        ("a captive portal", "text/html", portal.into()),
        (
            "a page behind a BOM and a comment",
            "text/html",
            commented.into(),
        ),
        ("an XHTML page labelled as RSS", RSS, xhtml.into()),
        (
            "a well-formed page behind a comment",
            "application/xml",
            well_formed_with_comment.into(),
        ),
    ]
}

#[tokio::test]
async fn an_html_page_with_200_is_refused_as_not_a_feed() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let listing = shared(ARXIV_RSS);
    let listing_keys = arxiv_rss_keys(&shared_text(ARXIV_RSS));
    let hf = shared(HF_DAILY);
    let blog = shared(BLOG_ATOM);
    let pages = html_pages();
    for db in databases().await {
        let store = db.store().await;
        let fetcher = fetcher(drill_fetch());
        let server = FeedServer::start().await;
        let mut faults = 0usize;
        let mut requests = 0usize;
        // Each page on each kind of feed: an arXiv listing, Hugging Face's JSON API and a
        // generic feed; then the real body.
        let kinds = [
            ("listing", FeedKind::ArxivRss, RSS, listing.clone()),
            ("hf", FeedKind::HfDaily, JSON, hf.clone()),
            ("blog", FeedKind::Feed, "application/atom+xml", blog.clone()),
        ];
        let mut want = BTreeMap::new();
        for (name, kind, content_type, good) in kinds {
            let path = format!("/{name}");
            let mut replies: Vec<Reply> = pages
                .iter()
                .map(|(_, ct, body)| Reply::ok(ct, body.clone()))
                .collect();
            replies.push(Reply::ok(content_type, good));
            let url = server.serve(&path, replies);
            add_feed(&store, name, &url, kind).await;
            for (n, (what, _, _)) in pages.iter().enumerate() {
                let report = poll(&store, &fetcher, name).await;
                let error = error_of(&report);
                assert!(
                    error.starts_with("not a feed"),
                    "{name}, {what}: refused as not a feed, got {error:?}"
                );
                faults += 1;
                assert_failed_health(&store, name, n as i64 + 1, "not a feed").await;
                assert_eq!(
                    store.count_papers().await.expect("count"),
                    want.len() as i64,
                    "{name}, {what}: nothing is stored from an HTML page"
                );
            }
            let report = poll(&store, &fetcher, name).await;
            let new = new_count(&report);
            assert_healthy(&store, name).await;
            requests += server.seen(&path).len();
            let before = want.len();
            match name {
                "listing" => want.extend(each_once(&listing_keys)),
                "hf" => want.extend(each_once(&hf_keys(&hf))),
                _ => {
                    // The blog's keys come from its links: the new rows are its entries.
                    for p in store.list_papers(None).await.expect("list") {
                        want.entry(p.paper.key.to_string()).or_insert(1);
                    }
                    assert_eq!(want.len() - before, 20, "every blog entry once");
                }
            }
            assert_eq!(new, want.len() - before, "{report}");
            assert_stored(&store, &want).await;
        }
        let (checked, duplicates) = assert_stored(&store, &want).await;
        report::report(
            "feeds.html_page",
            json!({
                "backend": db.backend,
                "requests": requests,
                "faults_injected": faults,
                "papers_checked": checked,
                "duplicates": duplicates,
            }),
        );
        store.close().await;
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// 8. The same items under new ids
// ---------------------------------------------------------------------------------------

/// The listing with every guid and description prefix one version later (`v1` → `v2`),
/// as arXiv announces a replacement.
fn bump_versions(text: &str) -> String {
    let mut out = text.to_string();
    for marker in ["oai:arXiv.org:", "<description>arXiv:"] {
        let mut bumped = String::with_capacity(out.len());
        let mut rest = out.as_str();
        while let Some(at) = rest.find(marker) {
            let start = at + marker.len();
            bumped.push_str(&rest[..start]);
            let tail = &rest[start..];
            let end = tail
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '.' || c == '/'))
                .unwrap_or(tail.len());
            let id = &tail[..end];
            let base = strip_version(id);
            let version: u32 = id[base.len() + 1..].parse().expect("a versioned id");
            bumped.push_str(&format!("{base}v{}", version + 1));
            rest = &tail[end..];
        }
        bumped.push_str(rest);
        out = bumped;
    }
    out.replace("Announce Type: new", "Announce Type: replace")
        .replace("Announce Type: cross", "Announce Type: replace-cross")
}

/// Replaces whatever follows each `marker` up to `end` with `with(n, old)`.
fn replace_each(
    text: &str,
    marker: &str,
    end: &str,
    with: impl Fn(usize, &str) -> String,
) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    let mut n = 0;
    while let Some(at) = rest.find(marker) {
        let start = at + marker.len();
        let stop = rest[start..].find(end).expect("end marker") + start;
        out.push_str(&rest[..start]);
        out.push_str(&with(n, &rest[start..stop]));
        rest = &rest[stop..];
        n += 1;
    }
    out.push_str(rest);
    out
}

/// The Hugging Face body re-served: every Hugging Face object id (`_id`) regenerated, the
/// arXiv ids written in the other forms the parser accepts, and the order reversed.
fn hf_reserved(body: &[u8]) -> Vec<u8> {
    fn regenerate(value: &mut serde_json::Value, n: &mut u64) {
        match value {
            serde_json::Value::Object(map) => {
                for (k, v) in map.iter_mut() {
                    if k == "_id" {
                        *n += 1;
                        *v = json!(format!("{:024x}", 0xfeed_0000_0000u64 + *n));
                    } else {
                        regenerate(v, n);
                    }
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| regenerate(v, n)),
            _ => {}
        }
    }
    let mut items: Vec<serde_json::Value> = serde_json::from_slice(body).expect("HF JSON");
    let mut n = 0;
    for (i, item) in items.iter_mut().enumerate() {
        regenerate(item, &mut n);
        let id = item["paper"]["id"].as_str().expect("id").to_string();
        item["paper"]["id"] = json!(match i % 4 {
            0 => format!("{id}v2"),
            1 => format!("arXiv:{id}"),
            2 => format!("https://arxiv.org/abs/{id}"),
            _ => id,
        });
    }
    items.reverse();
    serde_json::to_vec(&items).expect("JSON")
}

#[tokio::test]
async fn the_same_items_under_new_ids_are_the_same_papers() {
    let _turn = ONE_AT_A_TIME.lock().await;
    let listing = shared_text(ARXIV_RSS);
    let listing_keys = arxiv_rss_keys(&listing);
    let bumped = bump_versions(&listing);
    assert_eq!(bumped.matches("v2</guid>").count(), 2, "v1 → v2 twice");
    // The guids replaced by UUIDs and the links moved to the export mirror.
    let renamed = replace_each(
        &bumped,
        "<guid isPermaLink=\"false\">",
        "</guid>",
        |n, _| format!("urn:uuid:00000000-0000-4000-8000-{n:012}"),
    )
    .replace(
        "<link>https://arxiv.org/abs/",
        "<link>http://export.arxiv.org/abs/",
    );
    // The same items re-published by an aggregator under its own guids.
    let mirror = replace_each(
        &listing,
        "<guid isPermaLink=\"false\">",
        "</guid>",
        |n, _| format!("https://papers.example.org/p/{n}"),
    );
    let hf = shared(HF_DAILY);
    let hf_keys = hf_keys(&hf);
    let third = shared_text(HF_THIRD_PARTY_RSS);
    let third_keys = arxiv_keys_after(&third, "<guid isPermaLink=\"false\">https://arxiv.org/abs/");
    assert_eq!(third_keys.len(), third.matches("<item>").count());
    // Guids now pointing at Hugging Face, links at a versioned http:// abstract page.
    let third_renamed = replace_each(
        &third.replace(
            "<guid isPermaLink=\"false\">https://arxiv.org/abs/",
            "<guid isPermaLink=\"false\">https://huggingface.co/papers/",
        ),
        "<link>https://arxiv.org/abs/",
        "</link>",
        |_, id| format!("{id}v1"),
    )
    .replace(
        "<link>https://arxiv.org/abs/",
        "<link>http://arxiv.org/abs/",
    );
    let blog = shared_text(BLOG_ATOM);
    // Every entry's `tag:` id replaced by a UUID; the feed's own id kept.
    let blog_renamed = replace_each(&blog, "<id>", "</id>", |n, old| {
        if old.starts_with("tag:") {
            format!("urn:uuid:5f0c1e2a-0000-4000-8000-{n:012}")
        } else {
            old.to_string()
        }
    });
    assert_eq!(blog_renamed.matches("<id>urn:uuid:").count(), 20);

    for db in databases().await {
        let store = db.store().await;
        let fetcher = fetcher(drill_fetch());
        let server = FeedServer::start().await;
        let feeds = [
            (
                "arxiv",
                FeedKind::ArxivRss,
                RSS,
                vec![
                    listing.clone().into_bytes(),
                    bumped.clone().into_bytes(),
                    renamed.clone().into_bytes(),
                ],
            ),
            (
                "hf",
                FeedKind::HfDaily,
                JSON,
                vec![hf.clone(), hf_reserved(&hf)],
            ),
            (
                "thirdparty",
                FeedKind::Feed,
                RSS,
                vec![
                    third.clone().into_bytes(),
                    third_renamed.clone().into_bytes(),
                ],
            ),
            (
                "blog",
                FeedKind::Feed,
                "application/atom+xml",
                vec![blog.clone().into_bytes(), blog_renamed.clone().into_bytes()],
            ),
        ];
        let mut want: BTreeMap<String, usize> = BTreeMap::new();
        let mut faults = 0;
        let mut requests = 0;
        for (name, kind, content_type, bodies) in feeds {
            let path = format!("/{name}");
            let url = server.serve(
                &path,
                bodies
                    .iter()
                    .map(|b| Reply::ok(content_type, b.clone()))
                    .collect(),
            );
            add_feed(&store, name, &url, kind).await;
            let first = poll(&store, &fetcher, name).await;
            let before = want.len();
            match name {
                "arxiv" => want.extend(each_once(&listing_keys)),
                "hf" => want.extend(each_once(&hf_keys)),
                "thirdparty" => want.extend(each_once(&third_keys)),
                _ => {
                    for p in store.list_papers(None).await.expect("list") {
                        want.entry(p.paper.key.to_string()).or_insert(1);
                    }
                }
            }
            assert_eq!(new_count(&first), want.len() - before, "{first}");
            let snapshot: BTreeMap<String, (i64, chrono::DateTime<Utc>)> = store
                .list_papers(None)
                .await
                .expect("list")
                .into_iter()
                .map(|p| (p.paper.key.to_string(), (p.id, p.first_seen_at)))
                .collect();
            for _ in 1..bodies.len() {
                let report = poll(&store, &fetcher, name).await;
                let (c, skipped) = counts(&report);
                faults += 1;
                assert_eq!(
                    (c.new, c.updated + c.unchanged, skipped),
                    (0, want.len() - before, 0),
                    "{name}: the re-keyed items are the known papers: {report}"
                );
            }
            requests += server.seen(&path).len();
            let after: BTreeMap<String, (i64, chrono::DateTime<Utc>)> = store
                .list_papers(None)
                .await
                .expect("list")
                .into_iter()
                .map(|p| (p.paper.key.to_string(), (p.id, p.first_seen_at)))
                .collect();
            assert_eq!(
                after, snapshot,
                "{name}: same rows, same first-seen times (nothing new to readers)"
            );
            assert_stored(&store, &want).await;
        }
        // A replacement announcement moved the listing's papers one version on.
        let p = helpers::paper(&store, "arxiv:2609.26811").await;
        assert_eq!(p.paper.version, Some(2));
        let p = helpers::paper(&store, "arxiv:2009.13987").await;
        assert_eq!(p.paper.version, Some(4));

        // An aggregator re-publishing the listing under its own guids: no new paper, one
        // more source for each.
        let url = server.serve("/mirror", vec![Reply::ok(RSS, mirror.clone())]);
        add_feed(&store, "mirror", &url, FeedKind::Feed).await;
        let report = poll(&store, &fetcher, "mirror").await;
        assert_eq!(counts(&report).0.new, 0, "{report}");
        faults += 1;
        requests += server.seen("/mirror").len();
        for key in &listing_keys {
            want.insert(key.clone(), 2);
        }

        let (checked, duplicates) = assert_stored(&store, &want).await;
        report::report(
            "feeds.new_ids",
            json!({
                "backend": db.backend,
                "requests": requests,
                "faults_injected": faults,
                "papers_checked": checked,
                "duplicates": duplicates,
            }),
        );
        store.close().await;
        db.cleanup().await;
    }
}
