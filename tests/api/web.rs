//! The subscription pages over real HTTP against the running app, on SQLite and
//! PostgreSQL: subscribe, confirm, preferences, one-click unsubscribe, and every rule that
//! protects them (enumeration, CSRF, honeypot, rate limits, tokens, headers, limits).

use crate::helpers::{
    TestApp, Visitor, base64_parts, confirm_link, confirmation_for, databases, header_value,
    hidden_csrf, quiet, spawn_app, store_papers, unsubscribe_in_one_click, unsubscribe_link,
};
use paperboy::domain::SubscriberStatus;
use paperboy::domain::token::hash_token;
use reqwest::StatusCode;

/// The `n`-th message in the outbox, once it is there.
async fn outbox_message(app: &TestApp, n: usize) -> String {
    let all = app.wait_for_outbox(n + 1).await;
    assert!(
        all.len() > n,
        "expected message {n}, outbox has {}",
        all.len()
    );
    all[n].clone()
}

#[tokio::test]
async fn a_subscriber_subscribes_and_confirms_with_consent_recorded() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        let page = v
            .subscribe("Ada@Example.org", "diffusion\n\"state space model\"")
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Check your inbox"));
        assert!(
            page.body.contains("written as an .eml file"),
            "operator note"
        );

        let pending = app.subscriber("ada@example.org").await.expect("stored");
        assert_eq!(pending.status, SubscriberStatus::Pending);
        assert_eq!(
            pending.preferences.queries.lines(),
            ["diffusion", "\"state space model\""]
        );
        assert_eq!(pending.preferences.frequency.as_code(), "weekly:thu");
        assert_eq!(pending.preferences.send_hour.get(), 7);
        assert_eq!(pending.preferences.timezone.name(), "Asia/Kolkata");
        assert_eq!(pending.preferences.max_papers.get(), 12);

        let message = outbox_message(&app, 0).await;
        let link = confirm_link(&message);
        assert!(link.starts_with(&app.url("/confirm/")), "{link}");
        // Opening the link shows the button and changes nothing.
        let page = v.get(&link).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Confirm your subscription"));
        assert!(page.body.contains("Ada@example.org"));
        assert!(page.body.contains("every Thursday at 07:00 (Asia/Kolkata)"));
        let still = app.subscriber("ada@example.org").await.unwrap();
        assert_eq!(still.status, SubscriberStatus::Pending);
        let page = v.confirm(&link).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("You are subscribed"));
        assert!(page.body.contains("every Thursday at 07:00 (Asia/Kolkata)"));
        let active = app.subscriber("ada@example.org").await.unwrap();
        assert_eq!(active.status, SubscriberStatus::Active);
        assert!(active.confirmed_at.is_some());

        let consents = app.store.consents(active.id).await.unwrap();
        let events: Vec<&str> = consents.iter().map(|c| c.event.as_str()).collect();
        assert_eq!(events, ["requested", "confirmed"], "{}", db.backend);
        for c in &consents {
            assert_eq!(c.ip.as_deref(), Some("127.0.0.1"));
            assert!(c.form_text.contains("By subscribing"));
            assert!(!c.form_version.is_empty());
        }
        assert_eq!(consents[0].user_agent.as_deref(), Some("TestBrowser/1.0"));

        // Single use: the same link again opens nothing.
        let again = v.get(&link).await;
        assert_eq!(again.status, StatusCode::NOT_FOUND);
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn unknown_and_known_addresses_get_the_same_answer() {
    for db in databases().await {
        let app = spawn_app(&db, |s| {
            quiet(s);
            s.web.resend_link_after_secs = 0;
        })
        .await;
        let mut v = Visitor::new(&app);
        let new = v.subscribe("new@example.org", "diffusion").await;

        v.subscribe("pending@example.org", "diffusion").await;
        let pending = v.subscribe("pending@example.org", "other").await;

        v.subscribe_and_confirm(&app, "active@example.org").await;
        let active = v.subscribe("active@example.org", "diffusion").await;

        let prefs = v.subscribe_and_confirm(&app, "gone@example.org").await;
        let csrf = v.csrf_from(&prefs).await;
        v.post(&prefs, &[("action", "unsubscribe"), ("csrf", &csrf)], &[])
            .await;
        let gone = v.subscribe("gone@example.org", "diffusion").await;

        v.subscribe_and_confirm(&app, "bounced@example.org").await;
        let bounced_id = app.subscriber("bounced@example.org").await.unwrap().id;
        let now = chrono::Utc::now();
        app.store
            .change_status(
                bounced_id,
                &[SubscriberStatus::Active],
                SubscriberStatus::Bounced,
                now,
            )
            .await
            .unwrap();
        let bounced = v.subscribe("bounced@example.org", "diffusion").await;

        for (what, page) in [
            ("pending", &pending),
            ("active", &active),
            ("unsubscribed", &gone),
            ("bounced", &bounced),
        ] {
            assert_eq!(page.status, new.status, "{what}");
            assert_eq!(page.body, new.body, "{what}: bodies differ");
            assert_eq!(
                page.headers.get("set-cookie"),
                new.headers.get("set-cookie"),
                "{what}"
            );
        }
        // The confirmed reader was sent their settings link and nothing changed.
        let active_subscriber = app.subscriber("active@example.org").await.unwrap();
        assert_eq!(active_subscriber.status, SubscriberStatus::Active);
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        let all = app.wait_for_outbox(7).await;
        assert_eq!(
            all.len(),
            7,
            "new 1, pending 2, active 2, gone 1, bounced 1"
        );
        assert!(
            all.iter()
                .any(|m| m.contains("Subject: Your paperboy digest settings")),
            "the active reader got a settings link"
        );
        // Someone else's second request does not change what the pending reader confirms.
        let pending_subscriber = app.subscriber("pending@example.org").await.unwrap();
        assert_eq!(
            pending_subscriber.preferences.queries.lines(),
            ["diffusion"]
        );
        // A reader who just left is not mailed again from the form for a day, and a
        // bounced address never is.
        let gone_subscriber = app.subscriber("gone@example.org").await.unwrap();
        assert_eq!(gone_subscriber.status, SubscriberStatus::Unsubscribed);
        let bounced_subscriber = app.subscriber("bounced@example.org").await.unwrap();
        assert_eq!(bounced_subscriber.status, SubscriberStatus::Bounced);
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn submitting_again_sends_at_most_one_link_per_ten_minutes() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        for _ in 0..3 {
            let page = v.subscribe("repeat@example.org", "diffusion").await;
            assert_eq!(page.status, StatusCode::OK);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
        assert_eq!(
            app.wait_for_outbox(1).await.len(),
            1,
            "one email, not three"
        );
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn bad_input_is_refused_next_to_its_field_and_the_form_refilled() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        let page = v
            .subscribe("<script>alert(1)</script>", "ok\ntitle:\"unclosed")
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains("id=\"email-error\""), "{}", page.body);
        assert!(page.body.contains("is not an email address"));
        assert!(
            page.body.contains("Line 2: unclosed quote at 7"),
            "{}",
            page.body
        );
        assert!(!page.body.contains("<script>alert"), "escaped");
        assert!(
            page.body
                .contains("value=\"&#60;script&#62;alert(1)&#60;/script&#62;\"")
        );
        assert!(page.body.contains("title:&#34;unclosed"), "refilled");
        assert!(page.body.contains("<option value=\"thu\" selected>"));
        assert!(page.body.contains("<option selected>Asia/Kolkata</option>"));

        let many = "x\n".repeat(21);
        let page = v.subscribe("ok@example.org", &many).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(
            page.body.contains("21 queries: at most 20"),
            "{}",
            page.body
        );

        let csrf = v.csrf_from("/").await;
        let page = v
            .post(
                "/subscribe",
                &[
                    ("email", "ok@example.org"),
                    ("frequency", "hourly"),
                    ("send_hour", "24"),
                    ("timezone", "Mars/Base"),
                    ("max_papers", "0"),
                    ("csrf", &csrf),
                ],
                &[],
            )
            .await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        for id in [
            "frequency-error",
            "send_hour-error",
            "timezone-error",
            "max_papers-error",
        ] {
            assert!(page.body.contains(id), "{id}");
        }
        assert!(
            app.subscriber("ok@example.org").await.is_none(),
            "nothing stored"
        );
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert!(app.outbox_messages().is_empty(), "nothing sent");
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn forms_without_a_valid_csrf_token_or_from_another_origin_are_refused() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let fields = |csrf: &'static str| {
            vec![
                ("email", "csrf@example.org"),
                ("frequency", "daily"),
                ("send_hour", "8"),
                ("timezone", "UTC"),
                ("max_papers", "15"),
                ("csrf", csrf),
            ]
        };
        // No cookie at all.
        let mut stranger = Visitor::new(&app);
        let page = stranger.post("/subscribe", &fields("x"), &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);

        // A cookie, but a token made for another one.
        let mut a = Visitor::new(&app);
        let token_a = a.csrf_from("/").await;
        let mut b = Visitor::new(&app);
        b.csrf_from("/").await;
        let mut with_a_token = fields("");
        with_a_token[5].1 = Box::leak(token_a.clone().into_boxed_str());
        let page = b.post("/subscribe", &with_a_token, &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);

        // The right token from another site.
        let page = a
            .post(
                "/subscribe",
                &with_a_token,
                &[("origin", "https://evil.example")],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        let page = a
            .post(
                "/subscribe",
                &with_a_token,
                &[("sec-fetch-site", "cross-site")],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        let page = a
            .post("/subscribe", &with_a_token, &[("origin", "null")])
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        assert!(app.subscriber("csrf@example.org").await.is_none());

        // The same request from our own page goes through.
        let page = a
            .post("/subscribe", &with_a_token, &[("origin", &app.base)])
            .await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(app.subscriber("csrf@example.org").await.is_some());
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_filled_honeypot_gets_the_usual_answer_and_nothing_happens() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        let human = v.subscribe("human@example.org", "").await;
        let csrf = v.csrf_from("/").await;
        let bot = v
            .post(
                "/subscribe",
                &[
                    ("email", "bot@example.org"),
                    ("frequency", "daily"),
                    ("send_hour", "8"),
                    ("timezone", "UTC"),
                    ("max_papers", "15"),
                    ("website", "http://spam.example"),
                    ("csrf", &csrf),
                ],
                &[],
            )
            .await;
        assert_eq!(bot.status, StatusCode::OK);
        assert_eq!(bot.body, human.body);
        assert!(app.subscriber("bot@example.org").await.is_none());
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
        assert_eq!(app.outbox_messages().len(), 1, "only the human's email");
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn subscribing_is_rate_limited_per_client_and_per_address() {
    for db in databases().await {
        let app = spawn_app(&db, |s| {
            quiet(s);
            s.web.subscribe_ip_burst = 2;
            s.web.subscribe_per_ip_per_hour = 2;
        })
        .await;
        let mut v = Visitor::new(&app);
        assert_eq!(
            v.subscribe("a@example.org", "").await.status,
            StatusCode::OK
        );
        assert_eq!(
            v.subscribe("b@example.org", "").await.status,
            StatusCode::OK
        );
        let limited = v.subscribe("c@example.org", "").await;
        assert_eq!(limited.status, StatusCode::TOO_MANY_REQUESTS);
        let retry: u64 = limited.headers["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!((1..=1800).contains(&retry), "Retry-After {retry}");
        assert!(app.subscriber("c@example.org").await.is_none());
        // X-Forwarded-For is not believed unless configured.
        let spoofed = v
            .post(
                "/subscribe",
                &[("email", "d@example.org")],
                &[("x-forwarded-for", "10.0.0.9")],
            )
            .await;
        assert_eq!(spoofed.status, StatusCode::TOO_MANY_REQUESTS);
        app.stop().await;

        let app = spawn_app(&db, |s| {
            quiet(s);
            s.web.trust_forwarded_for = true;
            s.web.subscribe_per_address_per_hour = 3;
        })
        .await;
        let mut v = Visitor::new(&app);
        let mut statuses = Vec::new();
        for i in 0..5 {
            let csrf = v.csrf_from("/").await;
            let ip = format!("10.0.0.{i}");
            let page = v
                .post(
                    "/subscribe",
                    &[
                        ("email", "victim@example.org"),
                        ("frequency", "daily"),
                        ("send_hour", "8"),
                        ("timezone", "UTC"),
                        ("max_papers", "15"),
                        ("csrf", &csrf),
                    ],
                    &[("x-forwarded-for", &ip)],
                )
                .await;
            statuses.push(page.status.as_u16());
        }
        assert_eq!(
            statuses,
            [200, 200, 200, 429, 429],
            "per-address limit across clients"
        );
        let consents = app
            .store
            .consents(app.subscriber("victim@example.org").await.unwrap().id)
            .await
            .unwrap();
        assert_eq!(
            consents[0].ip.as_deref(),
            Some("10.0.0.0"),
            "the proxy's word is kept"
        );
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn expired_and_tampered_confirmation_links_open_nothing() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        v.subscribe("late@example.org", "diffusion").await;
        let link = confirm_link(&outbox_message(&app, 0).await);
        let token = link.rsplit('/').next().unwrap().to_string();

        let mut tampered = token.clone().into_bytes();
        tampered[5] = if tampered[5] == b'A' { b'B' } else { b'A' };
        let tampered = String::from_utf8(tampered).unwrap();
        for bad in [
            tampered.as_str(),
            "short",
            "../../etc/passwd",
            &format!("{token}x"),
        ] {
            let page = v.get(&format!("/confirm/{bad}")).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "{bad}");
        }
        // A forged token posted with a good CSRF token opens nothing either.
        let csrf = v.csrf_from(&link).await;
        let page = v
            .post(&format!("/confirm/{tampered}"), &[("csrf", &csrf)], &[])
            .await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        let past = chrono::Utc::now() - chrono::Duration::hours(1);
        assert!(
            app.store
                .set_token_expiry(&hash_token(&token), past)
                .await
                .unwrap()
        );
        let page = v.get(&link).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND);
        let page = v.post(&link, &[("csrf", &csrf)], &[]).await;
        assert_eq!(
            page.status,
            StatusCode::NOT_FOUND,
            "an expired link confirms nothing"
        );
        let still = app.subscriber("late@example.org").await.unwrap();
        assert_eq!(still.status, SubscriberStatus::Pending);
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn preferences_edit_pause_resume_unsubscribe_and_come_back() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        let prefs = v.subscribe_and_confirm(&app, "pat@example.org").await;
        let page = v.get(&prefs).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains(">diffusion</textarea>"));
        let csrf = hidden_csrf(&page.body);

        let save = |queries: &'static str| {
            vec![
                ("action", "save"),
                ("queries", queries),
                ("frequency", "weekdays"),
                ("day", "mon"),
                ("send_hour", "6"),
                ("timezone", "America/New_York"),
                ("max_papers", "5"),
            ]
        };
        let mut fields = save("cat:cs.LG -survey\nauthor:\"Tri Dao\"");
        fields.push(("csrf", &csrf));
        let page = v.post(&prefs, &fields, &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("Saved."));
        let r = app.subscriber("pat@example.org").await.unwrap();
        assert_eq!(
            r.preferences.queries.lines(),
            ["cat:cs.LG -survey", "author:\"Tri Dao\""]
        );
        assert_eq!(r.preferences.frequency.as_code(), "weekdays");
        assert_eq!(r.preferences.timezone.name(), "America/New_York");

        let mut bad = save("(unbalanced");
        bad.push(("csrf", &csrf));
        let page = v.post(&prefs, &bad, &[]).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        assert!(page.body.contains("Nothing was saved"));
        let unchanged = app.subscriber("pat@example.org").await.unwrap();
        assert_eq!(unchanged.preferences, r.preferences);

        // No CSRF token: refused, nothing changes.
        let page = v.post(&prefs, &[("action", "pause")], &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);

        let steps = [
            ("pause", SubscriberStatus::Paused, "Paused"),
            ("resume", SubscriberStatus::Active, "Resumed"),
            (
                "unsubscribe",
                SubscriberStatus::Unsubscribed,
                "You are unsubscribed",
            ),
            ("resubscribe", SubscriberStatus::Active, "Welcome back"),
        ];
        for (action, status, flash) in steps {
            let page = v
                .post(&prefs, &[("action", action), ("csrf", &csrf)], &[])
                .await;
            assert_eq!(page.status, StatusCode::OK, "{action}");
            assert!(page.body.contains(flash), "{action}: {}", page.body);
            assert_eq!(
                app.subscriber("pat@example.org").await.unwrap().status,
                status,
                "{action}"
            );
        }
        let consents = app.store.consents(r.id).await.unwrap();
        assert_eq!(
            consents.last().unwrap().event,
            "confirmed",
            "coming back is consent too"
        );
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn tampered_or_misused_links_are_a_plain_404_that_changes_nothing() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        let prefs = v.subscribe_and_confirm(&app, "tam@example.org").await;
        let unsubscribe = unsubscribe_link(&confirmation_for(&app, "tam@example.org").await);
        let token = prefs.rsplit('/').next().unwrap();
        let (id, sig) = token.split_once('.').unwrap();
        let flipped = {
            let mut b = sig.to_string().into_bytes();
            b[0] = if b[0] == b'A' { b'B' } else { b'A' };
            String::from_utf8(b).unwrap()
        };
        let other_id = (id.parse::<i64>().unwrap() + 1).to_string();
        let unsubscribe_token = unsubscribe.rsplit('/').next().unwrap();
        for bad in [
            format!("/preferences/{id}.{flipped}"),
            format!("/preferences/{other_id}.{sig}"),
            format!("/preferences/{id}"),
            format!("/preferences/{unsubscribe_token}"),
            format!("/unsubscribe/{token}"),
            format!("/unsubscribe/{id}.{flipped}"),
        ] {
            let page = v.get(&bad).await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "GET {bad}");
            let page = v
                .post(
                    &bad,
                    &[("List-Unsubscribe", "One-Click"), ("action", "unsubscribe")],
                    &[],
                )
                .await;
            assert_eq!(page.status, StatusCode::NOT_FOUND, "POST {bad}");
        }
        assert_eq!(
            app.subscriber("tam@example.org").await.unwrap().status,
            SubscriberStatus::Active
        );
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn one_click_unsubscribe_follows_rfc_8058_in_both_encodings() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        v.subscribe_and_confirm(&app, "one@example.org").await;
        v.subscribe_and_confirm(&app, "two@example.org").await;
        let one_message = confirmation_for(&app, "one@example.org").await;
        let two_message = confirmation_for(&app, "two@example.org").await;
        let link_for = |addr: &str| {
            unsubscribe_link(if addr.starts_with("one") {
                &one_message
            } else {
                &two_message
            })
        };

        // GET shows a button and changes nothing.
        let one = link_for("one@example.org");
        let page = v.get(&one).await;
        assert_eq!(page.status, StatusCode::OK);
        assert!(page.body.contains("<button type=\"submit\""));
        assert_eq!(
            app.subscriber("one@example.org").await.unwrap().status,
            SubscriberStatus::Active
        );

        // A POST without the one-click pair changes nothing.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .unwrap();
        let empty = http.post(&one).send().await.unwrap();
        assert_eq!(empty.status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            app.subscriber("one@example.org").await.unwrap().status,
            SubscriberStatus::Active
        );

        // urlencoded, as mail providers send it: no cookie, no CSRF token.
        let r = unsubscribe_in_one_click(&one).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert!(r.headers().get("location").is_none());
        assert!(r.text().await.unwrap().contains("Subscribe again"));
        assert_eq!(
            app.subscriber("one@example.org").await.unwrap().status,
            SubscriberStatus::Unsubscribed
        );

        // multipart/form-data.
        let boundary = "paperboyTestBoundary";
        let body = format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"List-Unsubscribe\"\r\n\r\nOne-Click\r\n--{boundary}--\r\n"
        );
        let r = http
            .post(link_for("two@example.org"))
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(
            app.subscriber("two@example.org").await.unwrap().status,
            SubscriberStatus::Unsubscribed
        );
        // Again: still 200, still unsubscribed.
        let r = unsubscribe_in_one_click(&one).await;
        assert_eq!(r.status(), StatusCode::OK);
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_confirmation_email_is_multipart_with_the_list_headers() {
    for db in databases().await {
        let app = spawn_app(&db, |s| {
            quiet(s);
            s.from = "Paperboy Digest <digest@papers.example.org>".into();
        })
        .await;
        let mut v = Visitor::new(&app);
        v.subscribe("mime@example.org", "<b>diffusion</b> OR \"x\"")
            .await;
        let page = v.subscribe("mime@example.org", "diffusion").await;
        assert_eq!(page.status, StatusCode::OK);
        let message = outbox_message(&app, 0).await;
        for name in [
            "Message-ID",
            "Date",
            "From",
            "To",
            "Subject",
            "List-Id",
            "List-Unsubscribe",
            "List-Unsubscribe-Post",
        ] {
            assert!(
                header_value(&message, name).is_some(),
                "{name} missing:\n{message}"
            );
        }
        assert!(
            header_value(&message, "Message-ID")
                .unwrap()
                .ends_with("@papers.example.org>")
        );
        assert_eq!(
            header_value(&message, "List-Unsubscribe-Post"),
            Some("List-Unsubscribe=One-Click")
        );
        assert_eq!(
            header_value(&message, "List-Id"),
            Some("paperboy digest <digest.127.0.0.1>")
        );
        assert!(unsubscribe_link(&message).starts_with(&app.url("/unsubscribe/")));
        assert!(message.contains("Content-Type: multipart/alternative"));
        assert!(message.is_ascii(), "7-bit clean");
        assert!(message.split("\r\n").all(|l| l.len() <= 998));
        let parts = base64_parts(&message);
        assert_eq!(parts.len(), 2, "text then HTML");
        assert!(parts[0].contains("Confirm your paperboy digest"));
        assert!(parts[1].starts_with("<!DOCTYPE html>"));
        let link = confirm_link(&message);
        assert!(parts[1].contains(&format!("href=\"{link}\"")));
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn every_page_carries_the_security_headers_and_no_inline_script() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        let prefs = v.subscribe_and_confirm(&app, "sec@example.org").await;
        let unsubscribe = unsubscribe_link(&confirmation_for(&app, "sec@example.org").await);
        for path in ["/", prefs.as_str(), unsubscribe.as_str(), "/no-such-page"] {
            let page = v.get(path).await;
            let h = |n: &str| page.headers.get(n).map(|v| v.to_str().unwrap().to_string());
            let csp = h("content-security-policy").expect("CSP");
            assert!(
                csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
                "{csp}"
            );
            assert!(csp.contains("frame-ancestors 'none'"));
            assert_eq!(h("x-content-type-options").as_deref(), Some("nosniff"));
            assert_eq!(h("referrer-policy").as_deref(), Some("same-origin"));
            assert!(h("content-type").unwrap().starts_with("text/html"));
            for script in page.body.split("<script").skip(1) {
                assert!(
                    script.trim_start().starts_with("src="),
                    "inline script on {path}"
                );
            }
            assert!(!page.body.contains(" style=\""), "inline style on {path}");
        }
        let page = v.get("/").await;
        assert!(
            page.headers.get("set-cookie").is_none(),
            "cookie kept once set"
        );
        let mut fresh = Visitor::new(&app);
        let page = fresh.get("/").await;
        let cookie = page.headers["set-cookie"].to_str().unwrap();
        assert!(
            cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
            "{cookie}"
        );
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn oversized_bodies_are_refused() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        let csrf = v.csrf_from("/").await;
        let huge = "q".repeat(100 * 1024);
        let page = v
            .post(
                "/subscribe",
                &[
                    ("email", "big@example.org"),
                    ("queries", &huge),
                    ("csrf", &csrf),
                ],
                &[],
            )
            .await;
        assert_eq!(page.status, StatusCode::PAYLOAD_TOO_LARGE);
        assert!(app.subscriber("big@example.org").await.is_none());
        // A long query within the body limit is refused by the query rules, not stored.
        let long = "a".repeat(10_000);
        let page = v.subscribe("big@example.org", &long).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        let nested = format!("{}x{}", "(".repeat(50), ")".repeat(50));
        let page = v.subscribe("big@example.org", &nested).await;
        assert_eq!(page.status, StatusCode::UNPROCESSABLE_ENTITY);
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_live_preview_counts_recent_papers_and_explains_bad_queries() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        store_papers(
            &app.store,
            &[
                ("2411.00001", "Diffusion models for proteins"),
                ("2411.00002", "A survey of graph networks"),
            ],
        )
        .await;
        let mut v = Visitor::new(&app);
        let page = v.get("/preview?q=diffusion").await;
        assert_eq!(page.status, StatusCode::OK);
        let json: serde_json::Value = serde_json::from_str(&page.body).unwrap();
        assert_eq!(json["ok"], true);
        assert_eq!(json["matches"], 1);
        assert_eq!(json["papers"], 2);
        let page = v.get("/preview?q=%22unclosed").await;
        let json: serde_json::Value = serde_json::from_str(&page.body).unwrap();
        assert_eq!(json["ok"], false);
        assert!(
            json["error"]
                .as_str()
                .unwrap()
                .contains("unclosed quote at 1")
        );
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn a_confirmation_link_opened_twice_at_once_confirms_once() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        v.subscribe("twice@example.org", "").await;
        let link = confirm_link(&confirmation_for(&app, "twice@example.org").await);
        let csrf = v.csrf_from(&link).await;
        let (mut one, mut two) = (v.clone_with_cookie(), v.clone_with_cookie());
        let fields = [("csrf", csrf.as_str())];
        let (a, b) = tokio::join!(one.post(&link, &fields, &[]), two.post(&link, &fields, &[]));
        let mut codes = [a.status.as_u16(), b.status.as_u16()];
        codes.sort();
        assert_eq!(codes, [200, 404], "{}", db.backend);
        let r = app.subscriber("twice@example.org").await.unwrap();
        let consents = app.store.consents(r.id).await.unwrap();
        let confirmed = consents.iter().filter(|c| c.event == "confirmed").count();
        assert_eq!(confirmed, 1);
        app.stop().await;
        db.cleanup().await;
    }
}

/// Every link of a message (both parts and the List-Unsubscribe header) that points at
/// the app.
fn links_of(message: &str, app: &TestApp) -> Vec<String> {
    let mut links: Vec<String> = Vec::new();
    for part in base64_parts(message) {
        let mut rest = part.as_str();
        while let Some(link) = crate::helpers::link_starting(rest, &app.url("/")) {
            let at = rest.find(&link).unwrap() + link.len();
            rest = &rest[at..];
            let link = link.replace("&amp;", "&");
            if !links.contains(&link) {
                links.push(link);
            }
        }
    }
    if header_value(message, "List-Unsubscribe").is_some() {
        links.push(unsubscribe_link(message));
    }
    links
}

/// Fetches every link with GET and HEAD, twice, as a mail security filter does.
async fn scan(links: &[String]) -> usize {
    let scanner = reqwest::Client::builder()
        .user_agent("LinkScanner/1.0")
        .redirect(reqwest::redirect::Policy::limited(5))
        .build()
        .unwrap();
    let mut fetched = 0;
    for _ in 0..2 {
        for link in links {
            for response in [
                scanner.get(link).send().await.unwrap(),
                scanner.head(link).send().await.unwrap(),
            ] {
                assert!(
                    !response.status().is_server_error(),
                    "{link}: {}",
                    response.status()
                );
                fetched += 1;
            }
        }
    }
    fetched
}

#[tokio::test]
async fn a_link_scanner_that_opens_every_link_confirms_and_changes_nothing() {
    for db in databases().await {
        let app = spawn_app(&db, |s| {
            quiet(s);
            s.web.resend_link_after_secs = 0;
        })
        .await;
        let mut v = Visitor::new(&app);
        v.subscribe("scanned@example.org", "diffusion").await;
        let message = confirmation_for(&app, "scanned@example.org").await;
        let links = links_of(&message, &app);
        assert!(links.iter().any(|l| l.contains("/confirm/")), "{links:?}");
        scan(&links).await;
        let reader = app.subscriber("scanned@example.org").await.unwrap();
        assert_eq!(reader.status, SubscriberStatus::Pending, "{}", db.backend);
        let consents = app.store.consents(reader.id).await.unwrap();
        assert_eq!(consents.len(), 1, "only the request is on record");

        // The reader then presses the button: the consent names their browser, not the
        // scanner.
        let page = v.confirm(&confirm_link(&message)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert!(page.body.contains("You are subscribed"));
        let consents = app.store.consents(reader.id).await.unwrap();
        assert_eq!(consents[1].event, "confirmed");
        assert_eq!(consents[1].user_agent.as_deref(), Some("TestBrowser/1.0"));

        // An active reader's settings email, scanned: still active, nothing recorded.
        v.subscribe("scanned@example.org", "other").await;
        let all = app.wait_for_outbox(2).await;
        let settings_mail = all
            .iter()
            .find(|m| m.contains("Subject: Your paperboy digest settings"))
            .expect("the settings email");
        scan(&links_of(settings_mail, &app)).await;
        let after = app.subscriber("scanned@example.org").await.unwrap();
        assert_eq!(after.status, SubscriberStatus::Active);
        assert_eq!(after.preferences.queries.lines(), ["diffusion"]);
        assert_eq!(app.store.consents(reader.id).await.unwrap().len(), 2);
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn the_confirm_button_is_checked_like_every_other_form() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let mut v = Visitor::new(&app);
        v.subscribe("button@example.org", "").await;
        let link = confirm_link(&confirmation_for(&app, "button@example.org").await);
        let csrf = v.csrf_from(&link).await;
        // No CSRF token, a token for no cookie, and a cross-site post: refused.
        let bare = reqwest::Client::new()
            .post(&link)
            .header("content-type", "application/x-www-form-urlencoded")
            .body("")
            .send()
            .await
            .unwrap();
        assert_eq!(bare.status(), StatusCode::FORBIDDEN);
        let mut stranger = Visitor::new(&app);
        let page = stranger.post(&link, &[("csrf", &csrf)], &[]).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        let page = v
            .post(
                &link,
                &[("csrf", &csrf)],
                &[("origin", "https://evil.example.net")],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        let page = v
            .post(
                &link,
                &[("csrf", &csrf)],
                &[("sec-fetch-site", "cross-site")],
            )
            .await;
        assert_eq!(page.status, StatusCode::FORBIDDEN);
        let reader = app.subscriber("button@example.org").await.unwrap();
        assert_eq!(reader.status, SubscriberStatus::Pending, "{}", db.backend);
        // The page's own post confirms, once.
        let page = v.post(&link, &[("csrf", &csrf)], &[]).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let page = v.post(&link, &[("csrf", &csrf)], &[]).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "single use");
        let page = v.get(&link).await;
        assert_eq!(
            page.status,
            StatusCode::NOT_FOUND,
            "a used link opens nothing"
        );
        app.stop().await;
        db.cleanup().await;
    }
}
