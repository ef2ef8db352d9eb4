//! The reader's personal Atom feed over real HTTP, on SQLite and PostgreSQL: linked from
//! every digest email and the preferences page, it lists the papers of their digests of
//! the last 30 days, newest digest first and best first within one, with why each
//! matched; it parses in feed-rs and in Python's feedparser, and every link that is not
//! exactly the reader's own feed link is a plain 404.

use std::path::Path;
use std::process::Command;

use crate::helpers::{
    TestApp, Visitor, active_subscriber, arxiv_paper, base64_parts, databases, link_starting,
    links_labelled, pending_subscriber, quiet, run_due_digests, spawn_app, store_full_papers,
    tomorrow,
};
use chrono::{Duration, Utc};
use paperboy::config::{DeliverySettings, Settings};
use paperboy::delivery::{Mailer, Worker};
use paperboy::domain::token::Links;
use paperboy::domain::{QueryList, Subscriber, SubscriberStatus};
use reqwest::StatusCode;

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| v == "true" || v == "1")
}

fn outbox_mailer(dir: &Path) -> Mailer {
    Mailer::from_settings(&Settings {
        outbox_dir: dir.to_path_buf(),
        ..Settings::default()
    })
    .unwrap()
}

/// The links the running app signs (same base URL, same secret from its database).
async fn app_links(app: &TestApp) -> Links {
    paperboy::app::links_for(
        &Settings {
            base_url: app.base.clone(),
            ..Settings::default()
        },
        &app.store,
    )
    .await
    .unwrap()
}

/// A reader with two queries, and two digests: four papers in the first (one with markup
/// in its title), one in the second. Returns the reader, their feed link as the text part
/// of the second digest email gives it, and the titles in the order the feed must list
/// them.
async fn reader_with_two_digests(app: &TestApp, outbox: &Path) -> (Subscriber, String) {
    let store = &app.store;
    let reader = active_subscriber(store, "feed@example.org", "diffusion", "daily", 8, "UTC").await;
    let mut preferences = reader.preferences.clone();
    preferences.queries = QueryList::parse("diffusion\ntitle:protein").unwrap();
    assert!(
        store
            .update_preferences(reader.id, &preferences, Utc::now())
            .await
            .unwrap()
    );
    store_full_papers(
        store,
        vec![
            arxiv_paper(
                "2411.00001",
                "Diffusion models for proteins",
                "We study diffusion for protein design.",
                Some(3),
            ),
            arxiv_paper(
                "2411.00002",
                "<b>Diffusion</b> & \"friends\"",
                "An abstract with <script>alert(1)</script> in it.",
                None,
            ),
            arxiv_paper(
                "2411.00003",
                "Score matching for images",
                "A diffusion process over pixels.",
                None,
            ),
            arxiv_paper("2411.00004", "Unrelated work", "Nothing to see.", None),
        ],
    )
    .await;
    let mailer = outbox_mailer(outbox);
    let first = run_due_digests(store, &mailer, tomorrow()).await;
    assert_eq!(first.composed, 1);
    store_full_papers(
        store,
        vec![arxiv_paper(
            "2411.00005",
            "Protein language models",
            "Sequences at scale.",
            None,
        )],
    )
    .await;
    let second = run_due_digests(store, &mailer, tomorrow() + Duration::days(2)).await;
    assert_eq!(second.composed, 1);
    let links = app_links(app).await;
    let worker = Worker::new(
        store.clone(),
        mailer,
        links,
        DeliverySettings {
            messages_per_second: 1000,
            ..DeliverySettings::default()
        },
    );
    let report = worker.drain().await.unwrap();
    assert_eq!(report.sent, 2);
    let messages = crate::helpers::outbox_messages(outbox);
    assert_eq!(messages.len(), 2);
    let mut feed_links = Vec::new();
    for message in &messages {
        let parts = base64_parts(message);
        let (text, html) = (&parts[0], &parts[1]);
        let link = links_labelled(text, "Your papers as an Atom feed:")
            .pop()
            .expect("a feed link in the text footer");
        assert!(
            html.contains(&format!("<a href=\"{link}\"")),
            "the HTML footer links the same feed"
        );
        feed_links.push(link);
    }
    assert_eq!(feed_links[0], feed_links[1], "one feed per reader");
    (reader, feed_links.remove(0))
}

/// The titles of the reader's digests, newest digest first, best first within one.
async fn titles_in_digest_order(app: &TestApp, reader: &Subscriber) -> Vec<String> {
    let mut titles = Vec::new();
    for digest in app.store.digests_of(reader.id).await.unwrap() {
        for entry in app.store.digest_entries(digest.id, None).await.unwrap() {
            titles.push(entry.paper.paper.title);
        }
    }
    titles
}

async fn get(url: &str, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut req = reqwest::Client::new().get(url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    req.send().await.unwrap()
}

#[tokio::test]
async fn the_feed_lists_the_papers_sent_newest_digest_first_with_why_each_matched() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let outbox = tempfile::tempdir().unwrap();
        let (reader, feed_url) = reader_with_two_digests(&app, outbox.path()).await;
        assert!(
            feed_url.starts_with(&app.url(&format!("/feeds/{}.atom?t=", reader.id))),
            "{feed_url}"
        );

        let response = get(&feed_url, &[]).await;
        assert_eq!(response.status(), StatusCode::OK, "{}", db.backend);
        assert_eq!(
            response.headers()["content-type"],
            "application/atom+xml; charset=utf-8"
        );
        let etag = response.headers()["etag"].to_str().unwrap().to_string();
        let body = response.text().await.unwrap();
        assert!(!body.contains("<b>") && !body.contains("<script"), "{body}");
        assert!(
            !body.contains("feed@example.org"),
            "the address is not in the feed"
        );

        let feed = feed_rs::parser::parse(body.as_bytes()).expect("feed-rs parses the feed");
        assert_eq!(feed.feed_type, feed_rs::model::FeedType::Atom);
        assert_eq!(
            feed.title.as_ref().map(|t| t.content.as_str()),
            Some("Your paperboy papers")
        );
        assert!(feed.links.iter().any(|l| l.href == feed_url), "self link");
        let titles: Vec<String> = feed
            .entries
            .iter()
            .map(|e| e.title.as_ref().unwrap().content.clone())
            .collect();
        // Three of the first digest's papers matched, and the second digest's one paper;
        // the newest digest comes first.
        assert_eq!(titles, titles_in_digest_order(&app, &reader).await);
        assert_eq!(titles.len(), 4, "{titles:?}");
        assert_eq!(titles[0], "Protein language models");
        assert!(titles.contains(&"<b>Diffusion</b> & \"friends\"".to_string()));
        assert!(!titles.contains(&"Unrelated work".to_string()));

        let first = &feed.entries[0];
        assert_eq!(first.links[0].href, "https://arxiv.org/abs/2411.00005");
        let names: Vec<&str> = first
            .authors
            .iter()
            .map(|a| a.name.as_deref().unwrap_or(""))
            .collect();
        assert_eq!(names, ["Ada Lovelace", "Alan Turing"]);
        assert!(first.updated.is_some());
        let summary = &first.summary.as_ref().unwrap().content;
        assert!(summary.contains("Sequences at scale."), "{summary}");
        assert!(
            summary.contains("Matched: your query \u{201c}title:protein\u{201d} in title"),
            "{summary}"
        );
        assert!(
            summary.contains("Chosen for your query \u{201c}title:protein\u{201d}"),
            "the query that won it its place: {summary}"
        );
        let both = feed
            .entries
            .iter()
            .find(|e| e.title.as_ref().unwrap().content == "Diffusion models for proteins")
            .unwrap();
        let summary = &both.summary.as_ref().unwrap().content;
        assert!(
            summary.contains("\u{201c}diffusion\u{201d}")
                && summary.contains("\u{201c}title:protein\u{201d}"),
            "both queries are named: {summary}"
        );
        let ids: std::collections::HashSet<&str> =
            feed.entries.iter().map(|e| e.id.as_str()).collect();
        assert_eq!(ids.len(), 4, "one id per paper");
        assert!(ids.iter().all(|id| id.starts_with("tag:")), "{ids:?}");

        // The same feed again: the same ids, and a poll with its ETag gets 304.
        let again = get(&feed_url, &[]).await.text().await.unwrap();
        assert_eq!(again, body);
        let polled = get(&feed_url, &[("if-none-match", &etag)]).await;
        assert_eq!(polled.status(), StatusCode::NOT_MODIFIED);

        // The preferences page links the very same feed.
        let links = app_links(&app).await;
        let mut v = Visitor::new(&app);
        let page = v.get(&links.preferences(reader.id, &reader.link_key)).await;
        assert_eq!(page.status, StatusCode::OK);
        let linked = link_starting(&page.body, &app.url("/feeds/")).expect("a feed link");
        assert_eq!(linked, feed_url);
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn only_the_readers_own_feed_link_opens_the_feed_and_only_while_they_get_digests() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let links = app_links(&app).await;
        let store = &app.store;
        let reader =
            active_subscriber(store, "own@example.org", "diffusion", "daily", 8, "UTC").await;
        let other =
            active_subscriber(store, "other@example.org", "diffusion", "daily", 8, "UTC").await;
        let feed = links.feed(reader.id, &reader.link_key);
        assert_eq!(get(&feed, &[]).await.status(), StatusCode::OK);

        let token = feed.split("?t=").nth(1).unwrap();
        let preferences_token = links
            .preferences(reader.id, &reader.link_key)
            .rsplit('/')
            .next()
            .unwrap()
            .to_string();
        let other_token = links
            .feed(other.id, &other.link_key)
            .split("?t=")
            .nth(1)
            .unwrap()
            .to_string();
        let id = reader.id;
        let wrong = [
            format!("/feeds/{id}.atom"),
            format!("/feeds/{id}.atom?t="),
            format!("/feeds/{id}.atom?t=garbage"),
            format!("/feeds/{id}.atom?t={id}.AAAA"),
            // A link signed for another purpose, or for another reader.
            format!("/feeds/{id}.atom?t={preferences_token}"),
            format!("/feeds/{id}.atom?t={other_token}"),
            format!("/feeds/{}.atom?t={token}", other.id),
            format!("/feeds/{}.atom?t={token}", id + 1000),
            format!("/feeds/{id}.rss?t={token}"),
            format!("/feeds/{id}?t={token}"),
        ];
        for path in &wrong {
            let response = get(&app.url(path), &[]).await;
            assert_eq!(response.status(), StatusCode::NOT_FOUND, "{path}");
            assert!(!response.text().await.unwrap().contains("<feed"), "{path}");
        }

        // Paused readers keep their feed; unsubscribed and pending ones have none.
        let now = Utc::now();
        use SubscriberStatus::*;
        assert!(
            store
                .change_status(id, &[Active], Paused, now)
                .await
                .unwrap()
        );
        assert_eq!(get(&feed, &[]).await.status(), StatusCode::OK);
        assert!(
            store
                .change_status(id, &[Paused], Unsubscribed, now)
                .await
                .unwrap()
        );
        assert_eq!(get(&feed, &[]).await.status(), StatusCode::NOT_FOUND);
        pending_subscriber(store, "pending@example.org", "diffusion", "daily", 8, "UTC").await;
        let pending = app.subscriber("pending@example.org").await.unwrap();
        let pending_feed = links.feed(pending.id, &pending.link_key);
        assert_eq!(
            get(&pending_feed, &[]).await.status(),
            StatusCode::NOT_FOUND
        );
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_feed_holds_only_digests_whose_window_ended_since_the_cut() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let mailer = outbox_mailer(dir.path());
        let reader =
            active_subscriber(&store, "cut@example.org", "diffusion", "daily", 8, "UTC").await;
        store_full_papers(
            &store,
            vec![arxiv_paper("2411.00011", "Diffusion one", "x", None)],
        )
        .await;
        let early = tomorrow();
        run_due_digests(&store, &mailer, early).await;
        store_full_papers(
            &store,
            vec![
                arxiv_paper("2411.00012", "Diffusion two", "x", None),
                arxiv_paper("2411.00013", "Diffusion three", "x", None),
            ],
        )
        .await;
        let late = early + Duration::days(3);
        run_due_digests(&store, &mailer, late).await;
        let titles = |since, limit| {
            let store = store.clone();
            async move {
                store
                    .sent_entries(reader.id, since, limit)
                    .await
                    .unwrap()
                    .into_iter()
                    .map(|e| e.entry.paper.paper.title)
                    .collect::<Vec<_>>()
            }
        };
        let all = titles(early - Duration::days(1), 100).await;
        assert_eq!(all.len(), 3, "{}", db.backend);
        assert_eq!(all[2], "Diffusion one", "the older digest comes last");
        // A window that ended exactly at the cut is in; one before it is out.
        assert_eq!(titles(early, 100).await.len(), 3);
        assert_eq!(titles(early + Duration::days(1), 100).await, all[..2]);
        assert_eq!(titles(early - Duration::days(1), 1).await, all[..1]);
        assert!(titles(late + Duration::seconds(1), 100).await.is_empty());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_served_feed_parses_in_python_feedparser() {
    let importable = Command::new("python3")
        .args(["-c", "import feedparser"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !importable {
        assert!(
            !in_ci(),
            "CI=true but Python's feedparser is not installed (pip install feedparser)"
        );
        eprintln!("skipped: Python's feedparser is not installed");
        return;
    }
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let outbox = tempfile::tempdir().unwrap();
        let (reader, feed_url) = reader_with_two_digests(&app, outbox.path()).await;
        let body = get(&feed_url, &[]).await.text().await.unwrap();
        let mut entries = Vec::new();
        for digest in app.store.digests_of(reader.id).await.unwrap() {
            for entry in app.store.digest_entries(digest.id, None).await.unwrap() {
                let query = entry.explanation.queries[0].query.clone();
                entries.push(serde_json::json!({
                    "title": entry.paper.paper.title,
                    "link": entry.paper.paper.links.abs,
                    "matched": format!("your query \u{201c}{query}\u{201d}"),
                }));
            }
        }
        let expected = serde_json::json!({
            "title": "Your paperboy papers",
            "self": feed_url,
            "entries": entries,
        });
        let dir = tempfile::tempdir().unwrap();
        let feed_file = dir.path().join("feed.xml");
        let expected_file = dir.path().join("expected.json");
        std::fs::write(&feed_file, &body).unwrap();
        std::fs::write(&expected_file, expected.to_string()).unwrap();
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/feeds/check_atom.py");
        let out = Command::new("python3")
            .arg(&script)
            .arg(&feed_file)
            .arg(&expected_file)
            .output()
            .unwrap();
        let said = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{}: {said}{}",
            db.backend,
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(said.contains("feedparser: 4 entries ok"), "{said}");
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_feed_leaves_out_the_suggestions_outside_the_readers_queries() {
    use paperboy::store::{DigestEntry, NewDigest};
    for db in databases().await {
        let store = db.store().await;
        let reader =
            active_subscriber(&store, "tips@example.org", "diffusion", "daily", 8, "UTC").await;
        store_full_papers(
            &store,
            vec![
                arxiv_paper("2411.00021", "Diffusion matched", "x", None),
                arxiv_paper("2411.00022", "A suggestion", "y", None),
            ],
        )
        .await;
        let upto = store.max_paper_id().await.unwrap();
        let entry = |paper_id, suggested| DigestEntry {
            paper_id,
            score: 1.0,
            explanation: Default::default(),
            suggested,
        };
        let entries = [entry(upto - 1, false), entry(upto, true)];
        let saved = store
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
                    message_id: "tips@example.org",
                },
                Utc::now(),
            )
            .await
            .unwrap();
        assert!(saved.is_some(), "{}", db.backend);
        let sent = store
            .sent_entries(reader.id, Utc::now() - Duration::days(30), 100)
            .await
            .unwrap();
        let titles: Vec<&str> = sent
            .iter()
            .map(|e| e.entry.paper.paper.title.as_str())
            .collect();
        assert_eq!(titles, ["Diffusion matched"], "{}", db.backend);
        db.cleanup().await;
    }
}
