//! Reliability drills: input and abuse.
//!
//! - `hostile_form`: a corpus of header injections, NULs, invalid UTF-8, HTML, overlong
//!   values and deep nesting posted to `POST /subscribe` over real HTTP with a valid CSRF
//!   cookie and token; every refusal is a 4xx with the form shown again and the message
//!   beside the field, everything accepted is stored exactly once, mailed once with clean
//!   headers and shown escaped.
//! - `hostile_cli`: the same corpus through `subscribers add`, `subscribers import` (CSV)
//!   and `papers search`, argv included (raw bytes through `OsString`); every refusal is
//!   exit 2 with a message on stderr, and the database holds exactly what was accepted.
//! - `query_fuzz`: the query parser under 20,000 seeded property cases.
//! - `burst_one_client` and `burst_one_mailbox`: 1,000 subscribe requests within a minute
//!   from one client, and from 1,000 clients for one mailbox.
//! - `mailbox_variant_flood`: 2,000 spellings of one Gmail mailbox (case, dots, `+tags`,
//!   googlemail.com) from 2,000 spoofed client addresses, across a restart that empties
//!   the in-memory limits: the mailbox gets 3 mails in the day.
//! - `link_scanner`: every link of 40 confirmation emails fetched with GET and HEAD three
//!   times, as mail security filters do: nobody is confirmed until they press the button,
//!   and no consent names the scanner.
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "report.rs"]
mod report;

use std::collections::{BTreeMap, BTreeSet};
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;
use std::path::Path;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use helpers::{
    TestApp, TestDb, base64_parts, confirm_link, databases, find_subscriber, outbox_messages,
    paperboy_on, preferences_link, spawn_app,
};
use paperboy::config::Settings;
use paperboy::domain::Subscriber;
use paperboy::domain::{ArxivId, EmailAddress, Paper, SubscriberStatus};
use paperboy::matching::eval::{Indexed, eval};
use paperboy::matching::{Doc, Query, QueryError, naive_matches, parse_lines, search};
use paperboy::store::Store;
use proptest::prelude::*;
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};
use reqwest::StatusCode;
use serde_json::json;

// ---------------------------------------------------------------------------------------
// Shared pieces
// ---------------------------------------------------------------------------------------

const SCRIPT: &str = "<script>alert(1)</script>";
const IMG: &str = "\"><img src=x onerror=alert(1)>";
/// What must never appear unescaped in a page or an email: the payloads' opening tags.
const RAW_MARKERS: [&str; 3] = ["<script>alert", "<img src=x", "<svg/onload"];

fn quiet(s: &mut Settings) {
    s.log = "error".into();
}

/// `n` levels of parentheses around one word.
fn nested(n: usize) -> String {
    format!("{}diffusion{}", "(".repeat(n), ")".repeat(n))
}

fn no_raw_markup(what: &str, text: &str) {
    for marker in RAW_MARKERS {
        assert!(!text.contains(marker), "{what} holds raw {marker:?}");
    }
}

/// The header names of a message, after checking that every header line is well formed
/// and that no bare CR or LF hides inside the header block.
fn header_names(message: &str) -> Vec<String> {
    let head = message.split("\r\n\r\n").next().expect("a header block");
    assert!(
        !head.replace("\r\n", "").contains(['\r', '\n', '\0']),
        "a bare CR, LF or NUL in the headers:\n{head}"
    );
    let mut names = Vec::new();
    for line in head.split("\r\n") {
        if line.starts_with([' ', '\t']) {
            continue;
        }
        let (name, _) = line
            .split_once(':')
            .unwrap_or_else(|| panic!("header line without a colon: {line:?}"));
        assert!(
            !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "odd header name {name:?}"
        );
        names.push(name.to_ascii_lowercase());
    }
    names
}

/// The headers a confirmation email may carry; anything else was smuggled in.
const MAIL_HEADERS: [&str; 14] = [
    "precedence",
    "feedback-id",
    "content-transfer-encoding",
    "from",
    "to",
    "subject",
    "message-id",
    "date",
    "mime-version",
    "content-type",
    "list-id",
    "list-unsubscribe",
    "list-unsubscribe-post",
    "auto-submitted",
];

/// Checks one outgoing message: known headers only, one recipient, no raw markup in any
/// part. Returns its `To` value.
fn check_mail(message: &str) -> String {
    let names = header_names(message);
    for n in &names {
        assert!(
            MAIL_HEADERS.contains(&n.as_str()) || n.starts_with("x-") && n != "x-injected",
            "unexpected header {n:?} in\n{message}"
        );
    }
    for once in ["to", "from", "subject"] {
        assert_eq!(
            names.iter().filter(|n| *n == once).count(),
            1,
            "{once} in\n{message}"
        );
    }
    assert!(!names.iter().any(|n| n == "bcc" || n == "cc"));
    no_raw_markup("message", message);
    for part in base64_parts(message) {
        no_raw_markup("message part", &part);
    }
    message
        .split("\r\n\r\n")
        .next()
        .and_then(|h| h.split("\r\n").find_map(|l| l.strip_prefix("To: ")))
        .expect("a To header")
        .trim()
        .to_string()
}

/// Every reader in the store: address → (status, queries).
async fn stored_subscribers(store: &Store) -> BTreeMap<String, (SubscriberStatus, Vec<String>)> {
    store
        .list_subscribers(None)
        .await
        .expect("list readers")
        .into_iter()
        .map(|r: Subscriber| {
            (
                r.email.as_str().to_string(),
                (r.status, r.preferences.queries.lines().to_vec()),
            )
        })
        .collect()
}

/// The lines a query field holds once stored: trimmed, blank ones dropped.
fn query_lines(text: &str) -> Vec<String> {
    text.lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_string)
        .collect()
}

// ---------------------------------------------------------------------------------------
// The web form
// ---------------------------------------------------------------------------------------

/// A browser that has loaded the form: its CSRF cookie and token.
struct Visitor {
    http: reqwest::Client,
    base: String,
    cookie: String,
    csrf: String,
}

struct Answer {
    status: StatusCode,
    retry_after: Option<String>,
    headers: reqwest::header::HeaderMap,
    body: String,
}

impl Visitor {
    async fn new(app: &TestApp) -> Visitor {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .pool_max_idle_per_host(64)
            .build()
            .expect("http client");
        let page = http.get(app.url("/")).send().await.expect("GET /");
        assert_eq!(page.status(), StatusCode::OK);
        let cookie = page
            .headers()
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .expect("a CSRF cookie")
            .to_string();
        let body = page.text().await.expect("form body");
        let marker = "name=\"csrf\" value=\"";
        let at = body.find(marker).expect("a CSRF field") + marker.len();
        let csrf = body[at..].split('"').next().expect("token").to_string();
        Visitor {
            http,
            base: app.base.clone(),
            cookie,
            csrf,
        }
    }

    /// Opens a confirmation link (the page with the button) and presses Confirm.
    async fn confirm(&self, link: &str) -> reqwest::Response {
        let page = self
            .http
            .get(link)
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("open the confirmation link");
        assert_eq!(page.status(), StatusCode::OK, "{link}");
        let body = page.text().await.expect("the confirmation page");
        assert!(body.contains("Confirm</button>"), "{body}");
        no_raw_markup("confirmation page", &body);
        self.http
            .post(link)
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(format!("csrf={}", self.csrf))
            .send()
            .await
            .expect("confirm")
    }

    /// Posts `body` as it is, with the content type and extra headers given.
    async fn post_bytes(
        &self,
        body: Vec<u8>,
        content_type: &str,
        extra: &[(&str, &str)],
    ) -> Answer {
        let mut req = self
            .http
            .post(format!("{}/subscribe", self.base))
            .header("content-type", content_type)
            .header("cookie", &self.cookie)
            .body(body);
        for (k, v) in extra {
            req = req.header(*k, *v);
        }
        let response = req.send().await.expect("POST /subscribe");
        let status = response.status();
        let headers = response.headers().clone();
        let retry_after = headers
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        Answer {
            status,
            retry_after,
            headers,
            body: response.text().await.expect("answer body"),
        }
    }

    /// Posts the form: the CSRF token plus `fields`, each value percent-encoded as raw
    /// bytes (so invalid UTF-8 goes through as `%FF`), or put in as it is when `raw`.
    async fn post_form(
        &self,
        fields: &[(&str, Vec<u8>)],
        raw: bool,
        extra: &[(&str, &str)],
    ) -> Answer {
        self.post_bytes(
            form_body(&self.csrf, fields, raw),
            "application/x-www-form-urlencoded",
            extra,
        )
        .await
    }
}

fn form_body(csrf: &str, fields: &[(&str, Vec<u8>)], raw: bool) -> Vec<u8> {
    use percent_encoding::{NON_ALPHANUMERIC, percent_encode};
    let mut body = Vec::new();
    let mut has_csrf = false;
    for (name, value) in fields {
        has_csrf |= *name == "csrf";
        if !body.is_empty() {
            body.push(b'&');
        }
        body.extend_from_slice(name.as_bytes());
        body.push(b'=');
        if raw {
            body.extend_from_slice(value);
        } else {
            body.extend(
                percent_encode(value, NON_ALPHANUMERIC)
                    .to_string()
                    .into_bytes(),
            );
        }
    }
    if !has_csrf {
        body.extend_from_slice(format!("&csrf={csrf}").as_bytes());
    }
    body
}

/// The valid form a person would send, with `field` replaced by `value`.
fn fields_with(email: &str, field: &'static str, value: &[u8]) -> Vec<(&'static str, Vec<u8>)> {
    let mut fields: Vec<(&'static str, Vec<u8>)> = vec![
        ("email", email.as_bytes().to_vec()),
        ("queries", b"diffusion".to_vec()),
        ("frequency", b"daily".to_vec()),
        ("day", b"mon".to_vec()),
        ("send_hour", b"8".to_vec()),
        ("timezone", b"UTC".to_vec()),
        ("max_papers", b"15".to_vec()),
        ("website", Vec::new()),
    ];
    match fields.iter_mut().find(|(n, _)| *n == field) {
        Some(slot) => slot.1 = value.to_vec(),
        None => fields.push((field, value.to_vec())),
    }
    fields
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Expect {
    /// Stored as a pending reader and mailed a confirmation link.
    Stored,
    /// 422, the form again with the message beside this field.
    Refused(&'static str),
    /// The honeypot: the usual answer, nothing stored or sent.
    Honeypot,
    /// 403: the CSRF check.
    Forbidden,
    /// 413: the body is over the configured limit (64 KiB by default).
    TooLarge,
}

/// A hostile value as it goes into the form body.
#[derive(Clone, Copy)]
enum Value {
    /// Percent-encoded byte for byte, so invalid UTF-8 goes through as `%FF`.
    Encoded(&'static [u8]),
    /// Made when the case runs (too long to write out), then percent-encoded.
    Made(fn() -> Vec<u8>),
    /// Put into the body as it is, never percent-encoded.
    Raw(&'static [u8]),
}

impl Value {
    fn bytes(self) -> Vec<u8> {
        match self {
            Value::Encoded(bytes) | Value::Raw(bytes) => bytes.to_vec(),
            Value::Made(make) => make(),
        }
    }

    fn is_raw(self) -> bool {
        matches!(self, Value::Raw(_))
    }
}

/// One hostile form: the valid form with `field` set to `value` (and the `also` fields
/// set too), and what must come of it.
struct FormCase {
    name: &'static str,
    field: &'static str,
    value: Value,
    also: &'static [(&'static str, &'static [u8])],
    expect: Expect,
}

const fn case(
    name: &'static str,
    field: &'static str,
    value: &'static [u8],
    expect: Expect,
) -> FormCase {
    FormCase {
        name,
        field,
        value: Value::Encoded(value),
        also: &[],
        expect,
    }
}

const fn made(
    name: &'static str,
    field: &'static str,
    value: fn() -> Vec<u8>,
    expect: Expect,
) -> FormCase {
    FormCase {
        name,
        field,
        value: Value::Made(value),
        also: &[],
        expect,
    }
}

const fn raw(
    name: &'static str,
    field: &'static str,
    value: &'static [u8],
    expect: Expect,
) -> FormCase {
    FormCase {
        name,
        field,
        value: Value::Raw(value),
        also: &[],
        expect,
    }
}

/// `n` query lines `topic0`, `topic1`, …
fn many_lines(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("topic{i}"))
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

#[rustfmt::skip]
const FORM_CASES: &[FormCase] = {
    use Expect::*;
    &[
        // Header injection in the address.
        case("email_crlf_bcc", "email", b"eve@example.org\r\nBcc: x@example.net", Refused("email")),
        case("email_lf_header", "email", b"eve@example.org\nX-Injected: 1", Refused("email")),
        case("email_cr_only", "email", b"eve@example.org\rBcc: x@example.net", Refused("email")),
        case("email_nul", "email", b"eve\0@example.org", Refused("email")),
        case("email_nul_tail", "email", b"eve@example.org\0Bcc: x@example.net", Refused("email")),
        case("email_display_name", "email", b"Eve <eve@example.org>", Refused("email")),
        case("email_two_recipients", "email", b"eve@example.org, x@example.net", Refused("email")),
        case("email_semicolon", "email", b"eve@example.org;x@example.net", Refused("email")),
        case(
            "email_encoded_word",
            "email",
            b"=?utf-8?q?eve=0D=0ABcc=3A_x=40example.net?=@example.org",
            Refused("email"),
        ),
        case(
            "email_encoded_word_b",
            "email",
            b"=?utf-8?b?QmNjOiB4QGV4YW1wbGUubmV0?=@example.org",
            Refused("email"),
        ),
        case("email_script", "email", SCRIPT.as_bytes(), Refused("email")),
        case("email_script_local", "email", b"<script>alert(1)</script>@example.org", Refused("email")),
        case("email_img", "email", IMG.as_bytes(), Refused("email")),
        made(
            "email_overlong",
            "email",
            || format!("{}@example.org", "a".repeat(300)).into_bytes(),
            Refused("email"),
        ),
        made("email_10k", "email", || "e".repeat(10_000).into_bytes(), Refused("email")),
        case("email_invalid_utf8", "email", b"ev\xffe@example.org", Refused("email")),
        case("email_overlong_utf8", "email", b"eve\xc0\xaf@example.org", Refused("email")),
        case("email_empty", "email", b"", Refused("email")),
        case("email_apostrophe_amp", "email", b"o'brien+a&b@Example.ORG", Stored),
        // Queries.
        case("query_script", "queries", SCRIPT.as_bytes(), Stored),
        case("query_img_unclosed", "queries", IMG.as_bytes(), Refused("queries")),
        case("query_svg_phrase", "queries", b"\"<svg/onload=alert(1)>\" robots", Stored),
        case("query_crlf_header", "queries", b"diffusion\r\nBcc: x@example.net", Refused("queries")),
        case("query_cr_only", "queries", b"diffusion\rBcc x", Refused("queries")),
        case("query_nul", "queries", b"diffusion\0", Refused("queries")),
        case("query_escape_sequence", "queries", b"diffusion\x1b[2J", Refused("queries")),
        case("query_invalid_utf8", "queries", b"diff\xffusion", Refused("queries")),
        case("query_encoded_word", "queries", b"=?utf-8?b?QmNjOiB4QGV4YW1wbGUubmV0?=", Stored),
        made("query_10k_chars", "queries", || "diffusion ".repeat(1000).into_bytes(), Refused("queries")),
        made("query_nested_10k", "queries", || nested(10_000).into_bytes(), Refused("queries")),
        made("query_nested_90", "queries", || nested(90).into_bytes(), Refused("queries")),
        made(
            "query_not_chain",
            "queries",
            || format!("{}diffusion", "-".repeat(150)).into_bytes(),
            Refused("queries"),
        ),
        made("query_20_lines", "queries", || many_lines(20), Stored),
        made("query_21_lines", "queries", || many_lines(21), Refused("queries")),
        made("query_2k_lines", "queries", || many_lines(2_000), Refused("queries")),
        made("query_10k_lines", "queries", || many_lines(10_000), TooLarge),
        case("query_bidi", "queries", "diffusion \u{202e}lortnoc".as_bytes(), Stored),
        case("query_crlf_lines", "queries", b"diffusion\r\n\r\ntitle:robots\r\n", Stored),
        // The other settings.
        case("frequency_script", "frequency", SCRIPT.as_bytes(), Refused("frequency")),
        case("frequency_crlf", "frequency", b"daily\r\nBcc: x@example.net", Refused("frequency")),
        case("day_script_daily", "day", SCRIPT.as_bytes(), Stored),
        FormCase {
            also: &[("frequency", b"weekly")],
            ..case("day_script_weekly", "day", SCRIPT.as_bytes(), Refused("day"))
        },
        case("send_hour_crlf", "send_hour", b"8\r\nX-Injected: 1", Refused("send_hour")),
        made("send_hour_huge", "send_hour", || "9".repeat(10_000).into_bytes(), Refused("send_hour")),
        case("timezone_script", "timezone", SCRIPT.as_bytes(), Refused("timezone")),
        case("timezone_invalid_utf8", "timezone", b"Europe/Berl\xffin", Refused("timezone")),
        case("max_papers_img", "max_papers", IMG.as_bytes(), Refused("max_papers")),
        case("max_papers_nul", "max_papers", b"15\0", Refused("max_papers")),
        case("website_script", "website", SCRIPT.as_bytes(), Honeypot),
        case("csrf_script", "csrf", SCRIPT.as_bytes(), Forbidden),
        case("unknown_field_script", "name", SCRIPT.as_bytes(), Stored),
        // Raw bytes that were never percent-encoded.
        raw("raw_invalid_utf8_query", "queries", b"diff\xfe\xffusion", Refused("queries")),
        raw("raw_percent_junk_query", "queries", b"diffusion%zz%", Stored),
    ]
};

impl FormCase {
    /// The form this case posts, for a reader at `email` unless the case sets the address.
    fn fields(&self, email: &str) -> Vec<(&'static str, Vec<u8>)> {
        let mut fields = fields_with(email, self.field, &self.value.bytes());
        for (name, value) in self.also {
            fields.retain(|(n, _)| n != name);
            fields.push((*name, value.to_vec()));
        }
        fields
    }

    /// What the value decodes to, as the form reads it.
    fn decoded(&self) -> String {
        let bytes = self.value.bytes();
        if self.value.is_raw() {
            // The form decoder turns `+` into a space and undoes valid %XX escapes only.
            let plus = bytes
                .iter()
                .map(|&b| if b == b'+' { b' ' } else { b })
                .collect::<Vec<u8>>();
            percent_encoding::percent_decode(&plus)
                .decode_utf8_lossy()
                .into_owned()
        } else {
            String::from_utf8_lossy(&bytes).into_owned()
        }
    }
}

/// What came of one hostile form.
enum Outcome {
    /// Stored as `email` with these query lines.
    Accepted(String, Vec<String>),
    Refused,
    Honeypot,
}

/// Checks the answer to `case` against what the case expects. `own` is the address the
/// form carried unless the case set it.
fn check_form_answer(what: &str, case: &FormCase, own: String, answer: &Answer) -> Outcome {
    assert!(
        !answer.status.is_server_error(),
        "{what}: {} {}",
        answer.status,
        answer.body
    );
    no_raw_markup(what, &answer.body);
    assert!(
        !answer.headers.contains_key("bcc") && !answer.headers.contains_key("x-injected"),
        "{what}: a header was injected into the answer"
    );
    match case.expect {
        Expect::Stored => {
            assert_eq!(answer.status, StatusCode::OK, "{what}: {}", answer.body);
            assert!(answer.body.contains("Check your inbox"), "{what}");
            let queries = if case.field == "queries" {
                query_lines(&case.decoded())
            } else {
                vec!["diffusion".to_string()]
            };
            let email = if case.field == "email" {
                EmailAddress::parse(&case.decoded())
                    .expect("an accepted address")
                    .as_str()
                    .to_string()
            } else {
                own
            };
            Outcome::Accepted(email, queries)
        }
        Expect::Refused(field) => {
            check_refused_beside(what, field, answer);
            Outcome::Refused
        }
        Expect::Honeypot => {
            assert_eq!(answer.status, StatusCode::OK, "{what}");
            Outcome::Honeypot
        }
        Expect::Forbidden => {
            assert_eq!(answer.status, StatusCode::FORBIDDEN, "{what}");
            assert!(answer.body.contains("Reload the page"), "{what}");
            Outcome::Refused
        }
        Expect::TooLarge => {
            assert_eq!(answer.status, StatusCode::PAYLOAD_TOO_LARGE, "{what}");
            assert!(
                answer.body.contains("larger than this address accepts"),
                "{what}"
            );
            Outcome::Refused
        }
    }
}

/// A 422 with the form shown again and a message beside `field`.
fn check_refused_beside(what: &str, field: &str, answer: &Answer) {
    assert_eq!(
        answer.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{what}: {}",
        answer.body
    );
    let id = if field == "day" { "frequency" } else { field };
    let marker = format!("class=\"error\" id=\"{id}-error\">");
    let at = answer
        .body
        .find(&marker)
        .unwrap_or_else(|| panic!("{what}: no message beside {field}"));
    let message = answer.body[at + marker.len()..]
        .split("</p>")
        .next()
        .unwrap_or("");
    assert!(message.len() > 10, "{what}: message {message:?}");
    assert!(
        answer
            .body
            .contains("<form method=\"post\" action=\"/subscribe\""),
        "{what}: the form is not shown again"
    );
}

/// A request no browser sends, and the 4xx it must get.
struct ProtocolCase {
    name: &'static str,
    body: Vec<u8>,
    content_type: &'static str,
    status: StatusCode,
}

fn protocol_cases(csrf: &str) -> Vec<ProtocolCase> {
    let valid = form_body(
        csrf,
        &fields_with("proto@example.org", "queries", b"x y"),
        false,
    );
    let mut duplicated = valid.clone();
    duplicated.extend_from_slice(b"&email=other%40example.org");
    let mut huge = valid;
    huge.extend_from_slice(format!("&queries2={}", "a".repeat(70 * 1024)).as_bytes());
    let form = "application/x-www-form-urlencoded";
    vec![
        ProtocolCase {
            name: "json_body",
            body: b"{\"email\":\"j@example.org\"}".to_vec(),
            content_type: "application/json",
            status: StatusCode::UNSUPPORTED_MEDIA_TYPE,
        },
        ProtocolCase {
            name: "duplicate_email",
            body: duplicated,
            content_type: form,
            status: StatusCode::UNPROCESSABLE_ENTITY,
        },
        ProtocolCase {
            name: "body_over_64k",
            body: huge,
            content_type: form,
            status: StatusCode::PAYLOAD_TOO_LARGE,
        },
    ]
}

/// Queries for the form's live preview, and whether each is valid.
fn preview_cases() -> Vec<(String, bool)> {
    vec![
        (nested(10_000), false),
        ("diffusion+".repeat(1_000), false),
        ("diffusion%00".into(), false),
        ("diff%FFusion".into(), false),
        ("diffusion%0D%0ABcc:+x".into(), false),
        ("%22%3E%3Cimg+src%3Dx+onerror%3Dalert(1)%3E".into(), false),
        ("%3Cscript%3Ealert(1)%3C%2Fscript%3E".into(), true),
        ("diffusion+-survey".into(), true),
    ]
}

/// Every query answered with JSON, bad ones with a position.
async fn check_previews(visitor: &Visitor, app: &TestApp, previews: &[(String, bool)]) {
    for (q, good) in previews {
        let answer = visitor
            .http
            .get(format!("{}/preview?q={q}", app.base))
            .send()
            .await
            .expect("GET /preview");
        assert_eq!(answer.status(), StatusCode::OK, "preview {q:.40}");
        let v: serde_json::Value =
            serde_json::from_str(&answer.text().await.expect("preview body"))
                .expect("preview JSON");
        assert_eq!(v["ok"], json!(*good), "preview {q:.40}: {v}");
        if !good {
            assert!(v["position"].as_u64().is_some_and(|p| p >= 1), "{v}");
            assert!(v["error"].as_str().is_some_and(|e| !e.is_empty()), "{v}");
        }
    }
}

/// Each accepted reader pending, with the queries they sent; returns how many.
async fn check_stored_pending(
    app: &TestApp,
    expected: &BTreeMap<String, Vec<String>>,
    backend: &str,
) -> usize {
    let stored = stored_subscribers(&app.store).await;
    let got: BTreeMap<String, Vec<String>> = stored
        .iter()
        .map(|(email, (status, queries))| {
            assert_eq!(*status, SubscriberStatus::Pending, "{email}");
            (email.clone(), queries.clone())
        })
        .collect();
    assert_eq!(&got, expected, "{backend}: stored readers");
    got.len()
}

/// One confirmation email per accepted reader, with clean headers; returns the messages
/// and how many arrived twice.
async fn check_confirmations(
    app: &TestApp,
    expected: &BTreeMap<String, Vec<String>>,
    backend: &str,
) -> (Vec<String>, usize) {
    app.wait_for_outbox(expected.len()).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let messages = app.outbox_messages();
    let mut recipients: BTreeMap<String, usize> = BTreeMap::new();
    for m in &messages {
        *recipients.entry(check_mail(m)).or_default() += 1;
    }
    let duplicates: usize = recipients.values().map(|n| n - 1).sum();
    assert_eq!(duplicates, 0, "{recipients:?}");
    assert_eq!(
        recipients.keys().cloned().collect::<BTreeSet<_>>(),
        expected.keys().cloned().collect::<BTreeSet<_>>(),
        "{backend}: recipients"
    );
    (messages, duplicates)
}

/// Each accepted reader confirms from their email; their settings page shows the queries
/// escaped. Returns the pages checked.
async fn confirm_each(
    visitor: &Visitor,
    app: &TestApp,
    messages: &[String],
    expected: &BTreeMap<String, Vec<String>>,
) -> usize {
    let mut pages_checked = 0;
    for m in messages {
        let to = check_mail(m);
        let page = visitor.confirm(&confirm_link(m)).await;
        assert_eq!(page.status(), StatusCode::OK, "confirm {to}");
        let body = page.text().await.expect("confirmed page");
        no_raw_markup("confirmed page", &body);
        let page = visitor
            .http
            .get(app.url(&preferences_link(&body)))
            .send()
            .await
            .expect("preferences");
        assert_eq!(page.status(), StatusCode::OK);
        let body = page.text().await.expect("preferences page");
        no_raw_markup("preferences page", &body);
        for q in &expected[&to] {
            if q.contains(['<', '>', '&', '"']) {
                assert!(!body.contains(q.as_str()), "{q:?} shown unescaped");
                assert!(body.contains("alert(1)"), "{q:?} not shown at all");
            } else {
                assert!(body.contains(q.as_str()), "{q:?} not shown");
            }
        }
        pages_checked += 1;
    }
    let after = stored_subscribers(&app.store).await;
    assert!(after.values().all(|(s, _)| *s == SubscriberStatus::Active));
    assert_eq!(after.len(), expected.len());
    pages_checked
}

#[tokio::test]
async fn hostile_form() {
    for db in databases().await {
        let app = spawn_app(&db, |s| {
            quiet(s);
            s.web.subscribe_per_ip_per_hour = 100_000;
            s.web.subscribe_ip_burst = 100_000;
        })
        .await;
        let visitor = Visitor::new(&app).await;
        let mut expected: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let (mut refused_4xx, mut accepted, mut honeypot) = (0, 0, 0);
        for (i, case) in FORM_CASES.iter().enumerate() {
            let own = format!("case{i}@example.org");
            let what = format!("{} ({})", case.name, db.backend);
            let answer = visitor
                .post_form(&case.fields(&own), case.value.is_raw(), &[])
                .await;
            match check_form_answer(&what, case, own, &answer) {
                Outcome::Accepted(email, queries) => {
                    accepted += 1;
                    expected.insert(email, queries);
                }
                Outcome::Refused => refused_4xx += 1,
                Outcome::Honeypot => honeypot += 1,
            }
        }
        let protocol = protocol_cases(&visitor.csrf);
        for case in &protocol {
            let answer = visitor
                .post_bytes(case.body.clone(), case.content_type, &[])
                .await;
            let name = case.name;
            assert_eq!(
                answer.status, case.status,
                "{name} ({}): {}",
                db.backend, answer.body
            );
            assert!(!answer.body.trim().is_empty(), "{name}: no message");
            refused_4xx += 1;
        }
        let previews = preview_cases();
        check_previews(&visitor, &app, &previews).await;

        let stored = check_stored_pending(&app, &expected, db.backend).await;
        let (messages, duplicates) = check_confirmations(&app, &expected, db.backend).await;
        let pages_checked = confirm_each(&visitor, &app, &messages, &expected).await;
        report::report(
            "input.hostile_form",
            json!({
                "backend": db.backend,
                "cases": FORM_CASES.len() + protocol.len(),
                "refused_4xx": refused_4xx,
                "server_errors": 0,
                "accepted": accepted,
                "honeypot": honeypot,
                "stored": stored,
                "emails": messages.len(),
                "pages_checked": pages_checked,
                "previews": previews.len(),
                "duplicates": duplicates,
            }),
        );
        app.stop().await;
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// The command line
// ---------------------------------------------------------------------------------------

fn run_cli(dir: &Path, db: &TestDb, args: &[OsString]) -> Output {
    paperboy_on(dir, db)
        .args(args)
        .output()
        .expect("run paperboy")
}

fn os(parts: &[&str]) -> Vec<OsString> {
    parts.iter().map(OsString::from).collect()
}

/// `subscribers add` with `args`.
fn subscribers_add(args: &[&str]) -> Vec<OsString> {
    let mut argv = os(&["subscribers", "add"]);
    argv.extend(os(args));
    argv
}

/// `papers search` with `args`.
fn papers_search(args: &[&str]) -> Vec<OsString> {
    let mut argv = os(&["papers", "search"]);
    argv.extend(os(args));
    argv
}

/// `subscribers add ADDRESS --query QUERY`, with bytes that are not UTF-8 allowed in both.
fn subscribers_add_bytes(address: &[u8], query: Option<&[u8]>) -> Vec<OsString> {
    let mut argv = os(&["subscribers", "add"]);
    argv.push(OsString::from_vec(address.to_vec()));
    if let Some(query) = query {
        argv.push("--query".into());
        argv.push(OsString::from_vec(query.to_vec()));
    }
    argv
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit 2 with a message on stderr and no panic.
fn refused_with_2(what: &str, o: &Output) {
    let err = stderr(o);
    assert_eq!(
        o.status.code(),
        Some(2),
        "{what}: exit {:?}: {err}",
        o.status.code()
    );
    assert!(err.contains("error"), "{what}: no message: {err:?}");
    assert!(!err.contains("panicked"), "{what}: {err}");
    assert!(
        !err.contains("database error"),
        "{what}: refused by the database, not by validation: {err}"
    );
}

/// What must come of one command.
enum CliExpect {
    /// Exit 2 with a message.
    Refused,
    /// Exit 0, and this reader stored: address, queries, and whether confirmed.
    Added(&'static str, &'static [&'static str], bool),
    /// Exit 0, printing this and nothing else.
    Prints(&'static str),
}

/// One hostile command line.
struct CliCase {
    name: &'static str,
    argv: fn() -> Vec<OsString>,
    expect: CliExpect,
}

const fn refused(name: &'static str, argv: fn() -> Vec<OsString>) -> CliCase {
    CliCase {
        name,
        argv,
        expect: CliExpect::Refused,
    }
}

const CLI_CASES: &[CliCase] = &[
    refused("add_crlf_bcc", || {
        subscribers_add(&[
            "eve@example.org\r\nBcc: x@example.net",
            "--query",
            "diffusion",
        ])
    }),
    refused("add_script_address", || {
        subscribers_add(&["<script>alert(1)</script>@example.org"])
    }),
    refused("add_encoded_word", || {
        subscribers_add(&["=?utf-8?q?eve=0D=0ABcc=3A_x=40example.net?=@example.org"])
    }),
    refused("add_overlong_address", || {
        subscribers_add(&[&format!("{}@example.org", "a".repeat(300))])
    }),
    refused("add_invalid_utf8_address", || {
        subscribers_add_bytes(b"ev\xffe@example.org", None)
    }),
    refused("add_invalid_utf8_query", || {
        subscribers_add_bytes(b"q1@example.org", Some(b"diff\xffusion"))
    }),
    refused("add_10k_query", || {
        subscribers_add(&["q2@example.org", "--query", &"diffusion ".repeat(1000)])
    }),
    refused("add_nested_10k", || {
        subscribers_add(&["q3@example.org", "--query", &nested(10_000)])
    }),
    refused("add_21_queries", || {
        let mut argv = subscribers_add(&["many@example.org"]);
        for i in 0..21 {
            argv.extend(os(&["--query", &format!("topic{i}")]));
        }
        argv
    }),
    refused("add_escape_query", || {
        subscribers_add(&["q4@example.org", "--query", "diffusion\x1b[2J"])
    }),
    refused("add_cr_query", || {
        subscribers_add(&["q5@example.org", "--query", "diffusion\rBcc x"])
    }),
    refused("add_script_timezone", || {
        subscribers_add(&["q6@example.org", "--timezone", SCRIPT])
    }),
    refused("add_crlf_frequency", || {
        subscribers_add(&[
            "q7@example.org",
            "--frequency",
            "daily\r\nBcc: x@example.net",
        ])
    }),
    refused("add_send_hour_99", || {
        subscribers_add(&["q8@example.org", "--send-hour", "99"])
    }),
    refused("add_send_hour_text", || {
        subscribers_add(&["q9@example.org", "--send-hour", "<b>8</b>"])
    }),
    refused("add_max_papers_huge", || {
        subscribers_add(&["q10@example.org", "--max-papers", "100000"])
    }),
    CliCase {
        name: "add_script_query",
        argv: || subscribers_add(&["html1@example.org", "--query", SCRIPT, "--confirmed"]),
        expect: CliExpect::Added("html1@example.org", &[SCRIPT], true),
    },
    CliCase {
        name: "add_img_phrase_query",
        argv: || {
            subscribers_add(&[
                "html2@example.org",
                "--query",
                "\"<img src=x onerror=alert(1)>\" robots",
            ])
        },
        expect: CliExpect::Added(
            "html2@example.org",
            &["\"<img src=x onerror=alert(1)>\" robots"],
            false,
        ),
    },
    refused("add_twice", || {
        subscribers_add(&["HTML1@example.org", "--query", "other"])
    }),
    refused("search_10k", || {
        papers_search(&[&"diffusion ".repeat(1000)])
    }),
    refused("search_nested_10k", || papers_search(&[&nested(10_000)])),
    refused("search_nested_9", || papers_search(&[&nested(9)])),
    refused("search_empty", || papers_search(&[""])),
    refused("search_bell", || papers_search(&["diffusion\x07"])),
    refused("search_invalid_utf8", || {
        let mut argv = papers_search(&[]);
        argv.push(OsString::from_vec(b"\xff\xfe".to_vec()));
        argv
    }),
    CliCase {
        name: "search_script",
        argv: || papers_search(&[SCRIPT, "--json"]),
        expect: CliExpect::Prints("[]"),
    },
];

/// Every reader the database must hold: address → (status, queries).
type StoredSubscribers = BTreeMap<String, (SubscriberStatus, Vec<String>)>;

/// Runs every command of [`CLI_CASES`]; returns the refused and the accepted counts, and
/// adds the readers stored to `expected`.
fn run_cli_cases(dir: &Path, db: &TestDb, expected: &mut StoredSubscribers) -> (usize, usize) {
    let (mut exit_2, mut accepted) = (0, 0);
    for case in CLI_CASES {
        let out = run_cli(dir, db, &(case.argv)());
        let what = format!("{} ({})", case.name, db.backend);
        match case.expect {
            CliExpect::Refused => {
                refused_with_2(&what, &out);
                exit_2 += 1;
            }
            CliExpect::Added(email, queries, confirmed) => {
                assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
                accepted += 1;
                let status = if confirmed {
                    SubscriberStatus::Active
                } else {
                    SubscriberStatus::Pending
                };
                let queries = queries.iter().map(|q| q.to_string()).collect();
                expected.insert(email.to_string(), (status, queries));
            }
            CliExpect::Prints(printed) => {
                assert_eq!(out.status.code(), Some(0), "{what}: {}", stderr(&out));
                assert_eq!(
                    String::from_utf8_lossy(&out.stdout).trim(),
                    printed,
                    "{what}"
                );
                accepted += 1;
            }
        }
    }
    (exit_2, accepted)
}

/// One row of the hostile CSV, and the reader it stores when it is good.
struct CsvRow {
    line: fn() -> Vec<u8>,
    stored: Option<(&'static str, SubscriberStatus, &'static str)>,
}

const fn bad_row(line: fn() -> Vec<u8>) -> CsvRow {
    CsvRow { line, stored: None }
}

const CSV_ROWS: &[CsvRow] = &[
    CsvRow {
        line: || b"imp1@example.org,diffusion,daily,8,UTC,true".to_vec(),
        stored: Some(("imp1@example.org", SubscriberStatus::Active, "diffusion")),
    },
    bad_row(|| b"\"imp2@example.org\r\nBcc: x@example.net\",diffusion,daily,8,UTC,true".to_vec()),
    CsvRow {
        line: || format!("imp3@example.org,{SCRIPT},daily,8,UTC,true").into_bytes(),
        stored: Some(("imp3@example.org", SubscriberStatus::Active, SCRIPT)),
    },
    bad_row(|| b"imp4@example.org,diffusion\0,daily,8,UTC,true".to_vec()),
    bad_row(|| {
        let long_query = "diffusion ".repeat(1000);
        format!("imp5@example.org,{long_query},daily,8,UTC,true").into_bytes()
    }),
    bad_row(|| b"imp6@example.org,diff\xffusion,daily,8,UTC,true".to_vec()),
    bad_row(|| format!("imp7@example.org,diffusion,daily,8,{SCRIPT},true").into_bytes()),
    bad_row(|| b"imp8@example.org,diffusion,\"daily\r\nBcc: x@example.net\",8,UTC,true".to_vec()),
    bad_row(|| {
        let overlong = format!("{}@example.org", "a".repeat(300));
        format!("{overlong},diffusion,daily,8,UTC,true").into_bytes()
    }),
    bad_row(|| format!("imp9@example.org,{},daily,8,UTC,true", nested(10_000)).into_bytes()),
    bad_row(|| {
        b"=?utf-8?b?QmNjOiB4QGV4YW1wbGUubmV0?=@example.org,diffusion,daily,8,UTC,true".to_vec()
    }),
    CsvRow {
        line: || {
            b"imp10@example.org,\"\"\"<svg/onload=alert(1)>\"\" graphs\",weekly:mon,6,Europe/Berlin,no"
                .to_vec()
        },
        stored: Some((
            "imp10@example.org",
            SubscriberStatus::Pending,
            "\"<svg/onload=alert(1)>\" graphs",
        )),
    },
    bad_row(|| b"imp11@example.org,diffusion\x1b[31m,daily,8,UTC,true".to_vec()),
];

/// The rows of [`CSV_ROWS`], then one reader with 21 queries (refused whole); returns the
/// file and the line numbers that must be reported.
fn hostile_csv() -> (Vec<u8>, Vec<usize>) {
    let mut csv: Vec<u8> = b"email,query,frequency,send_hour,timezone,confirmed\n".to_vec();
    let mut bad_lines = Vec::new();
    // The line each record starts on: quoted values with line breaks span several.
    let line_now = |csv: &[u8]| csv.iter().filter(|&&b| b == b'\n').count() + 1;
    for row in CSV_ROWS {
        if row.stored.is_none() {
            bad_lines.push(line_now(&csv));
        }
        csv.extend_from_slice(&(row.line)());
        csv.push(b'\n');
    }
    bad_lines.push(line_now(&csv));
    for q in 0..21 {
        csv.extend_from_slice(format!("imp12@example.org,topic{q},daily,8,UTC,true\n").as_bytes());
    }
    (csv, bad_lines)
}

/// Imports the hostile CSV: good rows kept, every bad row named by its line. Adds the
/// readers stored to `expected`; returns the good rows and the lines refused.
fn import_hostile_csv(dir: &Path, db: &TestDb, expected: &mut StoredSubscribers) -> (usize, usize) {
    let (csv, bad_lines) = hostile_csv();
    let file = dir.join("hostile.csv");
    std::fs::write(&file, &csv).expect("write csv");
    let out = run_cli(
        dir,
        db,
        &[OsString::from("subscribers"), "import".into(), file.into()],
    );
    refused_with_2(&format!("import ({})", db.backend), &out);
    let err = stderr(&out);
    for line in &bad_lines {
        assert!(
            err.contains(&format!("line {line}:")),
            "line {line} not reported: {err}"
        );
    }
    let good: Vec<_> = CSV_ROWS.iter().filter_map(|row| row.stored).collect();
    assert!(
        String::from_utf8_lossy(&out.stdout).starts_with(&format!("{} readers added", good.len())),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    for (email, status, query) in &good {
        expected.insert(email.to_string(), (*status, vec![query.to_string()]));
    }
    (good.len(), bad_lines.len())
}

/// A CSV whose header is not UTF-8, and one that is not there: each refused with exit 2.
fn import_broken_files(dir: &Path, db: &TestDb) -> usize {
    let broken = dir.join("broken.csv");
    std::fs::write(&broken, b"em\xffail,query\nz@example.org,x\n").expect("write csv");
    let files = [broken, dir.join("missing.csv")];
    for path in &files {
        let argv = [OsString::from("subscribers"), "import".into(), path.into()];
        let out = run_cli(dir, db, &argv);
        refused_with_2(&format!("import of a bad file ({})", db.backend), &out);
    }
    files.len()
}

/// The database holds exactly what was accepted, and each pending reader got exactly one
/// clean confirmation. Returns the readers stored, the emails and the duplicates.
async fn check_cli_results(
    dir: &Path,
    db: &TestDb,
    expected: &StoredSubscribers,
) -> (usize, usize, usize) {
    let store = db.store().await;
    let stored = stored_subscribers(&store).await;
    assert_eq!(&stored, expected, "{}: stored readers", db.backend);
    let messages = outbox_messages(&dir.join("data/outbox"));
    let mut recipients: BTreeMap<String, usize> = BTreeMap::new();
    for m in &messages {
        *recipients.entry(check_mail(m)).or_default() += 1;
    }
    let pending: BTreeSet<String> = expected
        .iter()
        .filter(|(_, (s, _))| *s == SubscriberStatus::Pending)
        .map(|(e, _)| e.clone())
        .collect();
    assert_eq!(recipients.keys().cloned().collect::<BTreeSet<_>>(), pending);
    let duplicates: usize = recipients.values().map(|n| n - 1).sum();
    assert_eq!(duplicates, 0);
    store.close().await;
    (stored.len(), messages.len(), duplicates)
}

#[tokio::test]
async fn hostile_cli() {
    for db in databases().await {
        let dir = tempfile::tempdir().expect("temp dir");
        let d = dir.path();
        let mut expected = StoredSubscribers::new();
        let (mut exit_2, mut accepted) = run_cli_cases(d, &db, &mut expected);
        let (good_rows, csv_rows_refused) = import_hostile_csv(d, &db, &mut expected);
        accepted += good_rows;
        exit_2 += 1 + import_broken_files(d, &db);
        let (stored, emails, duplicates) = check_cli_results(d, &db, &expected).await;
        let rows = CSV_ROWS.len() + 21;
        report::report(
            "input.hostile_cli",
            json!({
                "backend": db.backend,
                "cases": CLI_CASES.len() + rows + 2,
                "commands": CLI_CASES.len() + 3,
                "csv_rows": rows,
                "exit_2": exit_2,
                "csv_rows_refused": csv_rows_refused,
                "accepted": accepted,
                "stored": stored,
                "emails": emails,
                "duplicates": duplicates,
            }),
        );
        db.cleanup().await;
    }
}

// ---------------------------------------------------------------------------------------
// The query parser
// ---------------------------------------------------------------------------------------

const FUZZ_CASES: u32 = 20_000;
const FUZZ_SEED: [u8; 32] = *b"paperboy query parser fuzz seed!";

fn sample_papers() -> Vec<Paper> {
    let mk = |id: &str, title: &str, abs: &str, authors: &[&str], cats: &[&str]| {
        let mut p = Paper::from_arxiv(&ArxivId::parse(id).expect("arXiv id"), title);
        p.abstract_text = abs.to_string();
        p.authors = authors.iter().map(|a| a.to_string()).collect();
        p.categories = cats.iter().map(|c| c.to_string()).collect();
        p
    };
    vec![
        mk(
            "2401.00001",
            "Diffusion models for state space control",
            "We study control-variate estimators and quantum sampling in survey data.",
            &["Tri Dao", "Albert Gu"],
            &["cs.LG", "stat.ML"],
        ),
        mk(
            "2401.00002",
            "A survey of graph neural networks",
            "Graphs, meshes and robots: a survey. Überraschung café naïve ﬁne.",
            &["Yann LeCun", "José Müller"],
            &["cs.AI"],
        ),
        mk(
            "2401.00003",
            "Quantum error correction with transformers",
            "Topic0 topic1 diffusion robots <script>alert(1)</script> 日本語の論文",
            &["Ada Lovelace"],
            &["quant-ph", "cs.LG"],
        ),
        mk("2401.00004", "", "", &[], &[]),
    ]
}

/// Pieces of the language: words, operators, fields, prefixes, phrases.
const VALID_ATOMS: &[&str] = &[
    "diffusion",
    "state",
    "space",
    "model",
    "survey",
    "robots",
    "Tri",
    "Dao",
    "lecun",
    "cs.LG",
    "cs.*",
    "quant*",
    "OR",
    "AND",
    "NOT",
    "-",
    "(",
    ")",
    "\"state space\"",
    "title:",
    "author:",
    "cat:",
    "abstract:",
    "TITLE:",
    "é",
    "ß",
    "İ",
    "ﬁ",
    "日本語",
    "1",
    "-survey",
    "author:\"yann lecun\"",
    "topic0",
    "graphs",
];

/// Pieces that break the grammar or carry odd characters.
const JUNK_ATOMS: &[&str] = &[
    "qu*",
    "ab*",
    "*",
    "a*b",
    "--",
    "()",
    "\"",
    "\"\"",
    "titel:",
    "x:",
    "::",
    ":",
    "title:abstract:x",
    "cat:\"x\"",
    "\u{0}",
    "\u{7}",
    "\u{1b}",
    "\u{202e}",
    "\u{FFFD}",
    "\u{200b}",
    "_",
    "NOT(",
    "OR)",
    "\r",
];

/// Near-valid queries: pieces of the language, now and then a broken or odd one, in any
/// order.
fn near_valid() -> impl Strategy<Value = String> {
    let atom = prop_oneof![
        8 => prop::sample::select(VALID_ATOMS),
        1 => prop::sample::select(JUNK_ATOMS),
    ];
    let sep = prop::sample::select(&[" ", " ", " ", "", "  ", "\t", "\n", "\u{a0}"][..]);
    prop::collection::vec((atom, sep), 0..24).prop_map(|parts| {
        parts
            .into_iter()
            .flat_map(|(a, s)| [a, s])
            .collect::<String>()
    })
}

/// Queries written from the grammar: fields, phrases, prefixes, negation, grouping and
/// both operators, nested a few levels.
fn grammatical() -> impl Strategy<Value = String> {
    let word = prop::sample::select(
        &[
            "diffusion",
            "state",
            "Space",
            "models",
            "survey",
            "robots",
            "graphs",
            "quantum",
            "topic0",
            "control-variates",
            "naïve",
            "ﬁne",
            "日本語",
            "42",
        ][..],
    );
    let field = prop::sample::select(&["", "", "title:", "abstract:", "author:"][..]);
    let leaf = prop_oneof![
        (field.clone(), word.clone()).prop_map(|(f, w)| format!("{f}{w}")),
        (field.clone(), word.clone(), word.clone()).prop_map(|(f, a, b)| format!("{f}\"{a} {b}\"")),
        (
            field,
            prop::sample::select(&["quant", "diffus", "topic", "grap"][..])
        )
            .prop_map(|(f, p)| format!("{f}{p}*")),
        prop::sample::select(
            &[
                "cat:cs.LG",
                "cat:quant-ph",
                "cat:cs.*",
                "author:\"tri dao\""
            ][..]
        )
        .prop_map(str::to_string),
    ];
    leaf.prop_recursive(4, 24, 4, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| v.join(" OR ")),
            prop::collection::vec(inner.clone(), 2..4).prop_map(|v| v.join(" ")),
            prop::collection::vec(inner.clone(), 2..3).prop_map(|v| v.join(" AND ")),
            inner.clone().prop_map(|q| format!("({q})")),
            (inner.clone(), inner.clone()).prop_map(|(a, b)| format!("{a} -{b}")),
            (inner.clone(), inner).prop_map(|(a, b)| format!("{a} NOT ({b})")),
        ]
    })
}

fn fuzz_input() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => grammatical(),
        2 => near_valid(),
        1 => any::<String>(),
        1 => "[()\"a-zA-Z: *.-]{0,240}",
        1 => "\\PC{0,260}",
    ]
}

#[test]
fn query_fuzz() {
    let started = Instant::now();
    let papers = sample_papers();
    let docs: Vec<Doc> = papers.iter().map(Doc::from_paper).collect();
    let (cases, ok, refused, matched) = (
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
        AtomicUsize::new(0),
    );
    let config = Config {
        cases: FUZZ_CASES,
        failure_persistence: None,
        max_shrink_iters: 2_000,
        ..Config::default()
    };
    let mut runner =
        TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &FUZZ_SEED));
    let outcome = runner.run(&fuzz_input(), |s| {
        cases.fetch_add(1, Ordering::Relaxed);
        // A reader's whole field, as the form and `import` read it.
        let _ = parse_lines(&s);
        match Query::parse(&s) {
            Err(e) => {
                refused.fetch_add(1, Ordering::Relaxed);
                check_refused_query(&s, &e)?;
            }
            Ok(q) => {
                ok.fetch_add(1, Ordering::Relaxed);
                let found = check_accepted_query(&s, &q, &docs, &papers)?;
                matched.fetch_add(found, Ordering::Relaxed);
            }
        }
        Ok(())
    });
    if let Err(e) = outcome {
        panic!("query fuzz failed: {e}");
    }
    let extremes_refused = refuse_extremes();

    let cases = cases.into_inner();
    let (ok, refused) = (ok.into_inner(), refused.into_inner());
    assert!(cases >= FUZZ_CASES as usize);
    assert!(
        ok > 1_000 && refused > 1_000,
        "ok {ok}, refused {refused}: the generators are off"
    );
    report::report(
        "input.query_fuzz",
        json!({
            "cases": cases,
            "seed": String::from_utf8_lossy(&FUZZ_SEED),
            "ok": ok,
            "refused": refused,
            "papers_matched": matched.into_inner(),
            "extremes_refused": extremes_refused,
            "panics": 0,
            "secs": started.elapsed().as_secs_f64(),
        }),
    );
}

/// A refusal names a position inside the text (or just past it) and a problem.
fn check_refused_query(s: &str, e: &QueryError) -> Result<(), TestCaseError> {
    let len = s.chars().count();
    prop_assert!(
        (1..=len.max(1) + 1).contains(&e.position),
        "position {} outside 1..={} for {s:?}",
        e.position,
        len + 1
    );
    prop_assert!(!e.problem.trim().is_empty());
    let shown = e.to_string();
    let at = format!(" at {}", e.position);
    prop_assert!(shown.contains(&at), "{shown:?}");
    Ok(())
}

/// An accepted query holds no control character, reads back as itself, and the index, the
/// reference evaluator and the search agree on every paper. Returns the papers it found.
fn check_accepted_query(
    s: &str,
    q: &Query,
    docs: &[Doc],
    papers: &[Paper],
) -> Result<usize, TestCaseError> {
    prop_assert!(
        !s.contains(|c: char| c.is_control() && !matches!(c, '\t' | '\n' | '\r')
            || c == '\u{FFFD}'),
        "accepted a control character or U+FFFD: {s:?}"
    );
    prop_assert_eq!(q.root().to_string(), q.canonical());
    prop_assert!(!q.canonical().is_empty());
    // Its own text parses to the same query.
    let again = Query::parse(q.text());
    prop_assert_eq!(again.as_ref().ok(), Some(q));
    let mut naive = BTreeSet::new();
    for (i, doc) in docs.iter().enumerate() {
        let reference = naive_matches(q.root(), doc);
        prop_assert_eq!(
            eval(q.root(), &Indexed(doc)),
            reference,
            "{:?} on paper {}",
            s,
            i
        );
        if reference {
            naive.insert(papers[i].key.as_str().to_string());
        }
    }
    let found: BTreeSet<String> = search(q, papers)
        .iter()
        .map(|h| h.paper.key.as_str().to_string())
        .collect();
    prop_assert_eq!(&found, &naive, "search and reference differ for {:?}", s);
    Ok(found.len())
}

/// Fixed extremes: deep nesting and long input are refused without recursion, and the
/// deepest allowed nesting still works. Returns how many were refused.
fn refuse_extremes() -> usize {
    let extremes = [
        nested(10_000),
        nested(100_000),
        format!("{}diffusion", "-".repeat(10_000)),
        format!("{}diffusion", "NOT ".repeat(2_500)),
        "diffusion ".repeat(1_000),
        "\"".repeat(10_000),
        ")".repeat(10_000),
        nested(9),
        format!("{}diffusion", "-".repeat(9)),
    ];
    for text in &extremes {
        let e = Query::parse(text).expect_err("an extreme query is refused");
        assert!(e.position >= 1, "{e}");
    }
    let lines = (0..10_000)
        .map(|i| format!("topic{i}"))
        .collect::<Vec<_>>()
        .join("\n");
    assert!(parse_lines(&lines).is_err());
    let deep_lines = vec![nested(10_000); 1_000].join("\n");
    assert!(parse_lines(&deep_lines).is_err());
    assert!(Query::parse(&nested(paperboy::matching::query::MAX_DEPTH)).is_ok());
    extremes.len() + 2
}

// ---------------------------------------------------------------------------------------
// Abuse: bursts of subscribe requests
// ---------------------------------------------------------------------------------------

const BURST: usize = 1_000;
const IN_FLIGHT: usize = 32;

struct BurstOutcome {
    ok: usize,
    limited: usize,
    other: Vec<u16>,
    retry_after: Vec<u64>,
    elapsed: Duration,
}

/// Sends `BURST` subscribe posts, `IN_FLIGHT` at a time; `request(i)` gives the address and
/// the `X-Forwarded-For` of the i-th.
async fn burst(
    visitor: Arc<Visitor>,
    request: impl Fn(usize) -> (String, Option<String>),
) -> BurstOutcome {
    let started = Instant::now();
    let mut set = tokio::task::JoinSet::new();
    let mut outcome = BurstOutcome {
        ok: 0,
        limited: 0,
        other: Vec::new(),
        retry_after: Vec::new(),
        elapsed: Duration::ZERO,
    };
    let record = |answer: Answer, outcome: &mut BurstOutcome| match answer.status {
        StatusCode::OK => outcome.ok += 1,
        StatusCode::TOO_MANY_REQUESTS => {
            outcome.limited += 1;
            let secs = answer
                .retry_after
                .as_deref()
                .and_then(|v| v.parse::<u64>().ok())
                .expect("a 429 carries Retry-After in seconds");
            outcome.retry_after.push(secs);
            assert!(answer.body.contains("Too many requests"));
        }
        other => outcome.other.push(other.as_u16()),
    };
    for i in 0..BURST {
        if set.len() >= IN_FLIGHT {
            let answer = set
                .join_next()
                .await
                .expect("a request")
                .expect("request task");
            record(answer, &mut outcome);
        }
        let (email, forwarded) = request(i);
        let v = visitor.clone();
        set.spawn(async move {
            let fields = fields_with(&email, "queries", b"diffusion");
            let extra: Vec<(&str, &str)> = forwarded
                .as_deref()
                .map(|ip| vec![("x-forwarded-for", ip)])
                .unwrap_or_default();
            v.post_form(&fields, false, &extra).await
        });
    }
    while let Some(answer) = set.join_next().await {
        record(answer.expect("request task"), &mut outcome);
    }
    outcome.elapsed = started.elapsed();
    outcome
}

/// Waits for the emails sent after answering, then counts them by recipient.
async fn settled_outbox(app: &TestApp, at_least: usize) -> BTreeMap<String, usize> {
    app.wait_for_outbox(at_least).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut recipients = BTreeMap::new();
    for m in app.outbox_messages() {
        *recipients.entry(check_mail(&m)).or_default() += 1;
    }
    recipients
}

#[tokio::test]
async fn burst_one_client() {
    for db in databases().await {
        let app = spawn_app(&db, quiet).await;
        let burst_size = Settings::default().web.subscribe_ip_burst as usize;
        let visitor = Arc::new(Visitor::new(&app).await);
        // X-Forwarded-For is not believed unless configured: half the requests claim
        // another client and are limited all the same.
        let outcome = burst(visitor, |i| {
            let spoofed = (i % 2 == 1).then(|| format!("10.9.{}.{}", i / 250, i % 250 + 1));
            (format!("reader{i}@example.org"), spoofed)
        })
        .await;
        assert!(
            outcome.elapsed < Duration::from_secs(60),
            "{:?}",
            outcome.elapsed
        );
        assert!(
            outcome.other.is_empty(),
            "other statuses {:?}",
            outcome.other
        );
        assert_eq!(outcome.ok, burst_size, "{}: accepted", db.backend);
        assert_eq!(
            outcome.limited,
            BURST - burst_size,
            "{}: limited",
            db.backend
        );
        let max_retry = outcome.retry_after.iter().copied().max().unwrap_or(0);
        let min_retry = outcome.retry_after.iter().copied().min().unwrap_or(0);
        assert!(
            min_retry >= 1 && max_retry <= 3600,
            "Retry-After {min_retry}..{max_retry}"
        );
        // After the burst the limit still holds.
        let v = Visitor::new(&app).await;
        let after = v
            .post_form(
                &fields_with("late@example.org", "queries", b"x y"),
                false,
                &[],
            )
            .await;
        assert_eq!(after.status, StatusCode::TOO_MANY_REQUESTS);
        assert!(after.retry_after.is_some());

        let stored = stored_subscribers(&app.store).await;
        assert_eq!(stored.len(), burst_size, "{}: stored", db.backend);
        let recipients = settled_outbox(&app, burst_size).await;
        let duplicates: usize = recipients.values().map(|n| n - 1).sum();
        assert_eq!(duplicates, 0);
        assert_eq!(
            recipients.keys().collect::<BTreeSet<_>>(),
            stored.keys().collect::<BTreeSet<_>>(),
            "each stored reader got one email"
        );
        report::report(
            "abuse.burst_one_client",
            json!({
                "backend": db.backend,
                "requests": BURST + 1,
                "secs": outcome.elapsed.as_secs_f64(),
                "ok_2xx": outcome.ok,
                "limited_429": outcome.limited + 1,
                "retry_after_secs": [min_retry, max_retry],
                "stored": stored.len(),
                "emails": recipients.values().sum::<usize>(),
                "duplicates": duplicates,
            }),
        );
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn burst_one_mailbox() {
    for db in databases().await {
        let app = spawn_app(&db, |s| {
            quiet(s);
            s.web.trust_forwarded_for = true;
        })
        .await;
        let per_address_burst = Settings::default()
            .web
            .subscribe_per_address_per_hour
            .min(3) as usize;
        let visitor = Arc::new(Visitor::new(&app).await);
        // Case changes do not make another mailbox.
        let outcome = burst(visitor, |i| {
            let email = if i % 2 == 0 {
                "victim@example.org"
            } else {
                "Victim@EXAMPLE.org"
            };
            (
                email.to_string(),
                Some(format!(
                    "10.{}.{}.{}",
                    i / 62_500,
                    (i / 250) % 250,
                    i % 250 + 1
                )),
            )
        })
        .await;
        assert!(
            outcome.elapsed < Duration::from_secs(60),
            "{:?}",
            outcome.elapsed
        );
        assert!(
            outcome.other.is_empty(),
            "other statuses {:?}",
            outcome.other
        );
        assert_eq!(outcome.ok, per_address_burst, "{}: accepted", db.backend);
        assert_eq!(outcome.limited, BURST - per_address_burst);

        let stored = stored_subscribers(&app.store).await;
        assert_eq!(stored.len(), 1, "{}: one reader", db.backend);
        let subscriber = find_subscriber(&app.store, "victim@example.org")
            .await
            .expect("the reader");
        let consents = app.store.consents(subscriber.id).await.expect("consents");
        let recipients = settled_outbox(&app, 1).await;
        let emails: usize = recipients.values().sum();
        assert_eq!(emails, 1, "{}: the mailbox got {recipients:?}", db.backend);
        assert_eq!(consents.len(), 1, "{}: consent records", db.backend);
        report::report(
            "abuse.burst_one_mailbox",
            json!({
                "backend": db.backend,
                "requests": BURST,
                "client_addresses": BURST,
                "secs": outcome.elapsed.as_secs_f64(),
                "ok_2xx": outcome.ok,
                "limited_429": outcome.limited,
                "stored": stored.len(),
                "consent_records": consents.len(),
                "emails": emails,
                "duplicates": emails.saturating_sub(1),
            }),
        );
        app.stop().await;
        db.cleanup().await;
    }
}

/// The `i`-th spelling of one Gmail mailbox: case, dots, `+tags` and googlemail.com.
fn variant(i: usize) -> String {
    let mut local = String::new();
    for (at, c) in "victim".chars().enumerate() {
        if at > 0 && (i >> at) & 1 == 1 {
            local.push('.');
        }
        local.push(if (i >> (at + 3)) & 1 == 1 {
            c.to_ascii_uppercase()
        } else {
            c
        });
    }
    let domain = if i.is_multiple_of(2) {
        "gmail.com"
    } else {
        "GoogleMail.com"
    };
    format!("{local}+{i}@{domain}")
}

/// The mails in the outbox per mailbox key.
fn mails_per_mailbox(app: &TestApp) -> BTreeMap<String, usize> {
    let mut per = BTreeMap::new();
    for m in app.outbox_messages() {
        let to = check_mail(&m);
        let key = EmailAddress::parse(&to).expect("a recipient").mailbox_key();
        *per.entry(key).or_default() += 1;
    }
    per
}

#[tokio::test]
async fn mailbox_variant_flood() {
    for db in databases().await {
        let open = |s: &mut Settings| {
            quiet(s);
            s.web.trust_forwarded_for = true;
            s.web.subscribe_per_ip_per_hour = 100_000;
            s.web.subscribe_ip_burst = 100_000;
        };
        let spoofed = |i: usize| format!("10.{}.{}.{}", i / 62_500, (i / 250) % 250, i % 250 + 1);
        let app = spawn_app(&db, open).await;
        let first = burst(Arc::new(Visitor::new(&app).await), |i| {
            (variant(i), Some(spoofed(i)))
        })
        .await;
        assert!(first.other.is_empty(), "other statuses {:?}", first.other);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after_first = mails_per_mailbox(&app);
        app.stop().await;
        // A restart (or another instance) starts with empty in-memory limits: the flood
        // gets past them, and the database's count per mailbox still holds.
        let app = spawn_app(&db, open).await;
        let second = burst(Arc::new(Visitor::new(&app).await), |i| {
            (variant(BURST + i), Some(spoofed(BURST + i)))
        })
        .await;
        assert!(second.other.is_empty(), "other statuses {:?}", second.other);
        tokio::time::sleep(Duration::from_millis(500)).await;
        let after_second = mails_per_mailbox(&app);
        let mails: usize =
            after_first.values().sum::<usize>() + after_second.values().sum::<usize>();
        assert_eq!(after_first.len(), 1, "{after_first:?}");
        assert_eq!(
            mails,
            Settings::default().web.mails_per_mailbox_per_day as usize,
            "{}: mails to the mailbox in a day",
            db.backend
        );
        assert!(after_second.is_empty(), "{}: {after_second:?}", db.backend);
        let stored = stored_subscribers(&app.store).await;
        report::report(
            "abuse.mailbox_variant_flood",
            json!({
                "backend": db.backend,
                "requests": 2 * BURST,
                "spellings": 2 * BURST,
                "client_addresses": 2 * BURST,
                "restarts": 1,
                "secs": (first.elapsed + second.elapsed).as_secs_f64(),
                "ok_2xx": first.ok + second.ok,
                "limited_429": first.limited + second.limited,
                "stored": stored.len(),
                "mails_per_mailbox_per_day": mails,
            }),
        );
        app.stop().await;
        db.cleanup().await;
    }
}

#[tokio::test]
async fn link_scanner() {
    const READERS: usize = 40;
    for db in databases().await {
        let app = spawn_app(&db, |s| {
            quiet(s);
            s.web.subscribe_per_ip_per_hour = 100_000;
            s.web.subscribe_ip_burst = 100_000;
        })
        .await;
        let visitor = Visitor::new(&app).await;
        for i in 0..READERS {
            let answer = visitor
                .post_form(
                    &fields_with(&format!("scanned{i}@example.org"), "queries", b"diffusion"),
                    false,
                    &[],
                )
                .await;
            assert_eq!(answer.status, StatusCode::OK);
        }
        let messages = app.wait_for_outbox(READERS).await;
        assert_eq!(messages.len(), READERS);
        let scanner = reqwest::Client::builder()
            .user_agent("Mozilla/5.0 (compatible; LinkScanner/1.0)")
            .build()
            .expect("scanner client");
        let (mut links, mut requests) = (0, 0);
        for m in &messages {
            let mut found: Vec<String> = base64_parts(m)
                .iter()
                .filter_map(|p| helpers::link_starting(p, &app.url("/")))
                .collect();
            found.push(helpers::unsubscribe_link(m));
            found.sort();
            found.dedup();
            links += found.len();
            for _ in 0..3 {
                for link in &found {
                    for request in [scanner.get(link), scanner.head(link)] {
                        let response = request.send().await.expect("scanner request");
                        assert!(!response.status().is_server_error(), "{link}");
                        requests += 1;
                    }
                }
            }
        }
        let stored = stored_subscribers(&app.store).await;
        let confirmed_by_scanner = stored
            .values()
            .filter(|(s, _)| *s != SubscriberStatus::Pending)
            .count();
        assert_eq!(confirmed_by_scanner, 0, "{}", db.backend);
        // Each reader then presses Confirm: all active, the consent naming their browser.
        for m in &messages {
            let page = visitor.confirm(&confirm_link(m)).await;
            assert_eq!(page.status(), StatusCode::OK);
        }
        let stored = stored_subscribers(&app.store).await;
        let active = stored
            .values()
            .filter(|(s, _)| *s == SubscriberStatus::Active)
            .count();
        assert_eq!(active, READERS);
        let mut scanner_consents = 0;
        for email in stored.keys() {
            let reader = find_subscriber(&app.store, email).await.expect("reader");
            let consents = app.store.consents(reader.id).await.expect("consents");
            assert_eq!(consents.len(), 2, "{email}");
            scanner_consents += consents
                .iter()
                .filter(|c| {
                    c.user_agent
                        .as_deref()
                        .is_some_and(|ua| ua.contains("LinkScanner"))
                })
                .count();
        }
        assert_eq!(scanner_consents, 0);
        report::report(
            "abuse.link_scanner",
            json!({
                "backend": db.backend,
                "readers": READERS,
                "links": links,
                "scanner_requests": requests,
                "confirmed_by_scanner": confirmed_by_scanner,
                "confirmed_by_button": active,
                "consents_naming_the_scanner": scanner_consents,
            }),
        );
        app.stop().await;
        db.cleanup().await;
    }
}
