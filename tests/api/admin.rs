//! The admin commands through the binary, on SQLite and PostgreSQL: readers added, listed,
//! shown, exported (consent included) and erased without a trace in a full dump; CSV
//! import with broken rows; resends; stats; and `--help` for every subcommand.

use std::path::Path;
use std::process::Output;

use crate::helpers::{
    TestDb, arxiv_paper, base64_parts, databases, outbox_messages, paperboy, paperboy_on,
    store_full_papers, tomorrow,
};
use serde_json::Value;

fn run(dir: &Path, db: &TestDb, args: &[&str]) -> Output {
    paperboy_on(dir, db).args(args).output().unwrap()
}

fn ok(o: &Output) -> String {
    assert!(
        o.status.success(),
        "exit {:?}: {}",
        o.status.code(),
        String::from_utf8_lossy(&o.stderr)
    );
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn json(o: &Output) -> Value {
    serde_json::from_str(&ok(o)).unwrap()
}

fn outbox(dir: &Path) -> Vec<String> {
    outbox_messages(&dir.join("data/outbox"))
}

/// A full dump of the database as text (`sqlite3 .dump` or `pg_dump`); `None` when the
/// tool is missing outside CI.
fn dump(db: &TestDb) -> Option<String> {
    let url = db.url.expose();
    let out = if let Some(path) = url.strip_prefix("sqlite://") {
        std::process::Command::new("sqlite3")
            .arg(path)
            .arg(".dump")
            .output()
    } else {
        std::process::Command::new("pg_dump").arg(url).output()
    };
    let Ok(out) = out else {
        assert!(
            std::env::var("CI").map_or(true, |v| v != "true"),
            "CI=true but sqlite3 or pg_dump is missing"
        );
        eprintln!("sqlite3 or pg_dump not installed: the dump check is skipped");
        return None;
    };
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

#[test]
fn every_subcommand_answers_help() {
    let dir = tempfile::tempdir().unwrap();
    let paths: &[&[&str]] = &[
        &[],
        &["serve"],
        &["migrate"],
        &["config"],
        &["fetch"],
        &["feeds", "list"],
        &["feeds", "add"],
        &["feeds", "remove"],
        &["papers", "list"],
        &["papers", "show"],
        &["papers", "search"],
        &["digest", "run"],
        &["digest", "preview"],
        &["resend"],
        &["subscribers", "list"],
        &["subscribers", "show"],
        &["subscribers", "add"],
        &["subscribers", "remove"],
        &["subscribers", "import"],
        &["subscribers", "export"],
        &["subscribers", "erase"],
        &["stats"],
        &["send-test-email"],
    ];
    for path in paths {
        let out = paperboy(dir.path())
            .args(*path)
            .arg("--help")
            .output()
            .unwrap();
        assert!(out.status.success(), "{path:?} --help");
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage:"));
    }
}

#[tokio::test]
async fn subscribers_are_added_shown_exported_and_erased_without_a_trace() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        ok(&run(
            d,
            &db,
            &[
                "subscribers",
                "add",
                "Erin@Example.org",
                "--query",
                "diffusion",
                "--query",
                "author:\"Tri Dao\"",
                "--frequency",
                "weekly:thu",
                "--send-hour",
                "7",
                "--timezone",
                "Asia/Kolkata",
                "--confirmed",
            ],
        ));
        ok(&run(d, &db, &["subscribers", "add", "pat@example.org"]));
        assert!(
            outbox(d)
                .iter()
                .any(|m| m.contains("Subject: Confirm your paperboy digest")),
            "the pending reader got a confirmation link"
        );
        let again = run(
            d,
            &db,
            &["subscribers", "add", "erin@example.org", "--confirmed"],
        );
        assert_eq!(again.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&again.stderr).contains("already a reader"));
        let bad = run(
            d,
            &db,
            &["subscribers", "add", "x@example.org", "--query", "(oops"],
        );
        assert_eq!(bad.status.code(), Some(2));

        let list = json(&run(d, &db, &["subscribers", "list", "--json"]));
        assert_eq!(list.as_array().unwrap().len(), 2, "{}", db.backend);
        let active = json(&run(
            d,
            &db,
            &["subscribers", "list", "--status", "active", "--json"],
        ));
        assert_eq!(active[0]["email"], "Erin@example.org");
        assert_eq!(active[0]["preferences"]["frequency"], "weekly:thu");
        // The table lines its columns up under their headings.
        let table = ok(&run(d, &db, &["subscribers", "list"]));
        let lines: Vec<&str> = table.lines().collect();
        assert_eq!(lines.len(), 3, "{table}");
        assert!(lines[0].starts_with("ADDRESS"), "{table}");
        let column = |heading: &str| lines[0].find(heading).expect(heading);
        for row in &lines[1..] {
            for heading in ["STATUS", "FREQUENCY", "HOUR", "TIME ZONE", "QUERIES"] {
                let at = column(heading);
                assert!(
                    row.len() > at && row.as_bytes()[at - 1] == b' ' && row.as_bytes()[at] != b' ',
                    "{heading} not aligned in {table}"
                );
            }
        }
        assert!(table.contains("weekly:thu"), "{table}");
        let text = ok(&run(d, &db, &["subscribers", "show", "erin@example.org"]));
        assert!(!text.contains("your"), "speaks of the subscriber: {text}");
        let subscribed = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("subscribed "))
            .expect("a subscribed line");
        assert!(
            chrono::DateTime::parse_from_rfc3339(subscribed).is_ok()
                && subscribed.ends_with('Z')
                && !subscribed.contains('.'),
            "RFC 3339 to the second: {subscribed}"
        );
        let shown = json(&run(
            d,
            &db,
            &["subscribers", "show", "erin@example.org", "--json"],
        ));
        assert_eq!(
            shown["subscriber"]["preferences"]["timezone"],
            "Asia/Kolkata"
        );

        // A digest, so that the export and the erase have something to cover.
        let store = db.store().await;
        store_full_papers(
            &store,
            vec![arxiv_paper("2408.00001", "Diffusion", "diffusion", None)],
        )
        .await;
        let at = (chrono::Utc::now() + chrono::Duration::days(8)).to_rfc3339();
        ok(&run(d, &db, &["digest", "run", "--at", &at]));
        // A rating too, and the taste learned from it.
        let erin = crate::helpers::find_subscriber(&store, "erin@example.org")
            .await
            .unwrap();
        let rated = crate::helpers::paper(&store, "arxiv:2408.00001").await;
        paperboy::digest::taste::rate(
            &store,
            erin.id,
            &[rated.id],
            paperboy::domain::Rating::More,
            paperboy::domain::RatingSource::Operator,
            chrono::Utc::now(),
        )
        .await
        .unwrap();
        let export = json(&run(d, &db, &["subscribers", "export", "erin@example.org"]));
        assert_eq!(export["ratings"][0]["key"], "arxiv:2408.00001");
        assert_eq!(export["ratings"][0]["rating"], "more");
        let events: Vec<&str> = export["consents"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["event"].as_str().unwrap())
            .collect();
        assert_eq!(events, ["requested", "confirmed"]);
        assert!(
            export["consents"][0]["form_text"]
                .as_str()
                .unwrap()
                .contains("operator")
        );
        assert_eq!(export["digests"][0]["papers"][0], "arxiv:2408.00001");
        assert_eq!(export["digests"][0]["deliveries"][0]["status"], "sent");

        let stats = json(&run(d, &db, &["stats", "--json"]));
        assert_eq!(stats["stats"]["papers"], 1);

        if let Some(before) = dump(&db) {
            assert!(before.to_lowercase().contains("erin@example.org"));
            assert!(before.contains("rocchio1"), "the taste is stored");
        }
        ok(&run(d, &db, &["subscribers", "erase", "ERIN@example.org"]));
        if let Some(after) = dump(&db).map(|d| d.to_lowercase()) {
            assert!(
                !after.contains("erin@example.org"),
                "{}: the address survived",
                db.backend
            );
            assert!(
                !after.contains("tri dao"),
                "{}: their queries survived",
                db.backend
            );
            assert!(
                !after.contains("rocchio1"),
                "{}: their learned taste survived",
                db.backend
            );
        }
        let gone = run(d, &db, &["subscribers", "erase", "erin@example.org"]);
        assert_eq!(gone.status.code(), Some(2));
        let back = run(d, &db, &["subscribers", "add", "erin@example.org"]);
        assert_eq!(
            back.status.code(),
            Some(2),
            "an erased address is not mailed again"
        );
        assert!(String::from_utf8_lossy(&back.stderr).contains("suppression list"));
        store.close().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn import_keeps_the_good_rows_and_reports_the_bad_ones_by_line() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        let csv = d.join("readers.csv");
        std::fs::write(
            &csv,
            "email,query,frequency,send_hour,timezone,confirmed\n\
             ada@example.org,diffusion,daily,8,Europe/Berlin,true\n\
             ada@example.org,\"\"\"state space model\"\"\",,,,\n\
             not-an-address,diffusion,daily,8,UTC,true\n\
             bob@example.org,title:(unclosed,daily,8,UTC,true\n\
             cy@example.org,,weekly:mon,25,UTC,true\n\
             dee@example.org,graphs,weekdays,6,America/New_York,no\n",
        )
        .unwrap();
        let out = run(d, &db, &["subscribers", "import", csv.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2), "{}", db.backend);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains("line 4:"), "{stderr}");
        assert!(stderr.contains("line 5:"), "{stderr}");
        assert!(
            stderr.contains("line 6:") && stderr.contains("25"),
            "{stderr}"
        );
        assert!(String::from_utf8_lossy(&out.stdout).starts_with("2 readers added"));
        let list = json(&run(d, &db, &["subscribers", "list", "--json"]));
        let list = list.as_array().unwrap();
        assert_eq!(list.len(), 2);
        let ada = list
            .iter()
            .find(|r| r["email"] == "ada@example.org")
            .unwrap();
        assert_eq!(ada["status"], "active");
        assert_eq!(
            ada["preferences"]["queries"],
            serde_json::json!(["diffusion", "\"state space model\""])
        );
        let dee = list
            .iter()
            .find(|r| r["email"] == "dee@example.org")
            .unwrap();
        assert_eq!(dee["status"], "pending");
        let missing = run(d, &db, &["subscribers", "import", "/no/such.csv"]);
        assert_eq!(missing.status.code(), Some(2));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_resent_digest_arrives_again_with_the_same_content_and_a_new_message_id() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        ok(&run(
            d,
            &db,
            &[
                "subscribers",
                "add",
                "res@example.org",
                "--query",
                "diffusion",
                "--confirmed",
            ],
        ));
        let store = db.store().await;
        store_full_papers(
            &store,
            vec![arxiv_paper("2409.00001", "Diffusion", "diffusion", None)],
        )
        .await;
        let at = tomorrow();
        ok(&run(d, &db, &["digest", "run", "--at", &at.to_rfc3339()]));
        assert_eq!(outbox(d).len(), 1);
        let date = at.date_naive().to_string();
        let resent = json(&run(
            d,
            &db,
            &[
                "resend",
                "--email",
                "res@example.org",
                "--date",
                &date,
                "--json",
            ],
        ));
        assert_eq!(resent["delivered"]["sent"], 1, "{}", db.backend);
        let all = run(
            d,
            &db,
            &["resend", "--date", &date, "--all", "--failed-only"],
        );
        assert!(
            ok(&all).starts_with("0 digests queued again"),
            "nothing failed"
        );
        let mails = outbox(d);
        assert_eq!(mails.len(), 2);
        let id = |m: &str| {
            m.lines()
                .find_map(|l| l.strip_prefix("Message-ID: "))
                .unwrap()
                .to_string()
        };
        assert_ne!(id(&mails[0]), id(&mails[1]));
        assert_eq!(
            base64_parts(&mails[0]),
            base64_parts(&mails[1]),
            "same content"
        );
        let none = run(d, &db, &["resend", "--email", "nobody@example.org"]);
        assert_eq!(none.status.code(), Some(2));
        let neither = run(d, &db, &["resend"]);
        assert_eq!(neither.status.code(), Some(2));
        store.close().await;
        db.cleanup().await;
    }
}

#[test]
fn long_commands_show_a_progress_bar_on_a_terminal_and_none_when_piped() {
    let dir = tempfile::tempdir().unwrap();
    let csv = dir.path().join("readers.csv");
    std::fs::write(
        &csv,
        "email,query,confirmed\na@example.org,diffusion,true\nb@example.org,graphs,true\n",
    )
    .unwrap();
    // `script` runs the command on a pseudo-terminal.
    let binary = env!("CARGO_BIN_EXE_paperboy");
    let tty = std::process::Command::new("script")
        .current_dir(dir.path())
        .args([
            "-qec",
            &format!("{binary} subscribers import {}", csv.display()),
            "/dev/null",
        ])
        .output()
        .unwrap();
    let shown = String::from_utf8_lossy(&tty.stdout);
    assert!(shown.contains("importing ["), "{shown}");
    std::fs::remove_dir_all(dir.path().join("data")).unwrap();
    let piped = paperboy(dir.path())
        .args(["subscribers", "import", csv.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(piped.status.success());
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&piped.stdout),
        String::from_utf8_lossy(&piped.stderr)
    );
    assert!(!all.contains("importing ["), "{all}");
}

#[tokio::test]
async fn import_counts_lines_after_multi_line_records_and_cuts_long_values() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let csv = d.join("readers.csv");
    let huge = format!("title:({}", "a".repeat(5_000_000));
    std::fs::write(
        &csv,
        format!(
            "email,query,note,confirmed\n\
             ada@example.org,diffusion,\"a note\nover three\nlines\",true\n\
             not-an-address,diffusion,,true\n\
             bob@example.org,\"{huge}\",,true\n\
             cy@example.org,graphs,\"two\nlines\",true\n\
             also-not-an-address,graphs,,true\n"
        ),
    )
    .unwrap();
    let out = run(d, &db, &["subscribers", "import", csv.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 5: \"not-an-address\""), "{stderr}");
    assert!(
        stderr.contains("line 6: query \"title:(aaa"),
        "{}",
        &stderr[..500.min(stderr.len())]
    );
    assert!(
        stderr.contains("line 9: \"also-not-an-address\""),
        "{}",
        &stderr[..500.min(stderr.len())]
    );
    assert!(stderr.len() < 2_000, "{} bytes on stderr", stderr.len());
    assert!(String::from_utf8_lossy(&out.stdout).starts_with("2 readers added"));
    db.cleanup().await;
}

#[tokio::test]
async fn subscribers_add_checks_the_settings_before_storing_anything() {
    let db = TestDb::sqlite().await;
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let short = paperboy_on(d, &db)
        .env("PAPERBOY_SECRET_KEY", "too-short-a-key")
        .args([
            "subscribers",
            "add",
            "ada@example.org",
            "--query",
            "diffusion",
        ])
        .output()
        .unwrap();
    assert!(!short.status.success());
    let stderr = String::from_utf8_lossy(&short.stderr);
    assert!(stderr.contains("at least 32 characters"), "{stderr}");
    assert!(!stderr.contains("too-short-a-key"), "{stderr}");
    let bad_dkim = paperboy_on(d, &db)
        .env("PAPERBOY_DKIM_KEY", d.join("missing.pem"))
        .env("PAPERBOY_DKIM_SELECTOR", "s1")
        .env("PAPERBOY_DKIM_DOMAIN", "example.org")
        .args([
            "subscribers",
            "add",
            "ada@example.org",
            "--query",
            "diffusion",
        ])
        .output()
        .unwrap();
    assert!(!bad_dkim.status.success());
    assert!(outbox(d).is_empty());
    // Nothing was stored, so the corrected retry adds the reader and mails the link.
    let good = paperboy_on(d, &db)
        .env(
            "PAPERBOY_SECRET_KEY",
            "a-secret-key-of-at-least-32-characters",
        )
        .args([
            "subscribers",
            "add",
            "ada@example.org",
            "--query",
            "diffusion",
        ])
        .output()
        .unwrap();
    assert!(
        ok(&good).contains("a confirmation link was sent"),
        "{}",
        String::from_utf8_lossy(&good.stdout)
    );
    assert_eq!(outbox(d).len(), 1);
    db.cleanup().await;
}
