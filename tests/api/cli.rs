//! The `paperboy` binary as an operator runs it: exit codes, output, and `serve` starting
//! on its defaults.

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::helpers::{
    FeedServer, Reply, active_subscriber, arxiv_paper, fixture, free_port, paperboy,
    store_full_papers,
};

struct Operator {
    dir: tempfile::TempDir,
}

impl Operator {
    /// A working directory with a config that keeps fetches short.
    fn new() -> Operator {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("paperboy.toml"),
            "[fetch]\nretries = 0\ntimeout_secs = 5\nhost_interval_ms = 0\narxiv_interval_ms = 0\n",
        )
        .unwrap();
        Operator { dir }
    }

    fn run(&self, args: &[&str]) -> Output {
        paperboy(self.dir.path()).args(args).output().unwrap()
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn no_panic(o: &Output) {
    assert!(!stderr(o).contains("panicked"), "{}", stderr(o));
}

#[test]
fn fetch_against_an_unreachable_feed_reports_the_error_and_exits_1() {
    let op = Operator::new();
    let added = op.run(&[
        "feeds",
        "add",
        "nowhere",
        "http://127.0.0.1:9/feed.xml",
        "--kind",
        "feed",
    ]);
    assert!(added.status.success(), "{}", stderr(&added));
    let out = op.run(&["fetch", "--feed", "nowhere"]);
    no_panic(&out);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stdout(&out).starts_with("nowhere: error: request failed"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("1 of 1 feed(s) failed"),
        "{}",
        stderr(&out)
    );

    let list = op.run(&["feeds", "list", "--json"]);
    let feeds: serde_json::Value = serde_json::from_slice(&list.stdout).unwrap();
    let nowhere = feeds
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["name"] == "nowhere")
        .unwrap();
    assert_eq!(nowhere["health"]["consecutive_failures"], 1);
    assert!(
        nowhere["health"]["last_error"]
            .as_str()
            .unwrap()
            .contains("request failed")
    );
}

#[test]
fn bad_input_exits_2_with_a_message() {
    let op = Operator::new();
    let cases: &[&[&str]] = &[
        &["feeds", "add", "x", "not a url", "--kind", "feed"],
        &[
            "feeds",
            "add",
            "x",
            "https://example.org/feed",
            "--kind",
            "rss",
        ],
        &[
            "feeds",
            "add",
            "bad name",
            "https://example.org/feed",
            "--kind",
            "feed",
        ],
        &["feeds", "add", "x", "file:///etc/passwd", "--kind", "feed"],
        &["feeds", "remove", "no-such-feed"],
        &["fetch", "--feed", "no-such-feed"],
        &["papers", "show", "not-a-key"],
        &["papers", "show", "arxiv:2601.99999"],
        &["papers", "list", "--since", "yesterday"],
        &["papers", "search", "titel:diffusion"],
        &["papers", "search", "-survey"],
        &["papers", "search", "\"unclosed"],
    ];
    for args in cases {
        let out = op.run(args);
        no_panic(&out);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).starts_with("error: "),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let dup = op.run(&[
        "feeds",
        "add",
        "arxiv-cs",
        "https://example.org/feed",
        "--kind",
        "feed",
    ]);
    assert_eq!(
        dup.status.code(),
        Some(2),
        "a name in use is refused: {}",
        stderr(&dup)
    );
}

#[test]
fn a_fresh_database_has_the_default_feeds() {
    let op = Operator::new();
    let out = op.run(&["feeds", "list"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        text.contains("arxiv-cs\tarxiv-rss\thttps://rss.arxiv.org/rss/cs.LG+cs.AI+cs.CL+cs.CV"),
        "{text}"
    );
    assert!(
        text.contains("hf-daily\thf-daily\thttps://huggingface.co/api/daily_papers"),
        "{text}"
    );
    let removed = op.run(&["feeds", "remove", "hf-daily"]);
    assert!(removed.status.success());
    let again = stdout(&op.run(&["feeds", "list"]));
    assert!(
        !again.contains("hf-daily\t"),
        "a removed default feed stays removed: {again}"
    );
    let migrate = op.run(&["migrate"]);
    assert!(migrate.status.success(), "{}", stderr(&migrate));
}

// Two worker threads: the feed server keeps answering while the test waits on the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetched_papers_are_listed_and_shown_as_json() {
    let server = FeedServer::start().await;
    let url = server.serve(
        "/rss",
        vec![Reply::ok(
            "application/rss+xml",
            fixture("arxiv-rss-day1.xml"),
        )],
    );
    let op = Operator::new();
    let added = op.run(&["feeds", "add", "test-rss", &url, "--kind", "arxiv-rss"]);
    assert!(added.status.success(), "{}", stderr(&added));
    let fetched = paperboy(op.dir.path())
        .args(["fetch", "--feed", "test-rss"])
        .env("PAPERBOY_LOG", "info")
        .output()
        .unwrap();
    assert!(fetched.status.success(), "{}", stderr(&fetched));
    assert_eq!(
        stdout(&fetched).trim(),
        "test-rss: 3 new, 0 updated, 0 unchanged, 1 skipped (no title or id)"
    );
    // The log says the outcome in words, not as a Rust structure.
    let log = stderr(&fetched);
    assert!(
        log.contains("3 new, 0 updated, 0 unchanged, 1 skipped") && !log.contains("Ingested"),
        "{log}"
    );

    let listed = op.run(&["papers", "list", "--json"]);
    let papers: serde_json::Value =
        serde_json::from_slice(&listed.stdout).expect("only JSON on stdout");
    assert_eq!(papers.as_array().unwrap().len(), 3);
    let since_future = op.run(&["papers", "list", "--since", "2999-01-01", "--json"]);
    let none: serde_json::Value = serde_json::from_slice(&since_future.stdout).unwrap();
    assert_eq!(none.as_array().unwrap().len(), 0);

    let found = op.run(&["papers", "search", "diffusion -survey", "--json"]);
    assert!(found.status.success(), "{}", stderr(&found));
    let hits: serde_json::Value =
        serde_json::from_slice(&found.stdout).expect("only JSON on stdout");
    assert_eq!(hits.as_array().unwrap().len(), 1);
    assert_eq!(hits[0]["key"], "arxiv:2601.00001");
    assert_eq!(
        hits[0]["matched"][0]["fields"],
        serde_json::json!(["title", "abstract"])
    );
    let span = &hits[0]["title_spans"][0];
    let title = hits[0]["title"].as_str().unwrap();
    let (a, b) = (
        span["start"].as_u64().unwrap() as usize,
        span["end"].as_u64().unwrap() as usize,
    );
    assert_eq!(&title[a..b], "Diffusion");
    let text = op.run(&["papers", "search", "author:turing OR \"state space\""]);
    assert!(text.status.success(), "{}", stderr(&text));
    let out = stdout(&text);
    assert!(
        out.contains("arxiv:2601.00001") && out.contains("arxiv:2601.00002"),
        "{out}"
    );
    assert!(
        out.contains("[State Space] Models Read Long Documents"),
        "{out}"
    );

    // A query that starts with `-` needs no `--`.
    let negated = op.run(&["papers", "search", "-survey diffusion", "--json"]);
    assert!(negated.status.success(), "{}", stderr(&negated));
    let hits: serde_json::Value = serde_json::from_slice(&negated.stdout).unwrap();
    assert_eq!(hits[0]["key"], "arxiv:2601.00001");

    // A reader of the output that went away (`| head -1`): every listing ends quietly.
    for args in [
        &["papers", "list"][..],
        &["papers", "list", "--json"],
        &["papers", "show", "2601.00001"],
        &["papers", "search", "diffusion"],
        &["feeds", "list"],
        &["stats"],
    ] {
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let out = paperboy(op.dir.path())
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .stdout(writer)
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(0), "{args:?}: {}", stderr(&out));
        let said = stderr(&out);
        assert!(
            !said.contains("panicked") && !said.contains("Broken pipe") && !said.contains("error"),
            "{args:?}: {said}"
        );
    }

    let shown = op.run(&["papers", "show", "2601.00001", "--json"]);
    let shown: serde_json::Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(shown["paper"]["key"], "arxiv:2601.00001");
    assert_eq!(shown["paper"]["authors"][1], "Alan Turing");
    assert_eq!(shown["sources"][0]["feed"], "test-rss");
    assert_eq!(shown["sources"][0]["announce_type"], "new");
}

#[tokio::test]
async fn serve_starts_on_its_defaults_answers_health_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _ = rustls::crypto::ring::default_provider().install_default();
    let child = paperboy(dir.path())
        .env_remove("PAPERBOY_LOG")
        .env("PAPERBOY_BIND", format!("127.0.0.1:{port}"))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let url = format!("http://127.0.0.1:{port}/healthz");
    let mut answer = None;
    for _ in 0..100 {
        if let Ok(resp) = reqwest::get(&url).await {
            answer = Some((resp.status().as_u16(), resp.text().await.unwrap()));
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let (status, body) = answer.expect("serve answered /healthz");
    assert_eq!(status, 200, "{body}");
    let health: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["database"], "ok");
    assert_eq!(health["feeds"].as_array().unwrap().len(), 2);
    assert!(
        Path::new(&dir.path().join("data/paperboy.db")).exists(),
        "the SQLite file is created"
    );

    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let status = tokio::task::spawn_blocking(move || child.wait_with_output().unwrap())
        .await
        .unwrap();
    assert!(status.status.success(), "{}", stderr(&status));
}

/// A first `serve` does not wait for the schedule's next tick (a day away for arXiv) to
/// fill an empty service: feeds never fetched are polled at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_serve_fetches_its_feeds_at_once() {
    let server = FeedServer::start().await;
    let url = server.serve(
        "/rss",
        vec![Reply::ok(
            "application/rss+xml",
            fixture("arxiv-rss-day1.xml"),
        )],
    );
    let op = Operator::new();
    for name in ["arxiv-cs", "hf-daily"] {
        assert!(op.run(&["feeds", "remove", name]).status.success());
    }
    let added = op.run(&["feeds", "add", "local", &url, "--kind", "arxiv-rss"]);
    assert!(added.status.success(), "{}", stderr(&added));
    let port = free_port();
    let mut child = paperboy(op.dir.path())
        .env("PAPERBOY_BIND", format!("127.0.0.1:{port}"))
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while server.seen("/rss").is_empty() && started.elapsed() < Duration::from_secs(30) {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let waited = started.elapsed();
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let _ = tokio::task::spawn_blocking(move || child.wait()).await;
    assert_eq!(server.seen("/rss").len(), 1, "fetched once at the start");
    eprintln!("the first poll came {waited:?} after the start");
    let listed = op.run(&["papers", "list", "--json"]);
    let papers: serde_json::Value = serde_json::from_slice(&listed.stdout).unwrap();
    assert_eq!(papers.as_array().unwrap().len(), 3, "the papers are stored");
}

#[tokio::test]
async fn digest_preview_and_a_dry_run_show_what_a_subscriber_would_get() {
    let op = Operator::new();
    let url = paperboy::config::DatabaseUrl::new(format!(
        "sqlite://{}",
        op.dir.path().join("data/paperboy.db").display()
    ));
    let store = paperboy::store::Store::open(&url).await.unwrap();
    active_subscriber(&store, "ada@example.org", "diffusion", "daily", 8, "UTC").await;
    store_full_papers(
        &store,
        vec![
            arxiv_paper(
                "2406.00001",
                "Diffusion <i>now</i>",
                "diffusion models",
                Some(3),
            ),
            arxiv_paper("2406.00002", "Unrelated", "graphs", None),
        ],
    )
    .await;
    store.close().await;

    let text = op.run(&["digest", "preview", "--email", "ada@example.org"]);
    no_panic(&text);
    assert!(text.status.success(), "{}", stderr(&text));
    let out = stdout(&text);
    assert!(
        out.starts_with("Subject: paperboy: 1 new paper for you"),
        "{out}"
    );
    assert!(
        out.contains("1. Diffusion <i>now</i>") && !out.contains("Unrelated"),
        "{out}"
    );

    let html = op.run(&[
        "digest",
        "preview",
        "--email",
        "ada@example.org",
        "--format",
        "html",
    ]);
    assert!(html.status.success());
    assert!(stdout(&html).contains("Diffusion &#60;i&#62;now&#60;/i&#62;"));
    // A preview has no stored digest: it says so and links to no page of one.
    assert!(
        out.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .contains("(a preview: nothing was stored or sent)"),
        "{out}"
    );
    assert!(!out.contains("View in browser"), "{out}");
    assert!(stdout(&html).contains("a preview: nothing was stored or sent"));
    assert!(!stdout(&html).contains("View in browser"));

    let unknown = op.run(&["digest", "preview", "--email", "nobody@example.org"]);
    assert_eq!(unknown.status.code(), Some(2), "{}", stderr(&unknown));
    assert!(stderr(&unknown).contains("no reader nobody@example.org"));

    let at = (chrono::Utc::now() + chrono::Duration::hours(25)).to_rfc3339();
    let dry = op.run(&["digest", "run", "--at", &at, "--dry-run", "--json"]);
    assert!(dry.status.success(), "{}", stderr(&dry));
    let v: serde_json::Value = serde_json::from_str(&stdout(&dry)).unwrap();
    assert_eq!(v["report"]["due"], 1);
    assert_eq!(v["report"]["composed"], 1);
    assert_eq!(v["readers"][0]["papers"], 1);
    assert!(v["delivered"].is_null(), "a dry run sends nothing");

    // The real run writes the digest to the outbox; running it again changes nothing.
    let real = op.run(&["digest", "run", "--at", &at]);
    assert!(real.status.success(), "{}", stderr(&real));
    assert!(stdout(&real).contains("1 composed"), "{}", stdout(&real));
    assert!(stdout(&real).contains("1 sent"), "{}", stdout(&real));
    let again = op.run(&["digest", "run", "--at", &at]);
    assert!(stdout(&again).contains("0 due"), "{}", stdout(&again));
    let files = std::fs::read_dir(op.dir.path().join("data/outbox"))
        .unwrap()
        .count();
    assert_eq!(files, 1);
    let bad = op.run(&["digest", "run", "--at", "yesterday"]);
    assert_eq!(bad.status.code(), Some(2));
}

#[test]
fn config_shows_each_setting_with_its_source_and_no_secret() {
    let op = Operator::new();
    std::fs::write(
        op.dir.path().join("paperboy.toml"),
        "smtp_url = \"smtp://alice:hunter2@relay.example.org\"\n[fetch]\nretries = 0\n",
    )
    .unwrap();
    let out = paperboy(op.dir.path())
        .args(["config"])
        .env(
            "PAPERBOY_SECRET_KEY",
            "a-secret-key-that-nobody-may-read-0123456789",
        )
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(
        !text.contains("hunter2") && !text.contains("nobody-may-read"),
        "{text}"
    );
    let line = |key: &str| {
        text.lines()
            .find(|l| l.split_whitespace().next() == Some(key))
            .unwrap_or_else(|| panic!("no {key}: {text}"))
            .to_string()
    };
    assert!(line("smtp_url").ends_with("# file paperboy.toml"), "{text}");
    assert!(line("fetch.retries").contains("= 0"), "{text}");
    assert!(
        line("secret_key").ends_with("# environment PAPERBOY_SECRET_KEY"),
        "{text}"
    );
    assert!(line("bind").ends_with("# default"), "{text}");
    let json = paperboy(op.dir.path())
        .args(["config", "--json"])
        .output()
        .unwrap();
    let all: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let retries = all
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["key"] == "fetch.retries")
        .unwrap();
    assert_eq!(retries["source"]["from"], "file");
}
