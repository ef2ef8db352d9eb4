//! Feeds served over real HTTP, ingested end to end into a real database (SQLite, and
//! PostgreSQL when configured).

use crate::helpers::{FeedServer, Reply, TestDb, databases, fast_fetch, fetcher, fixture, paper};
use chrono::Utc;
use paperboy::domain::{FeedKind, FeedName, FeedUrl, PaperKey};
use paperboy::feeds::{FeedReport, FeedStatus, fetch_feeds};
use paperboy::store::{FeedRecord, Store, UpsertCounts};

async fn add_feed(store: &Store, name: &str, url: &str, kind: FeedKind) -> FeedRecord {
    store
        .add_feed(
            &FeedName::parse(name).unwrap(),
            &FeedUrl::parse(url).unwrap(),
            kind,
            Utc::now(),
        )
        .await
        .unwrap()
}

/// Polls the named feeds (fresh from the store, so validators are current).
async fn fetch(store: &Store, names: &[&str]) -> Vec<FeedReport> {
    let mut feeds = Vec::new();
    for name in names {
        feeds.push(
            store
                .feed(&FeedName::parse(name).unwrap())
                .await
                .unwrap()
                .unwrap(),
        );
    }
    fetch_feeds(store, &fetcher(), feeds).await
}

fn counts(report: &FeedReport) -> (UpsertCounts, usize) {
    match &report.status {
        FeedStatus::Ingested {
            counts, skipped, ..
        } => (*counts, *skipped),
        other => panic!("{}: expected ingestion, got {other:?}", report.feed),
    }
}

fn error_of(report: &FeedReport) -> String {
    match &report.status {
        FeedStatus::Error { error } => error.clone(),
        other => panic!("{}: expected an error, got {other:?}", report.feed),
    }
}

async fn on_every_database<F, Fut>(test: F)
where
    F: Fn(Store, FeedServer) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    for db in databases().await {
        eprintln!("-- on {}", db.backend);
        let store = db.store().await;
        let server = FeedServer::start().await;
        test(store.clone(), server).await;
        store.close().await;
        TestDb::cleanup(db).await;
    }
}

#[tokio::test]
async fn the_same_arxiv_paper_from_rss_api_and_hf_is_one_paper_with_upvotes_merged() {
    on_every_database(|store, server| async move {
        let rss = server.serve(
            "/rss",
            vec![Reply::ok(
                "application/rss+xml",
                fixture("arxiv-rss-day1.xml"),
            )],
        );
        let api = server.serve(
            "/api",
            vec![Reply::ok("application/atom+xml", fixture("arxiv-api.xml"))],
        );
        let hf = server.serve(
            "/hf",
            vec![Reply::ok("application/json", fixture("hf-daily.json"))],
        );
        add_feed(&store, "rss", &rss, FeedKind::ArxivRss).await;
        add_feed(&store, "api", &api, FeedKind::ArxivApi).await;
        add_feed(&store, "hf", &hf, FeedKind::HfDaily).await;

        let reports = fetch(&store, &["rss"]).await;
        let (c, skipped) = counts(&reports[0]);
        assert_eq!(
            (c.new, c.updated, c.unchanged, skipped),
            (3, 0, 0, 1),
            "the untitled entry is skipped"
        );

        let reports = fetch(&store, &["api", "hf"]).await;
        let (api_counts, _) = counts(&reports[0]);
        assert_eq!(
            (api_counts.new, api_counts.updated),
            (1, 1),
            "2601.00004 is new; 2601.00001 gains a DOI"
        );
        let (hf_counts, hf_skipped) = counts(&reports[1]);
        assert_eq!((hf_counts.new, hf_counts.updated, hf_skipped), (1, 1, 1));

        let all = store.list_papers(None).await.unwrap();
        assert_eq!(
            all.len(),
            5,
            "{:?}",
            all.iter()
                .map(|p| p.paper.key.to_string())
                .collect::<Vec<_>>()
        );

        let p = paper(&store, "arxiv:2601.00001").await;
        assert_eq!(
            p.paper.title,
            "Sparse Diffusion Samplers for $\\ln\\ln T$ Regret"
        );
        assert_eq!(
            p.paper.abstract_text,
            "We study diffusion samplers where $x<y$ and show a bound & a matching lower bound."
        );
        assert_eq!(
            p.paper.authors,
            ["Ada Lovelace", "Alan Turing", "Grace Hopper"]
        );
        assert_eq!(p.paper.categories, ["cs.LG", "stat.ML", "math.ST"]);
        assert_eq!(p.paper.upvotes, Some(42));
        assert_eq!(p.paper.comments, Some(3));
        assert_eq!(p.paper.version, Some(1));
        assert_eq!(p.paper.doi.as_deref(), Some("10.1000/journal.2026.1"));
        assert_eq!(
            p.paper.links.abs.as_deref(),
            Some("https://arxiv.org/abs/2601.00001")
        );
        assert_eq!(
            p.paper.links.pdf.as_deref(),
            Some("https://arxiv.org/pdf/2601.00001")
        );
        assert_eq!(
            p.paper.links.discussion.as_deref(),
            Some("https://huggingface.co/papers/2601.00001")
        );
        let (_, sources) = store
            .paper(&PaperKey::parse("arxiv:2601.00001").unwrap())
            .await
            .unwrap()
            .unwrap();
        let mut feeds: Vec<&str> = sources.iter().map(|s| s.feed.as_str()).collect();
        feeds.sort();
        assert_eq!(feeds, ["api", "hf", "rss"]);
        let rss_source = sources.iter().find(|s| s.feed == "rss").unwrap();
        assert_eq!(rss_source.announce_type.as_deref(), Some("new"));
        assert_eq!(rss_source.entry_id, "oai:arXiv.org:2601.00001v1");

        let cross = paper(&store, "2601.00002").await;
        assert_eq!(cross.paper.authors, ["Tri Dao"]);
        let hf_only = paper(&store, "arxiv:2601.00005").await;
        assert_eq!(hf_only.paper.title, "β-Scaling Laws");
        assert_eq!(hf_only.paper.upvotes, Some(7));
    })
    .await;
}

#[tokio::test]
async fn a_new_version_updates_the_paper_without_making_it_new() {
    on_every_database(|store, server| async move {
        let url = server.serve(
            "/rss",
            vec![
                Reply::ok("application/rss+xml", fixture("arxiv-rss-day1.xml")),
                Reply::ok("application/rss+xml", fixture("arxiv-rss-day2.xml")),
            ],
        );
        add_feed(&store, "rss", &url, FeedKind::ArxivRss).await;
        fetch(&store, &["rss"]).await;
        let before = paper(&store, "arxiv:2601.00001").await;

        let reports = fetch(&store, &["rss"]).await;
        let (c, _) = counts(&reports[0]);
        assert_eq!(
            (c.new, c.updated),
            (1, 1),
            "v2 of 2601.00001 updates; 2601.00003 is new"
        );

        let after = paper(&store, "arxiv:2601.00001").await;
        assert_eq!(after.id, before.id);
        assert_eq!(
            after.first_seen_at, before.first_seen_at,
            "a new version is not new to readers"
        );
        assert_eq!(after.paper.version, Some(2));
        assert_eq!(
            after.paper.title,
            "Sparse Diffusion Samplers with Optimal Regret"
        );
        assert_eq!(store.count_papers().await.unwrap(), 4);
    })
    .await;
}

#[tokio::test]
async fn a_second_fetch_sends_the_validators_and_stores_nothing_new() {
    on_every_database(|store, server| async move {
        let url = server.serve(
            "/rss",
            vec![
                Reply::ok("application/rss+xml", fixture("arxiv-rss-day1.xml"))
                    .with_etag("\"v1\"")
                    .with_header("last-modified", "Mon, 05 Jan 2026 05:00:00 GMT"),
            ],
        );
        let plain = server.serve(
            "/plain",
            vec![Reply::ok("application/json", fixture("hf-daily.json"))],
        );
        add_feed(&store, "rss", &url, FeedKind::ArxivRss).await;
        add_feed(&store, "plain", &plain, FeedKind::HfDaily).await;
        fetch(&store, &["rss", "plain"]).await;
        let reports = fetch(&store, &["rss", "plain"]).await;

        assert!(
            matches!(reports[0].status, FeedStatus::NotModified),
            "{:?}",
            reports[0]
        );
        let seen = server.seen("/rss");
        assert_eq!(seen.len(), 2);
        assert_eq!(seen[0].if_none_match, None);
        assert_eq!(seen[1].if_none_match.as_deref(), Some("\"v1\""));
        assert_eq!(
            seen[1].if_modified_since.as_deref(),
            Some("Mon, 05 Jan 2026 05:00:00 GMT")
        );
        assert_eq!(seen[0].user_agent.as_deref(), Some("paperboy-tests"));

        // A server without validators gets the whole body again: nothing new is stored.
        let (c, _) = counts(&reports[1]);
        assert_eq!((c.new, c.updated, c.unchanged), (0, 0, 2));
        assert_eq!(store.count_papers().await.unwrap(), 4);
        let feed = store
            .feed(&FeedName::parse("rss").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert!(feed.health.last_success_at.is_some());
        assert_eq!(feed.health.consecutive_failures, 0);
    })
    .await;
}

#[tokio::test]
async fn every_feed_kind_is_ingested() {
    on_every_database(|store, server| async move {
        let atom = server.serve(
            "/blog.atom",
            vec![Reply::ok("application/atom+xml", fixture("blog.atom"))],
        );
        let json = server.serve(
            "/feed.json",
            vec![Reply::ok("application/feed+json", fixture("feed.json"))],
        );
        let latin1 = server.serve(
            "/journal.rss",
            vec![Reply::ok(
                "application/rss+xml",
                fixture("journal-latin1.rss"),
            )],
        );
        add_feed(&store, "blog", &atom, FeedKind::Feed).await;
        add_feed(&store, "jsonfeed", &json, FeedKind::Feed).await;
        add_feed(&store, "journal", &latin1, FeedKind::Feed).await;
        let reports = fetch(&store, &["blog", "jsonfeed", "journal"]).await;
        assert_eq!(counts(&reports[0]).0.new, 2);
        assert_eq!(
            counts(&reports[1]),
            (
                UpsertCounts {
                    new: 1,
                    updated: 0,
                    unchanged: 0
                },
                1
            )
        );
        assert_eq!(counts(&reports[2]).0.new, 1);

        // A blog post about an arXiv paper is keyed by the paper.
        let ssm = paper(&store, "arxiv:2601.00002").await;
        // An Atom title without a type is text: the markup in it is literal, per RFC 4287.
        assert_eq!(ssm.paper.title, "Why <b>state space models</b> work");
        assert_eq!(
            ssm.paper.abstract_text,
            "Our take on SSMs. Second paragraph here."
        );
        let post = paper(&store, "url:https://blog.example.org/posts/notes").await;
        assert_eq!(post.paper.title, "Notes & thoughts");
        assert_eq!(post.paper.abstract_text, "Long post");
        assert_eq!(post.paper.categories, ["ml"]);

        let article = paper(&store, "doi:10.5555/example.2026.7").await;
        assert_eq!(
            article.paper.abstract_text,
            "Abstract with & entities – and tags."
        );
        assert_eq!(article.paper.authors, ["Jane Roe"]);

        let all = store.list_papers(None).await.unwrap();
        let french = all
            .iter()
            .find(|p| p.paper.title.starts_with("Équations"))
            .expect("latin-1 feed decoded");
        assert_eq!(
            french.paper.abstract_text,
            "Résumé: étude des équations à coefficients variables."
        );
    })
    .await;
}

#[tokio::test]
async fn a_failing_feed_fails_alone_and_its_health_says_why() {
    on_every_database(|store, server| async move {
        let good = server.serve(
            "/good",
            vec![Reply::ok(
                "application/rss+xml",
                fixture("arxiv-rss-day1.xml"),
            )],
        );
        let down = server.serve("/down", vec![Reply::status(500, "text/plain", "boom")]);
        let html = server.serve(
            "/html",
            vec![Reply::ok(
                "text/html",
                "<!DOCTYPE html><html><body>Maintenance</body></html>",
            )],
        );
        let body = fixture("arxiv-rss-day1.xml");
        let truncated = server.serve(
            "/truncated",
            vec![Reply::ok(
                "application/rss+xml",
                body[..body.len() / 2].to_vec(),
            )],
        );
        let api_error = server.serve(
            "/api",
            vec![Reply::status(
                400,
                "application/atom+xml",
                fixture("arxiv-api-error.xml"),
            )],
        );
        let missing = server.url("/missing");
        add_feed(&store, "good", &good, FeedKind::ArxivRss).await;
        add_feed(&store, "down", &down, FeedKind::ArxivRss).await;
        add_feed(&store, "html", &html, FeedKind::ArxivRss).await;
        add_feed(&store, "truncated", &truncated, FeedKind::ArxivRss).await;
        add_feed(&store, "api", &api_error, FeedKind::ArxivApi).await;
        add_feed(&store, "missing", &missing, FeedKind::Feed).await;

        let reports = fetch(
            &store,
            &["good", "down", "html", "truncated", "api", "missing"],
        )
        .await;
        assert_eq!(counts(&reports[0]).0.new, 3);
        assert!(error_of(&reports[1]).contains("HTTP 500"), "{}", reports[1]);
        assert_eq!(server.seen("/down").len(), 3, "one attempt and two retries");
        assert!(
            error_of(&reports[2]).contains("HTML page"),
            "{}",
            reports[2]
        );
        assert!(
            error_of(&reports[3]).contains("malformed"),
            "{}",
            reports[3]
        );
        assert!(
            error_of(&reports[4]).contains("incorrect id format for xyz"),
            "{}",
            reports[4]
        );
        assert!(error_of(&reports[5]).contains("HTTP 404"), "{}", reports[5]);
        assert_eq!(
            store.count_papers().await.unwrap(),
            3,
            "nothing half-parsed is stored"
        );

        let down = store
            .feed(&FeedName::parse("down").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(down.health.consecutive_failures, 1);
        assert!(down.health.last_success_at.is_none());
        assert!(down.health.last_attempt_at.is_some());
        assert!(down.health.last_error.unwrap().contains("500"));
        fetch(&store, &["down"]).await;
        let down = store
            .feed(&FeedName::parse("down").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(down.health.consecutive_failures, 2);
    })
    .await;
}

#[tokio::test]
async fn retries_honour_retry_after_and_an_empty_listing_is_a_success() {
    on_every_database(|store, server| async move {
        let empty = "<?xml version='1.0' encoding='UTF-8'?>\n<rss version=\"2.0\"><channel><title>cs.LG updates on arXiv.org</title><link>http://rss.arxiv.org/rss/cs.LG</link><description>d</description><skipDays><day>Saturday</day></skipDays></channel></rss>";
        let url = server.serve(
            "/busy",
            vec![
                Reply::status(429, "text/plain", "slow down").with_header("retry-after", "1"),
                Reply::status(503, "text/plain", "later"),
                Reply::ok("application/rss+xml", empty),
            ],
        );
        add_feed(&store, "busy", &url, FeedKind::ArxivRss).await;
        let started = std::time::Instant::now();
        let reports = fetch(&store, &["busy"]).await;
        assert_eq!(counts(&reports[0]), (UpsertCounts::default(), 0), "{}", reports[0]);
        assert!(started.elapsed() >= std::time::Duration::from_secs(1), "Retry-After was honoured");
        assert_eq!(server.seen("/busy").len(), 3);

        let too_long = server.serve(
            "/too-long",
            vec![Reply::status(429, "text/plain", "").with_header("retry-after", "3600")],
        );
        add_feed(&store, "too-long", &too_long, FeedKind::ArxivRss).await;
        let reports = fetch(&store, &["too-long"]).await;
        assert!(error_of(&reports[0]).contains("3600"), "{}", reports[0]);
        assert_eq!(server.seen("/too-long").len(), 1);
    })
    .await;
}

#[tokio::test]
async fn oversized_responses_are_refused() {
    let db = TestDb::sqlite().await;
    let store = db.store().await;
    let server = FeedServer::start().await;
    let mut big = b"<rss version=\"2.0\"><channel><title>x</title>".to_vec();
    big.resize(600_000, b' ');
    let url = server.serve("/big", vec![Reply::ok("application/rss+xml", big)]);
    add_feed(&store, "big", &url, FeedKind::Feed).await;
    let settings = paperboy::config::FetchSettings {
        max_bytes: 500_000,
        ..fast_fetch()
    };
    let fetcher = paperboy::feeds::Fetcher::new(settings, "t").unwrap();
    let feeds = store.list_feeds().await.unwrap();
    let reports = fetch_feeds(&store, &fetcher, feeds).await;
    assert!(
        error_of(&reports[0]).contains("larger than"),
        "{}",
        reports[0]
    );
}

#[tokio::test]
async fn a_doi_joins_an_arxiv_paper_and_its_journal_version() {
    on_every_database(|store, server| async move {
        // One batch: the arXiv preprint with its DOI, and the journal version by DOI alone.
        let page = r#"{"total": 2, "offset": 0, "data": [
            {"paperId": "s2a", "externalIds": {"ArXiv": "2601.00007", "DOI": "10.1000/Journal.7"},
             "url": "https://www.semanticscholar.org/paper/s2a", "title": "Journal-Grade Diffusion",
             "abstract": "Preprint.", "publicationDate": "2026-01-02", "authors": [{"name": "Ada Lovelace"}]},
            {"paperId": "s2b", "externalIds": {"DOI": "10.1000/journal.7"},
             "url": "https://www.semanticscholar.org/paper/s2b", "title": "Journal-Grade Diffusion",
             "abstract": "Published version.", "publicationDate": "2026-03-01", "authors": []}
        ]}"#;
        let url = server.serve("/s2", vec![Reply::ok("application/json", page)]);
        add_feed(&store, "s2", &url, FeedKind::Feed).await;
        let reports = fetch(&store, &["s2"]).await;
        let (c, _) = counts(&reports[0]);
        assert_eq!((c.new, c.updated, c.unchanged), (1, 0, 1), "{}", reports[0]);
        assert_eq!(store.count_papers().await.unwrap(), 1);
        let p = paper(&store, "arxiv:2601.00007").await;
        assert_eq!(p.paper.doi.as_deref(), Some("10.1000/journal.7"));

        // Later, a journal feed carrying only the DOI link adds nothing new either.
        let journal = r#"{"version": "https://jsonfeed.org/version/1.1", "title": "J", "items": [
            {"id": "j7", "url": "https://doi.org/10.1000/JOURNAL.7", "title": "Journal-Grade Diffusion",
             "content_text": "Published version."}]}"#;
        let url = server.serve("/journal", vec![Reply::ok("application/feed+json", journal)]);
        add_feed(&store, "journal", &url, FeedKind::Feed).await;
        let reports = fetch(&store, &["journal"]).await;
        assert_eq!(counts(&reports[0]).0.new, 0, "{}", reports[0]);
        assert_eq!(store.count_papers().await.unwrap(), 1);
        let (_, sources) = store
            .paper(&PaperKey::parse("arxiv:2601.00007").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sources.len(), 2, "{sources:?}");
    })
    .await;
}
