//! The web entry point: one axum router per feature, merged here, sharing [`AppState`].
//! Handlers call into the store, the matching engine and the mailer; nothing below calls
//! back up here. Every page is an askama template with autoescaping.

mod archive;
mod assets;
mod confirm;
mod feed;
mod forms;
mod guard;
mod health;
mod pages;
mod preferences;
mod ratings;
mod recent;
mod server;
mod subscribe;
mod unsubscribe;
mod webhooks;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Request};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Response};
use tower_http::compression::CompressionLayer;

use crate::config::Settings;
use crate::delivery::Mailer;
use crate::domain::token::Links;
use crate::error::chain;
use crate::feeds::ArxivLookup;
use crate::store::Store;

pub use guard::Guard;
pub use server::{Limits, raise_descriptor_limit, serve};

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
    pub mailer: Mailer,
    pub links: Links,
    pub guard: Arc<Guard>,
    /// Shown on the form when mail does not leave the machine, for the operator trying it.
    pub operator_note: Option<Arc<str>>,
    /// The recent papers the query previews look at.
    pub preview: Arc<recent::RecentPapers>,
    /// The least time between two links mailed to one address.
    pub resend_after: chrono::Duration,
    /// The most links the form mails to one mailbox (every spelling of it) in a day.
    pub daily_mailbox_limit: u32,
    /// Why this instance's delivery worker stopped (a refused login or TLS), for
    /// `/healthz`; `None` while it runs or when this instance has none.
    pub delivery_stopped: Arc<std::sync::Mutex<Option<String>>>,
    /// Where the papers a reader likes are fetched when paperboy lacks them.
    pub arxiv: ArxivLookup,
    /// The key Mailgun signs its webhooks with; without it that webhook is not served.
    pub mailgun_key: Option<crate::config::Secret>,
}

impl AppState {
    pub fn new(
        store: Store,
        mailer: Mailer,
        links: Links,
        arxiv: ArxivLookup,
        settings: &Settings,
    ) -> Self {
        let operator_note = match &mailer {
            Mailer::Outbox { dir, .. } => Some(Arc::from(format!(
                "no SMTP relay is configured (PAPERBOY_SMTP_URL), so emails are not sent: \
                 each one is written as an .eml file to {}.",
                dir.display()
            ))),
            Mailer::Smtp { .. } => None,
        };
        AppState {
            store,
            mailer,
            links,
            guard: Arc::new(Guard::new(&settings.web)),
            operator_note,
            preview: Arc::new(recent::RecentPapers::default()),
            resend_after: i64::try_from(settings.web.resend_link_after_secs)
                .ok()
                .and_then(chrono::Duration::try_seconds)
                .unwrap_or(chrono::Duration::days(1)),
            daily_mailbox_limit: settings.web.mails_per_mailbox_per_day,
            delivery_stopped: Arc::default(),
            arxiv,
            mailgun_key: settings.mailgun_signing_key.clone(),
        }
    }
}

/// Every page and form; `/metrics` too unless it has a listener of its own
/// ([`admin_router`]).
pub fn router(state: AppState, max_body_bytes: usize, with_metrics: bool) -> Router {
    let mut routes = Router::new().merge(health::router());
    if with_metrics {
        routes = routes.merge(health::metrics_router());
    }
    routes
        .merge(assets::router())
        .merge(archive::router())
        .merge(feed::router())
        .merge(subscribe::router())
        .merge(confirm::router())
        .merge(preferences::router())
        .merge(ratings::router())
        .merge(unsubscribe::router())
        .merge(webhooks::router())
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn(error_pages))
        .layer(middleware::from_fn(security_headers))
        // Pages, styles, scripts and JSON in brotli or gzip when the client takes them
        // (tower-http leaves images and small bodies alone).
        .layer(CompressionLayer::new())
        .with_state(state)
}

/// The admin listener's routes: `/metrics` and `/healthz`, for monitoring that should not
/// go through the public address.
pub fn admin_router(state: AppState) -> Router {
    Router::new()
        .merge(health::router())
        .merge(health::metrics_router())
        .fallback(not_found)
        .layer(middleware::from_fn(error_pages))
        .layer(middleware::from_fn(security_headers))
        .with_state(state)
}

/// The routes that answer JSON, errors included.
const JSON_ROUTES: &[&str] = &["/preview", "/healthz"];

/// Answers that are errors and not one of ours (axum's rejections of a bad path
/// parameter, form, query string, content type or body size are plain text that may
/// quote the request; an unknown method has no body at all) become the error page, or
/// `{"ok": false, "error": …}` on a JSON route: the same words for every such answer of
/// a status, never the request's own. A handler's own HTML page or JSON stays as it is,
/// except that a JSON route answers JSON only.
async fn error_pages(request: Request, next: Next) -> Response {
    let json = JSON_ROUTES.contains(&request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    if !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let kind = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let ours = kind.starts_with("application/json") || (!json && kind.starts_with("text/html"));
    if ours {
        return response;
    }
    let (title, message) = status_words(status);
    let mut answer = if json {
        (
            status,
            axum::Json(serde_json::json!({ "ok": false, "error": message })),
        )
            .into_response()
    } else {
        let body = pages::render(&pages::Message { title, message });
        (status, Html(body)).into_response()
    };
    for name in [header::ALLOW, header::RETRY_AFTER] {
        if let Some(value) = response.headers().get(&name) {
            answer.headers_mut().insert(name, value.clone());
        }
    }
    answer
}

/// The title and the words of the error page for a status that no handler chose.
fn status_words(status: StatusCode) -> (&'static str, &'static str) {
    match status {
        StatusCode::NOT_FOUND => (
            "Not found",
            "There is nothing at this address. If you followed a link from an email, it may have expired or been used already.",
        ),
        StatusCode::METHOD_NOT_ALLOWED => (
            "Not allowed",
            "This address does not take that kind of request. Nothing was changed.",
        ),
        StatusCode::PAYLOAD_TOO_LARGE => (
            "Too large",
            "What was sent is larger than this address accepts. Nothing was changed.",
        ),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => (
            "Nothing was changed",
            "What was sent is not in a form this address reads. Please use the form on the page.",
        ),
        StatusCode::TOO_MANY_REQUESTS => (
            "Too many requests",
            "This was asked too often. Please wait a little and try again.",
        ),
        s if s.is_server_error() => (
            "Something went wrong",
            "paperboy could not finish this request. Nothing was lost; please try again in a moment.",
        ),
        _ => (
            "Nothing was changed",
            "This request could not be read: an address, a form field or a parameter is missing, repeated or malformed. Nothing was changed.",
        ),
    }
}

/// Headers on every answer: no inline script, no framing, no MIME sniffing, and no
/// referrer to other sites (links carry tokens); pages are not cached by anyone. The
/// referrer policy is `same-origin` rather than `no-referrer` because under the latter
/// browsers send `Origin: null` with form posts, which the CSRF check must refuse.
async fn security_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; \
             connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

async fn not_found() -> Response {
    WebError::NotFound.into_response()
}

/// How a request fails, as the visitor sees it. Internal errors are logged in full and
/// shown as a plain apology.
#[derive(Debug)]
pub enum WebError {
    NotFound,
    /// A form asked for something this page cannot do; the message says what, and
    /// nothing was changed.
    BadRequest(&'static str),
    /// The form's CSRF token or origin did not check out.
    Forbidden,
    TooManyRequests {
        retry_after_secs: u64,
    },
    Internal(anyhow::Error),
}

impl<E: Into<anyhow::Error>> From<E> for WebError {
    fn from(e: E) -> Self {
        WebError::Internal(e.into())
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let (status, title, message) = match &self {
            WebError::NotFound => (
                StatusCode::NOT_FOUND,
                "Not found",
                "There is nothing at this address. If you followed a link from an email, it may have expired or been used already.",
            ),
            WebError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, "Nothing was changed", *message)
            }
            WebError::Forbidden => (
                StatusCode::FORBIDDEN,
                "Please try again",
                "The form could not be checked (it may have been open for a long time, or cookies are blocked). Reload the page and submit it again.",
            ),
            WebError::TooManyRequests { .. } => (
                StatusCode::TOO_MANY_REQUESTS,
                "Too many requests",
                "This form was submitted too often. Please wait a little and try again.",
            ),
            WebError::Internal(e) => {
                tracing::error!(error = %chain(e.as_ref()), "request failed");
                (
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "Something went wrong",
                    "paperboy could not finish this request. Nothing was lost; please try again in a moment.",
                )
            }
        };
        let body = pages::render(&pages::Message { title, message });
        let mut response = (status, Html(body)).into_response();
        if let WebError::TooManyRequests { retry_after_secs } = self {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(retry_after_secs));
        }
        response
    }
}
