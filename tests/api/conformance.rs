//! Every real-world sample in `../shared/fixtures/feeds` (see its SOURCES.md), served over
//! HTTP and ingested into a real database: the counts and fields SOURCES.md states, and for
//! the edge cases, a correct parse or a clean failure of that feed alone.

use std::path::Path;

use crate::helpers::{FeedServer, Reply, TestDb, databases, fetcher, paper, shared_fixtures};
use chrono::Utc;
use paperboy::domain::{FeedKind, FeedName, FeedUrl, PaperKey};
use paperboy::feeds::{FeedReport, FeedStatus, fetch_feeds};
use paperboy::store::Store;

/// What a file must give.
enum Expect {
    /// Ingested, with this many papers new to an empty database and this many skipped.
    Papers { new: usize, skipped: usize },
    /// Refused with an error that contains this text.
    Error(&'static str),
}

use Expect::*;

const CASES: &[(&str, FeedKind, Expect)] = &[
    (
        "arxiv-rss/allnewsai-2026-08-01-cs.CL-weekend-empty.xml",
        FeedKind::ArxivRss,
        Papers { new: 0, skipped: 0 },
    ),
    (
        "arxiv-rss/layareader-2026-09-24-cs.LG+cs.AI+cs.CL+stat.ML-4items-trimmed.xml",
        FeedKind::ArxivRss,
        Papers { new: 4, skipped: 0 },
    ),
    (
        "arxiv-rss/distill-2026-04-27-cs.LG-3items-trimmed-reserialized.xml",
        FeedKind::ArxivRss,
        Papers { new: 3, skipped: 0 },
    ),
    (
        "arxiv-api-atom/arxivpy-2016-classic-search-au_del_maestro-10of31.xml",
        FeedKind::ArxivApi,
        Papers {
            new: 10,
            skipped: 0,
        },
    ),
    (
        "arxiv-api-atom/arxivpy-2016-classic-id_list-1111.2011v2.xml",
        FeedKind::ArxivApi,
        Papers { new: 1, skipped: 0 },
    ),
    (
        "arxiv-api-atom/sotawhat-query-transformer-cslg-2026-06.xml",
        FeedKind::ArxivApi,
        Papers { new: 5, skipped: 0 },
    ),
    (
        "arxiv-api-atom/brevio-2026-04-query-cat_cs.LG_OR_cs.AI-20.xml",
        FeedKind::ArxivApi,
        Papers {
            new: 20,
            skipped: 0,
        },
    ),
    (
        "arxiv-api-atom/arxivpy-2026-cassette-error-400-id_abc.json",
        FeedKind::ArxivApi,
        Error("HTTP 400: incorrect id format for abc"),
    ),
    (
        "arxiv-api-atom/arxivpy-2026-cassette-zero-results-id_0000.0000.json",
        FeedKind::ArxivApi,
        Papers { new: 0, skipped: 0 },
    ),
    (
        "hf-daily-papers/sotawhat-daily-papers-2026-06-12.json",
        FeedKind::HfDaily,
        Papers {
            new: 30,
            skipped: 0,
        },
    ),
    (
        "hf-daily-papers/allnewsai-2026-07-31-5-entries-pretty-unicode.json",
        FeedKind::HfDaily,
        Papers { new: 5, skipped: 0 },
    ),
    (
        "hf-daily-papers/brevio-third-party-hf-daily-papers-rss-2026-04-30.xml",
        FeedKind::Feed,
        Papers {
            new: 22,
            skipped: 0,
        },
    ),
    (
        "biorxiv/feedrs-biorxiv-genomics-rss1.0-1item.xml",
        FeedKind::Feed,
        Papers { new: 1, skipped: 0 },
    ),
    (
        "biorxiv/radarpapers-medrxiv-api-details-2026-09-15-3of72.json",
        FeedKind::Feed,
        Papers { new: 3, skipped: 0 },
    ),
    (
        "semantic-scholar/sotawhat-paper-search-transformer.json",
        FeedKind::Feed,
        Papers { new: 5, skipped: 0 },
    ),
    (
        "jsonfeed/feedrs-jsonfeed-spec-example.json",
        FeedKind::Feed,
        Papers { new: 1, skipped: 0 },
    ),
    (
        "jsonfeed/feedrs-jsonfeed-1.1-elastic.json",
        FeedKind::Feed,
        Papers { new: 3, skipped: 0 },
    ),
    (
        "atom/feedrs-atom-spec-example.xml",
        FeedKind::Feed,
        Papers { new: 1, skipped: 0 },
    ),
    (
        "atom/nodefeedparser-intertwingly-real-atom.atom",
        FeedKind::Feed,
        Papers {
            new: 20,
            skipped: 0,
        },
    ),
];

/// The edge cases: each parses (and its text must then decode correctly) or fails with a
/// readable error; never a panic, never half a feed. The expectations are what paperboy
/// does with each, so a change of behaviour shows up here.
const EDGE_CASES: &[(&str, Expect)] = &[
    // Mojibake character references parse; the only item has no title and is skipped.
    (
        "feedparser-double-encoded-utf8-as-latin1.xml",
        Papers { new: 0, skipped: 1 },
    ),
    // A channel with a title and no items.
    ("feedparser-euc-kr.xml", Papers { new: 0, skipped: 0 }),
    ("feedparser-incomplete-cdata.xml", Error("malformed")),
    // An <rss> without a version attribute is RSS 2.0; `&alpha;`, an HTML entity XML does
    // not declare, is read as the letter (the feed is then degraded).
    (
        "feedparser-undeclared-html-entity-alpha.xml",
        Papers { new: 0, skipped: 0 },
    ),
    // A BOM, then a version-less <rss> with no channel: a feed that lists nothing.
    ("feedparser-utf8-bom.xml", Papers { new: 0, skipped: 0 }),
    (
        "feedrs-rss1-iso8859-1-golem.xml",
        Papers { new: 1, skipped: 0 },
    ),
    (
        "feedrs-rss2-iso8859-1-cdata-html.xml",
        Papers { new: 1, skipped: 0 },
    ),
    (
        "feedrs-rss2-reuters-truncated-invalid.xml",
        Error("malformed"),
    ),
    // A bare `&` in a link: read again with it escaped, all entries kept, feed degraded.
    (
        "nodefeedparser-unescaped-ampersand-saxerror.xml",
        Papers { new: 3, skipped: 0 },
    ),
    (
        "nodefeedparser-windows-1251-oren.xml",
        Papers {
            new: 10,
            skipped: 0,
        },
    ),
    (
        "rssparser-gb2312-tencent-news.xml",
        Papers {
            new: 20,
            skipped: 0,
        },
    ),
    (
        "rssparser-iso8859-2-latin2.rss",
        Papers { new: 1, skipped: 0 },
    ),
];

/// Ingests one file and checks it against what it must give; a refused file stores nothing.
async fn check(
    store: &Store,
    server: &FeedServer,
    dir: &Path,
    rel: &str,
    kind: FeedKind,
    expect: &Expect,
) {
    let before = store.count_papers().await.unwrap();
    let report = ingest_file(store, server, dir, rel, kind).await;
    match (expect, &report.status) {
        (
            Papers { new, skipped },
            FeedStatus::Ingested {
                counts, skipped: s, ..
            },
        ) => {
            assert_eq!(
                (counts.new + counts.updated + counts.unchanged, *s),
                (*new, *skipped),
                "{rel}: {report}"
            );
        }
        (Error(text), FeedStatus::Error { error }) => {
            assert!(error.contains(text), "{rel}: {error}");
            let after = store.count_papers().await.unwrap();
            assert_eq!(before, after, "{rel}: nothing half-parsed is stored");
        }
        _ => panic!("{rel}: unexpected {report}"),
    }
}

/// Serves a fixture the way its origin did: recorder cassettes (`{url, status_code, body}`)
/// are replayed with their status.
pub(crate) fn reply_for(path: &Path) -> Reply {
    let bytes = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let name = path.file_name().unwrap().to_string_lossy();
    if name.contains("cassette") {
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let status = v["status_code"].as_u64().unwrap() as u16;
        let body = v["body"].as_str().unwrap().as_bytes().to_vec();
        return Reply::status(status, "application/atom+xml", body);
    }
    let content_type = if name.ends_with(".json") {
        "application/json"
    } else {
        "application/xml"
    };
    Reply::ok(content_type, bytes)
}

async fn ingest_file(
    store: &Store,
    server: &FeedServer,
    dir: &Path,
    rel: &str,
    kind: FeedKind,
) -> FeedReport {
    let name = format!("f{}", store.list_feeds().await.unwrap().len());
    let url = server.serve(&format!("/{name}"), vec![reply_for(&dir.join(rel))]);
    let feed = store
        .add_feed(
            &FeedName::parse(&name).unwrap(),
            &FeedUrl::parse(&url).unwrap(),
            kind,
            Utc::now(),
        )
        .await
        .unwrap();
    let mut reports = fetch_feeds(store, &fetcher(), vec![feed]).await;
    reports.remove(0)
}

#[tokio::test]
async fn every_shared_sample_ingests_with_the_counts_and_fields_its_sources_state() {
    let Some(dir) = shared_fixtures() else { return };
    for db in databases().await {
        eprintln!("-- on {}", db.backend);
        let store = db.store().await;
        let server = FeedServer::start().await;
        // Each file goes into its own database state only where it matters: counts are
        // checked against what the file adds, in the order listed.
        for (rel, kind, expect) in CASES {
            check(&store, &server, &dir, rel, *kind, expect).await;
        }

        // arXiv RSS: ids, versions, announce types, cross-lists, old ids, abstracts.
        let (_, sources) = store
            .paper(&PaperKey::parse("arxiv:2205.06398").unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(sources[0].announce_type.as_deref(), Some("cross"));
        // Its `<arxiv:DOI>` is the journal version's, kept beside the arXiv key.
        let cross = paper(&store, "arxiv:2205.06398").await;
        assert_eq!(
            cross.paper.doi.as_deref(),
            Some("10.1093/bioinformatics/btac431")
        );
        let replaced = paper(&store, "arxiv:2009.13987").await;
        assert_eq!(replaced.paper.version, Some(3));
        let new = paper(&store, "arxiv:2609.26811").await;
        assert_eq!(
            new.paper.title,
            "The Drift Contract: Spectral Updates for Depth-Robust Local Learning"
        );
        assert!(
            new.paper
                .abstract_text
                .starts_with("Local learning trains each layer"),
            "{}",
            new.paper.abstract_text
        );
        assert!(!new.paper.abstract_text.contains("Announce Type"));
        assert!(!new.paper.authors.is_empty());
        assert!(!new.paper.categories.is_empty());
        assert_eq!(
            new.paper.links.pdf.as_deref(),
            Some("https://arxiv.org/pdf/2609.26811")
        );
        let distill = paper(&store, "arxiv:2604.21952").await;
        let all = store.list_papers(None).await.unwrap();
        let dollars = all
            .iter()
            .find(|p| p.paper.abstract_text.contains("$800"))
            .expect("an abstract with $800");
        assert!(
            dollars.paper.key.as_str().starts_with("arxiv:2604.2195"),
            "{}",
            dollars.paper.key
        );
        assert!(
            all.iter()
                .any(|p| p.paper.key.as_str().starts_with("arxiv:2604.2195")
                    && p.paper.abstract_text.contains(" & "))
        );
        assert!(!distill.paper.title.is_empty());

        // arXiv API: classic and current formats, old-style ids, DOIs, LaTeX titles.
        let old = paper(&store, "arxiv:cond-mat/0603029").await;
        assert_eq!(old.paper.version, Some(1));
        assert!(!old.paper.title.contains('\n') && !old.paper.title.contains("  "));
        let by_id = paper(&store, "arxiv:1111.2011").await;
        assert_eq!(by_id.paper.version, Some(2));
        assert_eq!(
            by_id.paper.doi.as_deref(),
            Some("10.1103/physrevb.85.115117")
        );
        let latex = all
            .iter()
            .find(|p| p.paper.title.contains("$\\ln\\ln T$"))
            .expect("the LaTeX title survives");
        assert_eq!(
            latex.paper.title,
            "A Note on How to Remove the $\\ln\\ln T$ Term from the Squint Bound"
        );

        // Hugging Face: upvotes, discussion links, Unicode titles.
        let hf = paper(&store, "arxiv:2606.00467").await;
        assert_eq!(hf.paper.upvotes, Some(0));
        assert_eq!(
            hf.paper.links.discussion.as_deref(),
            Some("https://huggingface.co/papers/2606.00467")
        );
        let unicode = store.list_papers(None).await.unwrap();
        assert!(unicode.iter().any(|p| p.paper.title.contains('Σ')));
        assert!(unicode.iter().any(|p| p.paper.title.contains('β')));
        // The third-party HF RSS links to arXiv, so its items are keyed by arXiv id.
        paper(&store, "arxiv:2604.21003").await;

        // bioRxiv RSS 1.0: CDATA with whitespace, DOI from the link, authors split.
        let bio = paper(&store, "doi:10.1101/2023.12.16.571984").await;
        assert!(
            bio.paper
                .title
                .starts_with("Complete genome of the Medicago anthracnose fungus")
        );
        assert!(!bio.paper.title.starts_with(' ') && !bio.paper.title.ends_with('\n'));
        assert_eq!(bio.paper.version, Some(1));
        assert_eq!(
            bio.paper.authors.first().map(String::as_str),
            Some("LAPALU, N.")
        );
        assert_eq!(bio.paper.authors.len(), 10);

        // medRxiv API: DOI keys, version, JATS residue removed.
        let med = paper(&store, "doi:10.64898/2026.09.13.26362948").await;
        assert_eq!(med.paper.authors[0], "Kumar, P.");
        assert_eq!(med.paper.categories, ["nephrology"]);
        assert_eq!(med.paper.version, Some(1));
        for p in store.list_papers(None).await.unwrap() {
            if p.paper.key.as_str().starts_with("doi:10.64898/") {
                for marker in ["O_ST_ABS", "C_ST_ABS", "O_LI", "C_LI", "O_SCPLOW"] {
                    assert!(
                        !p.paper.abstract_text.contains(marker),
                        "{marker} in {}",
                        p.paper.key
                    );
                }
            }
        }

        // Semantic Scholar: the arXiv id wins over the DOI as key; the DOI is kept.
        let swin = paper(&store, "arxiv:2103.14030").await;
        assert!(swin.paper.title.starts_with("Swin Transformer"));
        assert_eq!(
            swin.paper.doi.as_deref(),
            Some("10.1109/iccv48922.2021.00986")
        );

        // JSON Feed 1.1: the `&#8211;` escaped inside JSON decodes to a dash somewhere.
        assert!(
            all.iter().all(|p| !p.paper.title.contains("&#8211;")
                && !p.paper.abstract_text.contains("&#8211;"))
        );

        // Edge cases.
        for (file, expect) in EDGE_CASES {
            let rel = format!("edge-cases/{file}");
            check(&store, &server, &dir, &rel, FeedKind::Feed, expect).await;
        }
        // The feed with a bare `&` is stored whole, its link as meant, and its health says
        // it was repaired.
        let all = store.list_papers(None).await.unwrap();
        assert!(
            all.iter().any(|p| p
                .paper
                .links
                .abs
                .as_deref()
                .is_some_and(|l| l.contains("bad?foo=1&bar=2"))),
            "the bare & stays in the link"
        );
        let degraded: Vec<String> = store
            .list_feeds()
            .await
            .unwrap()
            .into_iter()
            .filter_map(|f| f.health.warning)
            .collect();
        assert!(
            degraded.iter().any(|w| w.contains("not well-formed")),
            "{degraded:?}"
        );
        // The encodings decode to the right characters.
        let titles: Vec<String> = store
            .list_papers(None)
            .await
            .unwrap()
            .into_iter()
            .map(|p| p.paper.title)
            .collect();
        let has = |needle: &str| titles.iter().any(|t| t.contains(needle));
        assert!(
            titles
                .iter()
                .any(|t| t.chars().any(|c| ('\u{0400}'..='\u{04FF}').contains(&c))),
            "windows-1251 gives Cyrillic"
        );
        assert!(
            titles
                .iter()
                .any(|t| t.chars().any(|c| ('\u{4E00}'..='\u{9FFF}').contains(&c))),
            "gb2312 gives CJK"
        );
        assert!(has("ZAŻÓŁĆ GĘSLĄ JAŹŃ"), "iso-8859-2 gives Polish letters");
        assert!(
            has("Glasfaserförderung"),
            "iso-8859-1 (RSS 1.0) gives German letters"
        );
        assert!(
            has("Revolução nas telas"),
            "iso-8859-1 (RSS 2.0) gives Portuguese letters"
        );

        store.close().await;
        TestDb::cleanup(db).await;
    }
}
