//! Seeding a reader's taste with the papers they like: a reference manager's BibTeX export
//! or a list of ids resolved against the store and a local arXiv API, on every database.

use std::process::Output;

use chrono::Utc;
use paperboy::domain::{Paper, PaperKey, RatingSource, SeedList};
use paperboy::feeds::{ArxivLookup, Resolution, resolve_seeds};
use paperboy::store::Store;
use reqwest::StatusCode;

use crate::helpers::{
    FeedServer, Reply, TestDb, Visitor, active_subscriber, databases, fast_fetch, fetcher, fixture,
    hidden_csrf, paperboy_on, spawn_app, store_full_papers, store_papers,
};

/// The library's papers paperboy already has: one arXiv paper and one journal paper.
pub async fn store_what_the_library_already_holds(store: &Store) {
    store_papers(store, &[("2609.11111", "Analytical Engines for Everyone")]).await;
    let mut rings = Paper::new(
        PaperKey::doi("10.5555/rings.2025.12").unwrap(),
        "Rings and their ideals",
    );
    rings.doi = Some("10.5555/rings.2025.12".into());
    store_full_papers(store, vec![rings]).await;
}

pub fn library() -> String {
    String::from_utf8(fixture("likes/library.bib")).unwrap()
}

fn keys(resolution: &Resolution, fetched: bool) -> Vec<&str> {
    resolution
        .papers
        .iter()
        .filter(|p| p.fetched == fetched)
        .map(|p| p.key.as_str())
        .collect()
}

fn unresolved(resolution: &Resolution) -> Vec<(&str, &str)> {
    resolution
        .unresolved
        .iter()
        .map(|u| (u.entry.as_str(), u.reason.as_str()))
        .collect()
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
async fn a_bibtex_library_uses_stored_papers_fetches_arxiv_ones_and_lists_the_rest() {
    on_every_database(|store, server| async move {
        store_what_the_library_already_holds(&store).await;
        let api = server.serve(
            "/api/query",
            vec![Reply::ok(
                "application/atom+xml; charset=utf-8",
                fixture("likes/arxiv-id-list.xml"),
            )],
        );
        let list = SeedList::parse(&library()).unwrap();
        let resolution =
            resolve_seeds(&store, &ArxivLookup::new(fetcher(), api), &list, Utc::now())
                .await
                .unwrap();

        assert_eq!(
            keys(&resolution, false),
            ["arxiv:2609.11111", "doi:10.5555/rings.2025.12"]
        );
        assert_eq!(
            keys(&resolution, true),
            ["arxiv:2609.22222", "arxiv:2608.33333"]
        );
        assert_eq!(
            unresolved(&resolution),
            [
                (
                    "franklin_helix_2025 \"A helix, photographed\"",
                    "paperboy does not have this DOI, and only arXiv papers can be fetched"
                ),
                (
                    "knuth_art_1968 \"The Art of Computer Programming\"",
                    "the entry gives no arXiv id and no DOI"
                ),
            ]
        );

        // The missing arXiv papers were asked for in one request, by id, all at once.
        let seen = server.seen("/api/query");
        assert_eq!(seen.len(), 1, "{seen:?}");
        let query = seen[0].query.clone().unwrap();
        assert!(
            query.contains("id_list=2609.22222,2608.33333") && query.contains("max_results=2"),
            "{query}"
        );

        // They are stored whole, as the arxiv-api feed reads them …
        let (fetched, sources) = store
            .paper(&PaperKey::parse("arxiv:2608.33333").unwrap())
            .await
            .unwrap()
            .expect("stored");
        assert_eq!(fetched.paper.title, "Compilers that Explain Themselves");
        assert_eq!(fetched.paper.authors, ["Grace Hopper"]);
        assert_eq!(
            fetched.paper.doi.as_deref(),
            Some("10.5555/compilers.2026.3")
        );
        assert!(sources.is_empty(), "no feed carried it: {sources:?}");
        // … but they are not new to anyone: no digest window holds them.
        let window = store
            .papers_between(0, store.max_paper_id().await.unwrap())
            .await
            .unwrap();
        let in_window: Vec<&str> = window.iter().map(|(p, _)| p.paper.key.as_str()).collect();
        assert_eq!(in_window, ["arxiv:2609.11111", "doi:10.5555/rings.2025.12"]);

        // A second import finds everything stored, listed or not, and asks arXiv nothing.
        let again = resolve_seeds(
            &store,
            &ArxivLookup::new(fetcher(), server.url("/api/query")),
            &list,
            Utc::now(),
        )
        .await
        .unwrap();
        assert_eq!(again.papers.len(), 4);
        assert!(again.fetched().next().is_none());
        assert_eq!(server.seen("/api/query").len(), 1);

        // A feed that carries a fetched paper later makes it a paper like any other.
        store_papers(&store, &[("2609.22222v2", "Machines that Think, Again")]).await;
        let window = store
            .papers_between(0, store.max_paper_id().await.unwrap())
            .await
            .unwrap();
        let in_window: Vec<(&str, i64)> = window
            .iter()
            .map(|(p, sources)| (p.paper.key.as_str(), *sources))
            .collect();
        assert_eq!(
            in_window,
            [
                ("arxiv:2609.11111", 1),
                ("doi:10.5555/rings.2025.12", 1),
                ("arxiv:2609.22222", 1),
            ]
        );
    })
    .await;
}

#[tokio::test]
async fn a_list_of_ids_and_links_names_each_paper_once() {
    on_every_database(|store, server| async move {
        store_what_the_library_already_holds(&store).await;
        let api = server.serve(
            "/api/query",
            vec![Reply::ok(
                "application/atom+xml",
                fixture("likes/arxiv-id-list.xml"),
            )],
        );
        let list = SeedList::parse(
            "# papers I like\n\
             2609.11111v2\n\
             https://arxiv.org/pdf/2609.11111\n\
             https://doi.org/10.5555/RINGS.2025.12\n\
             arXiv:2609.22222\n\
             10.5555/unknown.1\n\
             2609.99999\n\
             a title without an id\n",
        )
        .unwrap();
        let resolution =
            resolve_seeds(&store, &ArxivLookup::new(fetcher(), api), &list, Utc::now())
                .await
                .unwrap();
        assert_eq!(
            keys(&resolution, false),
            ["arxiv:2609.11111", "doi:10.5555/rings.2025.12"]
        );
        assert_eq!(keys(&resolution, true), ["arxiv:2609.22222"]);
        assert_eq!(
            unresolved(&resolution),
            [
                (
                    "line 6: 10.5555/unknown.1",
                    "paperboy does not have this DOI, and only arXiv papers can be fetched"
                ),
                ("line 7: 2609.99999", "arXiv has no paper with this id"),
                ("line 8: a", "not an arXiv id, arXiv link or DOI"),
            ]
        );
        let query = server.seen("/api/query")[0].query.clone().unwrap();
        assert!(query.contains("id_list=2609.22222,2609.99999"), "{query}");
    })
    .await;
}

#[tokio::test]
async fn an_arxiv_api_that_fails_leaves_its_ids_unresolved_with_the_reason() {
    on_every_database(|store, server| async move {
        store_what_the_library_already_holds(&store).await;
        let api = server.serve(
            "/api/query",
            vec![Reply::status(503, "text/plain", "down for maintenance")],
        );
        let list = SeedList::parse(&library()).unwrap();
        let resolution =
            resolve_seeds(&store, &ArxivLookup::new(fetcher(), api), &list, Utc::now())
                .await
                .unwrap();
        // What the store had still counts.
        assert_eq!(resolution.papers.len(), 2);
        let reasons = unresolved(&resolution);
        assert_eq!(reasons.len(), 4, "{reasons:?}");
        for (entry, reason) in &reasons[..2] {
            assert!(
                entry.starts_with("turing2026machines") || entry.starts_with("hopper2026compilers"),
                "{entry}"
            );
            assert_eq!(
                *reason,
                "could not be fetched from arXiv: HTTP 503: Service Unavailable"
            );
        }
        // Tried, and retried as any fetch is, then given up.
        assert_eq!(server.seen("/api/query").len(), 3);
    })
    .await;
}

#[tokio::test]
async fn an_arxiv_error_that_names_one_id_fails_that_id_alone() {
    on_every_database(|store, server| async move {
        let error = r#"<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>https://arxiv.org/api/errors</id>
  <title>arXiv Query Error</title>
  <updated>2026-10-01T00:00:00Z</updated>
  <entry>
    <id>https://arxiv.org/api/errors#incorrect_id_format_for_2609.22222</id>
    <title>Error</title>
    <updated>2026-10-01T00:00:00Z</updated>
    <summary>incorrect id format for 2609.22222</summary>
  </entry>
</feed>"#;
        let api = server.serve(
            "/api/query",
            vec![
                Reply::status(400, "application/atom+xml", error),
                Reply::ok("application/atom+xml", fixture("likes/arxiv-id-list.xml")),
            ],
        );
        let list = SeedList::parse("2609.22222\n2608.33333\n").unwrap();
        let resolution =
            resolve_seeds(&store, &ArxivLookup::new(fetcher(), api), &list, Utc::now())
                .await
                .unwrap();
        assert_eq!(keys(&resolution, true), ["arxiv:2608.33333"]);
        assert_eq!(
            unresolved(&resolution),
            [(
                "line 1: 2609.22222",
                "could not be fetched from arXiv: HTTP 400: incorrect id format for 2609.22222"
            )]
        );
        let seen = server.seen("/api/query");
        assert_eq!(seen.len(), 2);
        assert!(
            seen[1]
                .query
                .as_deref()
                .unwrap()
                .contains("id_list=2608.33333&"),
            "{seen:?}"
        );
    })
    .await;
}

/// A reader's ratings as `(key, more, source)`, sorted by key.
async fn ratings(store: &Store, subscriber_id: i64) -> Vec<(String, bool, &'static str)> {
    let mut got: Vec<(String, bool, &'static str)> = store
        .ratings_of(subscriber_id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.key.to_string(), r.rating.is_more(), r.source.as_str()))
        .collect();
    got.sort();
    got
}

fn out(o: &Output) -> (Option<i32>, String, String) {
    (
        o.status.code(),
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

// Two worker threads: the arXiv API keeps answering while the test waits on the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribers_like_records_a_library_and_lists_what_it_could_not_find() {
    for db in databases().await {
        eprintln!("-- on {}", db.backend);
        let store = db.store().await;
        let server = FeedServer::start().await;
        let api = server.serve(
            "/api/query",
            vec![Reply::ok(
                "application/atom+xml",
                fixture("likes/arxiv-id-list.xml"),
            )],
        );
        store_what_the_library_already_holds(&store).await;
        let ada =
            active_subscriber(&store, "ada@example.org", "diffusion", "daily", 8, "UTC").await;
        let bob = active_subscriber(&store, "bob@example.org", "robots", "daily", 8, "UTC").await;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("paperboy.toml"),
            "[fetch]\nretries = 0\ntimeout_secs = 5\nhost_interval_ms = 0\narxiv_interval_ms = 0\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("library.bib"), library()).unwrap();
        std::fs::write(dir.path().join("broken.bib"), fixture("likes/broken.bib")).unwrap();
        let too_many: String = (0..501).map(|i| format!("2609.{i:05}\n")).collect();
        std::fs::write(dir.path().join("too-many.txt"), too_many).unwrap();
        let like = |args: &[&str]| {
            paperboy_on(dir.path(), &db)
                .env("PAPERBOY_FETCH_ARXIV_API_URL", &api)
                .args(["subscribers", "like"])
                .args(args)
                .output()
                .unwrap()
        };

        // A file that cannot be read whole records nothing, asks arXiv nothing, exits 2.
        let papers_before = store.list_papers(None).await.unwrap().len();
        let (code, _, err) = out(&like(&["bob@example.org", "--from", "broken.bib"]));
        assert_eq!(code, Some(2), "{err}");
        assert!(
            err.contains("broken.bib: malformed BibTeX in entry broken_entry_2026 (line 9)")
                && err.contains("nothing was recorded"),
            "{err}"
        );
        let (code, _, err) = out(&like(&["bob@example.org", "--from", "too-many.txt"]));
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("501 entries: at most 500"), "{err}");
        let (code, _, err) = out(&like(&["bob@example.org", "--from", "missing.bib"]));
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("reading missing.bib"), "{err}");
        let (code, _, err) = out(&like(&["nobody@example.org", "--from", "library.bib"]));
        assert_eq!(code, Some(2), "{err}");
        assert!(err.contains("no reader nobody@example.org"), "{err}");
        assert!(ratings(&store, bob.id).await.is_empty());
        assert_eq!(store.list_papers(None).await.unwrap().len(), papers_before);
        assert!(server.seen("/api/query").is_empty());

        // The library: stored papers and fetched ones count, the rest is listed.
        let (code, stdout, err) = out(&like(&["ada@example.org", "--from", "library.bib"]));
        assert_eq!(code, Some(0), "{err}");
        assert!(
            stdout.starts_with(
                "4 papers recorded as \"more like this\" for ada@example.org (2 fetched from \
                 arXiv), from 6 BibTeX entries; 2 not resolved\n"
            ),
            "{stdout}"
        );
        for line in [
            "fetched: arxiv:2609.22222  Machines that Think, Again",
            "fetched: arxiv:2608.33333  Compilers that Explain Themselves",
            "not resolved: franklin_helix_2025 \"A helix, photographed\": paperboy does not \
             have this DOI, and only arXiv papers can be fetched",
            "not resolved: knuth_art_1968 \"The Art of Computer Programming\": the entry gives \
             no arXiv id and no DOI",
        ] {
            assert!(stdout.contains(line), "{line} not in {stdout}");
        }
        let more = |key: &str| (key.to_string(), true, RatingSource::Import.as_str());
        assert_eq!(
            ratings(&store, ada.id).await,
            [
                more("arxiv:2608.33333"),
                more("arxiv:2609.11111"),
                more("arxiv:2609.22222"),
                more("doi:10.5555/rings.2025.12"),
            ]
        );
        assert!(ratings(&store, bob.id).await.is_empty());

        // As JSON, for scripts; the papers are stored now, so arXiv is not asked again.
        let o = like(&["bob@example.org", "--from", "library.bib", "--json"]);
        let (code, stdout, err) = out(&o);
        assert_eq!(code, Some(0), "{err}");
        let json: serde_json::Value = serde_json::from_str(&stdout).expect("only JSON");
        assert_eq!(json["recorded"], 4);
        assert_eq!(json["format"], "BibTeX");
        assert_eq!(json["papers"].as_array().unwrap().len(), 4);
        assert_eq!(json["papers"][1]["key"], "arxiv:2609.22222");
        assert_eq!(json["papers"][1]["fetched"], false);
        assert_eq!(
            json["unresolved"][1]["entry"],
            "knuth_art_1968 \"The Art of Computer Programming\""
        );
        assert_eq!(server.seen("/api/query").len(), 1);
        assert_eq!(ratings(&store, bob.id).await.len(), 4);

        store.close().await;
        TestDb::cleanup(db).await;
    }
}

#[tokio::test]
async fn the_settings_page_takes_papers_a_reader_likes_as_a_file_or_pasted() {
    for db in databases().await {
        eprintln!("-- on {}", db.backend);
        let server = FeedServer::start().await;
        let api = server.serve(
            "/api/query",
            vec![Reply::ok(
                "application/atom+xml",
                fixture("likes/arxiv-id-list.xml"),
            )],
        );
        let app = spawn_app(&db, |s| {
            s.fetch = paperboy::config::FetchSettings {
                arxiv_api_url: api.clone(),
                ..fast_fetch()
            };
            s.web.likes_per_hour = 3;
        })
        .await;
        store_what_the_library_already_holds(&app.store).await;
        let mut visitor = Visitor::new(&app);
        let preferences = visitor.subscribe_and_confirm(&app, "ada@example.org").await;
        let ada = app.subscriber("ada@example.org").await.unwrap();
        let page = visitor.get(&preferences).await;
        assert!(page.body.contains("Papers you like"), "{}", page.body);
        let likes = format!("{preferences}/likes");
        assert!(
            page.body.contains(&format!("action=\"{likes}#likes\"")),
            "{}",
            page.body
        );
        let csrf = hidden_csrf(&page.body);
        let library = library();

        // Without the form's token, nothing happens.
        let forged = visitor
            .post_multipart(&likes, &[("file", Some("library.bib"), library.as_bytes())])
            .await;
        assert_eq!(forged.status, StatusCode::FORBIDDEN);
        // A file over the size limit is refused with a page that says so.
        let huge = format!("% {}\n{library}", "x".repeat(2100 * 1024));
        let big = visitor
            .post_multipart(
                &likes,
                &[
                    ("csrf", None, csrf.as_bytes()),
                    ("file", Some("huge.bib"), huge.as_bytes()),
                ],
            )
            .await;
        assert_eq!(big.status, StatusCode::PAYLOAD_TOO_LARGE, "{}", big.body);
        assert!(big.body.contains("larger than 2048 KiB"), "{}", big.body);
        // A malformed file records nothing and names the entry.
        let broken = visitor
            .post_multipart(
                &likes,
                &[
                    ("csrf", None, csrf.as_bytes()),
                    ("papers", None, b""),
                    ("file", Some("broken.bib"), &fixture("likes/broken.bib")),
                ],
            )
            .await;
        assert_eq!(broken.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            broken.body.contains(
                "Nothing was recorded: malformed BibTeX in entry broken_entry_2026 (line 9)"
            ),
            "{}",
            broken.body
        );
        assert!(ratings(&app.store, ada.id).await.is_empty());
        assert!(server.seen("/api/query").is_empty());

        // The library: recorded, with what was fetched and what could not be found.
        let done = visitor
            .post_multipart(
                &likes,
                &[
                    ("csrf", None, csrf.as_bytes()),
                    ("papers", None, b""),
                    ("file", Some("library.bib"), library.as_bytes()),
                ],
            )
            .await;
        assert_eq!(done.status, StatusCode::OK, "{}", done.body);
        for text in [
            "Recorded 4 papers you like, 2 of them fetched from arXiv.",
            "<code>arxiv:2609.22222</code> Machines that Think, Again",
            "2 could not be found:",
            "franklin_helix_2025 &#34;A helix, photographed&#34;: paperboy does not have this DOI",
            "knuth_art_1968 &#34;The Art of Computer Programming&#34;: the entry gives no arXiv id",
        ] {
            assert!(done.body.contains(text), "{text} not in {}", done.body);
        }
        assert_eq!(ratings(&app.store, ada.id).await.len(), 4);
        assert!(
            ratings(&app.store, ada.id)
                .await
                .iter()
                .all(|(_, more, source)| *more && *source == "import")
        );

        // Pasted lines work the same way.
        let pasted = visitor
            .post_multipart(
                &likes,
                &[
                    ("csrf", None, csrf.as_bytes()),
                    (
                        "papers",
                        None,
                        b"https://arxiv.org/abs/2609.11111v1\n10.5555/nowhere.9\n",
                    ),
                    ("file", Some(""), b""),
                ],
            )
            .await;
        assert_eq!(pasted.status, StatusCode::OK, "{}", pasted.body);
        assert!(
            pasted.body.contains("Recorded 1 paper you like."),
            "{}",
            pasted.body
        );
        assert!(
            pasted.body.contains("line 2: 10.5555/nowhere.9"),
            "{}",
            pasted.body
        );

        // Three lists an hour from one reader (the refused ones counted too).
        let limited = visitor
            .post_multipart(
                &likes,
                &[
                    ("csrf", None, csrf.as_bytes()),
                    ("papers", None, b"2609.11111\n"),
                ],
            )
            .await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(limited.headers.contains_key("retry-after"));
        assert_eq!(ratings(&app.store, ada.id).await.len(), 4);

        app.stop().await;
        TestDb::cleanup(db).await;
    }
}
