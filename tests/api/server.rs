//! The listener over raw TCP and real HTTP: deadlines for request heads and idle
//! keep-alive connections, the connection cap, shutdown with idle and busy connections,
//! error pages for what axum itself refuses, the Origin check, and `/metrics` on an admin
//! listener of its own.

use std::time::{Duration, Instant};

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::helpers::{
    TestApp, TestDb, Visitor, closed_within, free_port, quiet, read_answer, spawn_app,
};

async fn connect(app: &TestApp) -> TcpStream {
    TcpStream::connect(app.addr).await.expect("connect")
}

/// A connection that has sent the head of a form post announcing `length` bytes, and only
/// `email=` of them: a request in progress whose body has not all arrived.
async fn unfinished_post(app: &TestApp, length: usize) -> TcpStream {
    let mut stream = connect(app).await;
    stream
        .write_all(
            format!(
                "POST /subscribe HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {length}\r\n\r\nemail=",
                app.addr
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    stream
}

fn healthz(app: &TestApp) -> String {
    format!(
        "GET /healthz HTTP/1.1\r\nhost: {}\r\nconnection: keep-alive\r\n\r\n",
        app.addr
    )
}

#[tokio::test]
async fn a_client_that_trickles_its_request_head_is_disconnected_at_the_deadline() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, |s| {
        quiet(s);
        s.web.header_read_timeout_secs = 1;
    })
    .await;
    let mut slow = connect(&app).await;
    slow.write_all(b"GET /healthz HTTP/1.1\r\n").await.unwrap();
    let trickle = async {
        for i in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow
                .write_all(format!("x-slow-{i}: y\r\n").as_bytes())
                .await
                .is_err()
            {
                break;
            }
        }
    };
    let started = Instant::now();
    trickle.await;
    let took = closed_within(&mut slow, Duration::from_secs(5))
        .await
        .map(|_| started.elapsed())
        .expect("the trickling client is disconnected");
    assert!(
        took < Duration::from_millis(4500),
        "disconnected after {took:?}"
    );
    // A fresh connection that sends nothing at all is closed at the same deadline.
    let mut silent = connect(&app).await;
    let took = closed_within(&mut silent, Duration::from_secs(4))
        .await
        .expect("the silent client is disconnected");
    assert!(took >= Duration::from_millis(800), "{took:?}");
    // A client that sends its head at once is answered as always.
    let mut quick = connect(&app).await;
    quick.write_all(healthz(&app).as_bytes()).await.unwrap();
    assert!(read_answer(&mut quick).await.starts_with("HTTP/1.1 200"));
    // The closings are counted.
    let metrics = reqwest::get(app.url("/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("paperboy_http_connections_closed_total{reason=\"head_timeout\"}"),
        "{metrics}"
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn an_idle_keep_alive_connection_is_closed_after_the_keep_alive_timeout() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, |s| {
        quiet(s);
        s.web.keep_alive_timeout_secs = 1;
        s.web.header_read_timeout_secs = 5;
    })
    .await;
    let mut kept = connect(&app).await;
    // Two requests on one connection, 300 ms apart: it is kept alive between them …
    let mut answered = Instant::now();
    for _ in 0..2 {
        kept.write_all(healthz(&app).as_bytes()).await.unwrap();
        assert!(read_answer(&mut kept).await.starts_with("HTTP/1.1 200"));
        answered = Instant::now();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    // … and closed once it has been idle for the keep-alive timeout.
    closed_within(&mut kept, Duration::from_secs(4))
        .await
        .expect("the idle connection is closed");
    let idle = answered.elapsed();
    assert!(
        idle >= Duration::from_millis(800) && idle < Duration::from_secs(3),
        "closed {idle:?} after the answer"
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_client_that_trickles_a_request_body_is_disconnected_at_the_body_deadline() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, |s| {
        quiet(s);
        s.web.body_read_timeout_secs = 1;
    })
    .await;
    let mut slow = unfinished_post(&app, 1000).await;
    let started = Instant::now();
    let trickle = async {
        for _ in 0..40 {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if slow.write_all(b"a").await.is_err() {
                break;
            }
        }
    };
    trickle.await;
    closed_within(&mut slow, Duration::from_secs(5))
        .await
        .expect("the trickling body is cut off");
    let took = started.elapsed();
    assert!(took < Duration::from_millis(4500), "cut after {took:?}");
    // A body sent at once is read and answered, however long the handler then takes.
    let mut v = Visitor::new(&app);
    let page = v.subscribe("quick@example.org", "diffusion").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn beyond_the_connection_cap_new_clients_displace_the_longest_waiting_ones() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, |s| {
        quiet(s);
        s.web.max_connections = 8;
        s.web.header_read_timeout_secs = 60;
        s.web.keep_alive_timeout_secs = 60;
    })
    .await;
    // Thirty clients that start a head and never finish it.
    let mut slow = Vec::new();
    for _ in 0..30 {
        let mut s = connect(&app).await;
        s.write_all(b"GET / HTTP/1.1\r\nhost: x\r\n").await.unwrap();
        slow.push(s);
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // Someone who asks properly is still answered, over and over.
    let http = reqwest::Client::new();
    for _ in 0..5 {
        let health =
            tokio::time::timeout(Duration::from_secs(5), http.get(app.url("/healthz")).send())
                .await
                .expect("/healthz answers beyond the cap")
                .unwrap();
        assert_eq!(health.status(), StatusCode::OK);
    }
    // The first comers were displaced; at most the cap is still open.
    let mut open = 0;
    for s in &mut slow {
        if closed_within(s, Duration::from_millis(200)).await.is_none() {
            open += 1;
        }
    }
    assert!(open <= 8, "{open} slow connections still open");
    assert!(
        closed_within(&mut slow[0], Duration::from_millis(100))
            .await
            .is_some(),
        "the oldest slow client was displaced"
    );
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn at_the_cap_with_every_connection_busy_a_newcomer_gets_503_at_once() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, |s| {
        quiet(s);
        s.web.max_connections = 2;
    })
    .await;
    let mut busy = Vec::new();
    for _ in 0..2 {
        busy.push(unfinished_post(&app, 100).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut late = connect(&app).await;
    let mut answer = String::new();
    tokio::time::timeout(Duration::from_secs(2), late.read_to_string(&mut answer))
        .await
        .expect("answered and closed at once")
        .unwrap();
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("retry-after: 1"));
    // Once a busy one is done, there is room again.
    drop(busy.pop());
    tokio::time::sleep(Duration::from_millis(200)).await;
    let health = reqwest::get(app.url("/healthz")).await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    drop(busy);
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn shutdown_closes_idle_connections_at_once_and_lets_a_request_in_progress_finish() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, |s| {
        quiet(s);
        s.web.shutdown_grace_secs = 5;
    })
    .await;
    let mut idle = connect(&app).await;
    idle.write_all(healthz(&app).as_bytes()).await.unwrap();
    assert!(read_answer(&mut idle).await.starts_with("HTTP/1.1 200"));
    let mut fresh = connect(&app).await;
    // A form post whose body is still on its way.
    let body = "email=late%40example.org&csrf=x";
    let mut busy = connect(&app).await;
    busy.write_all(
        format!(
            "POST /subscribe HTTP/1.1\r\nhost: {}\r\ncontent-type: application/x-www-form-urlencoded\r\ncontent-length: {}\r\n\r\n{}",
            app.addr,
            body.len(),
            &body[..5]
        )
        .as_bytes(),
    )
    .await
    .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;

    let started = Instant::now();
    let stopping = tokio::spawn(app.stop());
    for (what, stream) in [("idle", &mut idle), ("fresh", &mut fresh)] {
        let took = closed_within(stream, Duration::from_secs(2))
            .await
            .unwrap_or_else(|| panic!("the {what} connection was kept"));
        assert!(took < Duration::from_millis(1000), "{what}: {took:?}");
    }
    assert!(!stopping.is_finished(), "the busy request is waited for");
    // New connections are no longer taken.
    tokio::time::sleep(Duration::from_millis(100)).await;
    // The rest of the body arrives within the grace: the request is answered, and the
    // connection closes after it.
    busy.write_all(&body.as_bytes()[5..]).await.unwrap();
    let answer = read_answer(&mut busy).await;
    assert!(answer.starts_with("HTTP/1.1 403"), "{answer}");
    assert!(answer.to_ascii_lowercase().contains("connection: close"));
    tokio::time::timeout(Duration::from_secs(3), stopping)
        .await
        .expect("the app stops once the last request is answered")
        .unwrap();
    assert!(started.elapsed() < Duration::from_secs(4));
    db.cleanup().await;
}

#[tokio::test]
async fn shutdown_gives_a_request_that_never_ends_the_grace_and_no_more() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, |s| {
        quiet(s);
        s.web.shutdown_grace_secs = 2;
    })
    .await;
    let mut busy = unfinished_post(&app, 1000).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    let addr = app.addr;
    tokio::time::timeout(Duration::from_secs(6), app.stop())
        .await
        .expect("the app stops after the grace");
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1900) && took < Duration::from_millis(3500),
        "stopped after {took:?}"
    );
    assert!(
        closed_within(&mut busy, Duration::from_millis(500))
            .await
            .is_some()
    );
    assert!(
        TcpStream::connect(addr).await.is_err(),
        "the listener is closed"
    );
    db.cleanup().await;
}

/// The body of an answer, checked to be the HTML error page with the security headers
/// and without `marker`.
async fn error_page(response: reqwest::Response, status: StatusCode, marker: &str) -> String {
    assert_eq!(response.status(), status);
    let kind = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(kind.starts_with("text/html"), "{status}: {kind}");
    assert!(response.headers().contains_key("content-security-policy"));
    let body = response.text().await.unwrap();
    assert!(body.contains("<!DOCTYPE html>"), "{body}");
    assert!(
        !body.contains(marker),
        "{status} echoes the request: {body}"
    );
    body
}

#[tokio::test]
async fn what_axum_itself_refuses_gets_the_error_page_without_echoing_the_request() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, quiet).await;
    let http = reqwest::Client::new();
    let marker = "zq<b>x</b>";
    let form = "application/x-www-form-urlencoded";
    // A path parameter that is not a number.
    let r = http
        .get(app.url("/digests/zq%3Cb%3Ex%3C%2Fb%3E?t=1"))
        .send()
        .await
        .unwrap();
    error_page(r, StatusCode::BAD_REQUEST, "zq").await;
    // A field given twice.
    let r = http
        .post(app.url("/subscribe"))
        .header("content-type", form)
        .body("email=zq%3Cb%3Ex%3C%2Fb%3E&email=zq2&csrf=x")
        .send()
        .await
        .unwrap();
    let status = r.status();
    assert!(status.is_client_error(), "{status}");
    error_page(r, status, "zq").await;
    // The wrong content type.
    let r = http
        .post(app.url("/subscribe"))
        .header("content-type", "application/json")
        .body(format!("{{\"email\":\"{marker}\"}}"))
        .send()
        .await
        .unwrap();
    error_page(r, StatusCode::UNSUPPORTED_MEDIA_TYPE, "zq").await;
    // A query string that does not fit.
    let r = http
        .get(app.url("/digests/1?t=zq1&t=zq2"))
        .send()
        .await
        .unwrap();
    error_page(r, StatusCode::BAD_REQUEST, "zq").await;
    // A method the address does not take: the Allow header stays.
    let r = http.put(app.url("/subscribe")).send().await.unwrap();
    assert!(r.headers().contains_key("allow"));
    error_page(r, StatusCode::METHOD_NOT_ALLOWED, "PUT").await;
    // A body over the limit.
    let r = http
        .post(app.url("/subscribe"))
        .header("content-type", form)
        .body(format!("email={}", "zq".repeat(40_000)))
        .send()
        .await
        .unwrap();
    error_page(r, StatusCode::PAYLOAD_TOO_LARGE, "zq").await;
    // The JSON route answers JSON.
    let r = http
        .get(app.url("/preview?q=zq1&q=zq2"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::BAD_REQUEST);
    assert!(
        r.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("application/json")
    );
    let json: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(json["ok"], false);
    assert!(!json.to_string().contains("zq"), "{json}");
    // A handler's own JSON error stays as it is: /healthz with the database gone.
    app.store.close().await;
    let r = http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::SERVICE_UNAVAILABLE);
    let json: serde_json::Value = serde_json::from_str(&r.text().await.unwrap()).unwrap();
    assert_eq!(json["status"], "unavailable", "{json}");
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn a_form_post_is_accepted_only_from_the_base_urls_origin() {
    let db = TestDb::sqlite().await;
    let app = spawn_app(&db, quiet).await;
    let mut v = Visitor::new(&app);
    let csrf = v.csrf_from("/").await;
    let fields = [
        ("email", "origin@example.org"),
        ("frequency", "daily"),
        ("send_hour", "8"),
        ("timezone", "UTC"),
        ("max_papers", "15"),
        ("csrf", csrf.as_str()),
    ];
    // The client names the host, and an origin to match it.
    let page = v
        .post(
            "/subscribe",
            &fields,
            &[("host", "evil.example"), ("origin", "http://evil.example")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = v
        .post(
            "/subscribe",
            &fields,
            &[("host", "evil.example"), ("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(app.subscriber("origin@example.org").await.is_none());
    let page = v
        .post("/subscribe", &fields, &[("origin", &app.base)])
        .await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(app.subscriber("origin@example.org").await.is_some());
    app.stop().await;
    db.cleanup().await;
}

#[tokio::test]
async fn metrics_move_to_the_admin_listener_when_one_is_set() {
    let db = TestDb::sqlite().await;
    let admin = format!("127.0.0.1:{}", free_port());
    let app = spawn_app(&db, |s| {
        quiet(s);
        s.admin_bind = Some(admin.clone());
    })
    .await;
    let http = reqwest::Client::new();
    let public = http.get(app.url("/metrics")).send().await.unwrap();
    error_page(public, StatusCode::NOT_FOUND, "paperboy_").await;
    let metrics = http
        .get(format!("http://{admin}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    assert!(
        metrics.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("paperboy_queue_depth")
    );
    let health = http
        .get(format!("http://{admin}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    // The admin listener serves nothing else.
    let form = http.get(format!("http://{admin}/")).send().await.unwrap();
    assert_eq!(form.status(), StatusCode::NOT_FOUND);
    // The public listener still serves the rest.
    let health = http.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), StatusCode::OK);
    app.stop().await;
    // Without it, /metrics is on the public listener.
    let app = spawn_app(&db, quiet).await;
    let metrics = http.get(app.url("/metrics")).send().await.unwrap();
    assert_eq!(metrics.status(), StatusCode::OK);
    app.stop().await;
    db.cleanup().await;
}
