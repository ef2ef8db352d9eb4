//! `GET /` (the form), `POST /subscribe` (store a pending reader and mail the link) and
//! `GET /preview` (how many recent papers a query, or each line of a queries box, finds and
//! the best three, for the form's live preview).
//!
//! The answer to a valid submission never depends on whether the address is known: new,
//! pending, active and unsubscribed addresses all get the same page, byte for byte, and
//! the email (if any) goes out after the answer.

use axum::extract::{Query as QueryParams, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use chrono::Utc;
use serde::Deserialize;
use serde_json::{Value, json};

use super::forms::{Choices, FieldErrors, FormFields};
use super::guard::{Client, check_csrf, csrf_for_page};
use super::pages::{self, CONSENT_TEXT, CONSENT_VERSION, page};
use super::recent::{LinePreview, query_lines};
use super::{AppState, WebError};
use crate::domain::token::{hash_token, random_token};
use crate::domain::{EmailAddress, Preferences};
use crate::email::{Email, notices};
use crate::error::chain;
use crate::store::{ConsentText, RequestOutcome, SubscriptionRequest};

/// How long a confirmation link works.
pub const CONFIRMATION_TTL_HOURS: i64 = 48;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/", get(form))
        .route(
            "/subscribe",
            post(submit).get(|| async { axum::response::Redirect::to("/") }),
        )
        .route("/preview", get(preview))
}

#[tracing::instrument(skip_all)]
async fn form(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, WebError> {
    let (cookie, set_cookie) = csrf_for_page(&headers, &state.links)?;
    let form = FormFields::blank();
    Ok(page(
        StatusCode::OK,
        render_form(&state, &form, &FieldErrors::default(), &cookie, true),
        set_cookie,
    ))
}

fn render_form(
    state: &AppState,
    form: &FormFields,
    errors: &FieldErrors,
    cookie: &str,
    detect_timezone: bool,
) -> String {
    let choices = Choices::for_form(form, detect_timezone);
    let csrf = state.links.keys().csrf_token(cookie);
    pages::render(&pages::Subscribe {
        form,
        errors,
        choices: &choices,
        csrf: &csrf,
        consent_text: CONSENT_TEXT,
        operator_note: state.operator_note.as_deref(),
        previews: &[],
    })
}

#[tracing::instrument(skip_all, fields(ip = %client.ip))]
async fn submit(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Form(form): Form<FormFields>,
) -> Result<Response, WebError> {
    state.guard.subscribe_from(client.ip)?;
    check_csrf(&headers, &state.links, &form.csrf)?;
    // The same page, byte for byte, whatever the address and whatever happened to it.
    let check_inbox = || {
        pages::render(&pages::CheckInbox {
            operator_note: state.operator_note.as_deref(),
        })
    };
    let mut errors = FieldErrors::default();
    let email = form.email(&mut errors, state.mailer.takes_utf8_local_parts());
    let preferences = form.preferences(&mut errors);
    let (Some(email), Some(preferences)) = (email, preferences) else {
        let (cookie, set_cookie) = csrf_for_page(&headers, &state.links)?;
        let refill = FormFields {
            csrf: String::new(),
            website: String::new(),
            ..form
        };
        return Ok(page(
            StatusCode::UNPROCESSABLE_ENTITY,
            render_form(&state, &refill, &errors, &cookie, false),
            set_cookie,
        ));
    };
    if !form.website.is_empty() {
        // A bot filled the hidden field: it sees the usual answer and nothing happens.
        tracing::info!("honeypot filled: nothing stored or sent");
        return Ok(page(StatusCode::OK, check_inbox(), None));
    }
    state.guard.subscribe_to(&email.mailbox_key())?;

    let token = random_token()?;
    let link_key = random_token()?;
    let token_hash = hash_token(&token);
    let client_info = client.info();
    let request = SubscriptionRequest {
        email: &email,
        preferences: &preferences,
        token_hash: &token_hash,
        token_ttl: chrono::Duration::hours(CONFIRMATION_TTL_HOURS),
        resend_after: state.resend_after,
        daily_mailbox_limit: state.daily_mailbox_limit,
        link_key: &link_key,
        client: &client_info,
        consent: ConsentText {
            version: CONSENT_VERSION,
            text: CONSENT_TEXT,
        },
    };
    let outcome = state
        .store
        .request_subscription(&request, Utc::now())
        .await?;
    let email_to_send = subscription_email(&state, &outcome, &email, &preferences, &token)?;
    if let Some(message) = email_to_send {
        // Sent after answering, so the answer's timing says nothing about the address.
        let mailer = state.mailer.clone();
        tokio::spawn(async move {
            if let Err(e) = mailer.send(&message).await {
                tracing::error!(to = %message.to.masked(), error = %chain(&e), "could not send the subscription email");
            }
        });
    }
    Ok(page(StatusCode::OK, check_inbox(), None))
}

/// The email a stored request calls for: the confirmation link, or a note with the
/// settings link to an address already subscribed; none after a recent link, a bounce or
/// an erase.
fn subscription_email(
    state: &AppState,
    outcome: &RequestOutcome,
    email: &EmailAddress,
    preferences: &Preferences,
    token: &str,
) -> Result<Option<Email>, WebError> {
    let ids = state.mailer.message_ids();
    Ok(match outcome {
        RequestOutcome::Confirm(subscriber) => {
            tracing::info!(subscriber = subscriber.id, "confirmation link requested");
            Some(notices::confirmation(
                &ids,
                &state.links,
                subscriber,
                preferences,
                token,
            )?)
        }
        RequestOutcome::AlreadySubscribed(subscriber) => {
            tracing::info!(
                subscriber = subscriber.id,
                "already subscribed: settings link"
            );
            Some(notices::already_subscribed(&ids, &state.links, subscriber)?)
        }
        RequestOutcome::NothingToSend => {
            tracing::info!(email = %email.masked(), "nothing sent (a link went out recently, or the address bounced or was erased)");
            None
        }
    })
}

#[derive(Debug, Deserialize)]
struct PreviewParams {
    /// One query.
    q: Option<String>,
    /// A whole queries box, one query per line (blank lines skipped, at most 20).
    lines: Option<String>,
}

/// With `q`: `{"ok":true,"matches":N,"papers":M,"days":7,"top":[{"title":…,"url":…}]}`
/// (the best 3 matches, best first; `url` null unless it is an http(s) address), or
/// `{"ok":false,"error":"…","position":P}` with the parser's message.
/// With `lines`: `{"lines":[…]}`, one such answer per query line, in order, each with its
/// `query`; the form's script sends the whole box this way, so one request (one unit of
/// the rate limit) previews every line.
#[tracing::instrument(skip_all, fields(ip = %client.ip))]
async fn preview(
    State(state): State<AppState>,
    client: Client,
    QueryParams(params): QueryParams<PreviewParams>,
) -> Result<Json<Value>, WebError> {
    state.guard.preview_from(client.ip)?;
    if let Some(text) = params.lines {
        let previews = state
            .preview
            .preview(&state.store, query_lines(&text))
            .await?;
        let lines: Vec<Value> = previews
            .into_iter()
            .map(|p| {
                let query = p.query.clone();
                let mut answer = preview_json(p);
                answer["query"] = Value::String(query);
                answer
            })
            .collect();
        return Ok(Json(json!({ "lines": lines })));
    }
    let q = params.q.unwrap_or_default();
    let p = state
        .preview
        .preview(&state.store, vec![q.trim().to_string()])
        .await?
        .into_iter()
        .next()
        .ok_or_else(|| WebError::Internal(anyhow::anyhow!("no preview for a query")))?;
    Ok(Json(preview_json(p)))
}

fn preview_json(p: LinePreview) -> Value {
    match p.error {
        Some(error) => json!({ "ok": false, "error": error, "position": p.position }),
        None => json!({
            "ok": true,
            "matches": p.matches,
            "papers": p.papers,
            "days": p.days,
            "top": p.top,
        }),
    }
}
