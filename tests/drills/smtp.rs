//! Reliability drills: SMTP. Digests queued for real readers are delivered by the real
//! worker (`paperboy serve --no-scheduler`, `paperboy digest run`) into aiosmtpd with
//! injected faults (`tests/fixtures/smtp_faults.py`): seeded 451s, a 550, a relay down for
//! minutes, one that stalls mid-DATA or freezes, one that refuses TLS. Every drill ends by
//! reading each message back from the Maildir and checking, reader by reader, that exactly
//! the digests of their sent deliveries arrived, each once, apart from a message the relay
//! took without answering (the documented in-flight duplicate, same Message-ID).

#[path = "../api/helpers.rs"]
mod helpers;
#[path = "report.rs"]
mod report;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use helpers::{
    SmtpSink, TestDb, active_subscriber, arxiv_paper, databases, free_port, paperboy,
    store_full_papers,
};
use paperboy::domain::{EmailAddress, SubscriberStatus};
use paperboy::store::Store;
use serde_json::json;

/// Sends at once per worker (and so the most deliveries one stall can hold up).
const CONCURRENCY: usize = 4;
/// How long the relay stays down in the relay-down drill.
const DOWN: Duration = Duration::from_secs(180);
/// The SMTP timeout (`?timeout=`) in the stall drill.
const STALL_TIMEOUT_SECS: u64 = 3;

/// Runs `drill` on every database at once and fails when any of them fails.
async fn on_every_database<F, Fut>(drill: F)
where
    F: Fn(TestDb) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let tasks: Vec<_> = databases()
        .await
        .into_iter()
        .map(|db| tokio::spawn(drill(db)))
        .collect();
    let mut failure = None;
    for task in tasks {
        if let Err(e) = task.await {
            failure.get_or_insert(e);
        }
    }
    if let Some(e) = failure {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `paperboy.toml` for the binary: the database, the relay and quick retries.
fn configure(dir: &Path, db: &TestDb, smtp_url: &str, retry_max_secs: u64) {
    std::fs::write(
        dir.join("paperboy.toml"),
        format!(
            "database_url = \"{}\"\nsmtp_url = \"{smtp_url}\"\n\
             from = \"paperboy <digest@papers.example.org>\"\n\
             [delivery]\nconcurrency = {CONCURRENCY}\nmessages_per_second = 1000\n\
             lease_secs = 60\nretry_base_secs = 1\nretry_max_secs = {retry_max_secs}\n\
             poll_ms = 100\n",
            db.url.expose()
        ),
    )
    .expect("write paperboy.toml");
}

fn plain_relay(port: u16) -> String {
    format!("smtp://127.0.0.1:{port}?tls=none")
}

/// Readers `d0…d{n-1}@example.org`, daily at 08:00 UTC, all asking for `diffusion`.
async fn subscribers(store: &Store, n: usize) -> Vec<String> {
    let mut emails = Vec::with_capacity(n);
    for i in 0..n {
        let email = format!("d{i}@example.org");
        active_subscriber(store, &email, "diffusion", "daily", 8, "UTC").await;
        emails.push(email);
    }
    emails
}

/// A new matching paper, then every reader's digest due at `at` composed and queued.
async fn queue(store: &Store, paper: &str, at: DateTime<Utc>, n: usize) {
    store_full_papers(
        store,
        vec![arxiv_paper(paper, "Diffusion drills", "diffusion", None)],
    )
    .await;
    let mailer = paperboy::delivery::Mailer::from_settings(&paperboy::config::Settings::default())
        .expect("mailer for Message-IDs");
    let (report, _) = paperboy::digest::compose_due(store, &mailer.message_ids(), at, false)
        .await
        .expect("compose");
    assert_eq!(report.composed, n, "{report:?}");
}

/// An instant a day and a bit after now, when every daily reader is due.
fn tomorrow() -> DateTime<Utc> {
    Utc::now() + chrono::Duration::hours(25)
}

/// `paperboy serve --no-scheduler`: web and the delivery worker, logging into a file.
struct Serve {
    child: Child,
    log: PathBuf,
    port: u16,
}

impl Serve {
    fn start(dir: &Path, name: &str) -> Serve {
        let log = dir.join(format!("{name}.log"));
        let out = std::fs::File::create(&log).expect("serve log");
        let port = free_port();
        let child = paperboy(dir)
            .env("PAPERBOY_BIND", format!("127.0.0.1:{port}"))
            .args(["serve", "--no-scheduler"])
            .stdout(out.try_clone().expect("log file"))
            .stderr(out)
            .spawn()
            .expect("start paperboy serve");
        Serve { child, log, port }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn assert_running(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!("serve exited ({status}):\n{}", self.log());
        }
    }

    /// SIGTERM, then wait for a clean exit.
    async fn stop(mut self) {
        self.assert_running();
        let pid = self.child.id().to_string();
        signal("-TERM", &pid);
        let started = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait for serve") {
                assert!(status.success(), "{status}:\n{}", self.log());
                return;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "serve hangs");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn signal(sig: &str, pid: &str) {
    let ok = std::process::Command::new("kill")
        .args([sig, pid])
        .status()
        .expect("kill");
    assert!(ok.success(), "kill {sig} {pid}");
}

async fn counts(store: &Store) -> HashMap<String, i64> {
    store
        .delivery_counts()
        .await
        .expect("delivery counts")
        .into_iter()
        .collect()
}

/// Waits until `total` deliveries exist and none is queued, to retry or being sent.
async fn settle(store: &Store, total: usize, limit: Duration) -> HashMap<String, i64> {
    let started = Instant::now();
    loop {
        let c = counts(store).await;
        let open: i64 = ["queued", "retry", "sending"]
            .iter()
            .filter_map(|s| c.get(*s))
            .sum();
        if open == 0 && c.values().sum::<i64>() == total as i64 {
            // A message the relay stored is in the Maildir before its reply left.
            return c;
        }
        assert!(started.elapsed() < limit, "not settled in {limit:?}: {c:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The queue as the operator left it: `n` deliveries, none sent, failed or bounced.
fn assert_intact(c: &HashMap<String, i64>, n: usize) {
    assert_eq!(c.values().sum::<i64>(), n as i64, "{c:?}");
    for state in ["sent", "failed", "bounced", "suppressed"] {
        assert!(!c.contains_key(state), "{state} while it should not: {c:?}");
    }
}

/// One delivery row of a reader.
#[derive(Debug, Clone)]
struct Delivery {
    status: String,
    message_id: String,
    attempts: i32,
}

/// Every delivery of every reader in `emails`.
async fn deliveries(store: &Store, emails: &[String]) -> HashMap<String, Vec<Delivery>> {
    let mut out = HashMap::new();
    for email in emails {
        let subscriber = store
            .subscriber_by_email(&EmailAddress::parse(email).expect("address"))
            .await
            .expect("read reader")
            .unwrap_or_else(|| panic!("{email} is gone"));
        let mut rows = Vec::new();
        for digest in store.digests_of(subscriber.id).await.expect("digests") {
            for (_, status, message_id, attempts) in
                store.deliveries_of(digest.id).await.expect("deliveries")
            {
                rows.push(Delivery {
                    status,
                    message_id,
                    attempts,
                });
            }
        }
        out.insert(email.clone(), rows);
    }
    out
}

fn total_attempts(rows: &HashMap<String, Vec<Delivery>>) -> i64 {
    rows.values().flatten().map(|d| i64::from(d.attempts)).sum()
}

/// Message-ID (without brackets) and recipient of each message in the Maildir.
fn maildir(sink: &SmtpSink) -> Vec<(String, String)> {
    sink.received()
        .iter()
        .map(|raw| {
            let head = raw.split("\r\n\r\n").next().unwrap_or_default();
            let header = |name: &str| {
                head.lines()
                    .find_map(|l| l.strip_prefix(name))
                    .map(|v| v.trim().trim_matches(['<', '>']).to_string())
                    .unwrap_or_default()
            };
            (header("Message-ID: "), header("To: "))
        })
        .collect()
}

/// One line of the relay's log: what it did and to which message.
#[derive(Debug, Clone)]
struct Event {
    kind: String,
    message_id: String,
    rcpt: String,
}

fn relay_log(path: &Path) -> Vec<Event> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| {
            let mut parts = l.split_whitespace();
            let mut next = || parts.next().unwrap_or_default().to_string();
            let kind = next();
            let message_id = next().trim_matches(['<', '>']).to_string();
            Event {
                kind,
                message_id,
                rcpt: next(),
            }
        })
        .collect()
}

fn events<'a>(log: &'a [Event], kind: &str) -> Vec<&'a Event> {
    log.iter().filter(|e| e.kind == kind).collect()
}

/// What the final check found.
struct Checked {
    messages: usize,
    duplicates: usize,
    attempts: i64,
}

/// The end of every drill: each reader in `expected` (address → digests) has exactly that
/// many deliveries, all sent, and received exactly the messages of those deliveries, each
/// once; a Message-ID may arrive twice only when it is in `in_flight`. Nobody else got
/// anything.
async fn check_exactly_once(
    store: &Store,
    sink: &SmtpSink,
    expected: &HashMap<String, usize>,
    in_flight: &HashSet<String>,
) -> Checked {
    let emails: Vec<String> = expected.keys().cloned().collect();
    let rows = deliveries(store, &emails).await;
    let (ids, to) = sink.arrivals();
    let ids: HashMap<String, usize> = ids
        .into_iter()
        .map(|(id, c)| (id.trim_matches(['<', '>']).to_string(), c))
        .collect();
    let mail = maildir(sink);
    assert_eq!(
        ids.values().sum::<usize>(),
        mail.len(),
        "arrivals and files agree"
    );
    let mut by_subscriber: HashMap<&str, Vec<&str>> = HashMap::new();
    for (id, rcpt) in &mail {
        assert!(
            expected.contains_key(rcpt),
            "a message to {rcpt:?}, who should get none"
        );
        by_subscriber.entry(rcpt).or_default().push(id);
    }
    for (email, want) in expected {
        let sent: Vec<&Delivery> = rows[email].iter().filter(|d| d.status == "sent").collect();
        assert_eq!(
            rows[email].len(),
            *want,
            "{email}: deliveries {:?}",
            rows[email]
        );
        assert_eq!(sent.len(), *want, "{email}: {:?}", rows[email]);
        let want_ids: HashSet<&str> = sent.iter().map(|d| d.message_id.as_str()).collect();
        let got = by_subscriber
            .get(email.as_str())
            .cloned()
            .unwrap_or_default();
        let got_ids: HashSet<&str> = got.iter().copied().collect();
        assert_eq!(got_ids, want_ids, "{email}: received what was sent");
        let repeats = got.len() - got_ids.len();
        if repeats > 0 {
            assert!(
                got_ids
                    .iter()
                    .all(|id| ids[*id] == 1 || in_flight.contains(*id)),
                "{email}: a repeat that was not in flight: {got:?}"
            );
        }
        assert_eq!(to.get(email).copied().unwrap_or(0), got.len());
    }
    let duplicates: usize = ids.values().map(|c| c - 1).sum();
    for (id, c) in &ids {
        assert!(
            *c == 1 || (*c == 2 && in_flight.contains(id)),
            "{id} arrived {c} times"
        );
    }
    Checked {
        messages: mail.len(),
        duplicates,
        attempts: total_attempts(&rows),
    }
}

fn each_once(emails: &[String], times: usize) -> HashMap<String, usize> {
    emails.iter().map(|e| (e.clone(), times)).collect()
}

/// 1. About 10% of DATA commands get a seeded 451: each is retried, and in the end every
///    reader has one sent delivery and one message, none twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tenth_of_messages_refused_with_451_are_retried_and_arrive_once() {
    on_every_database(|db| async move {
        let n = 200;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = dir.path().join("relay.log");
        let log_arg = log.display().to_string();
        let Some(sink) = SmtpSink::faulty(
            dir.path(),
            port,
            &["--transient", "0.1", "--seed", "2026", "--log", &log_arg],
        ) else {
            return;
        };
        configure(dir.path(), &db, &plain_relay(port), 2);
        let store = db.store().await;
        let emails = subscribers(&store, n).await;
        queue(&store, "2501.00001", tomorrow(), n).await;
        let serve = Serve::start(dir.path(), "serve");
        let c = settle(&store, n, Duration::from_secs(90)).await;
        assert_eq!(c.get("sent"), Some(&(n as i64)), "{}: {c:?}", db.backend);
        serve.stop().await;

        let events_seen = relay_log(&log);
        let refused = events(&events_seen, "451");
        let accepted = events(&events_seen, "250");
        assert!(!refused.is_empty(), "the seed gave no 451 at all");
        assert_eq!(accepted.len(), n, "each message accepted once");
        let checked =
            check_exactly_once(&store, &sink, &each_once(&emails, 1), &HashSet::new()).await;
        assert_eq!(checked.duplicates, 0);
        assert_eq!(
            checked.attempts,
            (n + refused.len()) as i64,
            "one attempt per 451 plus one that went through"
        );
        let arrived: HashSet<String> = maildir(&sink).into_iter().map(|(id, _)| id).collect();
        for e in &refused {
            assert!(
                arrived.contains(&e.message_id),
                "{} was refused and never retried",
                e.message_id
            );
        }
        report::report(
            "smtp.transient_451",
            json!({
                "backend": db.backend,
                "readers": n,
                "messages_checked": checked.messages,
                "faults_injected": refused.len(),
                "attempts": checked.attempts,
                "duplicates": checked.duplicates,
            }),
        );
        db.cleanup().await;
    })
    .await;
}

/// 2. One address gets 550 on RCPT: that reader ends bounced and is not mailed again;
///    everyone else gets each digest once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_550_bounces_and_suppresses_one_subscriber_and_the_rest_arrive_once() {
    on_every_database(|db| async move {
        let n = 100;
        let gone = "d37@example.org";
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = dir.path().join("relay.log");
        let log_arg = log.display().to_string();
        let Some(sink) = SmtpSink::faulty(dir.path(), port, &["--reject", gone, "--log", &log_arg])
        else {
            return;
        };
        configure(dir.path(), &db, &plain_relay(port), 2);
        let store = db.store().await;
        let emails = subscribers(&store, n).await;
        let at = tomorrow();
        queue(&store, "2502.00001", at, n).await;
        let serve = Serve::start(dir.path(), "serve");
        let c = settle(&store, n, Duration::from_secs(60)).await;
        assert_eq!(
            (c.get("sent"), c.get("bounced"), c.len()),
            (Some(&(n as i64 - 1)), Some(&1), 2),
            "{}: {c:?}",
            db.backend
        );
        let subscriber = store
            .subscriber_by_email(&EmailAddress::parse(gone).expect("address"))
            .await
            .expect("reader")
            .expect("kept");
        assert_eq!(subscriber.status, SubscriberStatus::Bounced, "suppressed");

        // The next day: the bounced reader is not due and gets nothing more.
        queue(&store, "2502.00002", at + chrono::Duration::days(1), n - 1).await;
        settle(&store, 2 * n - 1, Duration::from_secs(60)).await;
        serve.stop().await;

        let others: Vec<String> = emails.iter().filter(|e| *e != gone).cloned().collect();
        let checked =
            check_exactly_once(&store, &sink, &each_once(&others, 2), &HashSet::new()).await;
        let rows = deliveries(&store, &[gone.to_string()]).await;
        let theirs = &rows[gone];
        assert_eq!(theirs.len(), 1, "{theirs:?}");
        assert_eq!(
            (theirs[0].status.as_str(), theirs[0].attempts),
            ("bounced", 1),
            "a hard bounce is not retried"
        );
        let events_seen = relay_log(&log);
        let bounces = events(&events_seen, "550");
        assert_eq!(bounces.len(), 1, "{bounces:?}");
        assert_eq!(bounces[0].rcpt, gone);
        assert_eq!(events(&events_seen, "250").len(), 2 * (n - 1));
        assert_eq!(checked.attempts, 2 * (n as i64 - 1), "no retries");
        report::report(
            "smtp.bounce_550",
            json!({
                "backend": db.backend,
                "readers": n,
                "messages_checked": checked.messages,
                "faults_injected": bounces.len(),
                "attempts": checked.attempts + 1,
                "bounced": 1,
                "duplicates": checked.duplicates,
            }),
        );
        db.cleanup().await;
    })
    .await;
}

/// 3. Nothing listens on the relay's port for three minutes while the worker runs:
///    everything waits in retry, nothing fails or bounces; once the relay is back every
///    digest arrives once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_down_for_minutes_loses_nothing_and_then_delivers_each_digest_once() {
    on_every_database(|db| async move {
        let n = 40;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        configure(dir.path(), &db, &plain_relay(port), 5);
        let store = db.store().await;
        let emails = subscribers(&store, n).await;
        queue(&store, "2503.00001", tomorrow(), n).await;
        let mut serve = Serve::start(dir.path(), "serve");
        let started = Instant::now();
        let mut looks = 0;
        while started.elapsed() < DOWN {
            tokio::time::sleep(Duration::from_secs(5)).await;
            serve.assert_running();
            assert_intact(&counts(&store).await, n);
            looks += 1;
        }
        let while_down = deliveries(&store, &emails).await;
        for (email, rows) in &while_down {
            // Backoff is at most 5 s (±25%): three minutes leave room for far more.
            assert!(
                rows[0].attempts >= 15,
                "{email} was not retried all along: {rows:?}"
            );
        }
        let log = dir.path().join("relay.log");
        let log_arg = log.display().to_string();
        let Some(sink) = SmtpSink::faulty(dir.path(), port, &["--log", &log_arg]) else {
            return;
        };
        let c = settle(&store, n, Duration::from_secs(60)).await;
        assert_eq!(c.get("sent"), Some(&(n as i64)), "{}: {c:?}", db.backend);
        serve.stop().await;
        let checked =
            check_exactly_once(&store, &sink, &each_once(&emails, 1), &HashSet::new()).await;
        assert_eq!(events(&relay_log(&log), "250").len(), n);
        let failed = checked.attempts - n as i64;
        assert!(failed >= total_attempts(&while_down) - n as i64);
        report::report(
            "smtp.relay_down",
            json!({
                "backend": db.backend,
                "down_secs": DOWN.as_secs(),
                "checks_while_down": looks,
                "messages_checked": checked.messages,
                "faults_injected": failed,
                "failed_attempts_while_down": failed,
                "attempts": checked.attempts,
                "duplicates": checked.duplicates,
            }),
        );
        db.cleanup().await;
    })
    .await;
}

/// 4. A relay that stalls mid-DATA (three messages cut off after a few body lines, two
///    stored but never answered) and then freezes entirely (SIGSTOP) while the worker
///    holds idle connections: every stall ends in a timeout and a retry, each reader ends
///    with one sent delivery per digest, and the only repeats are the two messages the
///    relay stored without answering, with the same Message-ID.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_that_stalls_or_freezes_costs_a_timeout_and_a_retry_not_a_message() {
    on_every_database(|db| async move {
        let n = 30;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = dir.path().join("relay.log");
        let pidfile = dir.path().join("relay.pid");
        let (log_arg, pid_arg) = (log.display().to_string(), pidfile.display().to_string());
        let Some(sink) = SmtpSink::faulty(
            dir.path(),
            port,
            &[
                "--stall-mid-body",
                "3",
                "--stall-after-store",
                "2",
                "--log",
                &log_arg,
                "--pidfile",
                &pid_arg,
            ],
        ) else {
            return;
        };
        let relay_pid = std::fs::read_to_string(&pidfile).expect("relay pid");
        configure(
            dir.path(),
            &db,
            &format!("{}&timeout={STALL_TIMEOUT_SECS}", plain_relay(port)),
            2,
        );
        let store = db.store().await;
        let emails = subscribers(&store, n).await;
        let at = tomorrow();
        queue(&store, "2504.00001", at, n).await;
        let mut serve = Serve::start(dir.path(), "serve");
        let c = settle(&store, n, Duration::from_secs(90)).await;
        assert_eq!(c.get("sent"), Some(&(n as i64)), "{}: {c:?}", db.backend);

        let stalls = relay_log(&log);
        let cut = events(&stalls, "stall-body");
        let unanswered = events(&stalls, "stall-stored");
        assert_eq!((cut.len(), unanswered.len()), (3, 2), "{stalls:?}");
        let in_flight: HashSet<String> = unanswered.iter().map(|e| e.message_id.clone()).collect();
        let first = check_exactly_once(&store, &sink, &each_once(&emails, 1), &in_flight).await;
        assert_eq!(
            first.duplicates, 2,
            "the two unanswered messages, sent again"
        );
        assert_eq!(first.attempts, (n + 5) as i64, "one retry per stall");
        let (ids, _) = sink.arrivals();
        for id in &in_flight {
            assert_eq!(
                ids.get(&format!("<{id}>")).copied(),
                Some(2),
                "{id}: {ids:?}"
            );
        }

        // The relay freezes while the worker keeps idle connections older than the
        // NOOP check: the next sends must time out and retry, not hang.
        tokio::time::sleep(Duration::from_secs(6)).await;
        signal("-STOP", relay_pid.trim());
        let frozen = Instant::now();
        queue(&store, "2504.00002", at + chrono::Duration::days(1), n).await;
        let limit = Duration::from_secs(4 * STALL_TIMEOUT_SECS + 4);
        loop {
            let c = counts(&store).await;
            assert_eq!(
                c.get("sent"),
                Some(&(n as i64)),
                "nothing sent while frozen"
            );
            if c.get("retry").copied().unwrap_or(0) >= CONCURRENCY as i64 {
                break;
            }
            assert!(
                frozen.elapsed() < limit,
                "{}: sends to a frozen relay hang past the timeout: {c:?}",
                db.backend
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        let timed_out = frozen.elapsed();
        tokio::time::sleep(Duration::from_secs(15).saturating_sub(timed_out)).await;
        serve.assert_running();
        signal("-CONT", relay_pid.trim());
        settle(&store, 2 * n, Duration::from_secs(60)).await;
        serve.stop().await;
        let second = check_exactly_once(&store, &sink, &each_once(&emails, 2), &in_flight).await;
        assert_eq!(second.duplicates, 2, "no repeat from the freeze");
        // Every attempt at the second digests beyond one each failed on the frozen relay.
        let freeze_failures = second.attempts - first.attempts - n as i64;
        assert!(freeze_failures >= CONCURRENCY as i64, "{freeze_failures}");
        report::report(
            "smtp.stall",
            json!({
                "backend": db.backend,
                "timeout_secs": STALL_TIMEOUT_SECS,
                "messages_checked": second.messages,
                "faults_injected": cut.len() + unanswered.len() + 1,
                "stalled_mid_body": cut.len(),
                "stored_unanswered": unanswered.len(),
                "attempts_timed_out_while_frozen": freeze_failures,
                "first_retry_after_freeze_ms": timed_out.as_millis() as u64,
                "attempts": second.attempts,
                "duplicates": second.duplicates,
                "in_flight_duplicates": second.duplicates,
            }),
        );
        db.cleanup().await;
    })
    .await;
}

/// 5. `smtp://` requires STARTTLS and the relay does not offer it: `digest run` and the
///    worker in `serve` stop with a clear error and leave the queue as it was; pointed at
///    a good relay, every digest is delivered once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_relay_refusing_tls_stops_the_worker_loudly_and_keeps_the_queue() {
    on_every_database(|db| async move {
        let n = 30;
        let dir = tempfile::tempdir().expect("temp dir");
        let port = free_port();
        let log = dir.path().join("relay.log");
        let log_arg = log.display().to_string();
        let Some(sink) = SmtpSink::faulty(dir.path(), port, &["--log", &log_arg]) else {
            return;
        };
        configure(dir.path(), &db, &format!("smtp://127.0.0.1:{port}"), 2);
        let store = db.store().await;
        let emails = subscribers(&store, n).await;
        store_full_papers(
            &store,
            vec![arxiv_paper(
                "2505.00001",
                "Diffusion drills",
                "diffusion",
                None,
            )],
        )
        .await;
        let at = tomorrow().to_rfc3339();
        let run_dir = dir.path().to_path_buf();
        let out = tokio::task::spawn_blocking(move || {
            paperboy(&run_dir)
                .args(["digest", "run", "--at", &at])
                .output()
                .expect("run digest run")
        })
        .await
        .expect("digest run");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{}: {stderr}", db.backend);
        assert!(
            stderr.contains("delivery stopped") && stderr.contains("TLS"),
            "a clear reason: {stderr}"
        );
        let c = counts(&store).await;
        assert_intact(&c, n);
        assert!(!c.contains_key("sending"), "every claim given back: {c:?}");
        assert_eq!(total_attempts(&deliveries(&store, &emails).await), 0);

        // The worker of serve stops too, saying so, and keeps the queue.
        let mut serve = Serve::start(dir.path(), "serve-bad");
        let started = Instant::now();
        while !serve.log().contains("DELIVERY STOPPED") {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "no loud stop:\n{}",
                serve.log()
            );
            serve.assert_running();
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(serve.log().contains("TLS"), "{}", serve.log());
        // A supervisor or an alert sees it: /healthz turns unavailable and says why.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let health = reqwest::get(format!("http://127.0.0.1:{}/healthz", serve.port))
            .await
            .expect("healthz");
        assert_eq!(health.status().as_u16(), 503, "{}", db.backend);
        let body: serde_json::Value =
            serde_json::from_str(&health.text().await.expect("healthz body")).expect("json");
        assert_eq!(body["delivery"], "stopped", "{body}");
        assert!(
            body["delivery_error"]
                .as_str()
                .is_some_and(|e| e.contains("TLS")),
            "{body}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
        serve.stop().await;
        assert_intact(&counts(&store).await, n);
        assert_eq!(total_attempts(&deliveries(&store, &emails).await), 0);
        assert!(
            sink.received_files().is_empty(),
            "nothing sent in the clear"
        );
        assert!(relay_log(&log).is_empty());

        configure(dir.path(), &db, &plain_relay(port), 2);
        let serve = Serve::start(dir.path(), "serve-good");
        let c = settle(&store, n, Duration::from_secs(60)).await;
        assert_eq!(c.get("sent"), Some(&(n as i64)), "{c:?}");
        serve.stop().await;
        let checked =
            check_exactly_once(&store, &sink, &each_once(&emails, 1), &HashSet::new()).await;
        assert_eq!(
            checked.attempts, n as i64,
            "the refused tries were given back"
        );
        report::report(
            "smtp.tls_refused",
            json!({
                "backend": db.backend,
                "messages_checked": checked.messages,
                "faults_injected": 2,
                "worker_stops": 2,
                "attempts": checked.attempts,
                "duplicates": checked.duplicates,
            }),
        );
        db.cleanup().await;
    })
    .await;
}
