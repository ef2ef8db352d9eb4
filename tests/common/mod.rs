//! Shared test harness: real databases (a SQLite file, and a fresh PostgreSQL database when
//! `PAPERBOY_TEST_POSTGRES_URL` is set), and a real HTTP server that serves feed files.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use paperboy::config::{DatabaseUrl, FetchSettings};
use paperboy::domain::PaperKey;
use paperboy::feeds::Fetcher;
use paperboy::store::{Store, StoredPaper};
use sqlx::Connection;

fn in_ci() -> bool {
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
    match std::env::var("PAPERBOY_TEST_POSTGRES_URL") {
        Ok(url) if !url.is_empty() => dbs.push(TestDb::postgres(&url).await),
        _ if in_ci() => panic!("CI=true but PAPERBOY_TEST_POSTGRES_URL is not set"),
        _ => eprintln!("PAPERBOY_TEST_POSTGRES_URL not set: PostgreSQL part skipped"),
    }
    dbs
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

/// A stored paper by key; the test fails when it is missing.
pub async fn paper(store: &Store, key: &str) -> StoredPaper {
    store
        .paper(&PaperKey::parse(key).unwrap())
        .await
        .unwrap()
        .unwrap_or_else(|| panic!("{key} not stored"))
        .0
}
