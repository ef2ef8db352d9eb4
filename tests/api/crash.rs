//! Delivery that survives a crash and shares the queue: `paperboy digest run` killed with
//! SIGKILL mid-delivery and started again, and two worker processes on one PostgreSQL
//! database. Every reader ends with exactly one delivered digest; the only repeats are
//! messages in flight at the kill, and they carry the same Message-ID.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::helpers::{
    SmtpSink, TestDb, active_subscriber, arxiv_paper, confirmed_subscribers, databases,
    find_subscriber, free_port, paperboy, postgres_database, run_due_digests, store_full_papers,
    tomorrow,
};
use paperboy::store::Store;

const CONCURRENCY: usize = 4;

/// Two `digest run --at AT --json` at once; their JSON reports.
fn two_runs_at_once(dir: &Path, at: &str) -> [serde_json::Value; 2] {
    let run = || {
        paperboy(dir)
            .args(["digest", "run", "--at", at, "--json"])
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (run(), run());
    [a, b].map(|child| {
        let out = child.wait_with_output().unwrap();
        assert!(out.status.success());
        serde_json::from_slice(&out.stdout).unwrap()
    })
}

/// Settings for the binary: the sink, short leases, and the database under test.
fn configure(dir: &Path, db: &TestDb, port: u16) {
    std::fs::write(
        dir.join("paperboy.toml"),
        format!(
            "database_url = \"{}\"\nsmtp_url = \"smtp://127.0.0.1:{port}?tls=none\"\n\
             from = \"paperboy <digest@papers.example.org>\"\n\
             [delivery]\nconcurrency = {CONCURRENCY}\nmessages_per_second = 400\nlease_secs = 2\n\
             retry_base_secs = 1\nretry_max_secs = 1\n",
            db.url.expose()
        ),
    )
    .unwrap();
}

async fn subscribers(store: &Store, n: usize) {
    confirmed_subscribers(store, "c", n, "diffusion").await;
    store_full_papers(
        store,
        vec![arxiv_paper("2405.00001", "Diffusion", "diffusion", None)],
    )
    .await;
}

async fn delivered_once_each(store: &Store, n: usize) {
    let counts: HashMap<String, i64> = store.delivery_counts().await.unwrap().into_iter().collect();
    assert_eq!(counts.get("sent").copied(), Some(n as i64), "{counts:?}");
    assert_eq!(counts.len(), 1, "nothing left in another state: {counts:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_killed_mid_delivery_and_started_again_delivers_each_digest_once() {
    for db in databases().await {
        let n = if db.backend == "sqlite" { 2000 } else { 1000 };
        let dir = tempfile::tempdir().unwrap();
        let Some(sink) = SmtpSink::start(dir.path()) else {
            return;
        };
        configure(dir.path(), &db, sink.port);
        let store = db.store().await;
        subscribers(&store, n).await;
        let at = tomorrow().to_rfc3339();

        let mut first = paperboy(dir.path())
            .args(["digest", "run", "--at", &at])
            .spawn()
            .unwrap();
        let started = Instant::now();
        // Kill it once a good share, but not all, has arrived.
        loop {
            let got = sink.received_files().len();
            if got >= n / 4 {
                break;
            }
            assert!(
                started.elapsed() < Duration::from_secs(120),
                "only {got} arrived"
            );
            if let Ok(Some(status)) = first.try_wait() {
                panic!("finished before the kill ({status}) with {got} received");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let pid = first.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-9", &pid])
                .status()
                .unwrap()
                .success()
        );
        let _ = first.wait();
        let at_kill = sink.received_files().len();
        eprintln!("{}: killed after {at_kill} of {n} messages", db.backend);
        assert!(at_kill < n, "the kill came too late to test anything");

        // Leases of the sends in flight run out; the second run takes them over.
        std::thread::sleep(Duration::from_millis(2500));
        let second = paperboy(dir.path())
            .args(["digest", "run", "--at", &at])
            .output()
            .unwrap();
        assert!(
            second.status.success(),
            "{}",
            String::from_utf8_lossy(&second.stderr)
        );
        let out = String::from_utf8_lossy(&second.stdout);
        assert!(
            out.contains("0 composed"),
            "no window composed twice: {out}"
        );
        std::thread::sleep(Duration::from_millis(500));

        delivered_once_each(&store, n).await;
        let (ids, to) = sink.arrivals();
        assert_eq!(to.len(), n, "every reader got their digest");
        let repeats: Vec<_> = ids.iter().filter(|(_, c)| **c > 1).collect();
        let extra: usize = ids.values().map(|c| c - 1).sum();
        eprintln!(
            "{}: {} Message-IDs, {extra} repeated at the kill",
            db.backend,
            ids.len()
        );
        assert_eq!(ids.len(), n, "one Message-ID per reader, repeats included");
        assert!(
            extra <= CONCURRENCY,
            "only sends in flight repeat: {repeats:?}"
        );
        let repeated_subscribers = to.values().filter(|c| **c > 1).count();
        assert_eq!(
            repeated_subscribers,
            repeats.len(),
            "a repeat is the same message again"
        );
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_worker_processes_on_postgresql_serve_no_subscriber_twice() {
    let Some(db) = postgres_database().await else {
        return;
    };
    let n = 600;
    let dir = tempfile::tempdir().unwrap();
    let Some(sink) = SmtpSink::start(dir.path()) else {
        return;
    };
    configure(dir.path(), &db, sink.port);
    let store = db.store().await;
    subscribers(&store, n).await;
    let at = tomorrow();
    // Compose first, without delivering, so that both workers start on a full queue.
    let dry = paperboy(dir.path())
        .args(["digest", "run", "--at", &at.to_rfc3339(), "--dry-run"])
        .output()
        .unwrap();
    assert!(dry.status.success());
    let mailer =
        paperboy::delivery::Mailer::from_settings(&paperboy::config::Settings::default()).unwrap();
    let report = run_due_digests(&store, &mailer, at).await;
    assert_eq!(report.composed, n);
    let [a, b] = two_runs_at_once(dir.path(), &at.to_rfc3339());
    let sent = |v: &serde_json::Value| v["delivered"]["sent"].as_u64().unwrap();
    let (sa, sb) = (sent(&a), sent(&b));
    eprintln!("worker A sent {sa}, worker B sent {sb}");
    assert_eq!(sa + sb, n as u64);
    std::thread::sleep(Duration::from_millis(500));
    let (ids, to) = sink.arrivals();
    assert_eq!(ids.len(), n);
    assert!(ids.values().all(|c| *c == 1), "a reader served twice");
    assert!(to.values().all(|c| *c == 1));
    delivered_once_each(&store, n).await;
    db.cleanup().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_lets_the_send_in_flight_finish_before_serve_exits() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        // A relay that takes 2 s to answer each message.
        let Some(sink) = SmtpSink::faulty(dir.path(), port, &["--delay", "2"]) else {
            return;
        };
        configure(dir.path(), &db, port);
        let store = db.store().await;
        subscribers(&store, 1).await;
        let mailer =
            paperboy::delivery::Mailer::from_settings(&paperboy::config::Settings::default())
                .unwrap();
        run_due_digests(&store, &mailer, tomorrow()).await;
        let web = free_port();
        let mut serve = paperboy(dir.path())
            .env("PAPERBOY_BIND", format!("127.0.0.1:{web}"))
            .args(["serve", "--no-scheduler"])
            .spawn()
            .unwrap();
        // Wait until the delivery is being sent, then ask the process to stop.
        let started = Instant::now();
        loop {
            let counts: HashMap<String, i64> =
                store.delivery_counts().await.unwrap().into_iter().collect();
            if counts.contains_key("sending") {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{counts:?}");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        // Claimed; a moment more and it is with the relay, which takes 2 s to answer.
        // (A delivery claimed but not yet handed to the relay is released on SIGTERM.)
        tokio::time::sleep(Duration::from_millis(500)).await;
        let pid = serve.id().to_string();
        assert!(
            std::process::Command::new("kill")
                .args(["-TERM", &pid])
                .status()
                .unwrap()
                .success()
        );
        let status = tokio::task::spawn_blocking(move || serve.wait().unwrap())
            .await
            .unwrap();
        assert!(status.success(), "{status}");
        delivered_once_each(&store, 1).await;
        assert_eq!(sink.received_files().len(), 1, "{}", db.backend);
        db.cleanup().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_digest_runs_at_once_after_a_three_day_outage_give_one_digest_per_subscriber() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let Some(sink) = SmtpSink::start(dir.path()) else {
            return;
        };
        configure(dir.path(), &db, sink.port);
        let store = db.store().await;
        for (i, tz) in ["Asia/Kolkata", "America/New_York", "Pacific/Chatham"]
            .iter()
            .enumerate()
        {
            active_subscriber(
                &store,
                &format!("tz{i}@example.org"),
                "diffusion",
                "daily",
                8,
                tz,
            )
            .await;
        }
        store_full_papers(
            &store,
            vec![arxiv_paper("2410.00001", "Diffusion", "diffusion", None)],
        )
        .await;
        // Three days later, two schedulers tick at the same instant.
        let at = (chrono::Utc::now() + chrono::Duration::hours(73)).to_rfc3339();
        let [a, b] = two_runs_at_once(dir.path(), &at);
        let composed = |v: &serde_json::Value| v["report"]["composed"].as_u64().unwrap();
        assert_eq!(composed(&a) + composed(&b), 3, "{}", db.backend);
        for i in 0..3 {
            let subscriber = find_subscriber(&store, &format!("tz{i}@example.org"))
                .await
                .unwrap();
            assert_eq!(
                store.digests_of(subscriber.id).await.unwrap().len(),
                1,
                "one digest for the gap"
            );
        }
        std::thread::sleep(Duration::from_millis(300));
        let (ids, to) = sink.arrivals();
        assert_eq!((ids.len(), to.len()), (3, 3));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_run_after_a_crash_says_how_many_deliveries_a_lease_still_holds_and_until_when() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        // Nothing is sent: the one delivery is held by the crashed run.
        configure(dir.path(), &db, free_port());
        let store = db.store().await;
        subscribers(&store, 1).await;
        let at = tomorrow().to_rfc3339();
        let composed = paperboy(dir.path())
            .args(["digest", "run", "--at", &at, "--no-deliver"])
            .output()
            .unwrap();
        assert!(composed.status.success(), "{composed:?}");
        // A run that claimed it and died: its lease has ten minutes to go.
        let claimed = store
            .claim_deliveries(
                "crashed",
                10,
                chrono::Duration::minutes(10),
                chrono::Utc::now(),
            )
            .await
            .unwrap();
        assert_eq!(claimed.len(), 1, "{}", db.backend);

        let again = paperboy(dir.path())
            .args(["digest", "run", "--at", &at])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&again.stdout);
        assert!(again.status.success(), "{out}");
        let line = out
            .lines()
            .find(|l| l.starts_with("1 delivery is held by another run"))
            .unwrap_or_else(|| panic!("{}: no word of the lease: {out}", db.backend));
        let until = line
            .split(" until ")
            .nth(1)
            .and_then(|rest| rest.split(':').take(3).collect::<Vec<_>>().join(":").into())
            .unwrap_or_default();
        let until =
            chrono::DateTime::parse_from_rfc3339(&until).unwrap_or_else(|e| panic!("{line}: {e}"));
        let left = until.with_timezone(&chrono::Utc) - chrono::Utc::now();
        assert!(
            left > chrono::Duration::minutes(8) && left <= chrono::Duration::minutes(10),
            "{line}"
        );
        let json = paperboy(dir.path())
            .args(["digest", "run", "--at", &at, "--json"])
            .output()
            .unwrap();
        let report: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
        assert_eq!(report["leased"]["deliveries"], 1, "{report}");
        assert!(report["leased"]["until"].is_string(), "{report}");
        db.cleanup().await;
    }
}
