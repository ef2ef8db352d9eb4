//! Bounces and complaints: each delivery's VERP return path, read back from a real SMTP
//! server (aiosmtpd) that records the envelope sender; the events and their rules (hard,
//! soft, complaint) on SQLite and PostgreSQL; the operator's commands.

use crate::helpers::{
    SmtpSink, active_subscriber, arxiv_paper, databases, fast_delivery, find_subscriber, free_port,
    header_value, outbox_mailer, paperboy_on, run_due_digests, smtp_mailer, store_full_papers,
    test_links as links, tomorrow,
};
use chrono::{Duration, Utc};
use paperboy::config::Secret;
use paperboy::delivery::Worker;
use paperboy::domain::{BounceKind, EmailAddress, SubscriberStatus, Verp};
use paperboy::store::{NewBounce, Recorded, Store};

#[tokio::test]
async fn each_delivery_returns_to_its_own_signed_verp_address_and_the_from_header_stays() {
    for (domain, expected) in [
        (None, "papers.example.org"),
        (Some("bounce.example.net"), "bounce.example.net"),
    ] {
        for db in databases().await {
            let dir = tempfile::tempdir().unwrap();
            let Some(sink) = SmtpSink::start(dir.path()) else {
                return;
            };
            let store = db.store().await;
            let ada =
                active_subscriber(&store, "ada@example.org", "diffusion", "daily", 8, "UTC").await;
            active_subscriber(&store, "bob@example.org", "diffusion", "daily", 8, "UTC").await;
            store_full_papers(
                &store,
                vec![arxiv_paper("2403.00001", "Diffusion models", "x", None)],
            )
            .await;
            let mailer = smtp_mailer(sink.port, domain);
            run_due_digests(&store, &mailer, tomorrow()).await;
            let report = Worker::new(store.clone(), mailer, links(), fast_delivery())
                .drain()
                .await
                .unwrap();
            assert_eq!(report.sent, 2, "{}", db.backend);
            let received = sink.wait_for(2);
            assert_eq!(received.len(), 2);
            let verp = Verp::new(links().keys().clone(), expected);
            let mut named = Vec::new();
            for m in &received {
                assert_eq!(
                    header_value(m, "From"),
                    Some("paperboy <digest@papers.example.org>")
                );
                let sender = header_value(m, "X-MailFrom").expect("the envelope sender");
                assert!(sender.starts_with("bounces+"), "{sender}");
                assert!(sender.ends_with(&format!("@{expected}")), "{sender}");
                let id = verp.delivery_of(sender).expect("a VERP address of ours");
                let to = header_value(m, "To").unwrap().to_string();
                named.push((id, to));
            }
            named.sort();
            assert_ne!(named[0].0, named[1].0, "one address per delivery");
            let digest = store.digests_of(ada.id).await.unwrap().remove(0);
            let delivery = store.deliveries_of(digest.id).await.unwrap().remove(0);
            assert!(
                named.contains(&(delivery.0, "ada@example.org".to_string())),
                "{named:?} names Ada's delivery {}",
                delivery.0
            );
            db.cleanup().await;
        }
    }
}

/// Delivers one day's digests into an outbox: a new paper for everyone, composed and
/// sent. Returns the day's delivery of each reader, by reader id.
async fn deliver_a_day(
    store: &Store,
    dir: &std::path::Path,
    day: i64,
) -> std::collections::HashMap<i64, i64> {
    store_full_papers(
        store,
        vec![arxiv_paper(
            &format!("2403.{:05}", day + 1),
            &format!("Diffusion day {day}"),
            "x",
            None,
        )],
    )
    .await;
    let mailer = outbox_mailer(dir);
    let at = tomorrow() + Duration::days(day);
    run_due_digests(store, &mailer, at).await;
    Worker::new(store.clone(), mailer, links(), fast_delivery())
        .drain()
        .await
        .unwrap();
    let mut out = std::collections::HashMap::new();
    for s in store.list_subscribers(None).await.unwrap() {
        if let Some(d) = store
            .digests_of(s.id)
            .await
            .unwrap()
            .into_iter()
            .max_by_key(|d| d.id)
            && let Some(del) = store.deliveries_of(d.id).await.unwrap().last()
        {
            out.insert(s.id, del.0);
        }
    }
    out
}

fn bounce(delivery_id: i64, kind: BounceKind, key: &str) -> NewBounce<'static> {
    let (status, diagnostic) = match kind {
        BounceKind::Hard => (Some("5.1.1"), Some("smtp; 550 5.1.1 no such user")),
        BounceKind::Soft => (Some("4.2.2"), Some("smtp; 452 4.2.2 mailbox full")),
        BounceKind::Complaint => (None, None),
    };
    NewBounce {
        delivery_id,
        kind,
        status,
        diagnostic,
        source: "dsn",
        report_key: Some(Box::leak(key.to_string().into_boxed_str())),
        at: Utc::now(),
    }
}

async fn status_of(store: &Store, email: &str) -> SubscriberStatus {
    find_subscriber(store, email).await.unwrap().status
}

#[tokio::test]
async fn a_hard_bounce_suppresses_at_once_and_the_same_report_is_recorded_once() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let ada =
            active_subscriber(&store, "ada@example.org", "diffusion", "daily", 8, "UTC").await;
        let day = deliver_a_day(&store, dir.path(), 0).await;
        let hard = bounce(day[&ada.id], BounceKind::Hard, "<r1@mx.example.org>");
        let got = store.record_bounce(&hard, Utc::now()).await.unwrap();
        assert_eq!(
            got,
            Recorded::Stored {
                subscriber_id: ada.id,
                suppressed: true
            },
            "{}",
            db.backend
        );
        assert_eq!(
            status_of(&store, "ada@example.org").await,
            SubscriberStatus::Bounced
        );
        assert_eq!(
            store.record_bounce(&hard, Utc::now()).await.unwrap(),
            Recorded::Duplicate
        );
        assert_eq!(
            store
                .record_bounce(&bounce(999_999, BounceKind::Hard, "<r2@x>"), Utc::now())
                .await
                .unwrap(),
            Recorded::UnknownDelivery
        );
        let events = store.bounce_events(None).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].kind, "hard");
        assert_eq!(events[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(events[0].email, "ada@example.org");
        assert_eq!(events[0].delivery_id, Some(day[&ada.id]));
        // Nothing more is sent to her.
        let next = deliver_a_day(&store, dir.path(), 1).await;
        assert_eq!(
            next[&ada.id], day[&ada.id],
            "no new delivery to a bounced reader"
        );
        let metrics = paperboy::metrics::render(&store).await.unwrap();
        assert!(
            metrics.contains("paperboy_bounce_events{kind=\"hard\"} 1"),
            "{metrics}"
        );
        assert!(
            metrics.contains("paperboy_bounce_events{kind=\"soft\"} 0"),
            "{metrics}"
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn three_soft_bounces_in_a_row_suppress_but_a_clean_delivery_between_them_restarts_the_count()
{
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let ada =
            active_subscriber(&store, "ada@example.org", "diffusion", "daily", 8, "UTC").await;
        let bob =
            active_subscriber(&store, "bob@example.org", "diffusion", "daily", 8, "UTC").await;
        let mut days = Vec::new();
        for d in 0..4 {
            days.push(deliver_a_day(&store, dir.path(), d).await);
        }
        let soft = |who: i64, d: usize| {
            bounce(days[d][&who], BounceKind::Soft, &format!("<s{who}-{d}@x>"))
        };
        // Ada: days 0, 1 and 2 soft-bounce, day 3 is not heard of yet…
        for d in 0..3 {
            let got = store
                .record_bounce(&soft(ada.id, d), Utc::now())
                .await
                .unwrap();
            assert_eq!(
                got,
                Recorded::Stored {
                    subscriber_id: ada.id,
                    suppressed: false
                },
                "day {d}, {}",
                db.backend
            );
        }
        assert_eq!(
            status_of(&store, "ada@example.org").await,
            SubscriberStatus::Active
        );
        // … then day 3 bounces too: three in a row after her last clean delivery.
        let got = store
            .record_bounce(&soft(ada.id, 3), Utc::now())
            .await
            .unwrap();
        assert_eq!(
            got,
            Recorded::Stored {
                subscriber_id: ada.id,
                suppressed: true
            }
        );
        assert_eq!(
            status_of(&store, "ada@example.org").await,
            SubscriberStatus::Bounced
        );
        // Bob: days 0, 1 and 3 bounce, day 2 went through: never three in a row.
        for d in [0, 1, 3] {
            let got = store
                .record_bounce(&soft(bob.id, d), Utc::now())
                .await
                .unwrap();
            assert_eq!(
                got,
                Recorded::Stored {
                    subscriber_id: bob.id,
                    suppressed: false
                },
                "day {d}"
            );
        }
        assert_eq!(
            status_of(&store, "bob@example.org").await,
            SubscriberStatus::Active
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn soft_bounces_further_apart_than_seven_days_do_not_add_up() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let ada =
            active_subscriber(&store, "ada@example.org", "diffusion", "daily", 8, "UTC").await;
        let mut days = Vec::new();
        for d in 0..3 {
            days.push(deliver_a_day(&store, dir.path(), d).await);
        }
        for (d, ago) in [(0, 9), (1, 8), (2, 0)] {
            let mut b = bounce(days[d][&ada.id], BounceKind::Soft, &format!("<old{d}@x>"));
            b.at = Utc::now() - Duration::days(ago);
            store.record_bounce(&b, Utc::now()).await.unwrap();
        }
        assert_eq!(
            status_of(&store, "ada@example.org").await,
            SubscriberStatus::Active,
            "{}",
            db.backend
        );
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_complaint_unsubscribes_and_suppresses_until_an_operator_lifts_it_saying_who_and_why() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let ada =
            active_subscriber(&store, "ada@example.org", "diffusion", "daily", 8, "UTC").await;
        let bob =
            active_subscriber(&store, "bob@example.org", "diffusion", "daily", 8, "UTC").await;
        let day = deliver_a_day(&store, dir.path(), 0).await;
        let got = store
            .record_bounce(
                &bounce(day[&ada.id], BounceKind::Complaint, "<c1@x>"),
                Utc::now(),
            )
            .await
            .unwrap();
        assert_eq!(
            got,
            Recorded::Stored {
                subscriber_id: ada.id,
                suppressed: true
            },
            "{}",
            db.backend
        );
        assert_eq!(
            status_of(&store, "ada@example.org").await,
            SubscriberStatus::Unsubscribed
        );
        let address = EmailAddress::parse("ada@example.org").unwrap();
        assert!(store.is_suppressed(&address).await.unwrap());
        store
            .record_bounce(
                &bounce(day[&bob.id], BounceKind::Hard, "<h1@x>"),
                Utc::now(),
            )
            .await
            .unwrap();
        // Through the binary: the events, a reader's page, and the lifts.
        let run = |args: &[&str]| {
            let out = paperboy_on(dir.path(), &db)
                .args(args)
                .env("USER", "olga")
                .output()
                .unwrap();
            (
                out.status.code(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        };
        let (code, json, err) = run(&["bounces", "list", "--json"]);
        assert_eq!(code, Some(0), "{err}");
        let events: serde_json::Value = serde_json::from_str(&json).unwrap();
        let kinds: Vec<&str> = events
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["kind"].as_str().unwrap())
            .collect();
        assert_eq!(kinds, ["complaint", "hard"]);
        let (_, text, _) = run(&["bounces", "list"]);
        assert!(
            text.contains("ada@example.org") && text.contains("complaint"),
            "{text}"
        );
        assert!(
            text.contains("bob@example.org") && text.contains("hard bounce 5.1.1"),
            "{text}"
        );
        let tomorrow_date = (Utc::now() + Duration::days(1))
            .format("%Y-%m-%d")
            .to_string();
        let (code, later, _) = run(&["bounces", "list", "--since", &tomorrow_date, "--json"]);
        assert_eq!(code, Some(0));
        assert_eq!(
            serde_json::from_str::<serde_json::Value>(&later).unwrap(),
            serde_json::json!([])
        );
        let (code, _, err) = run(&[
            "subscribers",
            "unsuppress",
            "carol@example.org",
            "--reason",
            "asked",
        ]);
        assert_eq!(code, Some(2), "nothing to lift: {err}");
        assert!(err.contains("not suppressed"), "{err}");
        let (code, out, err) = run(&[
            "subscribers",
            "unsuppress",
            "ada@example.org",
            "--reason",
            "she wrote to us",
        ]);
        assert_eq!(code, Some(0), "{err}");
        assert!(
            out.contains("lifted complaint") && out.contains("olga"),
            "{out}"
        );
        assert!(!store.is_suppressed(&address).await.unwrap());
        assert_eq!(
            status_of(&store, "ada@example.org").await,
            SubscriberStatus::Unsubscribed,
            "a complainer is not mailed again unasked"
        );
        let (code, out, err) = run(&[
            "subscribers",
            "unsuppress",
            "bob@example.org",
            "--reason",
            "mailbox fixed",
            "--by",
            "ops",
        ]);
        assert_eq!(code, Some(0), "{err}");
        assert!(out.contains("lifted bounced"), "{out}");
        assert_eq!(
            status_of(&store, "bob@example.org").await,
            SubscriberStatus::Active
        );
        let (_, shown, _) = run(&["subscribers", "show", "bob@example.org"]);
        assert!(shown.contains("hard bounce 5.1.1 of delivery"), "{shown}");
        assert!(
            shown.contains("lifted bounced by ops: mailbox fixed"),
            "{shown}"
        );
        let (_, shown, _) = run(&["subscribers", "show", "ada@example.org", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(v["bounces"][0]["kind"], "complaint");
        assert_eq!(v["suppressions_lifted"][0]["lifted_by"], "olga");
        assert_eq!(v["suppressions_lifted"][0]["reason"], "she wrote to us");
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_550_during_the_smtp_exchange_is_stored_as_a_hard_bounce_event() {
    for db in databases().await {
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let Some(_sink) = SmtpSink::faulty(dir.path(), port, &["--reject", "gone@example.org"])
        else {
            return;
        };
        let store = db.store().await;
        active_subscriber(&store, "gone@example.org", "diffusion", "daily", 8, "UTC").await;
        store_full_papers(
            &store,
            vec![arxiv_paper("2403.00001", "Diffusion models", "x", None)],
        )
        .await;
        let mailer = smtp_mailer(port, None);
        run_due_digests(&store, &mailer, tomorrow()).await;
        let report = Worker::new(store.clone(), mailer, links(), fast_delivery())
            .drain()
            .await
            .unwrap();
        assert_eq!(report.bounced, 1, "{}", db.backend);
        let events = store.bounce_events(None).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(
            (events[0].kind.as_str(), events[0].source.as_str()),
            ("hard", "smtp")
        );
        assert_eq!(events[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(
            status_of(&store, "gone@example.org").await,
            SubscriberStatus::Bounced
        );
        db.cleanup().await;
    }
}

/// A fixture of `tests/fixtures/bounces/` with its VERP address, recipient and returned
/// Message-ID filled in, as CRLF text.
fn bounce_message(name: &str, verp: &str, rcpt: &str, message_id: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/bounces")
        .join(name);
    std::fs::read_to_string(path)
        .unwrap()
        .replace("{{VERP}}", verp)
        .replace("{{RCPT}}", rcpt)
        .replace("{{MESSAGE_ID}}", message_id)
        .replace('\n', "\r\n")
}

/// The key the test links sign with, for the binary.
pub const TEST_KEY: &str = "a test key that is long enough to sign";

#[tokio::test]
async fn dsns_complaint_reports_and_plain_bounces_are_imported_from_an_eml_a_maildir_and_an_mbox() {
    for db in databases().await {
        let store = db.store().await;
        let dir = tempfile::tempdir().unwrap();
        let names = ["ada", "bob", "carol", "dave", "erin", "frank"];
        let mut readers = std::collections::HashMap::new();
        for n in names {
            let email = format!("{n}@example.org");
            let s = active_subscriber(&store, &email, "diffusion", "daily", 8, "UTC").await;
            readers.insert(n, s.id);
        }
        let day = deliver_a_day(&store, dir.path(), 0).await;
        let verp = Verp::new(links().keys().clone(), "papers.example.org");
        let mut message_ids = std::collections::HashMap::new();
        for s in store.list_subscribers(None).await.unwrap() {
            let d = store.digests_of(s.id).await.unwrap().remove(0);
            message_ids.insert(s.id, store.deliveries_of(d.id).await.unwrap().remove(0).2);
        }
        let fill = |fixture: &str, who: &str| {
            let id = readers[who];
            bounce_message(
                fixture,
                &verp.address(day[&id]),
                &format!("{who}@example.org"),
                &message_ids[&id],
            )
        };
        // One message alone, the rest in a Maildir (new and cur).
        let eml = dir.path().join("ada.eml");
        std::fs::write(&eml, fill("dsn-failed.eml", "ada")).unwrap();
        let maildir = dir.path().join("Bounces");
        for sub in ["new", "cur", "tmp"] {
            std::fs::create_dir_all(maildir.join(sub)).unwrap();
        }
        let forged = fill("dsn-failed.eml", "frank")
            .replace(
                &verp.address(day[&readers["frank"]]),
                &format!(
                    "bounces+{}-0123456789abcdef@papers.example.org",
                    day[&readers["frank"]]
                ),
            )
            .replace(&message_ids[&readers["frank"]], "someone-else@example.net")
            .replace("4F1A2B3C4D@relay", "FFFFFFFFFF@relay");
        let rest = [
            ("new", "1.bob", fill("dsn-delayed.eml", "bob")),
            ("new", "2.carol", fill("arf-abuse.eml", "carol")),
            ("cur", "3.dave:2,S", fill("plain-bounce.eml", "dave")),
            ("new", "4.erin", fill("arf-by-message-id.eml", "erin")),
            ("new", "5.frank", fill("dsn-delivered.eml", "frank")),
            ("new", "6.frank", fill("auto-reply.eml", "frank")),
            (
                "cur",
                "7.news:2,",
                bounce_message("newsletter.eml", "", "", ""),
            ),
            ("new", "8.forged", forged),
        ];
        for (sub, name, text) in &rest {
            std::fs::write(maildir.join(sub).join(name), text).unwrap();
        }
        let run = |path: &std::path::Path| {
            let out = paperboy_on(dir.path(), &db)
                .env("PAPERBOY_SECRET_KEY", TEST_KEY)
                .args(["bounces", "import", "--json"])
                .arg(path)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice::<serde_json::Value>(&out.stdout).unwrap()
        };
        let one = run(&eml);
        assert_eq!(one["messages"], 1, "{one} {}", db.backend);
        assert_eq!(one["recorded"], 1, "{one}");
        assert_eq!(one["suppressed"], 1, "{one}");
        let many = run(&maildir);
        assert_eq!(many["messages"], 8, "{many}");
        assert_eq!(many["recorded"], 4, "bob, carol, dave, erin: {many}");
        assert_eq!(
            many["not_bounces"], 3,
            "a success DSN, an auto-reply, a newsletter: {many}"
        );
        assert_eq!(many["unmatched"], 1, "the forged tag: {many}");
        assert_eq!(many["suppressed"], 3, "carol, dave, erin: {many}");
        let status = |who: &str| {
            let store = store.clone();
            let who = who.to_string();
            async move { status_of(&store, &format!("{who}@example.org")).await }
        };
        assert_eq!(status("ada").await, SubscriberStatus::Bounced);
        assert_eq!(
            status("bob").await,
            SubscriberStatus::Active,
            "one soft bounce"
        );
        assert_eq!(status("carol").await, SubscriberStatus::Unsubscribed);
        assert_eq!(status("dave").await, SubscriberStatus::Bounced);
        assert_eq!(status("erin").await, SubscriberStatus::Unsubscribed);
        assert_eq!(status("frank").await, SubscriberStatus::Active);
        let events = store.bounce_events(None).await.unwrap();
        let of = |who: &str| {
            events
                .iter()
                .find(|e| e.email == format!("{who}@example.org"))
                .unwrap_or_else(|| panic!("no event for {who}: {events:?}"))
        };
        assert_eq!(
            (
                of("ada").kind.as_str(),
                of("ada").status.as_deref(),
                of("ada").source.as_str()
            ),
            ("hard", Some("5.1.1"), "dsn")
        );
        assert!(
            of("ada")
                .diagnostic
                .as_deref()
                .unwrap()
                .contains("User unknown"),
            "{:?}",
            of("ada")
        );
        assert_eq!(of("ada").delivery_id, Some(day[&readers["ada"]]));
        assert_eq!(of("ada").at.to_rfc3339(), "2026-12-01T08:00:05+00:00");
        assert_eq!(
            (of("bob").kind.as_str(), of("bob").status.as_deref()),
            ("soft", Some("4.2.2"))
        );
        assert_eq!(
            (of("carol").kind.as_str(), of("carol").source.as_str()),
            ("complaint", "arf")
        );
        assert!(
            of("carol")
                .diagnostic
                .as_deref()
                .unwrap()
                .contains("Feedback-Type: abuse")
        );
        assert_eq!(
            (
                of("dave").kind.as_str(),
                of("dave").status.as_deref(),
                of("dave").source.as_str()
            ),
            ("hard", Some("5.1.1"), "verp")
        );
        assert_eq!(
            (of("erin").kind.as_str(), of("erin").delivery_id),
            ("complaint", Some(day[&readers["erin"]]))
        );
        // The same mail again, as an mbox: every report is known.
        let mut mbox = String::new();
        for text in
            std::iter::once(fill("dsn-failed.eml", "ada")).chain(rest.iter().map(|r| r.2.clone()))
        {
            mbox.push_str("From MAILER-DAEMON Tue Dec  1 08:00:05 2026\n");
            mbox.push_str(&text.replace("\r\n", "\n").replace("\nFrom ", "\n>From "));
            mbox.push('\n');
        }
        let mbox_path = dir.path().join("bounces.mbox");
        std::fs::write(&mbox_path, mbox).unwrap();
        let again = run(&mbox_path);
        assert_eq!(again["messages"], 9, "{again}");
        assert_eq!(again["recorded"], 0, "{again}");
        assert_eq!(again["duplicates"], 5, "{again}");
        assert_eq!(store.bounce_events(None).await.unwrap().len(), 5);
        // A path that is not there is the operator's mistake.
        let out = paperboy_on(dir.path(), &db)
            .args(["bounces", "import", "no-such-mailbox"])
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        db.cleanup().await;
    }
}

/// A Mailgun webhook body for `message_id`, signed with `key` at `timestamp`.
fn mailgun_call(key: &str, timestamp: i64, token: &str, event: &str, message_id: &str) -> String {
    use hmac::{KeyInit, Mac};
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(key.as_bytes()).unwrap();
    mac.update(format!("{timestamp}{token}").as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    serde_json::json!({
        "signature": {"timestamp": timestamp.to_string(), "token": token, "signature": signature},
        "event-data": {
            "event": event,
            "severity": "permanent",
            "id": format!("ev-{token}"),
            "timestamp": timestamp as f64 + 0.25,
            "recipient": "ada@example.org",
            "message": {"headers": {"message-id": message_id}},
            "delivery-status": {"code": 550, "message": "5.1.1 The email account that you tried to reach does not exist", "description": ""}
        }
    })
    .to_string()
}

#[tokio::test]
async fn a_signed_mailgun_webhook_records_a_bounce_and_unsigned_tampered_stale_or_replayed_calls_change_nothing()
 {
    const KEY: &str = "key-3ax6xnjp29jd6fds4gc373sgvjxteol0";
    for db in databases().await {
        let app = crate::helpers::spawn_app(&db, |s| {
            s.mailgun_signing_key = Some(Secret::new(KEY));
            s.log = "warn".into();
        })
        .await;
        let store = app.store.clone();
        let dir = tempfile::tempdir().unwrap();
        let ada =
            active_subscriber(&store, "ada@example.org", "diffusion", "daily", 8, "UTC").await;
        let day = deliver_a_day(&store, dir.path(), 0).await;
        let digest = store.digests_of(ada.id).await.unwrap().remove(0);
        let message_id = store.deliveries_of(digest.id).await.unwrap().remove(0).2;
        let client = reqwest::Client::new();
        let post = |provider: &str, body: String| {
            client
                .post(app.url(&format!("/webhooks/bounces/{provider}")))
                .header("content-type", "application/json")
                .body(body)
                .send()
        };
        let now = Utc::now().timestamp();
        let good = mailgun_call(KEY, now, "tok-1", "failed", &message_id);
        let refused = [
            mailgun_call("another-key", now, "tok-2", "failed", &message_id),
            good.replace("tok-1", "tok-9"),
            good.replace(&format!("\"{now}\""), &format!("\"{}\"", now + 1)),
            mailgun_call(KEY, now - 3600, "tok-3", "failed", &message_id),
            r#"{"event-data": {"event": "failed"}}"#.to_string(),
            "not json".to_string(),
        ];
        for body in &refused {
            let r = post("mailgun", body.clone()).await.unwrap();
            assert_eq!(r.status(), 401, "{body} {}", db.backend);
        }
        assert!(store.bounce_events(None).await.unwrap().is_empty());
        assert_eq!(
            status_of(&store, "ada@example.org").await,
            SubscriberStatus::Active
        );
        assert_eq!(post("ses", good.clone()).await.unwrap().status(), 404);
        let r = post("mailgun", good.clone()).await.unwrap();
        assert_eq!(r.status(), 200);
        let events = store.bounce_events(None).await.unwrap();
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].delivery_id, Some(day[&ada.id]));
        assert_eq!(
            (events[0].kind.as_str(), events[0].source.as_str()),
            ("hard", "mailgun")
        );
        assert_eq!(events[0].status.as_deref(), Some("5.1.1"));
        assert_eq!(
            status_of(&store, "ada@example.org").await,
            SubscriberStatus::Bounced
        );
        // The same call again is a replay.
        assert_eq!(post("mailgun", good).await.unwrap().status(), 401);
        assert_eq!(store.bounce_events(None).await.unwrap().len(), 1);
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn without_a_signing_key_the_mailgun_webhook_is_not_served() {
    let db = crate::helpers::TestDb::sqlite().await;
    let app = crate::helpers::spawn_app(&db, |s| s.log = "warn".into()).await;
    let r = reqwest::Client::new()
        .post(app.url("/webhooks/bounces/mailgun"))
        .body("{}")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    app.stop().await;
}
