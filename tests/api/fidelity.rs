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

/// The kind of feed a sample is subscribed as, from the folder it is in (the synthetic
/// ones: from their name).
fn kind_of(rel: &str) -> FeedKind {
    match rel.split('/').next() {
        Some("arxiv-rss") => FeedKind::ArxivRss,
        Some("synthetic") if rel.starts_with("synthetic/arxiv-rss") => FeedKind::ArxivRss,
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

/// Ingests one sample (`rel` names it in the table, `file` is where it is) into a fresh
/// SQLite database and describes what was stored.
async fn ingest(server: &FeedServer, file: &Path, rel: &str) -> Value {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let reply = reply_for(file);
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
        "path": file,
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
        files.push(ingest(&server, &dir.join(&rel), &rel).await);
    }
    // The synthetic feeds written for each defect this comparison once found.
    let synthetic = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fidelity");
    let mut names: Vec<_> = std::fs::read_dir(&synthetic)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    for name in names {
        let rel = format!("synthetic/{name}");
        files.push(ingest(&server, &synthetic.join(&name), &rel).await);
    }
    assert!(files.len() >= 40, "only {} samples found", files.len());
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

// The defects the comparison found, each shown by a synthetic feed in
// tests/fixtures/fidelity and checked on every database.

use chrono::DateTime;
use paperboy::domain::{PaperKey, Rating, RatingSource};
use paperboy::matching::{Doc, Query, naive_matches};
use paperboy::store::{DigestEntry, NewDigest, RatingChange, Store, StoredTaste};

use crate::helpers::{Reply, active_subscriber, databases, fixture, paper, tomorrow};

/// Subscribes the store to a synthetic feed served as `content_type` and polls it.
async fn ingest_synthetic(
    store: &Store,
    server: &FeedServer,
    file: &str,
    kind: FeedKind,
    content_type: &str,
) -> paperboy::feeds::FeedReport {
    let name = file.split('.').next().unwrap();
    let body = fixture(&format!("fidelity/{file}"));
    let url = server.serve(&format!("/{name}"), vec![Reply::ok(content_type, body)]);
    let feed = store
        .add_feed(
            &FeedName::parse(name).unwrap(),
            &FeedUrl::parse(&url).unwrap(),
            kind,
            Utc::now(),
        )
        .await
        .unwrap();
    let report = fetch_feeds(store, &fetcher(), vec![feed]).await.remove(0);
    assert!(!report.failed(), "{report}");
    report
}

async fn by_link(store: &Store, link: &str) -> paperboy::store::StoredPaper {
    store
        .list_papers(None)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.paper.links.abs.as_deref() == Some(link))
        .unwrap_or_else(|| panic!("no paper links {link}"))
}

async fn warning_of(store: &Store, feed: &str) -> Option<String> {
    store
        .feed(&FeedName::parse(feed).unwrap())
        .await
        .unwrap()
        .unwrap()
        .health
        .warning
}

fn at(s: &str) -> Option<DateTime<Utc>> {
    Some(DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc))
}

#[tokio::test]
async fn each_author_is_one_person_named_as_the_feed_gives_them() {
    for db in databases().await {
        let store = db.store().await;
        let server = FeedServer::start().await;
        let atom = "application/atom+xml";
        ingest_synthetic(&store, &server, "atom-names.atom", FeedKind::Feed, atom).await;
        let rss = "application/rss+xml";
        ingest_synthetic(
            &store,
            &server,
            "rss2-creators-dates.rss",
            FeedKind::Feed,
            rss,
        )
        .await;
        let json = "application/feed+json";
        ingest_synthetic(
            &store,
            &server,
            "json-feed-authors.json",
            FeedKind::Feed,
            json,
        )
        .await;
        ingest_synthetic(&store, &server, "rss1-html.rdf", FeedKind::Feed, rss).await;

        let first = by_link(&store, "https://lab.example.org/notes/1").await;
        assert_eq!(
            first.paper.authors,
            ["Smith, John", "García Márquez, Gabriel José"]
        );
        let company = by_link(&store, "https://lab.example.org/notes/2").await;
        assert_eq!(company.paper.authors, ["Johnson and Johnson Research"]);
        let inherited = by_link(&store, "https://lab.example.org/notes/3").await;
        assert_eq!(inherited.paper.authors, ["Lab Team"], "RFC 4287 4.2.1");
        let creators = by_link(&store, "https://journal.example.org/a/1").await;
        assert_eq!(creators.paper.authors, ["Smith, John", "Doe, Jane"]);
        let both = by_link(&store, "https://picks.example.org/p/1").await;
        assert_eq!(both.paper.authors, ["Smith, John", "Lovelace, Ada"]);
        let old = by_link(&store, "https://picks.example.org/p/2").await;
        assert_eq!(old.paper.authors, ["Turing, Alan"]);
        let none = by_link(&store, "https://picks.example.org/p/3").await;
        assert_eq!(none.paper.authors, ["Picks Editors"]);
        let rdf = by_link(&store, "https://society.example.org/b/1").await;
        assert_eq!(rdf.paper.authors, ["Smith, John"]);

        // `author:"john smith"` finds "Smith, John"; a first name alone is no surname.
        let doc = Doc::from_paper(&first.paper);
        let matches = |q: &str| naive_matches(Query::parse(q).unwrap().root(), &doc);
        assert!(matches("author:\"john smith\""));
        assert!(matches("author:\"gabriel josé garcía márquez\""));
        assert!(matches("author:smith"));
        assert!(!matches("author:\"smith john\""));
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn text_is_decoded_once_by_its_declared_type() {
    for db in databases().await {
        let store = db.store().await;
        let server = FeedServer::start().await;
        let atom = "application/atom+xml";
        ingest_synthetic(&store, &server, "atom-names.atom", FeedKind::Feed, atom).await;
        let rss = "application/rss+xml";
        ingest_synthetic(&store, &server, "rss1-html.rdf", FeedKind::Feed, rss).await;
        let arxiv = "arxiv-rss-doi-entities.xml";
        ingest_synthetic(&store, &server, arxiv, FeedKind::ArxivRss, rss).await;

        // Atom type="text" is never HTML-decoded; type="html" is.
        let text = by_link(&store, "https://lab.example.org/notes/1").await;
        assert_eq!(
            text.paper.title,
            "Less &lt;than&gt; more: AT&amp;T at scale"
        );
        assert_eq!(
            text.paper.abstract_text,
            "Sparse attention for long documents."
        );
        let html = by_link(&store, "https://lab.example.org/notes/2").await;
        assert_eq!(html.paper.title, "Results in vivo");
        assert_eq!(
            html.paper.abstract_text,
            "Plain text keeps &amp; as written."
        );
        // RSS 1.0 descriptions are HTML, as RSS 2.0's are.
        let rdf = by_link(&store, "https://society.example.org/b/1").await;
        assert_eq!(rdf.paper.abstract_text, "Hello world Second paragraph.");
        // arXiv's plain text is decoded by the XML layer only.
        let a = paper(&store, "arxiv:2609.31001").await;
        assert_eq!(a.paper.title, "Parsing &lt;tag&gt; soup with $x<y$ bounds");
        assert_eq!(
            a.paper.abstract_text,
            "We parse &amp; bound. The journal version is out."
        );
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn dates_encodings_typos_and_medrxiv_symbols_are_read_and_noted() {
    for db in databases().await {
        let store = db.store().await;
        let server = FeedServer::start().await;
        let rss = "application/rss+xml";
        let dates = "rss2-creators-dates.rss";
        ingest_synthetic(&store, &server, dates, FeedKind::Feed, rss).await;
        for n in 1..=3 {
            let p = by_link(&store, &format!("https://journal.example.org/a/{n}")).await;
            assert_eq!(p.paper.published, at("2026-09-24T08:00:00Z"), "a/{n}");
        }
        let warning = warning_of(&store, "rss2-creators-dates").await.unwrap();
        assert!(warning.contains("CEST was read as +0200"), "{warning}");
        assert!(warning.contains("without a time zone"), "{warning}");

        let cp1252 = "windows-1252-undeclared.rss";
        let report = ingest_synthetic(&store, &server, cp1252, FeedKind::Feed, rss).await;
        assert!(report.to_string().contains("degraded"), "{report}");
        let cafe = by_link(&store, "https://cafe.example.org/1").await;
        assert_eq!(cafe.paper.title, "Café “quoted” – naïve");
        assert_eq!(cafe.paper.abstract_text, "Crème brûlée …");
        let warning = warning_of(&store, "windows-1252-undeclared").await.unwrap();
        assert!(warning.contains("windows-1252"), "{warning}");

        let typo = "rss-no-version-bare-amp.xml";
        ingest_synthetic(&store, &server, typo, FeedKind::Feed, "application/xml").await;
        let rescue = by_link(&store, "https://rd.example.org/post?id=1&lang=en").await;
        assert_eq!(rescue.paper.title, "Search & rescue robots");
        assert_eq!(rescue.paper.abstract_text, "Fast & robust — mostly.");
        by_link(&store, "https://rd.example.org/post?id=2").await;
        let warning = warning_of(&store, "rss-no-version-bare-amp").await.unwrap();
        assert!(warning.contains("not well-formed"), "{warning}");
        // A clean fetch of the same feed later clears the warning.
        let clean = fixture("fidelity/rss-no-version-bare-amp.xml");
        let clean = String::from_utf8(clean)
            .unwrap()
            .replace("R&D", "R&amp;D")
            .replace("Search & rescue", "Search &amp; rescue")
            .replace("id=1&lang", "id=1&amp;lang")
            .replace("&mdash;", "&#8212;");
        let url = server.serve(
            "/rss-no-version-bare-amp",
            vec![Reply::ok("application/xml", clean)],
        );
        let feed = store
            .feed(&FeedName::parse("rss-no-version-bare-amp").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(feed.url, url);
        let again = fetch_feeds(&store, &fetcher(), vec![feed]).await.remove(0);
        assert!(!again.failed(), "{again}");
        assert_eq!(warning_of(&store, "rss-no-version-bare-amp").await, None);

        let med = "medrxiv-symbols.json";
        ingest_synthetic(&store, &server, med, FeedKind::Feed, "application/json").await;
        let m = paper(&store, "doi:10.1101/2026.09.20.26300001").await;
        assert_eq!(m.paper.title, "Spearman ρ and β-blockers in a small cohort");
        assert_eq!(
            m.paper.abstract_text,
            "Background Correlation was ρ = 0.41 (±0.05) with ΔT measured."
        );
        assert_eq!(
            m.paper.authors,
            ["Kumar, P.", "Smith, J. A.", "García Márquez, G."]
        );
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_arxiv_doi_shows_two_stored_papers_are_one_and_they_merge_into_the_older() {
    for db in databases().await {
        eprintln!("-- on {}", db.backend);
        let store = db.store().await;
        let server = FeedServer::start().await;
        let rss = "application/rss+xml";
        // The journal version arrives first, by DOI; a link by arXiv's own DOI is the
        // arXiv paper.
        ingest_synthetic(&store, &server, "journal-dois.rss", FeedKind::Feed, rss).await;
        let journal = paper(&store, "doi:10.1000/jex.2026.42").await;
        let mirrored = paper(&store, "arxiv:2609.31003").await;
        assert_eq!(mirrored.paper.doi, None);
        assert_eq!(mirrored.paper.arxiv_id.as_deref(), Some("2609.31003"));

        // Then the preprint, from a source that does not know the DOI.
        let hf = r#"[{"paper": {"id": "2609.31001", "title": "Parsing tag soup with bounds",
            "summary": "Preprint.", "authors": [{"name": "Ada Lovelace"}],
            "publishedAt": "2026-08-20T00:00:00.000Z", "upvotes": 7}, "numComments": 2}]"#;
        let url = server.serve("/hf", vec![Reply::ok("application/json", hf)]);
        let feed = store
            .add_feed(
                &FeedName::parse("hf").unwrap(),
                &FeedUrl::parse(&url).unwrap(),
                FeedKind::HfDaily,
                Utc::now(),
            )
            .await
            .unwrap();
        fetch_feeds(&store, &fetcher(), vec![feed]).await;
        let preprint = paper(&store, "arxiv:2609.31001").await;
        assert_ne!(preprint.id, journal.id);
        assert!(preprint.id > journal.id);

        // A reader rated the preprint, was sent it, and learned a taste from it.
        let reader =
            active_subscriber(&store, "merge@example.org", "parsing", "daily", 8, "UTC").await;
        let model = format!("taste-test 1\n{}\nparse\t1.0000\t0\n", preprint.id);
        store
            .change_ratings(
                reader.id,
                RatingChange::Rate {
                    paper_ids: &[preprint.id],
                    rating: Rating::More,
                    source: RatingSource::Operator,
                },
                Utc::now(),
                |_| {
                    Some(StoredTaste {
                        subscriber_id: reader.id,
                        model: model.clone(),
                        more: 1,
                    })
                },
            )
            .await
            .unwrap();
        let upto = store.max_paper_id().await.unwrap();
        let entries = [DigestEntry {
            paper_id: preprint.id,
            score: 1.0,
            explanation: Default::default(),
            suggested: false,
        }];
        let digest = store
            .save_digest(
                &NewDigest {
                    subscriber_id: reader.id,
                    window_start: reader.confirmed_at.unwrap(),
                    window_end: tomorrow(),
                    papers_after: reader.paper_cursor,
                    papers_upto: upto,
                    entries: &entries,
                    shown: 15,
                    trending: false,
                    archive_key: "key",
                    per_query: &[],
                    message_id: "merge@example.org",
                },
                Utc::now(),
            )
            .await
            .unwrap()
            .unwrap();
        let before = store.count_papers().await.unwrap();

        // arXiv's listing gives the preprint's DOI: the two rows are one paper.
        let arxiv = "arxiv-rss-doi-entities.xml";
        ingest_synthetic(&store, &server, arxiv, FeedKind::ArxivRss, rss).await;
        // One paper fewer than before plus the listing's other (new) preprint.
        assert_eq!(store.count_papers().await.unwrap(), before);
        let (merged, sources) = store
            .paper(&PaperKey::parse("doi:10.1000/jex.2026.42").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(merged.id, journal.id, "merged into the older row");
        assert_eq!(merged.first_seen_at, journal.first_seen_at);
        assert_eq!(merged.paper.arxiv_id.as_deref(), Some("2609.31001"));
        assert_eq!(merged.paper.doi.as_deref(), Some("10.1000/jex.2026.42"));
        assert_eq!(merged.paper.upvotes, Some(7));
        assert_eq!(merged.paper.version, Some(2));
        let mut feeds: Vec<&str> = sources.iter().map(|s| s.feed.as_str()).collect();
        feeds.sort_unstable();
        assert_eq!(feeds, ["arxiv-rss-doi-entities", "hf", "journal-dois"]);
        // The preprint's own key still finds the paper.
        let (by_arxiv, _) = store
            .paper(&PaperKey::parse("arxiv:2609.31001").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(by_arxiv.id, journal.id);
        // So does a reader's "papers I like" list that names the preprint.
        let liked = store
            .papers_by_keys_or_dois(&[PaperKey::parse("arxiv:2609.31001").unwrap()], &[])
            .await
            .unwrap();
        assert_eq!(liked.len(), 1);
        assert_eq!(liked[0].id, journal.id);
        // Everything that referred to the preprint's row now refers to the merged one.
        let ratings = store.ratings_of(reader.id).await.unwrap();
        assert_eq!(ratings.len(), 1);
        assert_eq!(ratings[0].paper_id, journal.id);
        let held = store.digest_entries(digest, None).await.unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].paper.id, journal.id);
        let tastes = store.tastes_of(&[reader.id]).await.unwrap();
        assert_eq!(
            tastes[0].model,
            format!("taste-test 1\n{}\nparse\t1.0000\t0\n", journal.id)
        );
        // The listing's arXiv-DOI preprint is keyed by its arXiv id, with no DOI.
        let own = paper(&store, "arxiv:2609.31002").await;
        assert_eq!(own.paper.doi, None);
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn two_preprints_that_give_one_doi_stay_two_papers() {
    use crate::helpers::{arxiv_paper, store_full_papers};
    for db in databases().await {
        let store = db.store().await;
        let mut one = arxiv_paper("2609.40001", "Part one", "First half.", None);
        one.doi = Some("10.1000/shared.1".into());
        store_full_papers(&store, vec![one]).await;
        let mut two = arxiv_paper("2609.40002", "Part two", "Second half.", None);
        two.doi = Some("10.1000/shared.1".into());
        store_full_papers(&store, vec![two]).await;
        assert_eq!(store.count_papers().await.unwrap(), 2, "{}", db.backend);
        assert_eq!(
            paper(&store, "arxiv:2609.40002").await.paper.title,
            "Part two"
        );
        store.close().await;
        db.cleanup().await;
    }
}
