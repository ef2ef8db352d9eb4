//! "More / less like this" on SQLite and PostgreSQL: the buttons of a digest's page over
//! real HTTP (from a digest composed and delivered into the outbox, through the links of
//! its email), the list on the settings page, and `paperboy subscribers rate`; and every
//! rule that protects them: the form token and its cookie, the digest's signed link, only
//! the digest's own papers, a per-client limit, and no GET that records anything.

use std::path::Path;
use std::process::Output;

use crate::helpers::{
    Page, TestApp, TestDb, Visitor, active_subscriber, arxiv_paper, databases, deliver_due_digests,
    digest_text_to, hidden_csrf, links_labelled, paper, paperboy_on, quiet, spawn_app,
    store_full_papers, tomorrow,
};
use chrono::Utc;
use paperboy::config::Settings;
use paperboy::digest::taste;
use paperboy::domain::{Rating, RatingSource, Subscriber};
use paperboy::store::Store;
use reqwest::StatusCode;

const READER: &str = "rater@example.org";

/// A reader of "diffusion" whose first digest (three papers) was delivered, as its email
/// gives it: each paper's entry on the digest's page and the settings link.
struct Reader {
    app: TestApp,
    subscriber: Subscriber,
    /// `/digests/{id}?t=…#paper-{paper}` of each paper, in email order.
    entries: Vec<String>,
    /// The paper ids of those entries.
    papers: Vec<i64>,
    preferences: String,
    /// A paper the store holds that is in no digest of the reader.
    elsewhere: i64,
}

async fn reader_with_a_digest(db: &TestDb, tweak: impl FnOnce(&mut Settings)) -> Reader {
    let app = spawn_app(db, |s| {
        quiet(s);
        tweak(s);
    })
    .await;
    let subscriber = active_subscriber(&app.store, READER, "diffusion", "daily", 8, "UTC").await;
    store_full_papers(
        &app.store,
        vec![
            arxiv_paper("2412.00001", "Diffusion for proteins", "diffusion", Some(9)),
            arxiv_paper("2412.00002", "Diffusion on graphs", "diffusion", Some(5)),
            arxiv_paper("2412.00003", "Diffusion in the wild", "diffusion", None),
            arxiv_paper("2412.00004", "Graph networks", "message passing", None),
        ],
    )
    .await;
    assert_eq!(deliver_due_digests(&app, tomorrow()).await, 1);
    let text = digest_text_to(&app, READER);
    let entries = links_labelled(&text, "More or less like this: ");
    assert_eq!(entries.len(), 3, "{text}");
    let papers = entries
        .iter()
        .map(|e| {
            let (_, id) = e.rsplit_once("#paper-").expect("an entry anchor");
            id.parse().expect("a paper id")
        })
        .collect();
    let preferences = links_labelled(&text, "Change your queries or settings: ").remove(0);
    let elsewhere = paper(&app.store, "arxiv:2412.00004").await.id;
    Reader {
        app,
        subscriber,
        entries,
        papers,
        preferences,
        elsewhere,
    }
}

impl Reader {
    /// The digest's page, without the entry's anchor.
    fn page(&self) -> String {
        self.entries[0]
            .split_once('#')
            .map(|(page, _)| page.to_string())
            .expect("an anchor")
    }

    async fn ratings(&self) -> Vec<(i64, Rating, RatingSource)> {
        ratings_of(&self.app.store, self.subscriber.id).await
    }
}

async fn ratings_of(store: &Store, subscriber_id: i64) -> Vec<(i64, Rating, RatingSource)> {
    store
        .ratings_of(subscriber_id)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.paper_id, r.rating, r.source))
        .collect()
}

/// Where the rating forms of a page post (the first `action="…"` after `marker`).
fn form_action(body: &str, marker: &str) -> String {
    let at = body.find(marker).unwrap_or_else(|| panic!("no {marker}"));
    let rest = &body[at..];
    let start = rest.find("action=\"").expect("a form action") + "action=\"".len();
    rest[start..]
        .split('"')
        .next()
        .unwrap()
        .replace("&#38;", "&")
        .replace("&amp;", "&")
}

/// A visitor who opened the digest's page: the form's action and token.
async fn open_page(v: &mut Visitor, reader: &Reader) -> (String, String) {
    let page = v.get(&reader.entries[0]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    (
        form_action(&page.body, "class=\"rate\""),
        hidden_csrf(&page.body),
    )
}

/// The settings page's list of ratings.
fn ratings_section(body: &str) -> &str {
    let at = body
        .find("id=\"ratings\"")
        .unwrap_or_else(|| panic!("no ratings section: {body}"));
    let rest = &body[at..];
    &rest[..rest.find("</section>").expect("end of the section")]
}

/// Presses a rating button of the digest's page.
async fn rate_as(
    v: &mut Visitor,
    action: &str,
    csrf: &str,
    paper: i64,
    choice: &str,
    headers: &[(&str, &str)],
) -> Page {
    let paper = paper.to_string();
    v.post(
        action,
        &[("csrf", csrf), ("paper", &paper), ("action", choice)],
        headers,
    )
    .await
}

fn location(page: &Page) -> String {
    page.headers["location"].to_str().unwrap().to_string()
}

/// The HTML of one paper's entry on a digest's page.
fn entry(body: &str, paper_id: i64) -> &str {
    let at = body
        .find(&format!("id=\"paper-{paper_id}\""))
        .unwrap_or_else(|| panic!("no entry for paper {paper_id}"));
    let rest = &body[at..];
    &rest[..rest.find("</li>").expect("end of entry")]
}

#[tokio::test]
async fn a_paper_is_rated_from_its_digest_page_and_the_page_says_so() {
    for db in databases().await {
        let reader = reader_with_a_digest(&db, |_| {}).await;
        let mut v = Visitor::new(&reader.app);
        let (action, csrf) = open_page(&mut v, &reader).await;
        let [first, second, _] = reader.papers[..] else {
            panic!("three papers")
        };
        assert!(action.starts_with("/digests/"), "{action}");
        assert!(action.contains("/rate?t="), "{action}");

        let page = rate_as(&mut v, &action, &csrf, first, "more", &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let back = location(&page);
        assert_eq!(
            reader.app.url(&back),
            reader.entries[0],
            "back to the paper's entry"
        );
        assert_eq!(
            reader.ratings().await,
            [(first, Rating::More, RatingSource::Digest)],
            "{}",
            db.backend
        );

        let page = v.get(&back).await;
        assert_eq!(page.status, StatusCode::OK);
        let rated = entry(&page.body, first);
        assert!(rated.contains("You marked this more like this."), "{rated}");
        assert!(rated.contains("value=\"remove\""), "{rated}");
        assert!(
            !rated.contains(">More like this<"),
            "no second 'more' button: {rated}"
        );
        let unrated = entry(&page.body, second);
        assert!(!unrated.contains("You marked this"), "{unrated}");
        assert!(unrated.contains(">More like this<") && unrated.contains(">Less like this<"));

        // Changing one's mind replaces the rating; Undo takes it back.
        let csrf = hidden_csrf(&page.body);
        let page = rate_as(&mut v, &action, &csrf, first, "less", &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(
            reader.ratings().await,
            [(first, Rating::Less, RatingSource::Digest)]
        );
        let page = v.get(&location(&page)).await;
        assert!(entry(&page.body, first).contains("You marked this less like this."));
        let page = rate_as(&mut v, &action, &csrf, first, "remove", &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(reader.ratings().await.is_empty(), "{}", db.backend);
        reader.app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_rating_without_the_form_token_and_its_cookie_is_refused_and_records_nothing() {
    for db in databases().await {
        let reader = reader_with_a_digest(&db, |_| {}).await;
        let mut v = Visitor::new(&reader.app);
        let (action, csrf) = open_page(&mut v, &reader).await;
        let paper = reader.papers[0];
        // No cookie: a page's token alone is not enough.
        let mut stranger = Visitor::new(&reader.app);
        let refused = [
            (
                "token without its cookie",
                rate_as(&mut stranger, &action, &csrf, paper, "more", &[]).await,
            ),
            (
                "no token",
                rate_as(&mut v, &action, "", paper, "more", &[]).await,
            ),
            (
                "forged token",
                rate_as(&mut v, &action, &"A".repeat(43), paper, "more", &[]).await,
            ),
            (
                "another site's page",
                rate_as(
                    &mut v,
                    &action,
                    &csrf,
                    paper,
                    "more",
                    &[("origin", "https://evil.example")],
                )
                .await,
            ),
            (
                "a cross-site post",
                rate_as(
                    &mut v,
                    &action,
                    &csrf,
                    paper,
                    "more",
                    &[("sec-fetch-site", "cross-site")],
                )
                .await,
            ),
        ];
        for (case, page) in &refused {
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{case}: {}", page.body);
        }
        assert!(reader.ratings().await.is_empty(), "{}", db.backend);

        // The settings page's removals follow the same rules.
        taste::rate(
            &reader.app.store,
            reader.subscriber.id,
            &[reader.papers[0]],
            Rating::More,
            RatingSource::Operator,
            Utc::now(),
        )
        .await
        .unwrap();
        let remove = format!("{}/ratings", reader.preferences);
        for (case, page) in [
            (
                "no token",
                v.post(&remove, &[("action", "remove-all")], &[]).await,
            ),
            (
                "token without its cookie",
                stranger
                    .post(&remove, &[("csrf", &csrf), ("action", "remove-all")], &[])
                    .await,
            ),
        ] {
            assert_eq!(page.status, StatusCode::FORBIDDEN, "{case}: {}", page.body);
        }
        assert_eq!(reader.ratings().await.len(), 1, "{}", db.backend);
        reader.app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_wrong_digest_link_is_a_404_and_records_nothing() {
    for db in databases().await {
        let reader = reader_with_a_digest(&db, |_| {}).await;
        let mut v = Visitor::new(&reader.app);
        let (action, csrf) = open_page(&mut v, &reader).await;
        let (path, _) = action.split_once('?').unwrap();
        let paper = reader.papers[0].to_string();
        let fields = [
            ("csrf", csrf.as_str()),
            ("paper", paper.as_str()),
            ("action", "more"),
        ];
        // Another reader's digest: a link signed for it does not open this one.
        let other = active_subscriber(
            &reader.app.store,
            "other@example.org",
            "diffusion",
            "daily",
            8,
            "UTC",
        )
        .await;
        store_full_papers(
            &reader.app.store,
            vec![arxiv_paper(
                "2412.00009",
                "Diffusion again",
                "diffusion",
                None,
            )],
        )
        .await;
        assert_eq!(
            deliver_due_digests(&reader.app, tomorrow() + chrono::Duration::days(1)).await,
            2
        );
        let theirs = links_labelled(
            &digest_text_to(&reader.app, "other@example.org"),
            "View in browser: ",
        )
        .remove(0);
        let (_, their_token) = theirs.split_once("?t=").unwrap();
        for (case, url) in [
            ("a broken token", format!("{path}?t=1.AAAA")),
            ("no token", path.to_string()),
            ("another digest's token", format!("{path}?t={their_token}")),
            (
                "a digest that does not exist",
                format!("/digests/999999/rate?t={their_token}"),
            ),
        ] {
            let page = v.post(&url, &fields, &[]).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{case}: {}", page.body);
        }
        // A settings link that does not check out.
        let page = v
            .post(
                "/preferences/1.AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA/ratings",
                &[("csrf", csrf.as_str()), ("action", "remove-all")],
                &[],
            )
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        assert!(reader.ratings().await.is_empty(), "{}", db.backend);
        assert!(
            ratings_of(&reader.app.store, other.id).await.is_empty(),
            "{}",
            db.backend
        );
        reader.app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn only_a_paper_of_that_digest_can_be_rated() {
    for db in databases().await {
        let reader = reader_with_a_digest(&db, |_| {}).await;
        let mut v = Visitor::new(&reader.app);
        let (action, csrf) = open_page(&mut v, &reader).await;
        let elsewhere = reader.elsewhere.to_string();
        let in_digest = reader.papers[0].to_string();
        for (case, paper, choice, says) in [
            (
                "a stored paper of no digest",
                elsewhere.as_str(),
                "more",
                "not in this digest",
            ),
            ("no such paper", "999999", "less", "not in this digest"),
            ("not a paper id", "arxiv:2412.00001", "more", "which paper"),
            ("no paper", "", "more", "which paper"),
            ("no choice", in_digest.as_str(), "", "More like this"),
            (
                "an unknown choice",
                in_digest.as_str(),
                "love",
                "More like this",
            ),
        ] {
            let page = v
                .post(
                    &action,
                    &[("csrf", &csrf), ("paper", paper), ("action", choice)],
                    &[],
                )
                .await;
            assert_eq!(
                page.status,
                StatusCode::BAD_REQUEST,
                "{case}: {}",
                page.body
            );
            assert!(page.body.contains(says), "{case}: {}", page.body);
            assert!(page.body.contains("Nothing was changed"), "{case}");
        }
        assert!(reader.ratings().await.is_empty(), "{}", db.backend);
        reader.app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_get_never_records_or_removes_a_rating() {
    for db in databases().await {
        let reader = reader_with_a_digest(&db, |_| {}).await;
        let mut v = Visitor::new(&reader.app);
        let (action, _) = open_page(&mut v, &reader).await;
        let paper = reader.papers[0];
        let extra = format!("&paper={paper}&action=more&rating=more");

        // What a mail filter or a prefetching browser might follow.
        let rate_url = reader.app.url(&format!("{action}{extra}"));
        let page = v.get(&rate_url).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(
            reader.app.url(&location(&page)),
            reader.page(),
            "a GET only leads to the page"
        );
        let head = v.http.head(&rate_url).send().await.unwrap();
        assert!(head.status().is_redirection(), "{}", head.status());
        let page = v.get(&format!("{}{extra}", reader.page())).await;
        assert_eq!(page.status, StatusCode::OK);
        let page = v.get(&format!("{}#paper-{paper}", reader.entries[0])).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(reader.ratings().await.is_empty(), "{}", db.backend);

        // Nor does a GET of the settings page's removal address remove anything.
        taste::rate(
            &reader.app.store,
            reader.subscriber.id,
            &[paper],
            Rating::More,
            RatingSource::Digest,
            Utc::now(),
        )
        .await
        .unwrap();
        let remove = format!("{}/ratings?action=remove-all", reader.preferences);
        let page = v.get(&remove).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert_eq!(
            location(&page),
            reader.preferences.replace(&reader.app.base, "")
        );
        assert_eq!(
            reader.ratings().await,
            [(paper, Rating::More, RatingSource::Digest)],
            "{}",
            db.backend
        );
        reader.app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_settings_page_lists_ratings_newest_first_and_removes_one_or_all() {
    for db in databases().await {
        let reader = reader_with_a_digest(&db, |_| {}).await;
        let mut v = Visitor::new(&reader.app);
        let page = v.get(&reader.preferences).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(ratings_section(&page.body).contains("None yet."));

        let (action, csrf) = open_page(&mut v, &reader).await;
        let [first, second, third] = reader.papers[..] else {
            panic!("three papers")
        };
        for (paper, choice) in [(first, "more"), (second, "less")] {
            let page = rate_as(&mut v, &action, &csrf, paper, choice, &[]).await;
            assert_eq!(page.status, StatusCode::SEE_OTHER);
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        taste::rate(
            &reader.app.store,
            reader.subscriber.id,
            &[third],
            Rating::More,
            RatingSource::Operator,
            Utc::now(),
        )
        .await
        .unwrap();

        let page = v.get(&reader.preferences).await;
        let list = ratings_section(&page.body);
        let titles = [
            "Diffusion in the wild",
            "Diffusion on graphs",
            "Diffusion for proteins",
        ];
        let at: Vec<usize> = titles
            .iter()
            .map(|t| {
                list.find(t)
                    .unwrap_or_else(|| panic!("{t} not listed: {list}"))
            })
            .collect();
        assert!(at.windows(2).all(|w| w[0] < w[1]), "newest first: {list}");
        assert!(
            list.contains("href=\"https://arxiv.org/abs/2412.00001\""),
            "{list}"
        );
        assert_eq!(list.matches("more like this").count(), 2, "{list}");
        assert_eq!(list.matches("less like this").count(), 1, "{list}");
        assert_eq!(list.matches("on a digest&#39;s page").count(), 2, "{list}");
        assert!(list.contains("by the operator"), "{list}");
        assert!(
            list.contains("UTC"),
            "when, in the reader's time zone: {list}"
        );

        let remove = form_action(list, "class=\"rating");
        assert_eq!(
            remove,
            reader.preferences.replace(&reader.app.base, "") + "/ratings"
        );
        let csrf = hidden_csrf(&page.body);
        let page = v
            .post(
                &remove,
                &[
                    ("csrf", &csrf),
                    ("paper", &second.to_string()),
                    ("action", "remove"),
                ],
                &[],
            )
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        assert_eq!(location(&page), remove.replace("/ratings", "#ratings"));
        let left: Vec<i64> = reader.ratings().await.into_iter().map(|r| r.0).collect();
        assert_eq!(left, [third, first], "{}", db.backend);
        let page = v.get(&reader.preferences).await;
        let list = ratings_section(&page.body);
        assert!(!list.contains("Diffusion on graphs"), "{list}");
        assert!(list.contains("Diffusion for proteins"), "{list}");

        let page = v
            .post(&remove, &[("csrf", &csrf), ("action", "remove-all")], &[])
            .await;
        assert_eq!(page.status, StatusCode::SEE_OTHER);
        assert!(reader.ratings().await.is_empty(), "{}", db.backend);
        let page = v.get(&reader.preferences).await;
        assert!(ratings_section(&page.body).contains("None yet."));
        reader.app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn ratings_are_limited_per_client() {
    let db = TestDb::sqlite().await;
    let reader = reader_with_a_digest(&db, |s| s.web.ratings_per_ip_per_minute = 2).await;
    let mut v = Visitor::new(&reader.app);
    let (action, csrf) = open_page(&mut v, &reader).await;
    let mut statuses = Vec::new();
    for paper in &reader.papers {
        let page = rate_as(&mut v, &action, &csrf, *paper, "more", &[]).await;
        statuses.push(page.status);
        if page.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(page.headers.contains_key("retry-after"));
        }
    }
    assert_eq!(
        statuses,
        [
            StatusCode::SEE_OTHER,
            StatusCode::SEE_OTHER,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    assert_eq!(reader.ratings().await.len(), 2);
    reader.app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_suggested_paper_can_be_rated_like_the_matches() {
    for db in databases().await {
        let reader = reader_with_a_digest(&db, |_| {}).await;
        let store = &reader.app.store;
        // Five papers the reader liked, all on protein folding.
        let liked: Vec<_> = (1..=5)
            .map(|i| {
                arxiv_paper(
                    &format!("2412.0010{i}"),
                    &format!("Protein folding with diffusion, part {i}"),
                    "protein folding structure prediction with diffusion",
                    None,
                )
            })
            .collect();
        store_full_papers(store, liked).await;
        let mut liked_ids = Vec::new();
        for i in 1..=5 {
            liked_ids.push(paper(store, &format!("arxiv:2412.0010{i}")).await.id);
        }
        taste::rate(
            store,
            reader.subscriber.id,
            &liked_ids,
            Rating::More,
            RatingSource::Operator,
            Utc::now(),
        )
        .await
        .unwrap();
        store_full_papers(
            store,
            vec![
                arxiv_paper("2412.00201", "Diffusion for images", "diffusion", None),
                arxiv_paper(
                    "2412.00202",
                    "Protein folding structure prediction",
                    "protein folding structure prediction",
                    None,
                ),
            ],
        )
        .await;
        assert_eq!(
            deliver_due_digests(&reader.app, tomorrow() + chrono::Duration::days(1)).await,
            1
        );
        let text = digest_text_to(&reader.app, READER);
        assert!(text.contains("== You might also like =="), "{text}");
        let suggested = paper(store, "arxiv:2412.00202").await.id;
        let entry_link = links_labelled(&text, "More or less like this: ")
            .into_iter()
            .find(|l| l.ends_with(&format!("#paper-{suggested}")))
            .expect("the suggestion's entry");
        let mut v = Visitor::new(&reader.app);
        let page = v.get(&entry_link).await;
        assert!(entry(&page.body, suggested).contains(">Less like this<"));
        let action = form_action(&page.body, "class=\"rate\"");
        let csrf = hidden_csrf(&page.body);
        let page = rate_as(&mut v, &action, &csrf, suggested, "less", &[]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
        let rated = reader.ratings().await;
        assert!(
            rated.contains(&(suggested, Rating::Less, RatingSource::Digest)),
            "{rated:?}"
        );
        reader.app.stop().await;
        db.cleanup().await;
    }
}

fn run(dir: &Path, db: &TestDb, args: &[&str]) -> Output {
    paperboy_on(dir, db).args(args).output().unwrap()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[tokio::test]
async fn an_operator_rates_papers_for_a_reader_and_an_unknown_key_records_nothing() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let ada =
            active_subscriber(&store, "ada@example.org", "diffusion", "daily", 8, "UTC").await;
        let bob =
            active_subscriber(&store, "bob@example.org", "diffusion", "daily", 8, "UTC").await;
        store_full_papers(
            &store,
            vec![
                arxiv_paper("2609.01234", "Diffusion one", "diffusion", None),
                arxiv_paper("2609.01235", "Diffusion two", "diffusion", None),
            ],
        )
        .await;
        let one = paper(&store, "arxiv:2609.01234").await.id;
        let two = paper(&store, "arxiv:2609.01235").await.id;

        // Keys as `papers list` prints them, or a bare arXiv id; the same paper twice
        // counts once.
        let out = run(
            dir.path(),
            &db,
            &[
                "subscribers",
                "rate",
                "ada@example.org",
                "arxiv:2609.01234",
                "2609.01235",
                "arxiv:2609.01234",
                "--more",
            ],
        );
        assert!(out.status.success(), "{}: {}", db.backend, stderr(&out));
        assert_eq!(
            stdout(&out).trim(),
            "2 ratings recorded for ada@example.org: more like this"
        );
        let mut rated = ratings_of(&store, ada.id).await;
        rated.sort_by_key(|r| r.0);
        assert_eq!(
            rated,
            [
                (one, Rating::More, RatingSource::Operator),
                (two, Rating::More, RatingSource::Operator)
            ],
            "{}",
            db.backend
        );
        let out = run(
            dir.path(),
            &db,
            &[
                "subscribers",
                "rate",
                "ada@example.org",
                "arxiv:2609.01235",
                "--less",
            ],
        );
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(
            stdout(&out).trim(),
            "1 rating recorded for ada@example.org: less like this"
        );
        let show = run(dir.path(), &db, &["subscribers", "show", "ada@example.org"]);
        assert!(
            stdout(&show).contains("ratings: 1 more like this, 1 less like this"),
            "{}",
            stdout(&show)
        );
        let show = run(
            dir.path(),
            &db,
            &["subscribers", "show", "ada@example.org", "--json"],
        );
        let json: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
        assert_eq!(json["ratings"], serde_json::json!({ "more": 1, "less": 1 }));

        // One unknown or malformed key: each is named, and nothing is recorded.
        let out = run(
            dir.path(),
            &db,
            &[
                "subscribers",
                "rate",
                "bob@example.org",
                "arxiv:2609.01234",
                "arxiv:2609.99999",
                "not-a-key",
                "--more",
            ],
        );
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("nothing recorded"), "{err}");
        assert!(err.contains("arxiv:2609.99999: no such paper"), "{err}");
        assert!(err.contains("not-a-key: not a paper key"), "{err}");
        assert!(!err.contains("arxiv:2609.01234:"), "{err}");
        assert!(
            ratings_of(&store, bob.id).await.is_empty(),
            "{}",
            db.backend
        );

        // An unknown reader, and a missing or doubled choice.
        for (case, args) in [
            (
                "unknown reader",
                &["nobody@example.org", "arxiv:2609.01234", "--more"][..],
            ),
            (
                "neither --more nor --less",
                &["bob@example.org", "arxiv:2609.01234"][..],
            ),
            (
                "both --more and --less",
                &["bob@example.org", "arxiv:2609.01234", "--more", "--less"][..],
            ),
            ("no key", &["bob@example.org", "--more"][..]),
        ] {
            let mut all = vec!["subscribers", "rate"];
            all.extend_from_slice(args);
            let out = run(dir.path(), &db, &all);
            assert_eq!(out.status.code(), Some(2), "{case}: {}", stderr(&out));
            assert!(!stderr(&out).contains("panicked"), "{case}");
            if case == "unknown reader" {
                assert!(
                    stderr(&out).contains("no reader nobody@example.org"),
                    "{}",
                    stderr(&out)
                );
            }
        }
        assert!(
            ratings_of(&store, bob.id).await.is_empty(),
            "{}",
            db.backend
        );
        assert_eq!(ratings_of(&store, ada.id).await.len(), 2);
        db.cleanup().await;
    }
}
