//! Ingestion fidelity: every real-world sample in `../shared/fixtures/feeds` is ingested
//! over HTTP into a database of its own, and what paperboy stored is compared, entry by
//! entry, with Python's feedparser (and a plain reading of the JSON APIs) by
//! `tests/feeds/compare_feedparser.py`. A difference not in
//! `tests/feeds/feedparser_allow.tsv` fails the test; the script's per-file table is
//! printed, and written to `PAPERBOY_COMPARISON_REPORT` when that is set (CI shows it).

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Utc;
use paperboy::domain::{FeedKind, FeedName, FeedUrl};
use paperboy::feeds::{FeedStatus, fetch_feeds};
use serde_json::{Value, json};

use crate::conformance::reply_for;
use crate::helpers::{FeedServer, TestDb, fetcher, shared_fixtures};

/// The kind of feed a sample is subscribed as, from the folder it is in.
fn kind_of(rel: &str) -> FeedKind {
    match rel.split('/').next() {
        Some("arxiv-rss") => FeedKind::ArxivRss,
        Some("arxiv-api-atom") => FeedKind::ArxivApi,
        Some("hf-daily-papers") if rel.ends_with(".json") => FeedKind::HfDaily,
        _ => FeedKind::Feed,
    }
}

/// Every sample file under `dir`, relative, sorted.
fn samples(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for sub in std::fs::read_dir(dir).unwrap().flatten() {
        if !sub.path().is_dir() {
            continue;
        }
        for file in std::fs::read_dir(sub.path()).unwrap().flatten() {
            let rel = format!(
                "{}/{}",
                sub.file_name().to_string_lossy(),
                file.file_name().to_string_lossy()
            );
            found.push(rel);
        }
    }
    found.sort();
    found
}

/// Ingests one sample into a fresh SQLite database and describes what was stored.
async fn ingest(server: &FeedServer, dir: &Path, rel: &str) -> Value {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let reply = reply_for(&dir.join(rel));
    let (status, content_type) = (reply.status, reply.content_type.clone());
    let path = format!("/{}", rel.replace(['/', '.', '+'], "_"));
    let url = server.serve(&path, vec![reply]);
    let kind = kind_of(rel);
    let feed = store
        .add_feed(
            &FeedName::parse("sample").unwrap(),
            &FeedUrl::parse(&url).unwrap(),
            kind,
            Utc::now(),
        )
        .await
        .unwrap();
    let report = fetch_feeds(&store, &fetcher(), vec![feed]).await.remove(0);
    let (outcome, error, warning) = match &report.status {
        FeedStatus::Ingested { warning, .. } => ("ingested", None, warning.clone()),
        FeedStatus::NotModified => ("not-modified", None, None),
        FeedStatus::Error { error } => ("refused", Some(error.clone()), None),
    };
    let mut papers = Vec::new();
    for stored in store.list_papers(None).await.unwrap() {
        let (_, sources) = store.paper(&stored.paper.key).await.unwrap().unwrap();
        let p = &stored.paper;
        papers.push(json!({
            "key": p.key.as_str(),
            "entry_ids": sources.iter().map(|s| s.entry_id.clone()).collect::<Vec<_>>(),
            "title": p.title,
            "authors": p.authors,
            "link": p.links.abs,
            "doi": p.doi,
            "published": p.published.map(|d| d.to_rfc3339()),
            "abstract": p.abstract_text,
        }));
    }
    store.close().await;
    TestDb::cleanup(db).await;
    json!({
        "file": rel,
        "kind": kind.as_str(),
        "served_status": status,
        "content_type": content_type,
        "url": url,
        "outcome": outcome,
        "error": error,
        "warning": warning,
        "papers": papers,
    })
}

/// Whether Python's feedparser can be imported; in CI it must.
fn feedparser_available() -> bool {
    let ok = Command::new("python3")
        .args(["-c", "import feedparser"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true" && v != "1"),
            "CI=true but Python's feedparser is not installed (pip install feedparser)"
        );
        eprintln!("feedparser not installed: the comparison with it is skipped");
    }
    ok
}

#[tokio::test]
async fn every_shared_sample_reads_as_feedparser_reads_it() {
    let Some(dir) = shared_fixtures() else { return };
    if !feedparser_available() {
        return;
    }
    let server = FeedServer::start().await;
    let mut files = Vec::new();
    for rel in samples(&dir) {
        if rel.ends_with(".md") {
            continue;
        }
        files.push(ingest(&server, &dir, &rel).await);
    }
    assert!(files.len() >= 30, "only {} samples found", files.len());
    let work = tempfile::tempdir().unwrap();
    let report = std::env::var("PAPERBOY_COMPARISON_REPORT").unwrap_or_default();
    // Kept beside the report, when there is one, for reading a failure at leisure.
    let stored = if report.is_empty() {
        work.path().join("stored.json")
    } else {
        PathBuf::from(format!("{report}.stored.json"))
    };
    std::fs::write(&stored, json!({ "files": files }).to_string()).unwrap();
    let repo = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let out = Command::new("python3")
        .arg(repo.join("tests/feeds/compare_feedparser.py"))
        .arg("--fixtures")
        .arg(&dir)
        .arg("--stored")
        .arg(&stored)
        .arg("--allow")
        .arg(repo.join("tests/feeds/feedparser_allow.tsv"))
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&out.stdout);
    println!("{said}");
    if !report.is_empty() {
        std::fs::write(&report, said.as_bytes()).unwrap();
    }
    assert!(
        out.status.success(),
        "differences from feedparser:\n{said}{}",
        String::from_utf8_lossy(&out.stderr)
    );
}
