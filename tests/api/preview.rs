//! Seeing before subscribing, over real HTTP on SQLite and PostgreSQL: the live preview
//! and the preferences page show, for each query line, how many papers of the last 7 days
//! it finds and the best three (in the matching engine's order, linked, escaped), and
//! "Preview my next digest" shows what the next digest would hold, storing nothing.

use crate::helpers::{
    TestApp, Visitor, arxiv_paper, databases, quiet, spawn_app, store_full_papers,
};
use chrono::Utc;
use paperboy::config::Settings;
use paperboy::domain::token::Links;
use paperboy::domain::{QueryList, Subscriber};
use paperboy::matching::{Query, search};
use reqwest::StatusCode;
use serde_json::Value;

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

/// Five papers that `diffusion` finds (two in the title, one of them with markup and a
/// `javascript:` link, three only in the abstract, one much upvoted) and one it does not.
async fn store_recent_papers(app: &TestApp) {
    let mut hostile = arxiv_paper(
        "2411.00102",
        "Diffusion <img src=x onerror=alert(1)> tricks",
        "Diffusion in the abstract too.",
        None,
    );
    hostile.links.abs = Some("javascript:alert(1)".into());
    store_full_papers(
        &app.store,
        vec![
            arxiv_paper(
                "2411.00101",
                "Diffusion models for proteins",
                "We study diffusion for protein design.",
                None,
            ),
            hostile,
            arxiv_paper(
                "2411.00103",
                "Score matching",
                "A diffusion process.",
                Some(500),
            ),
            arxiv_paper("2411.00104", "Images", "Latent diffusion.", None),
            arxiv_paper("2411.00105", "Audio", "Diffusion for audio.", None),
            arxiv_paper("2411.00106", "Unrelated", "Nothing here.", None),
        ],
    )
    .await;
}

/// The matching engine's own best three for `q` over the stored papers, titles only: the
/// previews must show these, in this order, and never rank by themselves.
async fn engine_top_three(app: &TestApp, q: &str) -> Vec<String> {
    let papers: Vec<_> = app
        .store
        .list_papers(None)
        .await
        .unwrap()
        .into_iter()
        .map(|p| p.paper)
        .collect();
    search(&Query::parse(q).unwrap(), &papers)
        .iter()
        .take(3)
        .map(|h| h.paper.title.clone())
        .collect()
}

#[tokio::test]
async fn the_live_preview_gives_each_query_its_count_and_best_three_titles() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        store_recent_papers(&app).await;
        let mut v = Visitor::new(&app);
        let page = v.get("/preview?q=diffusion").await;
        assert_eq!(page.status, StatusCode::OK);
        let json: Value = serde_json::from_str(&page.body).unwrap();
        assert_eq!(json["ok"], true);
        assert_eq!(json["matches"], 5, "{}", db.backend);
        assert_eq!(json["papers"], 6);
        assert_eq!(json["days"], 7);
        let top = json["top"].as_array().unwrap();
        let titles: Vec<&str> = top.iter().map(|t| t["title"].as_str().unwrap()).collect();
        assert_eq!(titles, engine_top_three(&app, "diffusion").await);
        for t in top {
            let url = &t["url"];
            if t["title"].as_str().unwrap().contains("<img") {
                assert!(url.is_null(), "a javascript: link is never sent: {url}");
            } else {
                assert!(
                    url.as_str().unwrap().starts_with("https://arxiv.org/abs/"),
                    "{url}"
                );
            }
        }

        // A title as the feed wrote it (the page escapes it), and never a javascript: link.
        let json: Value = serde_json::from_str(&v.get("/preview?q=tricks").await.body).unwrap();
        assert_eq!(
            json["top"][0]["title"],
            "Diffusion <img src=x onerror=alert(1)> tricks"
        );
        assert!(json["top"][0]["url"].is_null(), "{json}");
        // A narrow query finds fewer; one that finds nothing has no titles.
        let json: Value =
            serde_json::from_str(&v.get("/preview?q=title%3Aprotein").await.body).unwrap();
        assert_eq!(json["matches"], 1);
        assert_eq!(json["top"][0]["title"], "Diffusion models for proteins");
        let json: Value = serde_json::from_str(&v.get("/preview?q=zebrafish").await.body).unwrap();
        assert_eq!(
            (
                json["matches"].as_u64(),
                json["top"].as_array().map(Vec::len)
            ),
            (Some(0), Some(0))
        );
        let json: Value = serde_json::from_str(&v.get("/preview?q=").await.body).unwrap();
        assert_eq!(json["ok"], false);
        assert!(json["error"].as_str().unwrap().contains("empty"), "{json}");
        app.stop().await;
        db.cleanup().await;
    }
}

/// A reader confirmed through the form whose queries are `queries`; their settings link.
async fn reader(
    app: &TestApp,
    v: &mut Visitor,
    email: &str,
    queries: &str,
) -> (Subscriber, String) {
    let link = v.subscribe_and_confirm(app, email).await;
    let reader = app.subscriber(email).await.unwrap();
    let mut preferences = reader.preferences.clone();
    preferences.queries = QueryList::parse(queries).unwrap();
    assert!(
        app.store
            .update_preferences(reader.id, &preferences, Utc::now())
            .await
            .unwrap()
    );
    (app.subscriber(email).await.unwrap(), link)
}

#[tokio::test]
async fn the_preferences_page_shows_each_query_lines_best_titles_without_a_script() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        store_recent_papers(&app).await;
        let mut v = Visitor::new(&app);
        let (_, link) = reader(
            &app,
            &mut v,
            "prefs@example.org",
            "diffusion\ntitle:protein\nzebrafish",
        )
        .await;
        let page = v.get(&link).await;
        assert_eq!(page.status, StatusCode::OK);
        let body = &page.body;
        let preview = &body[body.find("id=\"queries-preview\"").unwrap()..];
        let preview = &preview[..preview.find("id=\"queries-hint\"").unwrap()];
        assert!(
            preview.contains("diffusion: 5 of the 6 papers of the last 7 days"),
            "{preview}"
        );
        assert!(
            preview.contains("title:protein: 1 of the 6 papers"),
            "{preview}"
        );
        assert!(
            preview.contains("zebrafish: 0 of the 6 papers"),
            "{preview}"
        );
        // The best three, in the engine's order, each linked to its abstract page.
        let top = engine_top_three(&app, "diffusion").await;
        let mut at = 0;
        for title in &top {
            let shown = title.replace('<', "&#60;").replace('>', "&#62;");
            let found = preview[at..]
                .find(&shown)
                .unwrap_or_else(|| panic!("{shown} after {at}: {preview}"));
            at += found;
        }
        assert!(
            preview.contains(
                "<a href=\"https://arxiv.org/abs/2411.00101\">Diffusion models for proteins</a>"
            ),
            "{preview}"
        );
        assert!(
            !preview.contains("<img") && !preview.contains("javascript:"),
            "{preview}"
        );
        assert_eq!(
            preview.matches("<li>").count(),
            3 + 1,
            "three for diffusion, one for title:protein"
        );
        // "Preview my next digest" and the feed are linked from the page.
        let token = link.rsplit('/').next().unwrap();
        assert!(
            body.contains(&format!("href=\"/preferences/{token}/preview\"")),
            "{body}"
        );
        assert!(body.contains("Preview my next digest"));
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn preview_my_next_digest_shows_what_would_be_sent_and_records_nothing() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        let (before, link) = reader(&app, &mut v, "next@example.org", "diffusion").await;
        // Papers that arrive after confirmation are in the next digest's window.
        store_recent_papers(&app).await;
        let outbox_before = app.outbox_messages().len();

        let page = v.get(&format!("{link}/preview")).await;
        assert_eq!(page.status, StatusCode::OK, "{}", db.backend);
        let body = &page.body;
        assert!(
            body.contains("Your next digest, if it were sent now"),
            "{body}"
        );
        assert!(body.contains("5 new papers match your queries"), "{body}");
        // What `paperboy digest preview` renders, in its order.
        let links = app_links(&app).await;
        let (view, _) = paperboy::digest::preview(&app.store, &links, &before, Utc::now())
            .await
            .unwrap();
        assert_eq!(view.papers.len(), 5);
        let mut at = 0;
        for p in &view.papers {
            // The title as the page shows it: escaped, matched words highlighted.
            let shown = &p.title_html;
            at += body[at..]
                .find(shown.as_str())
                .unwrap_or_else(|| panic!("{shown}: {body}"));
        }
        assert!(body.contains("Matched: your query"), "{body}");
        assert!(body.contains("<mark>"), "the matched words are marked");
        assert!(!body.contains("<img"));

        // Nothing stored, nothing sent, the window where it was.
        assert!(app.store.digests_of(before.id).await.unwrap().is_empty());
        let after = app.subscriber("next@example.org").await.unwrap();
        assert_eq!(after.paper_cursor, before.paper_cursor);
        assert_eq!(after.last_window_end, before.last_window_end);
        assert_eq!(app.outbox_messages().len(), outbox_before);

        // Only the reader's own settings link opens it, and only while they get digests.
        let unsubscribe = links.unsubscribe(before.id, &before.link_key);
        let unsubscribe_token = unsubscribe.rsplit('/').next().unwrap();
        for path in [
            format!("/preferences/{}.AAAA/preview", before.id),
            format!("/preferences/{unsubscribe_token}/preview"),
        ] {
            assert_eq!(v.get(&path).await.status, StatusCode::NOT_FOUND, "{path}");
        }
        use paperboy::domain::SubscriberStatus::*;
        assert!(
            app.store
                .change_status(before.id, &[Active], Unsubscribed, Utc::now())
                .await
                .unwrap()
        );
        assert_eq!(
            v.get(&format!("{link}/preview")).await.status,
            StatusCode::NOT_FOUND
        );
        let page = v.get(&link).await;
        assert!(!page.body.contains("Preview my next digest"));
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_whole_queries_box_is_previewed_in_one_request_that_counts_once() {
    for db in databases().await {
        let app = spawn_app(&db, |s| {
            quiet(s);
            s.web.preview_per_ip_per_minute = 2;
        })
        .await;
        store_recent_papers(&app).await;
        let mut v = Visitor::new(&app);
        let page = v
            .get("/preview?lines=diffusion%0A%0A%20%22unclosed%0Azebrafish%0Atitle%3Aprotein")
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let json: Value = serde_json::from_str(&page.body).unwrap();
        let lines = json["lines"].as_array().expect("one answer per line");
        let queries: Vec<&str> = lines.iter().map(|l| l["query"].as_str().unwrap()).collect();
        assert_eq!(
            queries,
            ["diffusion", "\"unclosed", "zebrafish", "title:protein"],
            "blank lines skipped, in order"
        );
        assert_eq!(
            lines.iter().map(|l| l["ok"].clone()).collect::<Vec<_>>(),
            [true, false, true, true]
        );
        assert!(
            lines[1]["error"]
                .as_str()
                .unwrap()
                .contains("unclosed quote")
        );
        assert_eq!(lines[2]["matches"], 0);
        assert_eq!(lines[3]["matches"], 1);
        // A line of the box gets what it would get alone.
        let alone: Value = serde_json::from_str(&v.get("/preview?q=diffusion").await.body).unwrap();
        let mut first = lines[0].clone();
        first.as_object_mut().unwrap().remove("query");
        assert_eq!(first, alone);

        // Two requests a minute: the third is refused, with when to come back.
        let page = v.get("/preview?lines=diffusion").await;
        assert_eq!(page.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(page.headers.contains_key("retry-after"));
        app.stop().await;
        db.cleanup().await;
    }
}
