//! The subscribe and preferences forms as a reader meets them over real HTTP: what a
//! refused form says and where, what the fields offer, and the small pages around them.

use crate::helpers::{TestDb, Visitor, spawn_app};
use paperboy::config::Settings;
use paperboy::matching::Query;
use reqwest::StatusCode;

fn quiet(s: &mut Settings) {
    s.log = "warn".into();
}

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
