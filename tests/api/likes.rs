//! Seeding a reader's taste with the papers they like: a reference manager's BibTeX export
//! or a list of ids resolved against the store and a local arXiv API, on every database.

use chrono::Utc;
use paperboy::domain::{Paper, PaperKey, SeedList};
use paperboy::feeds::{ArxivLookup, Resolution, resolve_seeds};
use paperboy::store::Store;

use crate::helpers::{
    FeedServer, Reply, TestDb, databases, fetcher, fixture, store_full_papers, store_papers,
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

        // A second import finds everything stored and asks arXiv nothing.
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
