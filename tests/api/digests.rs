//! Digests from window to inbox, on SQLite and PostgreSQL: the window rule, trending and
//! skipped digests, the outbox, and delivery into a real SMTP server (aiosmtpd) that reads
//! back each message with an independent MIME parser, including faults: 451s, a 550, a
//! connection dropped mid-DATA and a relay that is down and comes back.

use std::collections::HashMap;
use std::path::Path;
use std::time::Duration as StdDuration;

use crate::helpers::{
    SmtpSink, active_subscriber, arxiv_paper, confirmed_subscribers, databases, fast_delivery,
    find_subscriber, free_port, links_labelled, outbox_mailer, pending_subscriber, run_due_digests,
    smtp_mailer, spawn_app, store_full_papers, test_links as links, tomorrow,
    unsubscribe_in_one_click,
};
use chrono::{Duration, Utc};
use paperboy::config::{DeliverySettings, Secret, Settings};
use paperboy::delivery::{Mailer, Worker};
use paperboy::digest;
use paperboy::domain::SubscriberStatus;
use paperboy::store::Store;
use serde_json::Value;

async fn statuses(store: &Store) -> HashMap<String, i64> {
    store.delivery_counts().await.unwrap().into_iter().collect()
}

#[tokio::test]
async fn a_subscriber_never_gets_the_same_paper_twice_and_none_falls_between_windows() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let mailer = outbox_mailer(dir.path());
        store_full_papers(
            &store,
            vec![arxiv_paper(
                "2401.00001",
                "Old diffusion paper",
                "before the reader",
                None,
            )],
        )
        .await;
        let subscriber =
            active_subscriber(&store, "win@example.org", "diffusion", "daily", 8, "UTC").await;
        store_full_papers(
            &store,
            vec![
                arxiv_paper(
                    "2401.00002",
                    "Diffusion for proteins",
                    "we study diffusion",
                    None,
                ),
                arxiv_paper("2401.00003", "Graph networks", "nothing relevant", None),
            ],
        )
        .await;
        let at = tomorrow();
        let first = run_due_digests(&store, &mailer, at).await;
        assert_eq!(
            (first.due, first.composed, first.skipped),
            (1, 1, 0),
            "{}",
            db.backend
        );
        // The same instant again: not due, nothing new.
        let again = run_due_digests(&store, &mailer, at).await;
        assert_eq!((again.due, again.composed), (0, 0));

        // A paper arriving now, and the old one seen again from another source, go to the
        // next window only if new.
        store_full_papers(
            &store,
            vec![
                arxiv_paper("2401.00004", "More diffusion", "diffusion again", None),
                arxiv_paper(
                    "2401.00002",
                    "Diffusion for proteins",
                    "we study diffusion",
                    Some(5),
                ),
            ],
        )
        .await;
        let next = run_due_digests(&store, &mailer, at + Duration::days(1)).await;
        assert_eq!((next.due, next.composed), (1, 1));
        let digests = store.digests_of(subscriber.id).await.unwrap();
        assert_eq!(digests.len(), 2);
        let mut seen = Vec::new();
        for d in digests.iter().rev() {
            for e in store.digest_entries(d.id, None).await.unwrap() {
                seen.push(e.paper.paper.key.as_str().to_string());
            }
        }
        assert_eq!(
            seen,
            ["arxiv:2401.00002", "arxiv:2401.00004"],
            "each paper once, in order"
        );
        assert!(
            digests[0].window_start == digests[1].window_end,
            "windows touch"
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn trending_skipped_and_at_most_one_digest_per_window_under_concurrent_runs() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let mailer = outbox_mailer(dir.path());
        let trending = active_subscriber(&store, "hot@example.org", "", "daily", 8, "UTC").await;
        let nothing =
            active_subscriber(&store, "none@example.org", "quantum", "daily", 8, "UTC").await;
        store_full_papers(
            &store,
            vec![
                arxiv_paper("2402.00001", "Few votes", "a", Some(3)),
                arxiv_paper("2402.00002", "Many votes", "b", Some(90)),
                arxiv_paper("2402.00003", "No votes", "c", None),
            ],
        )
        .await;
        let at = tomorrow();
        // Three runs at once for the same instant: one digest per reader.
        let ids = mailer.message_ids();
        let (a, b, c) = tokio::join!(
            digest::compose_due(&store, &ids, at, false),
            digest::compose_due(&store, &ids, at, false),
            digest::compose_due(&store, &ids, at, false),
        );
        let reports = [a.unwrap().0, b.unwrap().0, c.unwrap().0];
        let composed: usize = reports.iter().map(|r| r.composed).sum();
        let skipped: usize = reports.iter().map(|r| r.skipped).sum();
        assert_eq!((composed, skipped), (1, 1), "{}: {reports:?}", db.backend);

        let hot = store.digests_of(trending.id).await.unwrap();
        assert_eq!(hot.len(), 1);
        assert!(hot[0].trending);
        let titles: Vec<String> = store
            .digest_entries(hot[0].id, None)
            .await
            .unwrap()
            .into_iter()
            .map(|e| e.paper.paper.title)
            .collect();
        assert_eq!(titles, ["Many votes", "Few votes", "No votes"]);

        let cold = store.digests_of(nothing.id).await.unwrap();
        assert_eq!(cold.len(), 1);
        assert_eq!(cold[0].status, "skipped");
        assert_eq!(
            store.deliveries_of(cold[0].id).await.unwrap().len(),
            0,
            "skipped sends nothing"
        );
        assert_eq!(statuses(&store).await.get("queued"), Some(&1));
        db.cleanup().await;
    }
}

/// The JSON summary of one received message, read by Python's email package.
fn parse_mime(path: &Path) -> Value {
    let out = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/mime_summary.py"))
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

async fn deliver_until_settled(worker: &Worker, store: &Store) {
    for _ in 0..40 {
        worker.drain().await.unwrap();
        let s = statuses(store).await;
        if !s.contains_key("queued") && !s.contains_key("retry") && !s.contains_key("sending") {
            return;
        }
        tokio::time::sleep(StdDuration::from_millis(500)).await;
    }
    panic!("deliveries did not settle: {:?}", statuses(store).await);
}

#[tokio::test]
async fn a_digest_arrives_as_one_well_formed_message_whose_unsubscribe_link_works() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let Some(sink) = SmtpSink::start(dir.path()) else {
            return;
        };
        let app = spawn_app(&db, |s| {
            s.smtp_url = Some(Secret::new(format!(
                "smtp://127.0.0.1:{}?tls=none",
                sink.port
            )));
            s.log = "warn".into();
        })
        .await;
        let store = app.store.clone();
        let subscriber =
            active_subscriber(&store, "mime@example.org", "diffusion", "daily", 8, "UTC").await;
        let hostile = "We <b>bold</b> claim <script>alert(1)</script> that diffusion $\\alpha < \\beta$ works.\n.\nRSET\nMAIL FROM:<evil@example.org>\nRCPT TO:<victim@example.org>\n.\n";
        store_full_papers(
            &store,
            vec![arxiv_paper(
                "2403.00001",
                "Diffusion <i>models</i> & \"friends\"",
                hostile,
                Some(7),
            )],
        )
        .await;
        let links = paperboy::app::links_for(
            &Settings {
                base_url: app.base.clone(),
                ..Settings::default()
            },
            &store,
        )
        .await
        .unwrap();
        let mailer = smtp_mailer(sink.port, None);
        run_due_digests(&store, &mailer, tomorrow()).await;
        let worker = Worker::new(store.clone(), mailer, links, fast_delivery());
        let report = worker.drain().await.unwrap();
        assert_eq!(report.sent, 1, "{}", db.backend);
        std::thread::sleep(StdDuration::from_millis(300));
        let files = sink.received_files();
        assert_eq!(files.len(), 1, "one message, and no injected second one");
        let m = parse_mime(&files[0]);
        let h = &m["headers"];
        assert_eq!(m["to"], serde_json::json!(["mime@example.org"]));
        assert!(
            h["Message-ID"]
                .as_str()
                .unwrap()
                .ends_with("@papers.example.org>")
        );
        assert!(h.get("Date").is_some());
        assert_eq!(h["List-Unsubscribe-Post"], "List-Unsubscribe=One-Click");
        assert_eq!(h["Precedence"], "bulk");
        assert!(
            h["Feedback-ID"]
                .as_str()
                .unwrap()
                .starts_with("digest:paperboy:")
        );
        let types: Vec<&str> = m["parts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["type"].as_str().unwrap())
            .collect();
        assert_eq!(types, ["multipart/alternative", "text/plain", "text/html"]);
        let text = m["parts"][1]["body"].as_str().unwrap();
        let html = m["parts"][2]["body"].as_str().unwrap();
        assert!(
            text.contains("Diffusion <i>models</i> & \"friends\""),
            "{text}"
        );
        assert!(text.contains("*diffusion*"), "{text}");
        assert!(
            html.contains("Diffusion &#60;i&#62;models&#60;/i&#62; &#38;"),
            "{html}"
        );
        assert!(html.contains("&lt;script&gt;alert(1)&lt;/script&gt;"));
        assert!(!html.contains("<script"));
        assert!(html.contains("<mark>diffusion</mark>"));
        assert!(
            text.contains("RSET"),
            "the abstract arrives intact inside the one message"
        );
        let raw = std::fs::read_to_string(&files[0]).unwrap();
        assert!(
            raw.is_ascii() && raw.lines().all(|l| l.len() <= 998),
            "7-bit, short lines"
        );

        // The List-Unsubscribe URL works as a one-click POST.
        let url = h["List-Unsubscribe"]
            .as_str()
            .unwrap()
            .trim_matches(['<', '>'])
            .to_string();
        assert!(url.starts_with(&app.url("/unsubscribe/")), "{url}");
        let r = unsubscribe_in_one_click(&url).await;
        assert_eq!(r.status(), 200);
        let after = store.subscriber(subscriber.id).await.unwrap().unwrap();
        assert_eq!(after.status, SubscriberStatus::Unsubscribed);

        // The archive link shows the digest; a wrong token shows nothing.
        let digest = &store.digests_of(subscriber.id).await.unwrap()[0];
        let archive = links_labelled(text, "View in browser:")
            .pop()
            .unwrap()
            .to_string();
        let page = reqwest::get(&archive).await.unwrap();
        assert_eq!(page.status(), 200);
        // The feed's markup is text, escaped; the matched word is highlighted.
        let shown = page.text().await.unwrap();
        assert!(
            shown.contains("<mark>Diffusion</mark> &lt;i&gt;models"),
            "{shown}"
        );
        let wrong = reqwest::get(app.url(&format!("/digests/{}?t=1.AAAA", digest.id)))
            .await
            .unwrap();
        assert_eq!(wrong.status(), 404);
        app.stop().await;
        db.cleanup().await;
    }
}

/// Readers `r0…r{n-1}@example.org` with one digest each, queued.
async fn queue_digests(store: &Store, mailer: &Mailer, n: usize) {
    confirmed_subscribers(store, "r", n, "diffusion").await;
    store_full_papers(
        store,
        vec![arxiv_paper("2404.00001", "Diffusion", "diffusion", None)],
    )
    .await;
    let report = run_due_digests(store, mailer, tomorrow()).await;
    assert_eq!(report.composed, n);
}

#[tokio::test]
async fn transient_failures_retry_a_550_bounces_and_nothing_is_lost_or_doubled() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let Some(sink) = SmtpSink::faulty(
            dir.path(),
            port,
            &[
                "--reject",
                "r3@example.org",
                "--transient",
                "0.3",
                "--seed",
                "7",
                "--drop-first",
                "2",
            ],
        ) else {
            return;
        };
        let store = db.store().await;
        let mailer = smtp_mailer(port, None);
        queue_digests(&store, &mailer, 12).await;
        let worker = Worker::new(store.clone(), mailer, links(), fast_delivery());
        deliver_until_settled(&worker, &store).await;
        let s = statuses(&store).await;
        assert_eq!(s.get("sent"), Some(&11), "{}: {s:?}", db.backend);
        assert_eq!(s.get("bounced"), Some(&1), "{s:?}");
        let bounced = find_subscriber(&store, "r3@example.org").await.unwrap();
        assert_eq!(
            bounced.status,
            SubscriberStatus::Bounced,
            "the reader is suppressed"
        );
        let ids = sink.arrivals().0;
        assert_eq!(ids.len(), 11, "every sent digest arrived");
        assert!(ids.values().all(|n| *n == 1), "none twice: {ids:?}");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_relay_that_is_down_then_back_gets_everything_once() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let store = db.store().await;
        let mailer = smtp_mailer(port, None);
        queue_digests(&store, &mailer, 5).await;
        let worker = Worker::new(store.clone(), mailer, links(), fast_delivery());
        // Nothing listens: every attempt fails and is rescheduled, none is lost.
        let down = worker.drain().await.unwrap();
        assert_eq!(down.retry, 5, "{}: {down:?}", db.backend);
        assert_eq!(statuses(&store).await.get("retry"), Some(&5));
        let Some(sink) = SmtpSink::faulty(dir.path(), port, &[]) else {
            return;
        };
        tokio::time::sleep(StdDuration::from_millis(2600)).await;
        deliver_until_settled(&worker, &store).await;
        assert_eq!(statuses(&store).await.get("sent"), Some(&5));
        let ids = sink.arrivals().0;
        assert_eq!(ids.len(), 5);
        assert!(ids.values().all(|n| *n == 1));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn suppression_is_checked_when_a_delivery_is_claimed() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let store = db.store().await;
        let mailer = outbox_mailer(dir.path());
        queue_digests(&store, &mailer, 2).await;
        let gone = find_subscriber(&store, "r0@example.org").await.unwrap();
        store
            .change_status(
                gone.id,
                &[SubscriberStatus::Active],
                SubscriberStatus::Unsubscribed,
                Utc::now(),
            )
            .await
            .unwrap();
        let worker = Worker::new(store.clone(), mailer, links(), fast_delivery());
        let report = worker.drain().await.unwrap();
        assert_eq!((report.sent, report.suppressed), (1, 1), "{}", db.backend);
        let files: Vec<_> = std::fs::read_dir(dir.path().join("outbox"))
            .unwrap()
            .flatten()
            .collect();
        assert_eq!(files.len(), 1, "the outbox holds the one message sent");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn an_expired_lease_is_claimed_again_with_the_same_message_id() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let store = db.store().await;
        let mailer = outbox_mailer(dir.path());
        queue_digests(&store, &mailer, 1).await;
        let now = Utc::now();
        // A worker claims and dies without finishing.
        let first = store
            .claim_deliveries("dead-worker", 10, Duration::seconds(30), now)
            .await
            .unwrap();
        assert_eq!(first.len(), 1);
        assert!(
            store
                .claim_deliveries("other", 10, Duration::seconds(30), now)
                .await
                .unwrap()
                .is_empty(),
            "held while the lease runs"
        );
        let later = now + Duration::seconds(31);
        let again = store
            .claim_deliveries("other", 10, Duration::seconds(30), later)
            .await
            .unwrap();
        assert_eq!(again.len(), 1, "{}", db.backend);
        assert_eq!(again[0].message_id, first[0].message_id);
        assert_eq!(again[0].attempts, 2);
        // The dead worker's late outcome changes nothing.
        let stale = store
            .finish_deliveries(
                &[(first[0].id, &paperboy::store::Outcome::Sent("x".into()))],
                "dead-worker",
                later,
            )
            .await
            .unwrap();
        assert_eq!(stale, [false]);
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_relay_that_refuses_tls_stops_delivery_and_keeps_the_queue() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let Some(sink) = SmtpSink::start(dir.path()) else {
            return;
        };
        let store = db.store().await;
        // STARTTLS is required by smtp:// without ?tls=none; aiosmtpd here offers none.
        let settings = Settings {
            smtp_url: Some(Secret::new(format!("smtp://127.0.0.1:{}", sink.port))),
            ..Settings::default()
        };
        let mailer = Mailer::from_settings(&settings).unwrap();
        queue_digests(&store, &mailer, 3).await;
        let worker = Worker::new(store.clone(), mailer, links(), fast_delivery());
        let err = worker.drain().await.unwrap_err();
        assert!(format!("{err:#}").contains("delivery stopped"), "{err:#}");
        let s = statuses(&store).await;
        assert_eq!(s.values().sum::<i64>(), 3, "{}: {s:?}", db.backend);
        assert!(
            !s.contains_key("failed") && !s.contains_key("bounced") && !s.contains_key("sent"),
            "{s:?}"
        );
        assert!(sink.received_files().is_empty());
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_delivery_failing_past_the_give_up_age_ends_failed() {
    for db in databases().await {
        let store = db.store().await;
        // Nothing listens on this port.
        let mailer = smtp_mailer(free_port(), None);
        queue_digests(&store, &mailer, 2).await;
        let settings = DeliverySettings {
            give_up_after_hours: 0,
            ..fast_delivery()
        };
        tokio::time::sleep(StdDuration::from_millis(10)).await;
        let worker = Worker::new(store.clone(), mailer, links(), settings);
        let report = worker.drain().await.unwrap();
        assert_eq!(report.failed, 2, "{}: {report:?}", db.backend);
        assert_eq!(statuses(&store).await.get("failed"), Some(&2));
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_window_with_no_new_papers_does_not_hold_up_the_next_one() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let mailer = outbox_mailer(dir.path());
        let subscriber =
            active_subscriber(&store, "quiet@example.org", "diffusion", "daily", 8, "UTC").await;
        let first = tomorrow();
        // Nothing arrived: the window is recorded as skipped.
        let empty = run_due_digests(&store, &mailer, first).await;
        assert_eq!(
            (empty.due, empty.skipped),
            (1, 1),
            "{}: {empty:?}",
            db.backend
        );
        store_full_papers(
            &store,
            vec![arxiv_paper(
                "2407.00001",
                "Diffusion at last",
                "diffusion",
                None,
            )],
        )
        .await;
        let next = run_due_digests(&store, &mailer, first + Duration::days(1)).await;
        assert_eq!(
            (next.due, next.composed, next.failed),
            (1, 1, 0),
            "{next:?}"
        );
        let digests = store.digests_of(subscriber.id).await.unwrap();
        assert_eq!(digests.len(), 2);
        assert_eq!(digests[0].status, "composed");
        assert_eq!(digests[1].status, "skipped");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn metrics_count_subscribers_digests_and_deliveries_in_prometheus_format() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let app = spawn_app(&db, |s| s.log = "warn".into()).await;
        let mailer = outbox_mailer(dir.path());
        queue_digests(&app.store, &mailer, 2).await;
        let worker = Worker::new(app.store.clone(), mailer, links(), fast_delivery());
        worker.drain().await.unwrap();
        let r = reqwest::get(app.url("/metrics")).await.unwrap();
        assert_eq!(r.status(), 200);
        assert!(
            r.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let text = r.text().await.unwrap();
        for line in [
            "paperboy_subscribers{status=\"active\"} 2",
            "paperboy_deliveries{status=\"sent\"} 2",
            "paperboy_queue_depth 0",
            "paperboy_papers 1",
        ] {
            assert!(
                text.contains(line),
                "{}: {line} missing:\n{text}",
                db.backend
            );
        }
        for name in [
            "paperboy_digests_total",
            "paperboy_deliveries_total",
            "paperboy_queue_oldest_age_seconds",
        ] {
            assert!(
                text.contains(&format!("# TYPE {name}")),
                "{name} missing:\n{text}"
            );
        }
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_daily_clean_up_forgets_expired_links_and_subscribers_who_never_confirmed() {
    for db in databases().await {
        let store = db.store().await;
        let kept = active_subscriber(&store, "kept@example.org", "", "daily", 8, "UTC").await;
        pending_subscriber(&store, "never@example.org", "", "daily", 8, "UTC").await;
        // A month on, the clean-up runs: both links (the kept reader's, used, and the
        // other's, never used) have long expired, and one reader never confirmed.
        let later = Utc::now() + Duration::days(31);
        let (links, subscribers) = store.clean_up(later).await.unwrap();
        assert_eq!((links, subscribers), (2, 1), "{}", db.backend);
        let never = paperboy::domain::EmailAddress::parse("never@example.org").unwrap();
        assert!(store.subscriber_by_email(&never).await.unwrap().is_none());
        assert!(
            store.subscriber(kept.id).await.unwrap().is_some(),
            "confirmed readers stay"
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_worker_reports_each_recorded_attempt_to_its_progress_callback() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let store = db.store().await;
        let mailer = outbox_mailer(dir.path());
        queue_digests(&store, &mailer, 3).await;
        let seen = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let counter = seen.clone();
        let worker = Worker::new(store.clone(), mailer, links(), fast_delivery()).with_progress(
            std::sync::Arc::new(move || {
                counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }),
        );
        assert_eq!(worker.drain().await.unwrap().sent, 3);
        assert_eq!(
            seen.load(std::sync::atomic::Ordering::SeqCst),
            3,
            "{}",
            db.backend
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_batch_of_digests_is_written_whole_or_not_at_all() {
    use paperboy::store::{DigestEntry, NewDigest};
    for db in databases().await {
        let store = db.store().await;
        let a = active_subscriber(&store, "a@example.org", "diffusion", "daily", 8, "UTC").await;
        let b = active_subscriber(&store, "b@example.org", "diffusion", "daily", 8, "UTC").await;
        store_full_papers(
            &store,
            vec![arxiv_paper("2401.00010", "Diffusion", "diffusion", None)],
        )
        .await;
        let paper = store.max_paper_id().await.unwrap();
        let at = tomorrow();
        let entry = |paper_id| {
            vec![DigestEntry {
                paper_id,
                score: 1.0,
                explanation: Default::default(),
                suggested: false,
            }]
        };
        let (good, missing_paper) = (entry(paper), entry(paper + 1_000));
        let digest = |r: &paperboy::domain::Subscriber, entries, message_id| NewDigest {
            subscriber_id: r.id,
            window_start: r.confirmed_at.unwrap(),
            window_end: at,
            papers_after: r.paper_cursor,
            papers_upto: paper,
            entries,
            shown: 15,
            trending: false,
            archive_key: "key",
            per_query: &[],
            message_id,
        };

        // One digest that cannot be written (its paper does not exist) fails the batch, and
        // nothing of the batch stays: both windows are where they were.
        let bad = [
            digest(&a, &good, "a1@example.org"),
            digest(&b, &missing_paper, "b1@example.org"),
        ];
        assert!(store.save_digests(&bad, Utc::now()).await.is_err());
        assert!(
            store.digests_of(a.id).await.unwrap().is_empty(),
            "{}",
            db.backend
        );
        let a_now = store.subscriber(a.id).await.unwrap().unwrap();
        assert_eq!(a_now.paper_cursor, a.paper_cursor);
        assert!(statuses(&store).await.is_empty());

        // Written whole; the second attempt finds both windows moved and writes nothing.
        let ok = [
            digest(&a, &good, "a2@example.org"),
            digest(&b, &[], "b2@example.org"),
        ];
        let ids = store.save_digests(&ok, Utc::now()).await.unwrap();
        assert!(ids.iter().all(Option::is_some), "{ids:?}");
        assert_eq!(
            store
                .digest_entries(ids[0].unwrap(), None)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            statuses(&store).await.get("queued"),
            Some(&1),
            "only a's has papers"
        );
        assert_eq!(store.digests_of(b.id).await.unwrap()[0].status, "skipped");
        let again = store.save_digests(&ok, Utc::now()).await.unwrap();
        assert_eq!(again, vec![None, None]);
        // A reader twice in one batch is refused before anything is written.
        assert!(
            store
                .save_digests(&[ok[0].clone(), ok[0].clone()], Utc::now())
                .await
                .is_err()
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_email_highlights_what_it_shows_and_the_archive_page_highlights_every_match() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let mailer = outbox_mailer(dir.path());
        // Two papers shown in the email, five matched.
        let subscriber =
            active_subscriber(&store, "hl@example.org", "diffusion", "daily", 8, "UTC").await;
        let mut preferences = subscriber.preferences.clone();
        preferences.max_papers = paperboy::domain::MaxPapers::new(2).unwrap();
        assert!(
            store
                .update_preferences(subscriber.id, &preferences, Utc::now())
                .await
                .unwrap()
        );
        let papers = (1..=5)
            .map(|i| {
                arxiv_paper(
                    &format!("2401.1000{i}"),
                    &format!("Diffusion study {i}"),
                    "we look at diffusion closely",
                    None,
                )
            })
            .collect();
        store_full_papers(&store, papers).await;
        let report = run_due_digests(&store, &mailer, tomorrow()).await;
        assert_eq!(report.composed, 1, "{}", db.backend);
        let digest = store.digests_of(subscriber.id).await.unwrap().remove(0);
        assert_eq!((digest.total, digest.shown), (5, 2));

        let stored = store.digest_entries(digest.id, None).await.unwrap();
        let marked: Vec<bool> = stored
            .iter()
            .map(|e| !e.explanation.title_spans.is_empty())
            .collect();
        assert_eq!(marked, [true, true, false, false, false], "{}", db.backend);
        assert!(stored.iter().all(|e| e.explanation.queries.len() == 1));

        // What a worker sends from: the two it shows, best first, highlighted.
        let sending = store.digests_for_sending(&[digest.id]).await.unwrap();
        assert_eq!(sending.len(), 1);
        let listed: Vec<i64> = sending[0].1.iter().map(|e| e.paper_id).collect();
        let best: Vec<i64> = stored.iter().take(2).map(|e| e.paper.id).collect();
        assert_eq!(listed, best, "{}", db.backend);
        assert!(
            sending[0]
                .1
                .iter()
                .all(|e| !e.explanation.title_spans.is_empty())
        );

        // The archive page works out the rest from the stored query texts.
        let subscriber = store.subscriber(subscriber.id).await.unwrap().unwrap();
        let all = digest::stored_view(&store, &links(), &digest, &subscriber, true)
            .await
            .unwrap();
        assert_eq!(all.papers.len(), 5);
        for p in &all.papers {
            assert!(
                p.snippet_html.contains("<mark>diffusion</mark>"),
                "{}",
                p.snippet_html
            );
        }
        let email = digest::stored_view(&store, &links(), &digest, &subscriber, false)
            .await
            .unwrap();
        assert_eq!(email.papers.len(), 2);
        assert!(
            email
                .papers
                .iter()
                .all(|p| p.snippet_html.contains("<mark>"))
        );
        db.cleanup().await;
    }
}
