//! Shared test harness: real databases (a SQLite file, and a fresh PostgreSQL database when
//! `PAPERBOY_TEST_POSTGRES_URL` is set), a real HTTP server that serves feed files, a real
//! SMTP sink, the running app, and the steps a person takes (subscribe, confirm from the
//! mail, unsubscribe) or the schedule takes (run the due digests). The integration tests
//! use it as `crate::helpers`; the drills include this file by path.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use base64::Engine;
use chrono::{DateTime, Utc};
use paperboy::config::Settings;
use paperboy::config::{DatabaseUrl, FetchSettings};
use paperboy::delivery::Mailer;
use paperboy::digest::RunReport;
use paperboy::domain::PaperKey;
use paperboy::domain::Subscriber;
use paperboy::feeds::Fetcher;
use paperboy::store::{Store, StoredPaper};
use paperboy::{App, ServeOptions};
use sqlx::Connection;

pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

/// A database for one test, removed by [`TestDb::cleanup`].
pub struct TestDb {
    pub url: DatabaseUrl,
    pub backend: &'static str,
    _dir: Option<tempfile::TempDir>,
    pg: Option<(String, String)>,
}

impl TestDb {
    pub async fn sqlite() -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let url = format!("sqlite://{}", dir.path().join("paperboy.db").display());
        TestDb {
            url: DatabaseUrl::new(url),
            backend: "sqlite",
            _dir: Some(dir),
            pg: None,
        }
    }

    pub async fn postgres(base: &str) -> TestDb {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or_default();
        let name = format!(
            "pbtest_{}_{}_{}",
            std::process::id(),
            nanos,
            COUNTER.fetch_add(1, Ordering::SeqCst)
        );
        let mut conn = sqlx::PgConnection::connect(base)
            .await
            .unwrap_or_else(|e| panic!("cannot reach PostgreSQL at {base}: {e}"));
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await
            .expect("create test database");
        let mut url = url::Url::parse(base).expect("postgres url");
        url.set_path(&name);
        TestDb {
            url: DatabaseUrl::new(url.to_string()),
            backend: "postgres",
            _dir: None,
            pg: Some((base.to_string(), name)),
        }
    }

    pub async fn store(&self) -> Store {
        Store::open(&self.url).await.expect("open store")
    }

    pub async fn cleanup(self) {
        if let Some((base, name)) = &self.pg
            && let Ok(mut conn) = sqlx::PgConnection::connect(base).await
        {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
            )))
            .execute(&mut conn)
            .await;
        }
    }
}

/// Every backend a store test must pass on: SQLite always, PostgreSQL when configured.
/// In CI a missing PostgreSQL is a failure, not a skip.
pub async fn databases() -> Vec<TestDb> {
    let mut dbs = vec![TestDb::sqlite().await];
    dbs.extend(postgres_database().await);
    dbs
}

/// A PostgreSQL database of its own, for the tests only PostgreSQL can run (several
/// processes on one database); `None` when it is not configured. In CI a missing
/// PostgreSQL is a failure, not a skip.
pub async fn postgres_database() -> Option<TestDb> {
    match std::env::var("PAPERBOY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => Some(TestDb::postgres(&url).await),
        _ if in_ci() => panic!("CI=true but PAPERBOY_TEST_POSTGRES_URL is not set"),
        _ => {
            eprintln!("PAPERBOY_TEST_POSTGRES_URL not set: PostgreSQL part skipped");
            None
        }
    }
}

/// The real-world samples in `../shared/fixtures/feeds`, when that folder exists.
/// In CI it must exist.
pub fn shared_fixtures() -> Option<PathBuf> {
    let dir = std::env::var("PAPERBOY_FIXTURES_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../shared/fixtures/feeds")
        });
    if dir.is_dir() {
        Some(dir)
    } else if in_ci() {
        panic!(
            "CI=true but the shared feed fixtures are missing at {}",
            dir.display()
        );
    } else {
        eprintln!("{} not found: conformance checks skipped", dir.display());
        None
    }
}

/// The project's own fixtures.
pub fn fixture(name: &str) -> Vec<u8> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Fetch settings for tests: short timeouts and backoffs, no politeness delays.
pub fn fast_fetch() -> FetchSettings {
    FetchSettings {
        timeout_secs: 3,
        retries: 2,
        backoff_ms: 10,
        max_retry_after_secs: 5,
        arxiv_interval_ms: 0,
        host_interval_ms: 0,
        ..FetchSettings::default()
    }
}

pub fn fetcher() -> Fetcher {
    Fetcher::new(fast_fetch(), "paperboy-tests").expect("fetcher")
}

/// One canned answer.
#[derive(Clone, Debug)]
pub struct Reply {
    pub status: u16,
    pub content_type: String,
    pub body: Vec<u8>,
    pub headers: Vec<(String, String)>,
    /// Answer 304 when the client's If-None-Match equals this.
    pub etag: Option<String>,
}

impl Reply {
    pub fn ok(content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status: 200,
            content_type: content_type.into(),
            body: body.into(),
            headers: Vec::new(),
            etag: None,
        }
    }

    pub fn status(status: u16, content_type: &str, body: impl Into<Vec<u8>>) -> Reply {
        Reply {
            status,
            ..Reply::ok(content_type, body)
        }
    }

    pub fn with_etag(mut self, etag: &str) -> Reply {
        self.etag = Some(etag.into());
        self
    }

    pub fn with_header(mut self, name: &str, value: &str) -> Reply {
        self.headers.push((name.into(), value.into()));
        self
    }
}

/// What the server saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub path: String,
    /// The query string, decoded.
    pub query: Option<String>,
    pub if_none_match: Option<String>,
    pub if_modified_since: Option<String>,
    pub user_agent: Option<String>,
}

#[derive(Default)]
struct ServerState {
    /// Per path, the replies to give in order; the last one repeats.
    routes: HashMap<String, Vec<Reply>>,
    seen: Vec<Seen>,
}

/// A real HTTP server on 127.0.0.1 serving canned feed responses.
#[derive(Clone)]
pub struct FeedServer {
    pub addr: std::net::SocketAddr,
    state: Arc<Mutex<ServerState>>,
}

impl FeedServer {
    pub async fn start() -> FeedServer {
        let state = Arc::new(Mutex::new(ServerState::default()));
        let app = axum::Router::new()
            .fallback(answer)
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FeedServer { addr, state }
    }

    /// Serves `replies` at `path`, one per request, repeating the last.
    pub fn serve(&self, path: &str, replies: Vec<Reply>) -> String {
        self.state
            .lock()
            .expect("lock")
            .routes
            .insert(path.to_string(), replies);
        self.url(path)
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    pub fn seen(&self, path: &str) -> Vec<Seen> {
        let state = self.state.lock().expect("lock");
        state
            .seen
            .iter()
            .filter(|s| s.path == path)
            .cloned()
            .collect()
    }
}

async fn answer(State(state): State<Arc<Mutex<ServerState>>>, req: Request) -> Response {
    let path = req.uri().path().to_string();
    let header =
        |h: &HeaderMap, n: &str| h.get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let headers = req.headers().clone();
    let reply = {
        let mut state = state.lock().expect("lock");
        state.seen.push(Seen {
            path: path.clone(),
            query: req.uri().query().map(|q| {
                percent_encoding::percent_decode_str(q)
                    .decode_utf8_lossy()
                    .into_owned()
            }),
            if_none_match: header(&headers, "if-none-match"),
            if_modified_since: header(&headers, "if-modified-since"),
            user_agent: header(&headers, "user-agent"),
        });
        match state.routes.get_mut(&path) {
            Some(replies) if replies.len() > 1 => Some(replies.remove(0)),
            Some(replies) => replies.first().cloned(),
            None => None,
        }
    };
    let Some(reply) = reply else {
        return Response::builder()
            .status(StatusCode::NOT_FOUND)
            .body(Body::from("not found"))
            .expect("response");
    };
    if reply.etag.is_some() && header(&headers, "if-none-match") == reply.etag {
        return Response::builder()
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .expect("response");
    }
    let mut builder = Response::builder()
        .status(reply.status)
        .header("content-type", reply.content_type.as_str());
    if let Some(etag) = &reply.etag {
        builder = builder.header("etag", etag.as_str());
    }
    for (name, value) in &reply.headers {
        builder = builder.header(name.as_str(), value.as_str());
    }
    builder.body(Body::from(reply.body)).expect("response")
}

/// The `paperboy` binary run in `dir`, with none of this process's `PAPERBOY_*` settings.
pub fn paperboy(dir: &Path) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_paperboy"));
    cmd.current_dir(dir);
    for (key, _) in std::env::vars() {
        if key.starts_with("PAPERBOY_") {
            cmd.env_remove(key);
        }
    }
    cmd.env("PAPERBOY_LOG", "warn");
    cmd
}

/// The `paperboy` binary run in `dir` on the database under test.
pub fn paperboy_on(dir: &Path, db: &TestDb) -> Command {
    let mut cmd = paperboy(dir);
    cmd.env("PAPERBOY_DATABASE_URL", db.url.expose());
    cmd
}

/// Every message a file mailer wrote to `outbox` so far, oldest first.
pub fn outbox_messages(outbox: &Path) -> Vec<String> {
    let mut files: Vec<_> = std::fs::read_dir(outbox)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    files.retain(|p| p.extension().is_some_and(|e| e == "eml"));
    files.sort_by_key(|p| std::fs::metadata(p).and_then(|m| m.modified()).ok());
    files
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("read outbox file"))
        .collect()
}

/// A stored paper by key; the test fails when it is missing.
pub async fn paper(store: &Store, key: &str) -> StoredPaper {
    store
        .paper(&PaperKey::parse(key).unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} not stored"))
        .0
}

/// aiosmtpd on a free port, delivering into a Maildir; killed on drop.
pub struct SmtpSink {
    child: Child,
    pub port: u16,
    maildir: PathBuf,
}

/// Whether aiosmtpd can run; in CI it must.
fn aiosmtpd_available() -> bool {
    let available = Command::new("python3")
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !available {
        if in_ci() {
            panic!("CI=true but the aiosmtpd SMTP server is not installed (pip install aiosmtpd)");
        }
        eprintln!("aiosmtpd not installed: SMTP test skipped");
    }
    available
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

impl SmtpSink {
    pub fn start(dir: &Path) -> Option<SmtpSink> {
        Self::start_with(dir, &[])
    }

    /// As [`SmtpSink::start`], with more of aiosmtpd's options (`-u` announces SMTPUTF8).
    pub fn start_with(dir: &Path, options: &[&str]) -> Option<SmtpSink> {
        if !aiosmtpd_available() {
            return None;
        }
        let port = free_port();
        let maildir = dir.join("Maildir");
        let mut cmd = Command::new("python3");
        cmd.args(["-m", "aiosmtpd", "-n", "-l", &format!("127.0.0.1:{port}")])
            .args(options)
            .args(["-c", "aiosmtpd.handlers.Mailbox"])
            .arg(&maildir);
        Some(Self::spawn(cmd, port, maildir))
    }

    /// aiosmtpd with the faults of `tests/fixtures/smtp_faults.py` (`args` after the port
    /// and Maildir), on `port`.
    pub fn faulty(dir: &Path, port: u16, args: &[&str]) -> Option<SmtpSink> {
        if !aiosmtpd_available() {
            return None;
        }
        let maildir = dir.join("Maildir");
        let mut cmd = Command::new("python3");
        cmd.arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/smtp_faults.py"))
            .arg(port.to_string())
            .arg(&maildir)
            .args(args);
        Some(Self::spawn(cmd, port, maildir))
    }

    fn spawn(mut cmd: Command, port: u16, maildir: PathBuf) -> SmtpSink {
        // Owned by the sink at once, so it is killed and reaped however the test ends.
        let sink = SmtpSink {
            child: cmd
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("start aiosmtpd"),
            port,
            maildir,
        };
        for _ in 0..100 {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return sink;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("aiosmtpd did not start");
    }

    /// Per Message-ID, how many times it arrived; per recipient, how many messages.
    pub fn arrivals(&self) -> (HashMap<String, usize>, HashMap<String, usize>) {
        let mut ids = HashMap::new();
        let mut to = HashMap::new();
        for f in self.received_files() {
            let Ok(raw) = std::fs::read_to_string(&f) else {
                continue;
            };
            let header = |name: &str| {
                raw.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().to_string())
                    .unwrap_or_default()
            };
            *ids.entry(header("Message-ID: ")).or_insert(0) += 1;
            *to.entry(header("To: ")).or_insert(0) += 1;
        }
        (ids, to)
    }

    /// The files of the messages received so far.
    pub fn received_files(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self.maildir.join("new"))
            .map(|d| d.flatten().map(|e| e.path()).collect())
            .unwrap_or_default()
    }

    pub fn received(&self) -> Vec<String> {
        let mut out = Vec::new();
        if let Ok(entries) = std::fs::read_dir(self.maildir.join("new")) {
            for e in entries.flatten() {
                out.push(std::fs::read_to_string(e.path()).unwrap());
            }
        }
        out
    }
}

impl SmtpSink {
    /// Waits until `n` messages arrived (or 10 s passed) and returns what arrived.
    pub fn wait_for(&self, n: usize) -> Vec<String> {
        for _ in 0..100 {
            let got = self.received();
            if got.len() >= n {
                return got;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        self.received()
    }
}

impl Drop for SmtpSink {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The decoded body of each base64 part of a message.
pub fn base64_parts(message: &str) -> Vec<String> {
    let mut parts = Vec::new();
    for section in message.split("Content-Transfer-Encoding: base64").skip(1) {
        let body = section
            .trim_start_matches(['\r', '\n'])
            .split("\r\n\r\n")
            .next()
            .unwrap_or("");
        let body = section.split("\r\n\r\n").nth(1).unwrap_or(body);
        let encoded: String = body.lines().take_while(|l| !l.starts_with("--")).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(encoded.trim())
            .unwrap();
        parts.push(String::from_utf8(bytes).unwrap());
    }
    parts
}

/// A running paperboy (web only, no scheduler) on a free port with its own outbox folder.
pub struct TestApp {
    pub addr: SocketAddr,
    pub base: String,
    pub store: Store,
    pub outbox: PathBuf,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    handle: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    _dir: tempfile::TempDir,
}

/// Starts the app on `db`; `tweak` adjusts the settings (rate limits, SMTP) first.
pub async fn spawn_app(db: &TestDb, tweak: impl FnOnce(&mut Settings)) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    // Bound first and handed over, so that links in emails point at this very instance and
    // no other process can take the port in between.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let mut settings = Settings {
        database_url: db.url.clone(),
        bind: format!("127.0.0.1:{port}"),
        base_url: format!("http://127.0.0.1:{port}"),
        outbox_dir: dir.path().join("outbox"),
        ..Settings::default()
    };
    tweak(&mut settings);
    let options = ServeOptions {
        scheduler: false,
        worker: false,
        demo: false,
    };
    let app = App::build_with_listener(settings, options, listener)
        .await
        .expect("build app");
    let addr = app.addr();
    let store = app.store().clone();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let handle = tokio::spawn(app.run(async {
        let _ = rx.await;
    }));
    TestApp {
        addr,
        base: format!("http://{addr}"),
        store,
        outbox: dir.path().join("outbox"),
        shutdown: Some(tx),
        handle: Some(handle),
        _dir: dir,
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Every message written to the outbox so far, oldest first.
    pub fn outbox_messages(&self) -> Vec<String> {
        outbox_messages(&self.outbox)
    }

    /// The subscriber with this address, if stored.
    pub async fn subscriber(&self, email: &str) -> Option<Subscriber> {
        find_subscriber(&self.store, email).await
    }

    /// Waits until the outbox holds `n` messages (or 10 s passed).
    pub async fn wait_for_outbox(&self, n: usize) -> Vec<String> {
        for _ in 0..100 {
            let got = self.outbox_messages();
            if got.len() >= n {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        self.outbox_messages()
    }

    pub async fn stop(mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(handle) = self.handle.take() {
            let _ = handle.await;
        }
    }
}

/// The first link in `text` that starts with `prefix`.
pub fn link_starting(text: &str, prefix: &str) -> Option<String> {
    let at = text.find(prefix)?;
    let rest = &text[at..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == '"' || c == '<' || c == '>')
        .unwrap_or(rest.len());
    Some(rest[..end].to_string())
}

/// The value of header `name` in `message`, if present.
pub fn header_value<'a>(message: &'a str, name: &str) -> Option<&'a str> {
    message
        .split("\r\n\r\n")
        .next()?
        .lines()
        .find_map(|l| l.strip_prefix(&format!("{name}: ")))
}

/// The confirmation link in the text part of a confirmation email.
pub fn confirm_link(message: &str) -> String {
    let text = &base64_parts(message)[0];
    link_starting(text, "http://127.0.0.1").expect("a confirmation link")
}

/// The one-click unsubscribe URL of a message's `List-Unsubscribe` header.
pub fn unsubscribe_link(message: &str) -> String {
    header_value(message, "List-Unsubscribe")
        .expect("List-Unsubscribe")
        .trim_matches(['<', '>'])
        .to_string()
}

/// The settings link on a page (the one a confirmation shows).
pub fn preferences_link(page: &str) -> String {
    let at = page.find("/preferences/").expect("a preferences link");
    let rest = &page[at..];
    rest[..rest.find('"').expect("link end")].to_string()
}

/// Unsubscribes as a mail provider does for RFC 8058: an urlencoded POST of
/// `List-Unsubscribe=One-Click` to the header's URL, with no cookie and no redirects followed.
pub async fn unsubscribe_in_one_click(url: &str) -> reqwest::Response {
    reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("http client")
        .post(url)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("List-Unsubscribe=One-Click")
        .send()
        .await
        .expect("POST the unsubscribe link")
}

/// A visitor of the web pages with a browser's memory for the CSRF cookie and nothing else.
pub struct Visitor {
    pub http: reqwest::Client,
    cookie: Option<String>,
    base: String,
}

/// What the app answered.
pub struct Page {
    pub status: reqwest::StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Visitor {
    pub fn new(app: &TestApp) -> Visitor {
        Visitor {
            http: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .build()
                .unwrap(),
            cookie: None,
            base: app.base.clone(),
        }
    }

    /// Another tab of the same browser: the same cookie, for requests at once.
    pub fn clone_with_cookie(&self) -> Visitor {
        Visitor {
            http: self.http.clone(),
            cookie: self.cookie.clone(),
            base: self.base.clone(),
        }
    }

    fn url(&self, path_or_url: &str) -> String {
        if path_or_url.starts_with("http") {
            path_or_url.to_string()
        } else {
            format!("{}{path_or_url}", self.base)
        }
    }

    async fn read(&mut self, response: reqwest::Response) -> Page {
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(set) = headers.get("set-cookie") {
            let pair = set.to_str().unwrap().split(';').next().unwrap().to_string();
            self.cookie = Some(pair);
        }
        Page {
            status,
            headers,
            body: response.text().await.unwrap(),
        }
    }

    pub async fn get(&mut self, path: &str) -> Page {
        let mut req = self.http.get(self.url(path));
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let response = req.send().await.unwrap();
        self.read(response).await
    }

    /// Posts urlencoded `fields`, with the cookie and the extra headers given.
    pub async fn post(
        &mut self,
        path: &str,
        fields: &[(&str, &str)],
        extra: &[(&str, &str)],
    ) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let mut req = self
            .http
            .post(self.url(path))
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let response = req.send().await.unwrap();
        self.read(response).await
    }

    /// Posts a `multipart/form-data` form, as a browser sends a form with a file input:
    /// each part is `(name, file name, content)`.
    pub async fn post_multipart(
        &mut self,
        path: &str,
        parts: &[(&str, Option<&str>, &[u8])],
    ) -> Page {
        let boundary = "----paperboyTestBoundary7MA4YWxkTrZu0gW";
        let mut body = Vec::new();
        for (name, file_name, content) in parts {
            body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
            match file_name {
                Some(file) => body.extend_from_slice(
                    format!(
                        "Content-Disposition: form-data; name=\"{name}\"; filename=\"{file}\"\r\n\
                         Content-Type: application/octet-stream\r\n\r\n"
                    )
                    .as_bytes(),
                ),
                None => body.extend_from_slice(
                    format!("Content-Disposition: form-data; name=\"{name}\"\r\n\r\n").as_bytes(),
                ),
            }
            body.extend_from_slice(content);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let mut req = self
            .http
            .post(self.url(path))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body);
        if let Some(c) = &self.cookie {
            req = req.header("cookie", c);
        }
        let response = req.send().await.unwrap();
        self.read(response).await
    }

    /// The CSRF token of the page at `path` (the form), fetching it first.
    pub async fn csrf_from(&mut self, path: &str) -> String {
        let page = self.get(path).await;
        assert_eq!(page.status, reqwest::StatusCode::OK, "{}", page.body);
        hidden_csrf(&page.body)
    }

    /// Fills the subscribe form as a person would and sends it.
    pub async fn subscribe(&mut self, email: &str, queries: &str) -> Page {
        let csrf = self.csrf_from("/").await;
        self.post(
            "/subscribe",
            &[
                ("email", email),
                ("queries", queries),
                ("frequency", "weekly"),
                ("day", "thu"),
                ("send_hour", "7"),
                ("timezone", "Asia/Kolkata"),
                ("max_papers", "12"),
                ("website", ""),
                ("csrf", &csrf),
            ],
            &[("user-agent", "TestBrowser/1.0")],
        )
        .await
    }

    /// Subscribes, confirms through the emailed link, and returns the subscriber's
    /// preferences link.
    pub async fn subscribe_and_confirm(&mut self, app: &TestApp, email: &str) -> String {
        let page = self.subscribe(email, "diffusion").await;
        assert_eq!(page.status, reqwest::StatusCode::OK, "{}", page.body);
        let message = confirmation_for(app, email).await;
        let page = self.confirm(&confirm_link(&message)).await;
        assert_eq!(page.status, reqwest::StatusCode::OK, "{}", page.body);
        preferences_link(&page.body)
    }

    /// Opens a confirmation link and presses its Confirm button: the answer to the POST
    /// (or the GET's, when the link opens no page).
    pub async fn confirm(&mut self, link: &str) -> Page {
        let page = self.get(link).await;
        if page.status != reqwest::StatusCode::OK {
            return page;
        }
        assert!(
            page.body
                .contains("<button type=\"submit\">Confirm</button>"),
            "{}",
            page.body
        );
        let csrf = hidden_csrf(&page.body);
        self.post(
            link,
            &[("csrf", &csrf)],
            &[("user-agent", "TestBrowser/1.0")],
        )
        .await
    }
}

/// The CSRF token of a form page.
pub fn hidden_csrf(body: &str) -> String {
    let marker = "name=\"csrf\" value=\"";
    let at = body.find(marker).expect("a CSRF field") + marker.len();
    body[at..].split('"').next().unwrap().to_string()
}

/// The latest confirmation email to `email`, once it is in the outbox.
pub async fn confirmation_for(app: &TestApp, email: &str) -> String {
    for _ in 0..100 {
        let found = app.outbox_messages().into_iter().rev().find(|m| {
            header_value(m, "To") == Some(email)
                && header_value(m, "Subject") == Some("Confirm your paperboy digest")
        });
        if let Some(m) = found {
            return m;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("no confirmation email to {email}");
}

/// Stores papers `(arxiv id, title)` as if a feed named `test` had just carried them.
pub async fn store_papers(store: &Store, papers: &[(&str, &str)]) {
    use paperboy::domain::{ArxivId, Paper};
    let papers = papers
        .iter()
        .map(|(id, title)| Paper::from_arxiv(&ArxivId::parse(id).unwrap(), *title))
        .collect();
    store_full_papers(store, papers).await;
}

/// Stores whole papers as if a feed named `test` had just carried them.
pub async fn store_full_papers(store: &Store, papers: Vec<paperboy::domain::Paper>) {
    use paperboy::domain::{FeedKind, FeedName, FeedUrl, Ingested};
    let name = FeedName::parse("test").unwrap();
    let feed = match store.feed(&name).await.unwrap() {
        Some(f) => f,
        None => store
            .add_feed(
                &name,
                &FeedUrl::parse("http://127.0.0.1:9/feed").unwrap(),
                FeedKind::Feed,
                chrono::Utc::now(),
            )
            .await
            .unwrap(),
    };
    let batch: Vec<Ingested> = papers
        .into_iter()
        .map(|paper| Ingested {
            entry_id: format!("oai:{}", paper.key.as_str()),
            paper,
            announce_type: None,
        })
        .collect();
    store
        .upsert_papers(feed.id, &batch, chrono::Utc::now())
        .await
        .unwrap();
}

/// An arXiv paper with an abstract, authors and upvotes.
pub fn arxiv_paper(
    id: &str,
    title: &str,
    abstract_text: &str,
    upvotes: Option<i64>,
) -> paperboy::domain::Paper {
    use paperboy::domain::{ArxivId, Paper};
    let mut p = Paper::from_arxiv(&ArxivId::parse(id).unwrap(), title);
    p.abstract_text = abstract_text.to_string();
    p.authors = vec!["Ada Lovelace".into(), "Alan Turing".into()];
    p.categories = vec!["cs.LG".into()];
    p.upvotes = upvotes;
    p
}

/// A reader who asked and has not confirmed: `frequency` as stored (`daily`, `weekdays`,
/// `weekly:mon`), at `hour` in `tz`. Returns their confirmation token.
pub async fn pending_subscriber(
    store: &Store,
    email: &str,
    queries: &str,
    frequency: &str,
    hour: i64,
    tz: &str,
) -> String {
    use paperboy::domain::token::{hash_token, random_token};
    use paperboy::domain::{EmailAddress, MaxPapers, Preferences, QueryList, SendHour};
    use paperboy::store::{ClientInfo, SubscriptionRequest};
    let email = EmailAddress::parse(email).unwrap();
    let preferences = Preferences {
        queries: QueryList::parse(queries).unwrap(),
        frequency: frequency.parse().unwrap(),
        send_hour: SendHour::new(hour).unwrap(),
        timezone: tz.parse().unwrap(),
        max_papers: MaxPapers::DEFAULT,
        layout: Default::default(),
    };
    let token = random_token().unwrap();
    let link_key = random_token().unwrap();
    store
        .request_subscription(
            &SubscriptionRequest {
                email: &email,
                preferences: &preferences,
                token_hash: &hash_token(&token),
                token_ttl: chrono::Duration::hours(48),
                resend_after: chrono::Duration::zero(),
                daily_mailbox_limit: u32::MAX,
                link_key: &link_key,
                client: &ClientInfo::default(),
                consent: TEST_CONSENT,
            },
            chrono::Utc::now(),
        )
        .await
        .unwrap();
    token
}

const TEST_CONSENT: paperboy::store::ConsentText<'static> = paperboy::store::ConsentText {
    version: "test",
    text: "test consent",
};

/// A confirmed reader, as [`pending_reader`] then the link opened.
pub async fn active_subscriber(
    store: &Store,
    email: &str,
    queries: &str,
    frequency: &str,
    hour: i64,
    tz: &str,
) -> paperboy::domain::Subscriber {
    use paperboy::domain::token::hash_token;
    let token = pending_subscriber(store, email, queries, frequency, hour, tz).await;
    store
        .confirm(
            &hash_token(&token),
            &paperboy::store::ClientInfo::default(),
            TEST_CONSENT,
            chrono::Utc::now(),
        )
        .await
        .unwrap()
        .expect("confirmed")
}

/// The subscriber with this address, if stored.
pub async fn find_subscriber(store: &Store, email: &str) -> Option<Subscriber> {
    store
        .subscriber_by_email(&paperboy::domain::EmailAddress::parse(email).unwrap())
        .await
        .unwrap()
}

/// `n` confirmed subscribers `{prefix}0@example.org`… who want `query` daily at 08:00 UTC.
pub async fn confirmed_subscribers(store: &Store, prefix: &str, n: usize, query: &str) {
    for i in 0..n {
        let email = format!("{prefix}{i}@example.org");
        active_subscriber(store, &email, query, "daily", 8, "UTC").await;
    }
}

/// An instant a day and a bit after now, when every daily subscriber is due.
pub fn tomorrow() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::hours(25)
}

/// Composes and queues every digest due at `at`, as the scheduler's digest run does.
pub async fn run_due_digests(store: &Store, mailer: &Mailer, at: DateTime<Utc>) -> RunReport {
    paperboy::digest::compose_due(store, &mailer.message_ids(), at, false)
        .await
        .expect("digest run")
        .0
}

/// Composes every digest due at `at` and delivers them into the app's outbox, as the
/// scheduler and the delivery worker of `serve` do. Returns how many were sent.
pub async fn deliver_due_digests(app: &TestApp, at: DateTime<Utc>) -> usize {
    let settings = Settings {
        base_url: app.base.clone(),
        outbox_dir: app.outbox.clone(),
        ..Settings::default()
    };
    let mailer = Mailer::from_settings(&settings).expect("outbox mailer");
    run_due_digests(&app.store, &mailer, at).await;
    let links = paperboy::app::links_for(&settings, &app.store)
        .await
        .expect("the app's links");
    let worker = paperboy::delivery::Worker::new(
        app.store.clone(),
        mailer,
        links,
        settings.delivery.clone(),
    );
    worker.drain().await.expect("deliver the outbox").sent
}

/// The text part of the latest digest email to `email` in the app's outbox.
pub fn digest_text_to(app: &TestApp, email: &str) -> String {
    let message = app
        .outbox_messages()
        .into_iter()
        .rev()
        .find(|m| {
            header_value(m, "To") == Some(email)
                && header_value(m, "Subject").is_some_and(|s| s.starts_with("paperboy: "))
        })
        .unwrap_or_else(|| panic!("no digest email to {email}"));
    base64_parts(&message).remove(0)
}

/// The links a digest email's text gives after `label` ("More or less like this: " for
/// each paper's entry on the digest's page), in order: on the label's line, or alone on
/// the next when it was too long to share it.
pub fn links_labelled(text: &str, label: &str) -> Vec<String> {
    let label = label.trim_end();
    let lines: Vec<&str> = text.lines().map(str::trim).collect();
    lines
        .iter()
        .enumerate()
        .filter_map(|(i, l)| match l.strip_prefix(label)?.trim() {
            "" => lines.get(i + 1).map(|next| next.to_string()),
            url => Some(url.to_string()),
        })
        .collect()
}

/// Settings that keep a test's log quiet.
pub fn quiet(s: &mut Settings) {
    s.log = "warn".into();
}

/// A file mailer writing to `dir/outbox`.
pub fn outbox_mailer(dir: &Path) -> Mailer {
    let settings = Settings {
        outbox_dir: dir.join("outbox"),
        ..Settings::default()
    };
    Mailer::from_settings(&settings).unwrap()
}

/// Links signed with a fixed test key, on an address nothing listens at.
pub fn test_links() -> paperboy::domain::token::Links {
    paperboy::domain::token::Links::new(
        "http://127.0.0.1:9",
        paperboy::domain::token::LinkKeys::new(b"a test key that is long enough to sign"),
    )
}

/// Waits until the server closes `stream` (end of file or a reset), reading and dropping
/// whatever it sends; the time it took, or `None` if it stayed open for `limit`.
pub async fn closed_within(
    stream: &mut (impl tokio::io::AsyncRead + Unpin),
    limit: Duration,
) -> Option<Duration> {
    use tokio::io::AsyncReadExt;
    let started = std::time::Instant::now();
    let mut buf = [0u8; 4096];
    loop {
        let left = limit.checked_sub(started.elapsed())?;
        match tokio::time::timeout(left, stream.read(&mut buf)).await {
            Err(_) => return None,
            Ok(Ok(0)) | Ok(Err(_)) => return Some(started.elapsed()),
            Ok(Ok(_)) => {}
        }
    }
}

/// Reads one whole answer (headers and a Content-Length body) from a kept-alive
/// connection: its status line and the whole text.
pub async fn read_answer(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::AsyncReadExt;
    let mut got = Vec::new();
    let mut buf = [0u8; 8192];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), stream.read(&mut buf))
            .await
            .expect("an answer within 10 s")
            .expect("read");
        assert!(n > 0, "closed before the answer ended: {got:?}");
        got.extend_from_slice(&buf[..n]);
        let text = String::from_utf8_lossy(&got).to_string();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().parse::<usize>().expect("length"))
                })
                .unwrap_or(0);
            if got.len() >= end + 4 + length {
                return text;
            }
        }
    }
}

/// A mailer that relays to an SMTP server on 127.0.0.1:`port` without TLS, from
/// papers.example.org, with bounces returning to `bounce_domain` (the From domain if none).
pub fn smtp_mailer(port: u16, bounce_domain: Option<&str>) -> Mailer {
    let settings = Settings {
        smtp_url: Some(paperboy::config::Secret::new(format!(
            "smtp://127.0.0.1:{port}?tls=none"
        ))),
        from: "paperboy <digest@papers.example.org>".into(),
        bounce_domain: bounce_domain.map(str::to_string),
        ..Settings::default()
    };
    Mailer::from_settings(&settings).expect("an SMTP mailer")
}

/// Delivery settings for tests: retries after a second or two, no rate cap to speak of.
pub fn fast_delivery() -> paperboy::config::DeliverySettings {
    paperboy::config::DeliverySettings {
        retry_base_secs: 1,
        retry_max_secs: 2,
        messages_per_second: 1000,
        ..Default::default()
    }
}
