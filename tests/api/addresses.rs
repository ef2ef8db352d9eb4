//! Which addresses the form takes and how much mail one mailbox can be sent: every spelling
//! of a mailbox (`+tags`, case, dots at Gmail, Unicode domains) shares one daily limit and
//! one suppression, whatever the client; addresses mail cannot reach by name are refused
//! with a message; Unicode domains go out in A-labels, and a UTF-8 local part only through
//! a relay that announces SMTPUTF8. On SQLite and PostgreSQL, over real HTTP.

use crate::helpers::{SmtpSink, TestApp, TestDb, Visitor, databases, quiet, spawn_app};
use paperboy::domain::token::hash_token;
use paperboy::domain::{EmailAddress, Preferences};
use paperboy::store::{ClientInfo, ConsentText, RequestOutcome, SubscriptionRequest};
use reqwest::StatusCode;

/// Posts the subscribe form for `email` as the client at `ip` (believed when the app
/// trusts `X-Forwarded-For`).
async fn subscribe_from(v: &mut Visitor, email: &str, ip: &str) -> StatusCode {
    let csrf = v.csrf_from("/").await;
    let page = v
        .post(
            "/subscribe",
            &[
                ("email", email),
                ("queries", "diffusion"),
                ("frequency", "daily"),
                ("send_hour", "8"),
                ("timezone", "UTC"),
                ("max_papers", "15"),
                ("csrf", &csrf),
            ],
            &[("x-forwarded-for", ip)],
        )
        .await;
    page.status
}

/// The outbox once the emails sent after answering had time to land.
async fn settled(app: &TestApp) -> Vec<String> {
    tokio::time::sleep(std::time::Duration::from_millis(400)).await;
    app.outbox_messages()
}

const VARIANTS: [&str; 8] = [
    "victim@gmail.com",
    "Victim+1@gmail.com",
    "v.ictim@gmail.com",
    "VICTIM+news@googlemail.com",
    "v.i.c.t.i.m+2@GMAIL.com",
    "victim+3@googlemail.com",
    "vic.tim+4@gmail.com",
    "victim+5@gmail.com",
];

fn open_limits(s: &mut paperboy::config::Settings) {
    quiet(s);
    s.web.trust_forwarded_for = true;
    s.web.subscribe_per_ip_per_hour = 100_000;
    s.web.subscribe_ip_burst = 100_000;
}

#[tokio::test]
async fn every_spelling_of_a_mailbox_from_any_client_shares_three_links_a_day() {
    for db in databases().await {
        let app = spawn_app(&db, open_limits).await;
        let mut v = Visitor::new(&app);
        let mut statuses = Vec::new();
        for (i, email) in VARIANTS[..5].iter().enumerate() {
            statuses.push(subscribe_from(&mut v, email, &format!("10.1.0.{i}")).await);
        }
        // The in-memory limit keys on the mailbox too: a burst of three, then 429.
        assert_eq!(
            statuses,
            [
                StatusCode::OK,
                StatusCode::OK,
                StatusCode::OK,
                StatusCode::TOO_MANY_REQUESTS,
                StatusCode::TOO_MANY_REQUESTS
            ],
            "{}",
            db.backend
        );
        assert_eq!(settled(&app).await.len(), 3, "{}", db.backend);
        app.stop().await;

        // A restart (or another instance) forgets the in-memory limit; the database's
        // holds: the form answers as always and mails nothing more today.
        let app = spawn_app(&db, open_limits).await;
        let mut v = Visitor::new(&app);
        for (i, email) in VARIANTS[5..].iter().enumerate() {
            let status = subscribe_from(&mut v, email, &format!("10.2.0.{i}")).await;
            assert_eq!(status, StatusCode::OK, "{email}");
        }
        assert_eq!(
            settled(&app).await.len(),
            0,
            "{}: no fourth link",
            db.backend
        );
        // Another mailbox is not affected.
        subscribe_from(&mut v, "someone.else@gmail.com", "10.3.0.1").await;
        assert_eq!(settled(&app).await.len(), 1);
        // Only the spellings that were mailed were stored, each as typed.
        let stored: Vec<String> = app
            .store
            .list_subscribers(None)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.email.to_string())
            .collect();
        assert_eq!(
            stored,
            [
                "victim@gmail.com",
                "Victim+1@gmail.com",
                "v.ictim@gmail.com",
                "someone.else@gmail.com"
            ]
        );
        app.stop().await;
        db.cleanup().await;
    }
}

fn request<'a>(
    email: &'a EmailAddress,
    preferences: &'a Preferences,
    token_hash: &'a str,
    client: &'a ClientInfo,
) -> SubscriptionRequest<'a> {
    SubscriptionRequest {
        email,
        preferences,
        token_hash,
        token_ttl: chrono::Duration::hours(48),
        resend_after: chrono::Duration::zero(),
        daily_mailbox_limit: 3,
        link_key: "key",
        client,
        consent: ConsentText {
            version: "test",
            text: "test",
        },
    }
}

#[tokio::test]
async fn the_mailbox_limit_is_a_rolling_day() {
    for db in databases().await {
        let store = db.store().await;
        let preferences = Preferences::default();
        let client = ClientInfo::default();
        let start = chrono::Utc::now();
        let mut outcomes = Vec::new();
        for (i, (email, minutes)) in [
            ("ann@example.org", 0),
            ("Ann+a@example.org", 10),
            ("ann+b@Example.org", 20),
            ("ann+c@example.org", 30),
            // A day after the first link, one more may go; not yet two.
            ("ann+d@example.org", 24 * 60 + 1),
            ("ann+e@example.org", 24 * 60 + 2),
        ]
        .into_iter()
        .enumerate()
        {
            let email = EmailAddress::parse(email).unwrap();
            let token = hash_token(&format!("token{i}"));
            let at = start + chrono::Duration::minutes(minutes);
            let outcome = store
                .request_subscription(&request(&email, &preferences, &token, &client), at)
                .await
                .unwrap();
            outcomes.push(matches!(outcome, RequestOutcome::Confirm(_)));
        }
        assert_eq!(
            outcomes,
            [true, true, true, false, true, false],
            "{}",
            db.backend
        );
        db.cleanup().await;
    }
}

/// Files a suppression as versions before mailbox keys did: the hash of the address
/// folded to lower case.
async fn legacy_suppression(db: &TestDb, address: &str) {
    let hash = hash_token(&address.to_lowercase());
    let sql = "INSERT INTO suppressions (email_hash, reason, created_at) VALUES ($1, 'erased', $2)";
    let now = chrono::Utc::now();
    if db.backend == "sqlite" {
        let pool = sqlx::SqlitePool::connect(db.url.expose()).await.unwrap();
        sqlx::query(sql)
            .bind(hash)
            .bind(now)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    } else {
        let pool = sqlx::PgPool::connect(db.url.expose()).await.unwrap();
        sqlx::query(sql)
            .bind(hash)
            .bind(now)
            .execute(&pool)
            .await
            .unwrap();
        pool.close().await;
    }
}

#[tokio::test]
async fn an_erased_mailbox_is_never_mailed_under_any_spelling() {
    for db in databases().await {
        let app = spawn_app(&db, open_limits).await;
        let mut v = Visitor::new(&app);
        subscribe_from(&mut v, "Erased.Reader+old@gmail.com", "10.4.0.1").await;
        assert_eq!(settled(&app).await.len(), 1);
        let erased = EmailAddress::parse("Erased.Reader+old@gmail.com").unwrap();
        assert!(
            app.store
                .erase_subscriber(&erased, chrono::Utc::now())
                .await
                .unwrap()
        );
        // Two spellings: the in-memory limit allows the mailbox a burst of three requests.
        for (i, spelling) in [
            "erasedreader@gmail.com",
            "e.r.a.s.e.d.reader+new@googlemail.com",
        ]
        .iter()
        .enumerate()
        {
            let status = subscribe_from(&mut v, spelling, &format!("10.4.1.{i}")).await;
            assert_eq!(status, StatusCode::OK, "the usual answer for {spelling}");
        }
        assert_eq!(
            settled(&app).await.len(),
            1,
            "{}: nothing more sent",
            db.backend
        );
        let check = EmailAddress::parse("erasedreader+x@googlemail.com").unwrap();
        assert!(app.store.is_suppressed(&check).await.unwrap());

        // An entry filed by an earlier version (a hash of the lowercased address) still
        // holds for that spelling.
        legacy_suppression(&db, "Old.Reader+Tag@Example.org").await;
        subscribe_from(&mut v, "old.reader+tag@example.org", "10.4.2.1").await;
        assert_eq!(settled(&app).await.len(), 1, "{}: legacy entry", db.backend);
        let legacy = EmailAddress::parse("OLD.reader+TAG@example.org").unwrap();
        assert!(app.store.is_suppressed(&legacy).await.unwrap());
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn addresses_mail_cannot_reach_by_name_are_refused_at_the_form() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, open_limits).await;
    let mut v = Visitor::new(&app);
    for (i, (bad, says)) in [
        (
            "erased@ex\u{ad}ample.org",
            "invisible formatting character (U+00AD)",
        ),
        (
            "x@example.org\u{200b}",
            "invisible formatting character (U+200B)",
        ),
        (
            "\u{202e}gro.elpmaxe@x.org",
            "invisible formatting character (U+202E)",
        ),
        ("a@exa_mple.org", "valid domain name"),
        ("a@127.0.0.1", "IP address"),
        ("a@[127.0.0.1]", "IP address"),
        ("me@localhost", "no domain such as example.org"),
        (&format!("{}@example.org", "a".repeat(65)), "longer than 64"),
        (
            &format!("a@{}.example.org", vec!["b".repeat(60); 4].join(".")),
            "longer than 254",
        ),
    ]
    .iter()
    .enumerate()
    {
        let csrf = v.csrf_from("/").await;
        let page = v
            .post(
                "/subscribe",
                &[
                    ("email", bad),
                    ("frequency", "daily"),
                    ("send_hour", "8"),
                    ("timezone", "UTC"),
                    ("max_papers", "15"),
                    ("csrf", &csrf),
                ],
                &[("x-forwarded-for", &format!("10.5.0.{i}"))],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY, "{bad:?}");
        assert!(page.body.contains(says), "{bad:?}: no {says:?} in the page");
    }
    assert!(app.store.list_subscribers(None).await.unwrap().is_empty());
    assert!(settled(&app).await.is_empty());
    app.stop().await;
    db.cleanup().await;
}

/// What reached the relay, once something has (or after 10 s); waits without blocking the
/// runtime that sends.
async fn arrived(sink: &SmtpSink) -> Vec<String> {
    for _ in 0..100 {
        let got = sink.received();
        if !got.is_empty() {
            return got;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    sink.received()
}

/// The app sending through aiosmtpd (with `options`), and a sink to read what arrived.
async fn app_with_relay(
    db: &TestDb,
    dir: &std::path::Path,
    options: &[&str],
) -> Option<(TestApp, SmtpSink)> {
    std::fs::create_dir_all(dir).unwrap();
    let sink = SmtpSink::start_with(dir, options)?;
    let port = sink.port;
    let app = spawn_app(db, move |s| {
        open_limits(s);
        s.smtp_url = Some(paperboy::config::Secret::new(format!(
            "smtp://127.0.0.1:{port}?tls=none"
        )));
    })
    .await;
    Some((app, sink))
}

#[tokio::test]
async fn unicode_domains_go_out_in_a_labels_and_utf8_local_parts_need_smtputf8() {
    let dir = tempfile::tempdir().unwrap();
    let db = TestDb::sqlite().await;
    let Some((app, sink)) = app_with_relay(&db, &dir.path().join("plain"), &[]).await else {
        return;
    };
    let mut v = Visitor::new(&app);
    // An IDN domain needs nothing of the relay: RCPT TO and To carry the A-labels, the
    // reader is stored as typed.
    assert_eq!(
        subscribe_from(&mut v, "ada@Bücher.example", "10.6.0.1").await,
        StatusCode::OK
    );
    let got = arrived(&sink).await;
    assert_eq!(got.len(), 1);
    assert!(
        got[0].contains("X-RcptTo: ada@xn--bcher-kva.example"),
        "{}",
        got[0]
    );
    assert!(
        got[0].contains("To: ada@xn--bcher-kva.example"),
        "{}",
        got[0]
    );
    let stored = app.store.list_subscribers(None).await.unwrap();
    assert_eq!(stored[0].email.as_str(), "ada@bücher.example");
    // This relay did not announce SMTPUTF8: a UTF-8 local part is refused at the form.
    let csrf = v.csrf_from("/").await;
    let page = v
        .post(
            "/subscribe",
            &[
                ("email", "用户@example.org"),
                ("frequency", "daily"),
                ("send_hour", "8"),
                ("timezone", "UTC"),
                ("max_papers", "15"),
                ("csrf", &csrf),
            ],
            &[("x-forwarded-for", "10.6.0.2")],
        )
        .await;
    assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
    assert!(
        page.body.contains("cannot deliver to an address"),
        "{}",
        page.body
    );
    assert_eq!(app.store.list_subscribers(None).await.unwrap().len(), 1);
    app.stop().await;
    drop(sink);

    // A relay that announces SMTPUTF8 takes it.
    let Some((app, sink)) = app_with_relay(&db, &dir.path().join("utf8"), &["-u"]).await else {
        return;
    };
    let mut v = Visitor::new(&app);
    // The app asks the relay at start; wait until it has.
    let mut status = StatusCode::UNPROCESSABLE_ENTITY;
    for i in 0..50 {
        status = subscribe_from(&mut v, "用户@example.org", &format!("10.7.0.{i}")).await;
        if status == StatusCode::OK {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(status, StatusCode::OK);
    let got = arrived(&sink).await;
    assert_eq!(got.len(), 1, "the confirmation went out");
    assert!(got[0].contains("用户@example.org"), "{}", got[0]);
    app.stop().await;
    db.cleanup().await;
}
