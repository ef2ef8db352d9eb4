//! The web pages in a real browser: headless Chromium, driven through chromedriver, fills
//! in the subscribe form, follows the emailed link and uses the settings page as a reader
//! would, with JavaScript on and with it off, and rates papers on a digest's page.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{
    SmtpSink, TestApp, TestDb, Visitor, arxiv_paper, base64_parts, databases, deliver_due_digests,
    digest_text_to, link_starting, links_labelled, spawn_app, store_full_papers,
};
use chrono::{Utc, Weekday};
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use paperboy::config::Secret;
use paperboy::domain::{Frequency, Rating, RatingSource, Subscriber, SubscriberStatus};
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long a page may take to show what a step waits for.
const PATIENCE: Duration = Duration::from_secs(10);

/// chromedriver on a free port, in its own process group so that the browsers it started
/// go with it; killed on drop.
pub(crate) struct Chromedriver {
    child: Child,
    port: u16,
}

impl Chromedriver {
    /// None (after saying so) when Chromium or chromedriver is not installed; in CI that
    /// is a failure.
    pub(crate) fn start() -> Option<Chromedriver> {
        Self::start_in_zone(None)
    }

    /// With `TZ` set for chromedriver and the browsers it starts, when a zone is given.
    fn start_in_zone(zone: Option<&str>) -> Option<Chromedriver> {
        let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER]
            .into_iter()
            .filter(|p| !Path::new(p).exists())
            .collect();
        if !missing.is_empty() {
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!(
                    "CI=true but {} is missing: install Debian's chromium and chromium-driver",
                    missing.join(" and ")
                );
            }
            eprintln!(
                "{} not installed: browser test skipped",
                missing.join(" and ")
            );
            return None;
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let driver = Chromedriver {
            child: {
                use std::os::unix::process::CommandExt;
                let mut command = Command::new(CHROMEDRIVER);
                if let Some(zone) = zone {
                    command.env("TZ", zone);
                }
                command
                    .arg(format!("--port={port}"))
                    .process_group(0)
                    .stdout(Stdio::null())
                    .stderr(Stdio::null())
                    .spawn()
                    .expect("start chromedriver")
            },
            port,
        };
        let deadline = Instant::now() + PATIENCE;
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Some(driver);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("chromedriver did not listen on port {port} within {PATIENCE:?}");
    }

    /// A new headless Chromium window, with or without JavaScript.
    pub(crate) async fn open_browser(&self, javascript: bool) -> Client {
        self.open_browser_with(javascript, &[]).await
    }

    /// A new headless Chromium window started with `flags` besides the usual ones.
    pub(crate) async fn open_browser_with(&self, javascript: bool, flags: &[&str]) -> Client {
        let mut args = vec![
            "--headless=new",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--window-size=1280,1000",
        ];
        args.extend_from_slice(flags);
        let mut options = json!({ "binary": CHROMIUM, "args": args });
        if !javascript {
            options["prefs"] = json!({ "profile.managed_default_content_settings.javascript": 2 });
        }
        let capabilities = json!({ "browserName": "chrome", "goog:chromeOptions": options });
        let serde_json::Value::Object(capabilities) = capabilities else {
            unreachable!("a JSON object")
        };
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&format!("http://127.0.0.1:{}", self.port))
            .await
            .expect("start a Chromium session")
    }
}

impl Drop for Chromedriver {
    fn drop(&mut self) {
        // The whole group: chromedriver and any Chromium a failed test left open.
        let _ = Command::new("kill")
            .args(["-TERM", "--", &format!("-{}", self.child.id())])
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Numbered screenshots of the pages a test visits, in the test output folder.
struct Album {
    dir: PathBuf,
    taken: usize,
}

impl Album {
    fn new(folder: &str) -> Album {
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(folder);
        std::fs::create_dir_all(&dir).expect("create the screenshot folder");
        eprintln!("screenshots in {}", dir.display());
        Album { dir, taken: 0 }
    }

    async fn snap(&mut self, browser: &Client, name: &str) {
        self.taken += 1;
        let png = browser.screenshot().await.expect("screenshot");
        assert!(!png.is_empty(), "empty screenshot of {name}");
        assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "{name}: not a PNG");
        let path = self.dir.join(format!("{:02}-{name}.png", self.taken));
        std::fs::write(&path, &png).expect("write screenshot");
        assert!(std::fs::metadata(&path).expect("screenshot file").len() > 0);
    }
}

/// The first element matching `css`, waiting for the page to show it.
pub(crate) async fn wait_for(browser: &Client, css: &str) -> Element {
    let deadline = Instant::now() + PATIENCE;
    loop {
        match browser.find(Locator::Css(css)).await {
            Ok(element) => return element,
            Err(e) if Instant::now() >= deadline => {
                let url = browser.current_url().await.map(|u| u.to_string());
                panic!("no {css} on {url:?} after {PATIENCE:?}: {e}");
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
        }
    }
}

/// Waits until the element matching `css` shows a text containing `expected`, and
/// returns that text. Survives the page being replaced meanwhile.
async fn wait_for_text(browser: &Client, css: &str, expected: &str) -> String {
    let deadline = Instant::now() + PATIENCE;
    let mut last = String::new();
    loop {
        if let Ok(element) = browser.find(Locator::Css(css)).await
            && let Ok(text) = element.text().await
        {
            if text.contains(expected) {
                return text;
            }
            last = text;
        }
        if Instant::now() >= deadline {
            let url = browser.current_url().await.map(|u| u.to_string());
            panic!("{css} on {url:?} still says {last:?}, not {expected:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Replaces what a text field holds by typing `text` into it.
async fn type_into(browser: &Client, css: &str, text: &str) {
    let field = wait_for(browser, css).await;
    field.clear().await.expect("clear field");
    field.send_keys(text).await.expect("type");
}

async fn click(browser: &Client, css: &str) {
    wait_for(browser, css)
        .await
        .click()
        .await
        .unwrap_or_else(|e| panic!("click {css}: {e}"));
}

/// Checks a radio button or box, clicking again until the browser says it is checked: the
/// live preview's answer can move the form under a click on a busy machine.
async fn check(browser: &Client, css: &str) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        click(browser, css).await;
        let checked = wait_for(browser, css)
            .await
            .prop("checked")
            .await
            .expect("read checked");
        if checked.as_deref() == Some("true") {
            return;
        }
        assert!(Instant::now() < deadline, "{css} never became checked");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Picks the option with this value in a select.
async fn pick(browser: &Client, css: &str, value: &str) {
    wait_for(browser, css)
        .await
        .select_by_value(value)
        .await
        .unwrap_or_else(|e| panic!("choose {value} in {css}: {e}"));
}

/// Picks the option showing this text in a select.
async fn pick_label(browser: &Client, css: &str, label: &str) {
    wait_for(browser, css)
        .await
        .select_by_label(label)
        .await
        .unwrap_or_else(|e| panic!("choose {label} in {css}: {e}"));
}

/// The current value of a form field, as the browser would post it.
async fn value_of(browser: &Client, css: &str) -> String {
    wait_for(browser, css)
        .await
        .prop("value")
        .await
        .expect("read value")
        .unwrap_or_default()
}

async fn is_shown(browser: &Client, css: &str) -> bool {
    browser.find(Locator::Css(css)).await.is_ok()
}

/// What the subscribe form is filled with.
struct Choices<'a> {
    email: &'a str,
    queries: &'a [&'a str],
    day: &'a str,
    send_hour: &'a str,
    timezone: &'a str,
    max_papers: &'a str,
}

/// Fills the subscribe form on the page open in `browser`, choosing a weekly digest; does
/// not submit.
async fn fill_in_subscribe_form(browser: &Client, choices: &Choices<'_>) {
    type_into(browser, "#email", choices.email).await;
    type_into(browser, "textarea#queries", &choices.queries.join("\n")).await;
    check(browser, "input[name=frequency][value=weekly]").await;
    pick(browser, "select#day", choices.day).await;
    pick(browser, "select#send_hour", choices.send_hour).await;
    // The time zone options carry no value attribute: their text is the value.
    pick_label(browser, "select#timezone", choices.timezone).await;
    type_into(browser, "input#max_papers", choices.max_papers).await;
    assert_eq!(
        value_of(browser, "#website").await,
        "",
        "honeypot left empty"
    );
    assert_eq!(value_of(browser, "select#timezone").await, choices.timezone);
}

/// The subscriber with this address; the test fails when it is not stored.
pub(crate) async fn stored_subscriber(app: &TestApp, email: &str) -> Subscriber {
    app.subscriber(email)
        .await
        .unwrap_or_else(|| panic!("{email} is not stored"))
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscriber_subscribes_confirms_edits_pauses_and_unsubscribes_in_a_real_browser() {
    let mail_dir = tempfile::tempdir().unwrap();
    let Some(sink) = SmtpSink::start(mail_dir.path()) else {
        return;
    };
    let Some(driver) = Chromedriver::start() else {
        return;
    };
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, |settings| {
        settings.smtp_url = Some(Secret::new(format!(
            "smtp://127.0.0.1:{}?tls=none",
            sink.port
        )));
    })
    .await;
    let browser = driver.open_browser(true).await;
    let mut album = Album::new("browser-screenshots");
    let email = "ada@example.org";

    // The form, filled in; the live preview asks the server about each query.
    browser.goto(&app.url("/")).await.unwrap();
    wait_for_text(&browser, "button[type=submit]", "Subscribe").await;
    let choices = Choices {
        email,
        queries: &["diffusion", r#"author:"Tri Dao""#],
        day: "thu",
        send_hour: "7",
        timezone: "Asia/Kolkata",
        max_papers: "25",
    };
    fill_in_subscribe_form(&browser, &choices).await;
    let preview = wait_for_text(&browser, "#queries-preview", "0 of the 0 papers").await;
    assert!(
        preview.contains("diffusion: 0 of the 0 papers"),
        "{preview}"
    );
    assert!(
        preview.contains(r#"author:"Tri Dao": 0 of the 0 papers"#),
        "{preview}"
    );
    album.snap(&browser, "subscribe").await;
    click(&browser, "button[type=submit]").await;
    wait_for_text(&browser, "h1", "Check your inbox").await;
    album.snap(&browser, "check-inbox").await;
    assert_eq!(
        stored_subscriber(&app, email).await.status,
        SubscriberStatus::Pending
    );

    // One email, multipart, with one-click unsubscribe headers and the link.
    let received = sink.wait_for(1);
    let mine: Vec<&String> = received
        .iter()
        .filter(|m| m.contains(&format!("To: {email}")))
        .collect();
    assert_eq!(mine.len(), 1, "exactly one email to {email}: {received:#?}");
    let message = mine[0];
    assert!(
        message.contains("Subject: Confirm your paperboy digest"),
        "{message}"
    );
    assert!(
        message.contains("Content-Type: multipart/alternative"),
        "{message}"
    );
    assert!(message.contains("Content-Type: text/plain"), "{message}");
    assert!(message.contains("Content-Type: text/html"), "{message}");
    assert!(
        message.contains(&format!("List-Unsubscribe: <{}", app.url("/"))),
        "{message}"
    );
    assert!(
        message.contains("List-Unsubscribe-Post: List-Unsubscribe=One-Click"),
        "{message}"
    );
    let parts = base64_parts(message);
    assert_eq!(parts.len(), 2, "a text and an HTML part: {message}");
    let confirm_prefix = app.url("/confirm/");
    let link = link_starting(&parts[0], &confirm_prefix).expect("confirmation link in the text");
    assert_eq!(
        link_starting(&parts[1], &confirm_prefix).as_deref(),
        Some(link.as_str()),
        "the HTML part carries the same link"
    );

    // The link opens a page with one button, and changes nothing until it is pressed.
    browser.goto(&link).await.unwrap();
    wait_for_text(&browser, "h1", "Confirm your subscription").await;
    album.snap(&browser, "confirm").await;
    assert_eq!(
        stored_subscriber(&app, email).await.status,
        SubscriberStatus::Pending
    );
    // The button confirms, with the settings as chosen.
    click(&browser, "button[type=submit]").await;
    wait_for_text(&browser, "h1", "You are subscribed").await;
    let lede = wait_for_text(&browser, "p.lede", "every Thursday at 07:00").await;
    assert!(lede.contains("(Asia/Kolkata), up to 25 papers"), "{lede}");
    album.snap(&browser, "confirmed").await;
    let subscriber = stored_subscriber(&app, email).await;
    assert_eq!(subscriber.status, SubscriberStatus::Active);
    let p = &subscriber.preferences;
    assert_eq!(p.frequency, Frequency::Weekly(Weekday::Thu));
    assert_eq!(p.send_hour.get(), 7);
    assert_eq!(p.timezone.name(), "Asia/Kolkata");
    assert_eq!(p.max_papers.get(), 25);
    assert_eq!(p.queries.lines(), ["diffusion", r#"author:"Tri Dao""#]);

    // Settings: the form shows what was chosen; a query is replaced and saved.
    let settings = wait_for(&browser, "a.button").await;
    let href = settings.attr("href").await.unwrap().unwrap_or_default();
    assert!(href.starts_with(&app.url("/preferences/")), "{href}");
    settings.click().await.unwrap();
    wait_for_text(&browser, "h1", "Your settings").await;
    assert_eq!(
        wait_for(&browser, "strong.status")
            .await
            .text()
            .await
            .unwrap(),
        "subscribed"
    );
    assert_eq!(
        value_of(&browser, "textarea#queries").await,
        "diffusion\nauthor:\"Tri Dao\""
    );
    assert_eq!(value_of(&browser, "select#timezone").await, "Asia/Kolkata");
    assert_eq!(value_of(&browser, "select#day").await, "thu");
    assert_eq!(value_of(&browser, "select#send_hour").await, "7");
    album.snap(&browser, "preferences").await;
    type_into(
        &browser,
        "textarea#queries",
        "\"state space model\"\nauthor:\"Tri Dao\"",
    )
    .await;
    click(&browser, "button[name=action][value=save]").await;
    wait_for_text(&browser, "p.flash", "Saved.").await;
    album.snap(&browser, "saved").await;
    let subscriber = stored_subscriber(&app, email).await;
    assert_eq!(
        subscriber.preferences.queries.lines(),
        [r#""state space model""#, r#"author:"Tri Dao""#]
    );
    assert_eq!(subscriber.status, SubscriberStatus::Active);

    // "Preview my next digest" shows the next digest's page; nothing is recorded.
    let next = wait_for(&browser, "a.button.secondary").await;
    let next_href = next.attr("href").await.unwrap().unwrap_or_default();
    assert!(next_href.ends_with("/preview"), "{next_href}");
    next.click().await.unwrap();
    wait_for_text(&browser, "h1", "Your next digest").await;
    album.snap(&browser, "next-digest").await;
    assert!(
        app.store
            .digests_of(subscriber.id)
            .await
            .unwrap()
            .is_empty()
    );
    browser.goto(&href).await.unwrap();
    wait_for_text(&browser, "h1", "Your settings").await;

    // Pause.
    click(&browser, "button[name=action][value=pause]").await;
    wait_for_text(&browser, "p.flash", "Paused:").await;
    wait_for_text(&browser, "strong.status", "paused").await;
    assert!(is_shown(&browser, "button[name=action][value=resume]").await);
    album.snap(&browser, "paused").await;
    assert_eq!(
        stored_subscriber(&app, email).await.status,
        SubscriberStatus::Paused
    );

    // Unsubscribe from the settings page.
    click(&browser, "button[name=action][value=unsubscribe]").await;
    wait_for_text(&browser, "p.flash", "You are unsubscribed:").await;
    wait_for_text(&browser, "strong.status", "unsubscribed").await;
    assert!(!is_shown(&browser, "button[name=action][value=save]").await);
    assert!(is_shown(&browser, "button[name=action][value=resubscribe]").await);
    album.snap(&browser, "unsubscribed").await;
    assert_eq!(
        stored_subscriber(&app, email).await.status,
        SubscriberStatus::Unsubscribed
    );
    assert_eq!(album.taken, 9);

    browser.close().await.unwrap();
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_subscribe_page_works_with_javascript_disabled() {
    let Some(driver) = Chromedriver::start() else {
        return;
    };
    let db = TestDb::sqlite().await;
    // No SMTP relay: the app writes its mail to the outbox folder.
    let app = spawn_app(&db, |_| {}).await;
    let browser = driver.open_browser(false).await;
    let mut album = Album::new("browser-screenshots/without-javascript");
    let email = "grace@example.org";

    browser.goto(&app.url("/")).await.unwrap();
    wait_for_text(&browser, "button[type=submit]", "Subscribe").await;
    let choices = Choices {
        email,
        queries: &["diffusion"],
        day: "mon",
        send_hour: "18",
        timezone: "Asia/Kolkata",
        max_papers: "10",
    };
    fill_in_subscribe_form(&browser, &choices).await;
    // With JavaScript on the preview fills in within half a second (see the test above).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        wait_for(&browser, "#queries-preview")
            .await
            .text()
            .await
            .unwrap(),
        "",
        "JavaScript ran although it is disabled"
    );
    album.snap(&browser, "subscribe").await;
    click(&browser, "button[type=submit]").await;
    wait_for_text(&browser, "h1", "Check your inbox").await;
    album.snap(&browser, "check-inbox").await;

    let outbox = app.wait_for_outbox(1).await;
    assert_eq!(outbox.len(), 1, "one confirmation email");
    let message = &outbox[0];
    assert!(message.contains(&format!("To: {email}")), "{message}");
    assert!(
        message.contains("Subject: Confirm your paperboy digest"),
        "{message}"
    );
    let parts = base64_parts(message);
    let link = parts
        .iter()
        .find_map(|p| link_starting(p, &app.url("/confirm/")))
        .expect("confirmation link");
    browser.goto(&link).await.unwrap();
    wait_for_text(&browser, "h1", "Confirm your subscription").await;
    click(&browser, "button[type=submit]").await;
    wait_for_text(&browser, "h1", "You are subscribed").await;
    album.snap(&browser, "confirmed").await;
    let subscriber = stored_subscriber(&app, email).await;
    assert_eq!(subscriber.status, SubscriberStatus::Active);
    assert_eq!(
        subscriber.preferences.frequency,
        Frequency::Weekly(Weekday::Mon)
    );
    assert_eq!(subscriber.preferences.send_hour.get(), 18);
    assert_eq!(subscriber.preferences.timezone.name(), "Asia/Kolkata");

    browser.close().await.unwrap();
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reader_rates_papers_on_the_digest_page_and_removes_a_rating_in_settings() {
    let Some(driver) = Chromedriver::start() else {
        return;
    };
    for db in databases().await {
        let app = spawn_app(&db, |s| s.log = "warn".into()).await;
        // Plain forms: no JavaScript needed, so none runs.
        let browser = driver.open_browser(false).await;
        let mut album = Album::new(&format!("browser-screenshots/ratings-{}", db.backend));
        let email = "rosalind@example.org";
        Visitor::new(&app).subscribe_and_confirm(&app, email).await;
        let subscriber = stored_subscriber(&app, email).await;
        store_full_papers(
            &app.store,
            vec![
                arxiv_paper("2412.00301", "Diffusion for proteins", "diffusion", Some(9)),
                arxiv_paper("2412.00302", "Diffusion on graphs", "diffusion", Some(3)),
            ],
        )
        .await;
        // A weekly reader (Thursdays): due within a week.
        let sent = deliver_due_digests(&app, Utc::now() + chrono::Duration::days(8)).await;
        assert_eq!(sent, 1, "{}", db.backend);
        let entries = links_labelled(&digest_text_to(&app, email), "More or less like this: ");
        assert_eq!(entries.len(), 2);
        let paper_of = |link: &str| -> i64 {
            link.rsplit_once("#paper-")
                .and_then(|(_, id)| id.parse().ok())
                .expect("an entry anchor")
        };
        let (first, second) = (paper_of(&entries[0]), paper_of(&entries[1]));

        // The email's link opens the paper's entry; "More like this" marks it.
        browser.goto(&entries[0]).await.unwrap();
        wait_for(&browser, &format!("li#paper-{first}")).await;
        album.snap(&browser, "digest-page").await;
        click(
            &browser,
            &format!("#paper-{first} button[name=action][value=more]"),
        )
        .await;
        wait_for_text(
            &browser,
            &format!("#paper-{first} .rated"),
            "You marked this more like this",
        )
        .await;
        let url = browser.current_url().await.unwrap();
        assert_eq!(url.fragment(), Some(format!("paper-{first}").as_str()));
        album.snap(&browser, "marked-more").await;

        // "Less like this" on the other paper, then Undo.
        click(
            &browser,
            &format!("#paper-{second} button[name=action][value=less]"),
        )
        .await;
        wait_for_text(
            &browser,
            &format!("#paper-{second} .rated"),
            "You marked this less like this",
        )
        .await;
        click(
            &browser,
            &format!("#paper-{second} button[name=action][value=remove]"),
        )
        .await;
        wait_for(
            &browser,
            &format!("#paper-{second} button[name=action][value=less]"),
        )
        .await;
        assert!(!is_shown(&browser, &format!("#paper-{second} .rated")).await);
        let rated: Vec<_> = app
            .store
            .ratings_of(subscriber.id)
            .await
            .unwrap()
            .into_iter()
            .map(|r| (r.paper_id, r.rating, r.source))
            .collect();
        assert_eq!(
            rated,
            [(first, Rating::More, RatingSource::Digest)],
            "{}",
            db.backend
        );

        // The settings page lists it; Remove takes it away.
        click(&browser, "a[href*='/preferences/']").await;
        wait_for_text(&browser, "h1", "Your settings").await;
        let list = wait_for_text(&browser, "#ratings", "Diffusion for proteins").await;
        assert!(list.contains("more like this"), "{list}");
        assert!(list.contains("on a digest's page"), "{list}");
        assert!(!list.contains("Diffusion on graphs"), "{list}");
        let mut here = browser.current_url().await.unwrap();
        here.set_fragment(Some("ratings"));
        browser.goto(here.as_str()).await.unwrap();
        album.snap(&browser, "settings-with-rating").await;
        click(&browser, "#ratings button[name=action][value=remove]").await;
        wait_for_text(&browser, "#ratings", "None yet").await;
        album.snap(&browser, "settings-without-ratings").await;
        assert!(
            app.store
                .ratings_of(subscriber.id)
                .await
                .unwrap()
                .is_empty(),
            "{}",
            db.backend
        );
        assert_eq!(album.taken, 4);

        browser.close().await.unwrap();
        app.stop().await;
        db.cleanup().await;
    }
}

/// The red, green and blue of a screenshot's pixels at CSS pixels `points`, decoded by the
/// browser itself (a canvas reads the picture as taken, whatever the page's dark mode).
async fn pixels(browser: &Client, png: &[u8], points: &[(f64, f64)]) -> Vec<[i64; 3]> {
    use base64::Engine;
    let data = base64::engine::general_purpose::STANDARD.encode(png);
    let got = browser
        .execute_async(
            "const [data, points, done] = arguments;
             const img = new Image();
             img.onload = () => {
               const c = document.createElement('canvas');
               c.width = img.width; c.height = img.height;
               const g = c.getContext('2d');
               g.drawImage(img, 0, 0);
               const scale = img.width / window.innerWidth;
               done(points.map(([x, y]) => Array.from(
                 g.getImageData(Math.round(x * scale), Math.round(y * scale), 1, 1).data.slice(0, 3))));
             };
             img.onerror = () => done(null);
             img.src = 'data:image/png;base64,' + data;",
            vec![json!(data), json!(points)],
        )
        .await
        .expect("decode the screenshot");
    serde_json::from_value(got).expect("pixels")
}

fn distance(a: [i64; 3], b: [i64; 3]) -> i64 {
    (0..3).map(|i| (a[i] - b[i]).abs()).sum()
}

fn luma(c: [i64; 3]) -> i64 {
    (299 * c[0] + 587 * c[1] + 114 * c[2]) / 1000
}

/// The digest email as a reader's client shows it: Chromium at 600 and 390 px, in light,
/// in dark as the system asks (`prefers-color-scheme: dark`), and forced dark (Chromium
/// darkening a light page itself, as some mail apps do). Screenshots of each are kept.
#[tokio::test]
async fn the_digest_email_reads_in_light_dark_and_forced_dark_at_600_and_390_px() {
    let Some(driver) = Chromedriver::start() else {
        return;
    };
    let mut album = Album::new("browser-screenshots/email");
    let (html, _) = paperboy::email::digest::bodies(&crate::digest_mail::view()).unwrap();
    let file = album.dir.join("digest.html");
    std::fs::write(&file, html).unwrap();
    let url = format!("file://{}", file.display());
    let modes: [(&str, &[&str]); 3] = [
        ("light", &[]),
        ("dark", &["--force-dark-mode"]),
        ("forced-dark", &["--enable-features=WebContentsForceDark"]),
    ];
    let mut backgrounds = Vec::new();
    for (mode, flags) in modes {
        let browser = driver.open_browser_with(true, flags).await;
        for width in [600u32, 390] {
            browser.set_window_size(width, 1400).await.unwrap();
            browser.goto(&url).await.unwrap();
            wait_for(&browser, ".pt mark").await;
            let facts = browser
                .execute(
                    "const css = s => getComputedStyle(document.querySelector(s));
                     const r = document.querySelector('.pt mark').getBoundingClientRect();
                     const card = document.querySelector('.card').getBoundingClientRect();
                     return {
                       dark: matchMedia('(prefers-color-scheme: dark)').matches,
                       page: css('body').backgroundColor,
                       text: css('h1').color,
                       mark: css('mark').backgroundColor,
                       scroll: document.documentElement.scrollWidth,
                       inner: window.innerWidth,
                       line: [r.left + r.width / 2, r.bottom - 1],
                       card: [card.left + 4, r.bottom - 1],
                       edge: [3, 3],
                     };",
                    vec![],
                )
                .await
                .unwrap();
            let inner = facts["inner"].as_i64().unwrap();
            assert!(
                (i64::from(width) - 20..=i64::from(width)).contains(&inner),
                "{mode} {width}: a {inner} px viewport"
            );
            assert!(
                facts["scroll"].as_i64().unwrap() <= inner,
                "{mode} {width}: the email scrolls sideways: {facts}"
            );
            let dark = mode == "dark";
            assert_eq!(facts["dark"].as_bool(), Some(dark), "{mode}: {facts}");
            let (page, text, mark) = if dark {
                ("rgb(24, 24, 27)", "rgb(244, 244, 245)", "rgb(250, 204, 21)")
            } else {
                ("rgb(244, 244, 245)", "rgb(24, 24, 27)", "rgb(253, 224, 71)")
            };
            assert_eq!(facts["page"], page, "{mode} {width}: {facts}");
            assert_eq!(facts["text"], text, "{mode} {width}: {facts}");
            assert_eq!(facts["mark"], mark, "{mode} {width}: {facts}");

            let png = browser.screenshot().await.expect("screenshot");
            album.snap(&browser, &format!("{mode}-{width}")).await;
            let point = |k: &str| (facts[k][0].as_f64().unwrap(), facts[k][1].as_f64().unwrap());
            let got = pixels(
                &browser,
                &png,
                &[point("edge"), point("line"), point("card")],
            )
            .await;
            let (edge, line, card) = (got[0], got[1], got[2]);
            // What the reader sees: a light page in light, a dark one otherwise, and the
            // highlight's underline standing out from the card in every mode.
            if mode == "light" {
                assert!(luma(edge) > 200, "{mode} {width}: page {edge:?}");
            } else {
                assert!(luma(edge) < 80, "{mode} {width}: page {edge:?}");
            }
            assert!(
                distance(line, card) > 150,
                "{mode} {width}: the highlight {line:?} fades into the card {card:?}"
            );
            backgrounds.push((mode, width, edge, line, card));
        }
        browser.close().await.unwrap();
    }
    eprintln!("page corner, underline and card pixels: {backgrounds:?}");
}

/// The colour a field's border is drawn in, and the colour of the error messages.
async fn border_and_error_colour(browser: &Client, css: &str) -> (String, String) {
    let script = "const f = document.querySelector(arguments[0]); \
                  const e = document.querySelector('.error'); \
                  return [getComputedStyle(f).borderTopColor, getComputedStyle(e).color];";
    let answer = browser
        .execute(script, vec![json!(css)])
        .await
        .unwrap_or_else(|e| panic!("read the colours of {css}: {e}"));
    let pair: (String, String) = serde_json::from_value(answer).expect("two colours");
    pair
}

#[tokio::test(flavor = "multi_thread")]
async fn a_refused_form_marks_its_bad_fields_and_focuses_its_summary_in_a_real_browser() {
    let Some(driver) = Chromedriver::start() else {
        return;
    };
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, |_| {}).await;
    let browser = driver.open_browser(true).await;
    let mut album = Album::new("browser-screenshots/form-errors");

    browser.goto(&app.url("/")).await.unwrap();
    type_into(&browser, "#email", "not an address").await;
    type_into(&browser, "#queries", "diffusion\ntitle:\"unclosed").await;
    type_into(&browser, "#max_papers", "0").await;
    click(&browser, "button[type=submit]").await;
    wait_for(&browser, ".error-summary").await;
    album.snap(&browser, "subscribe-with-errors").await;
    assert_eq!(
        focused(&browser).await,
        "error-summary",
        "focus on the summary"
    );
    let links = wait_for_text(&browser, ".error-summary ul", "Queries").await;
    assert_eq!(links, "Email address\nQueries\nPapers per email");

    for field in ["#email", "#queries", "#max_papers"] {
        let (border, error) = border_and_error_colour(&browser, field).await;
        assert_eq!(border, error, "{field} is not drawn in the error colour");
    }
    let (border, error) = border_and_error_colour(&browser, "#send_hour").await;
    assert_ne!(border, error, "a good field is drawn as if it were wrong");

    browser.close().await.unwrap();

    // Without a script, autofocus alone puts the focus there.
    let browser = driver.open_browser(false).await;
    browser.goto(&app.url("/")).await.unwrap();
    type_into(&browser, "#email", "not an address").await;
    click(&browser, "button[type=submit]").await;
    wait_for(&browser, ".error-summary").await;
    assert_eq!(
        focused(&browser).await,
        "error-summary",
        "focus without a script"
    );
    click(&browser, ".error-summary a[href='#email']").await;
    assert_eq!(
        focused(&browser).await,
        "email",
        "the link leads to the field"
    );

    browser.close().await.unwrap();
    app.stop().await;
    db.cleanup().await;
}

/// The id of the focused element, or its class when it has no id.
async fn focused(browser: &Client) -> String {
    let answer = browser
        .execute(
            "const e = document.activeElement; return e.id || e.className;",
            vec![],
        )
        .await
        .expect("read the focused element");
    answer.as_str().unwrap_or_default().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn the_day_picker_shows_only_while_weekly_is_chosen_in_a_real_browser() {
    let Some(driver) = Chromedriver::start() else {
        return;
    };
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, |_| {}).await;
    let browser = driver.open_browser(true).await;
    browser.goto(&app.url("/")).await.unwrap();
    let day_shown = |browser: &Client| {
        let browser = browser.clone();
        async move {
            wait_for(&browser, "#day")
                .await
                .is_displayed()
                .await
                .expect("read whether the day shows")
        }
    };
    assert!(
        value_of(&browser, "input[name=frequency]:checked").await == "daily"
            && !day_shown(&browser).await,
        "a daily digest needs no day"
    );
    check(&browser, "input[name=frequency][value=weekly]").await;
    assert!(day_shown(&browser).await, "weekly shows the day");
    check(&browser, "input[name=frequency][value=weekdays]").await;
    assert!(!day_shown(&browser).await, "weekdays hides it again");
    browser.close().await.unwrap();

    // Without a script the day stays, and its label says when it counts.
    let browser = driver.open_browser(false).await;
    browser.goto(&app.url("/")).await.unwrap();
    assert!(day_shown(&browser).await);
    assert_eq!(
        wait_for_text(&browser, "label[for=day]", "Day").await,
        "Day (weekly only)"
    );
    browser.close().await.unwrap();
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_live_preview_sends_one_request_and_says_when_it_is_rate_limited() {
    let Some(driver) = Chromedriver::start() else {
        return;
    };
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, |s| s.web.preview_per_ip_per_minute = 1).await;
    let browser = driver.open_browser(true).await;
    browser.goto(&app.url("/")).await.unwrap();
    // Five lines pasted at once: one request previews them all.
    paste_into(
        &browser,
        "#queries",
        "diffusion\nrobot\nprotein\ngraph\nmesh",
    )
    .await;
    wait_for_text(&browser, "#queries-preview", "mesh: 0 of the").await;
    let lines = browser
        .find_all(Locator::Css("#queries-preview .preview-line"))
        .await
        .unwrap();
    assert_eq!(lines.len(), 5, "every line previewed");
    // The minute's only request is spent: the next edit is refused, and the page says so.
    paste_into(&browser, "#queries", "diffusion\nrobot").await;
    let said = wait_for_text(&browser, "#queries-preview", "Too many previews").await;
    assert!(said.contains("Your queries are kept as typed"), "{said}");
    browser.close().await.unwrap();
    app.stop().await;
    db.cleanup().await;
}

/// Puts `text` in a field at once, as a paste does: one input event.
async fn paste_into(browser: &Client, css: &str, text: &str) {
    wait_for(browser, css).await;
    browser
        .execute(
            "const f = document.querySelector(arguments[0]); f.value = arguments[1]; \
             f.dispatchEvent(new Event('input', { bubbles: true }));",
            vec![json!(css), json!(text)],
        )
        .await
        .unwrap_or_else(|e| panic!("paste into {css}: {e}"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_browsers_zone_is_preselected_even_when_it_reports_an_old_name() {
    // Chromium names this zone Asia/Calcutta, which the list no longer offers.
    let Some(driver) = Chromedriver::start_in_zone(Some("Asia/Kolkata")) else {
        return;
    };
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, |_| {}).await;
    let browser = driver.open_browser(true).await;
    browser.goto(&app.url("/")).await.unwrap();
    wait_for(&browser, "#timezone").await;
    let reported = browser
        .execute(
            "return Intl.DateTimeFormat().resolvedOptions().timeZone;",
            vec![],
        )
        .await
        .unwrap();
    eprintln!("the browser reports {reported}");
    let deadline = Instant::now() + PATIENCE;
    while value_of(&browser, "#timezone").await != "Asia/Kolkata" {
        assert!(
            Instant::now() < deadline,
            "the browser reports {reported} and the form shows {}",
            value_of(&browser, "#timezone").await
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    browser.close().await.unwrap();
    app.stop().await;
    db.cleanup().await;
}
