//! The digest email and the web pages judged by checkers paperboy did not write, from npm
//! (`tests/audit/package.json`, installed by `.ci/run`): axe-core in headless Chromium on
//! the email and on the subscribe form, a settings page and a digest's page; Lighthouse's
//! accessibility audit on the same pages; and the email's HTML and CSS against caniemail's
//! data with doiuse-email for Gmail, Outlook and Apple Mail (`tests/audit/email_css.mjs`,
//! whose allow-list names each remaining error and why it degrades gracefully).

use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::Utc;
use fantoccini::Client;
use serde_json::Value;

use crate::browser::{Chromedriver, wait_for};
use crate::helpers::{
    TestApp, TestDb, Visitor, arxiv_paper, deliver_due_digests, digest_text_to, link_starting,
    spawn_app, store_full_papers,
};

const CHROMIUM: &str = "/usr/bin/chromium";

/// `tests/audit`, where the checkers are installed.
fn audit_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/audit")
}

/// The folder for this module's files (the email as audited, Lighthouse's reports).
fn out_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("audit")
        .join(name);
    std::fs::create_dir_all(&dir).expect("create the audit folder");
    dir
}

/// True when Node.js and the npm checkers are installed; otherwise says how to install
/// them and, with CI=true, fails.
fn checkers_installed() -> bool {
    let node = Command::new("node")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    let modules = audit_dir().join("node_modules");
    let installed = node
        && [
            "axe-core/axe.min.js",
            "lighthouse/cli/index.js",
            "@jsx-email/doiuse-email",
        ]
        .iter()
        .all(|p| modules.join(p).exists());
    if !installed {
        let how = "install Node.js and run `npm ci --prefix tests/audit`";
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!("CI=true but the npm checkers are missing: {how}");
        }
        eprintln!("the npm checkers are missing ({how}): audit skipped");
    }
    installed
}

/// The digest email's HTML part (the snapshots' 15 papers, and the one grouped by
/// query), written where a browser and the checkers can open it.
fn emails() -> Vec<(&'static str, PathBuf)> {
    let dir = out_dir("email");
    [
        ("digest", crate::digest_mail::view()),
        ("grouped", crate::digest_mail::grouped_view()),
    ]
    .into_iter()
    .map(|(name, view)| {
        let (html, _) = paperboy::email::digest::bodies(&view).expect("render the email");
        let path = dir.join(format!("{name}.html"));
        std::fs::write(&path, html).expect("write the email");
        (name, path)
    })
    .collect()
}

/// axe-core's violations on the page `browser` shows: rule, impact, help and the
/// elements, one line each.
async fn axe_violations(browser: &Client) -> Vec<String> {
    let source = std::fs::read_to_string(audit_dir().join("node_modules/axe-core/axe.min.js"))
        .expect("read axe.min.js");
    browser
        .execute(&source, vec![])
        .await
        .expect("load axe-core into the page");
    let result = browser
        .execute_async(
            "const done = arguments[arguments.length - 1];
             axe.run(document, { resultTypes: ['violations'] })
               .then(r => done({ version: axe.version, rules: r.passes.length,
                 violations: r.violations.map(v => ({ id: v.id, impact: v.impact, help: v.help,
                   nodes: v.nodes.map(n => n.target.join(' ')) })) }))
               .catch(e => done({ error: String(e) }));",
            vec![],
        )
        .await
        .expect("run axe-core");
    assert!(result.get("error").is_none(), "axe-core failed: {result}");
    eprintln!(
        "axe-core {}: {} rules passed",
        result["version"].as_str().unwrap_or("?"),
        result["rules"]
    );
    result["violations"]
        .as_array()
        .expect("a list of violations")
        .iter()
        .map(|v| {
            format!(
                "{} ({}): {} at {}",
                v["id"].as_str().unwrap_or("?"),
                v["impact"].as_str().unwrap_or("?"),
                v["help"].as_str().unwrap_or("?"),
                v["nodes"]
            )
        })
        .collect()
}

#[tokio::test]
async fn the_digest_email_has_no_axe_violations() {
    if !checkers_installed() {
        return;
    }
    let Some(driver) = Chromedriver::start() else {
        return;
    };
    let browser = driver.open_browser(true).await;
    let mut report = Vec::new();
    for (name, path) in emails() {
        browser
            .goto(&format!("file://{}", path.display()))
            .await
            .unwrap();
        wait_for(&browser, "[role=main]").await;
        let violations = axe_violations(&browser).await;
        eprintln!("AUDIT axe email-{name} violations={}", violations.len());
        report.extend(violations.into_iter().map(|v| format!("{name}: {v}")));
    }
    browser.close().await.unwrap();
    assert!(
        report.is_empty(),
        "axe-core on the email:\n{}",
        report.join("\n")
    );
}

#[test]
fn the_email_css_holds_up_in_gmail_outlook_and_apple_mail() {
    if !checkers_installed() {
        return;
    }
    for (name, path) in emails() {
        let out = Command::new("node")
            .arg(audit_dir().join("email_css.mjs"))
            .arg(&path)
            .output()
            .expect("run email_css.mjs");
        let stdout = String::from_utf8_lossy(&out.stdout);
        eprintln!("{name}:\n{stdout}{}", String::from_utf8_lossy(&out.stderr));
        assert!(
            out.status.success(),
            "{name}: errors caniemail's data finds that the allow-list \
             (tests/audit/email-css-allowed.txt) does not name, or entries it no longer needs:\n{stdout}"
        );
    }
}

/// A running app with one confirmed reader who has had a digest: the subscribe form, the
/// reader's settings page and the digest's page, by name.
async fn pages(db: &TestDb) -> (TestApp, Vec<(&'static str, String)>) {
    let app = spawn_app(db, |s| s.log = "warn".into()).await;
    let email = "ada@example.org";
    let preferences = Visitor::new(&app).subscribe_and_confirm(&app, email).await;
    store_full_papers(
        &app.store,
        vec![
            arxiv_paper("2412.00301", "Diffusion for proteins", "diffusion", Some(9)),
            arxiv_paper("2412.00302", "Diffusion on graphs", "diffusion", Some(3)),
        ],
    )
    .await;
    let sent = deliver_due_digests(&app, Utc::now() + chrono::Duration::days(8)).await;
    assert_eq!(sent, 1);
    let text = digest_text_to(&app, email);
    let digest = link_starting(&text, &app.url("/digests/")).expect("the digest's page link");
    let pages = vec![
        ("subscribe", app.url("/")),
        ("settings", app.url(&preferences)),
        ("digest", digest),
    ];
    (app, pages)
}

#[tokio::test]
async fn the_form_settings_and_digest_pages_have_no_axe_violations() {
    if !checkers_installed() {
        return;
    }
    let Some(driver) = Chromedriver::start() else {
        return;
    };
    let db = TestDb::sqlite().await;
    let (app, pages) = pages(&db).await;
    // With scripts on, as most readers have them (axe-core itself is a script); what the
    // pages show without scripts is the same markup, less the live preview.
    let browser = driver.open_browser(true).await;
    let mut report = Vec::new();
    for (name, url) in &pages {
        browser.goto(url).await.unwrap();
        wait_for(&browser, "main").await;
        let violations = axe_violations(&browser).await;
        eprintln!("AUDIT axe {name} violations={}", violations.len());
        report.extend(violations.into_iter().map(|v| format!("{name}: {v}")));
    }
    browser.close().await.unwrap();
    app.stop().await;
    db.cleanup().await;
    assert!(
        report.is_empty(),
        "axe-core on the pages:\n{}",
        report.join("\n")
    );
}

/// Lighthouse's accessibility category for `url`: the score (0 to 1) and the audits that
/// failed, from a report kept in the audit folder.
fn lighthouse_accessibility(name: &str, url: &str) -> (f64, Vec<String>) {
    let report = out_dir("lighthouse").join(format!("{name}.json"));
    let profile = tempfile::tempdir().expect("a Chromium profile folder");
    let flags = format!(
        "--headless=new --no-sandbox --disable-gpu --disable-dev-shm-usage --no-first-run \
         --disable-background-networking --disable-component-update --disable-sync \
         --user-data-dir={}",
        profile.path().display()
    );
    let out = Command::new("node")
        .arg(audit_dir().join("node_modules/lighthouse/cli/index.js"))
        .arg(url)
        .args([
            "--only-categories=accessibility",
            "--output=json",
            "--quiet",
            "--max-wait-for-load=20000",
        ])
        .arg(format!("--output-path={}", report.display()))
        .arg(format!("--chrome-flags={flags}"))
        .env("CHROME_PATH", CHROMIUM)
        .output()
        .expect("run Lighthouse");
    assert!(
        out.status.success(),
        "Lighthouse on {name} failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let json: Value = serde_json::from_slice(&std::fs::read(&report).expect("Lighthouse's report"))
        .expect("Lighthouse's JSON report");
    assert_eq!(json["lighthouseVersion"], "12.2.3", "the pinned Lighthouse");
    assert!(
        json["runtimeError"].is_null(),
        "Lighthouse on {name}: {}",
        json["runtimeError"]
    );
    let category = &json["categories"]["accessibility"];
    let failed = category["auditRefs"]
        .as_array()
        .expect("the category's audits")
        .iter()
        .filter(|r| r["weight"].as_f64().unwrap_or(0.0) > 0.0)
        .filter_map(|r| {
            let id = r["id"].as_str()?;
            let audit = &json["audits"][id];
            (audit["score"].as_f64() != Some(1.0)).then(|| {
                format!(
                    "{id}: {} ({})",
                    audit["title"].as_str().unwrap_or("?"),
                    audit["displayValue"].as_str().unwrap_or("")
                )
            })
        })
        .collect();
    let score = category["score"].as_f64().expect("an accessibility score");
    (score, failed)
}

#[tokio::test]
async fn lighthouse_gives_the_form_settings_and_digest_pages_100_for_accessibility() {
    if !checkers_installed() {
        return;
    }
    if !Path::new(CHROMIUM).exists() {
        assert!(
            !std::env::var("CI").is_ok_and(|v| v == "true"),
            "CI=true but Chromium is missing: install Debian's chromium"
        );
        eprintln!("Chromium not installed: Lighthouse skipped");
        return;
    }
    let db = TestDb::sqlite().await;
    let (app, pages) = pages(&db).await;
    let mut report = Vec::new();
    for (name, url) in pages {
        let (score, failed) =
            tokio::task::spawn_blocking(move || lighthouse_accessibility(name, &url))
                .await
                .expect("Lighthouse's thread");
        eprintln!("AUDIT lighthouse {name} accessibility={:.0}", score * 100.0);
        if score < 1.0 || !failed.is_empty() {
            report.push(format!(
                "{name}: {:.0}\n  {}",
                score * 100.0,
                failed.join("\n  ")
            ));
        }
    }
    app.stop().await;
    db.cleanup().await;
    assert!(
        report.is_empty(),
        "Lighthouse accessibility below 100:\n{}",
        report.join("\n")
    );
}
