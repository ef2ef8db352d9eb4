//! Several `serve` processes: on SQLite a second one on the same file refuses to start; on
//! PostgreSQL exactly one runs the schedule and another takes over when it stops.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use crate::helpers::{free_port, paperboy, postgres_database};

/// `serve` with its log going to a file in `dir`.
fn serve(dir: &Path, db_url: Option<&str>, name: &str) -> (Child, PathBuf) {
    let log = dir.join(format!("{name}.log"));
    let mut cmd = paperboy(dir);
    if let Some(url) = db_url {
        cmd.env("PAPERBOY_DATABASE_URL", url);
    }
    let child = cmd
        .env("PAPERBOY_LOG", "info")
        .env("PAPERBOY_BIND", format!("127.0.0.1:{}", free_port()))
        // No feed is polled during the test.
        .env("PAPERBOY_FETCH_SCHEDULE", "0 0 0 1 1 * 2099")
        .args(["serve", "--no-worker"])
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    (child, log)
}

fn wait_for_log(log: &Path, text: &str, within: Duration) {
    let started = Instant::now();
    loop {
        let content = std::fs::read_to_string(log).unwrap_or_default();
        if content.contains(text) {
            return;
        }
        assert!(
            started.elapsed() < within,
            "{text:?} not in {}:\n{content}",
            log.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn stop(mut child: Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

#[test]
fn a_second_serve_on_the_same_sqlite_file_refuses_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let (first, log) = serve(dir.path(), None, "first");
    wait_for_log(&log, "paperboy is listening", Duration::from_secs(30));
    let second = paperboy(dir.path())
        .env("PAPERBOY_BIND", format!("127.0.0.1:{}", free_port()))
        .arg("serve")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("another paperboy serve is already running on data/paperboy.db"),
        "{stderr}"
    );
    stop(first);
    // Once the first has stopped, the file is free again.
    let (again, log) = serve(dir.path(), None, "again");
    wait_for_log(&log, "paperboy is listening", Duration::from_secs(30));
    stop(again);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_instance_on_postgresql_runs_the_schedule_and_another_takes_over() {
    let Some(db) = postgres_database().await else {
        return;
    };
    db.store().await.close().await;
    let dir = tempfile::tempdir().unwrap();
    let url = db.url.expose().to_string();
    let (a, log_a) = serve(dir.path(), Some(&url), "a");
    wait_for_log(
        &log_a,
        "this instance runs the schedule",
        Duration::from_secs(30),
    );
    let (b, log_b) = serve(dir.path(), Some(&url), "b");
    wait_for_log(
        &log_b,
        "another instance runs the schedule; standing by",
        Duration::from_secs(30),
    );
    assert!(
        !std::fs::read_to_string(&log_b)
            .unwrap()
            .contains("this instance runs the schedule"),
        "two instances ran the schedule"
    );
    stop(a);
    wait_for_log(
        &log_b,
        "this instance runs the schedule",
        Duration::from_secs(20),
    );
    stop(b);
    db.cleanup().await;
}

fn outbox_subjects(dir: &Path) -> Vec<String> {
    let mut subjects: Vec<String> = std::fs::read_dir(dir.join("data/outbox"))
        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
        .unwrap_or_default()
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .filter_map(|m| {
            m.lines()
                .find_map(|l| l.strip_prefix("Subject: "))
                .map(str::to_string)
        })
        .collect();
    subjects.sort();
    subjects
}

#[test]
fn the_demo_shows_a_confirmation_and_a_digest_in_the_outbox_and_nothing_sample_like_without_it() {
    let dir = tempfile::tempdir().unwrap();
    let (demo, log) = {
        let log = dir.path().join("demo.log");
        let child = paperboy(dir.path())
            .env("PAPERBOY_LOG", "info")
            .env("PAPERBOY_BIND", format!("127.0.0.1:{}", free_port()))
            .env("PAPERBOY_FETCH_SCHEDULE", "0 0 0 1 1 * 2099")
            .args(["serve", "--demo"])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        (child, log)
    };
    wait_for_log(&log, "demo: the form is at", Duration::from_secs(30));
    let started = Instant::now();
    while outbox_subjects(dir.path()).len() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "{:?}",
            outbox_subjects(dir.path())
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    stop(demo);
    let subjects = outbox_subjects(dir.path());
    assert_eq!(subjects[0], "Confirm your paperboy digest");
    assert!(
        subjects[1].starts_with("paperboy: 3 new papers for you"),
        "{subjects:?}"
    );
    let stats = paperboy(dir.path())
        .args(["stats", "--json"])
        .output()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["stats"]["papers"], 6);
    let feeds = paperboy(dir.path())
        .args(["feeds", "list", "--json"])
        .output()
        .unwrap();
    assert!(
        !String::from_utf8_lossy(&feeds.stdout).contains("paperboy-demo"),
        "the demo feed is not polled"
    );

    // Without --demo, a fresh database holds nothing sample-like.
    let plain = tempfile::tempdir().unwrap();
    let (child, log) = serve(plain.path(), None, "plain");
    wait_for_log(&log, "paperboy is listening", Duration::from_secs(30));
    stop(child);
    let stats = paperboy(plain.path())
        .args(["stats", "--json"])
        .output()
        .unwrap();
    let stats: serde_json::Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["stats"]["papers"], 0);
    assert_eq!(stats["stats"]["subscribers"], serde_json::json!([]));

    // The demo writes mail for a made-up reader, so it refuses a real relay.
    let smtp = paperboy(plain.path())
        .env("PAPERBOY_SMTP_URL", "smtp://127.0.0.1:9?tls=none")
        .env("PAPERBOY_BIND", format!("127.0.0.1:{}", free_port()))
        .args(["serve", "--demo"])
        .output()
        .unwrap();
    assert_eq!(smtp.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&smtp.stderr).contains("without PAPERBOY_SMTP_URL"));
}
