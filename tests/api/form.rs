//! The subscribe and preferences forms as a reader meets them over real HTTP: what a
//! refused form says and where, what the fields offer, and the small pages around them.

use crate::helpers::{
    TestApp, TestDb, Visitor, confirm_link, confirmation_for, databases, hidden_csrf, quiet,
    spawn_app,
};
use chrono::Utc;
use paperboy::digest::schedule::next_send_after;
use paperboy::matching::Query;
use reqwest::StatusCode;

#[tokio::test]
async fn every_bad_query_line_is_listed_next_to_the_queries_with_its_position() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, quiet).await;
    let mut v = Visitor::new(&app);
    let page = v
        .subscribe(
            "ada@example.org",
            "diffusion\ntitle:\"unclosed\nrobot OR\n\"state space model\"",
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    let start = page
        .body
        .find("id=\"queries-error\"")
        .expect("a queries message");
    let message = &page.body[start..start + page.body[start..].find("</div>").unwrap()];
    assert!(message.contains("2 lines need a fix:"), "{message}");
    assert!(
        message.contains("<li>Line 2: unclosed quote at 7</li>"),
        "{message}"
    );
    assert!(
        message.contains("<li>Line 3: nothing after OR at 7</li>"),
        "{message}"
    );
    assert!(
        page.body
            .contains("aria-describedby=\"queries-hint queries-error\""),
        "the textarea points at the list"
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_empty_queries_box_shows_two_example_queries_that_parse() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, quiet).await;
    let mut v = Visitor::new(&app);
    let page = v.get("/").await;
    assert_eq!(page.status, StatusCode::OK);
    let textarea = &page.body[page.body.find("<textarea id=\"queries\"").unwrap()..];
    let start = textarea.find("placeholder=\"").expect("a placeholder") + 13;
    let placeholder = &textarea[start..start + textarea[start..].find('"').unwrap()];
    let text = placeholder.replace("&#10;", "\n").replace("&quot;", "\"");
    let examples: Vec<&str> = text.lines().collect();
    assert_eq!(examples.len(), 2, "{text}");
    for example in examples {
        Query::parse(example).unwrap_or_else(|e| panic!("{example}: {e}"));
    }
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn time_zones_are_grouped_by_region_without_aliases_and_a_stored_alias_still_loads() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        let page = v.get("/").await;
        let select = &page.body[page.body.find("<select id=\"timezone\"").unwrap()..];
        let select = &select[..select.find("</select>").unwrap()];
        assert!(select.contains("<optgroup label=\"Europe\"><option>Europe/Amsterdam</option>"));
        assert!(select.contains("<option>America/Argentina/Buenos_Aires</option>"));
        for alias in ["Africa/Asmera", "US/Eastern", "Asia/Calcutta", "Etc/GMT+5"] {
            assert!(!select.contains(alias), "{alias} is offered");
        }
        let options = select.matches("<option").count();
        assert!((400..450).contains(&options), "{options} zones");

        // A reader whose zone is an alias (saved before the list was trimmed) keeps it.
        let prefs = v.subscribe_and_confirm(&app, "old@example.org").await;
        let csrf = hidden_csrf(&v.get(&prefs).await.body);
        let fields = [
            ("action", "save"),
            ("queries", "diffusion"),
            ("frequency", "daily"),
            ("day", "mon"),
            ("send_hour", "6"),
            ("timezone", "US/Eastern"),
            ("max_papers", "5"),
            ("csrf", &csrf),
        ];
        let page = v.post(&prefs, &fields, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let stored = app.subscriber("old@example.org").await.unwrap();
        assert_eq!(stored.preferences.timezone.name(), "US/Eastern");
        let page = v.get(&prefs).await;
        assert_eq!(page.status, StatusCode::OK);
        let select = &page.body[page.body.find("<select id=\"timezone\"").unwrap()..];
        let first = &select[select.find("<option").unwrap()..];
        assert!(
            first.starts_with("<option selected>US/Eastern</option><option>UTC</option>"),
            "the stored zone stays chosen: {}",
            &first[..200]
        );
        assert_eq!(select.matches(" selected>").count(), 1);
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_confirmed_page_says_when_the_first_digest_comes_in_the_readers_zone() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, quiet).await;
    let mut v = Visitor::new(&app);
    // Weekly on Thursday at 07:00 in Asia/Kolkata.
    let page = v.subscribe("first@example.org", "diffusion").await;
    assert_eq!(page.status, StatusCode::OK);
    let link = confirm_link(&confirmation_for(&app, "first@example.org").await);
    let before = Utc::now();
    let page = v.confirm(&link).await;
    let after = Utc::now();
    assert_eq!(page.status, StatusCode::OK);
    let stored = app.subscriber("first@example.org").await.unwrap();
    let expected = |now| {
        let at = next_send_after(&stored.preferences, now)
            .unwrap()
            .with_timezone(&chrono_tz::Asia::Kolkata);
        format!(
            "Your first digest comes on <strong>{} (Asia/Kolkata time)</strong>",
            at.format("%A %-d %B %Y at 07:00")
        )
    };
    assert!(
        page.body.contains(&expected(before)) || page.body.contains(&expected(after)),
        "{} in {}",
        expected(before),
        page.body
    );
    assert!(expected(before).contains("Thursday"));
    assert!(
        page.body
            .contains("Then every Thursday at 07:00 (Asia/Kolkata)")
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_settings_page_of_an_unsubscribed_reader_says_so_once() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, quiet).await;
    let mut v = Visitor::new(&app);
    let prefs = v.subscribe_and_confirm(&app, "gone@example.org").await;
    let csrf = hidden_csrf(&v.get(&prefs).await.body);
    let said = |body: &str| {
        ["You are unsubscribed", "You unsubscribed"]
            .iter()
            .map(|s| body.matches(s).count())
            .sum::<usize>()
    };
    let page = v
        .post(&prefs, &[("action", "unsubscribe"), ("csrf", &csrf)], &[])
        .await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(
        page.body
            .contains("You are unsubscribed: paperboy sends nothing more.")
    );
    assert_eq!(said(&page.body), 1, "{}", page.body);
    let page = v.get(&prefs).await;
    assert!(
        page.body
            .contains("You unsubscribed and get no email from paperboy.")
    );
    assert_eq!(said(&page.body), 1, "{}", page.body);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn the_pages_have_an_icon_and_favicon_ico_is_served() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, quiet).await;
    let mut v = Visitor::new(&app);
    let page = v.get("/").await;
    assert!(
        page.body
            .contains("<link rel=\"icon\" href=\"/favicon.ico\"")
    );
    assert!(
        page.body
            .contains("<link rel=\"icon\" href=\"/static/favicon.svg\"")
    );

    let http = reqwest::Client::new();
    let ico = http.get(app.url("/favicon.ico")).send().await.unwrap();
    assert_eq!(ico.status(), StatusCode::OK);
    assert_eq!(ico.headers()["content-type"], "image/x-icon");
    let bytes = ico.bytes().await.unwrap();
    assert_eq!(&bytes[..6], b"\0\0\x01\0\x01\0", "an ICO holding one image");
    assert_eq!(&bytes[22..30], b"\x89PNG\r\n\x1a\n", "a PNG inside");

    let svg = http
        .get(app.url("/static/favicon.svg"))
        .send()
        .await
        .unwrap();
    assert_eq!(svg.status(), StatusCode::OK);
    assert_eq!(svg.headers()["content-type"], "image/svg+xml");
    assert!(svg.text().await.unwrap().starts_with("<svg "));
    app.stop().await;
    db.cleanup().await;
}

/// The page at `path` as sent for this `Accept-Encoding`: its `Content-Encoding` and the
/// bytes as they came over the wire.
async fn fetch_encoded(app: &TestApp, path: &str, accept: &str) -> (Option<String>, Vec<u8>) {
    let raw = reqwest::Client::builder().no_gzip().build().unwrap();
    let response = raw
        .get(app.url(path))
        .header("accept-encoding", accept)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let vary = response
        .headers()
        .get("vary")
        .map(|v| v.to_str().unwrap().to_lowercase());
    assert!(
        vary.is_some_and(|v| v.contains("accept-encoding")),
        "caches must keep the encodings apart"
    );
    let encoding = response
        .headers()
        .get("content-encoding")
        .map(|v| v.to_str().unwrap().to_string());
    (encoding, response.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn pages_come_in_brotli_or_gzip_when_the_client_takes_them() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, quiet).await;
    for path in ["/", "/static/style.css"] {
        let (encoding, plain) = fetch_encoded(&app, path, "identity").await;
        assert_eq!(encoding, None, "{path}");

        let (encoding, br) = fetch_encoded(&app, path, "br").await;
        assert_eq!(encoding.as_deref(), Some("br"), "{path}");
        let mut unpacked = Vec::new();
        brotli::BrotliDecompress(&mut br.as_slice(), &mut unpacked).expect("valid brotli");
        assert!(
            br.len() * 2 < plain.len(),
            "{path}: {} of {}",
            br.len(),
            plain.len()
        );

        let (encoding, gzip) = fetch_encoded(&app, path, "gzip").await;
        assert_eq!(encoding.as_deref(), Some("gzip"), "{path}");
        assert_eq!(&gzip[..2], b"\x1f\x8b", "{path}: a gzip stream");
        assert!(
            gzip.len() * 2 < plain.len(),
            "{path}: {} of {}",
            gzip.len(),
            plain.len()
        );

        // What a browser unpacks is the page itself (the form's CSRF token differs per
        // request, so the stylesheet is compared byte for byte and the form by its parts).
        let unzipping = reqwest::Client::new();
        let unzipped = unzipping.get(app.url(path)).send().await.unwrap();
        let unzipped = unzipped.bytes().await.unwrap().to_vec();
        if path == "/" {
            for page in [&unpacked, &unzipped] {
                let page = String::from_utf8(page.clone()).unwrap();
                assert!(page.contains("<h1>New papers that match what you work on</h1>"));
                assert!(page.trim_end().ends_with("</html>"));
            }
        } else {
            assert_eq!(unpacked, plain);
            assert_eq!(unzipped, plain);
        }
    }
    app.stop().await;
    db.cleanup().await;
}
