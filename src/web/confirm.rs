//! `/confirm/{token}`: the link in the confirmation email. A `GET` (or `HEAD`) shows what
//! would be confirmed and one Confirm button, and changes nothing: mail security filters
//! (Safe Links and the like) open every link in a message, so a link that confirmed on
//! opening would prove nothing. Only the button's `POST` confirms: once, within 48 hours,
//! turning a pending reader into an active one with the consent recorded (the time, IP
//! address and user agent of that POST).
//!
//! The POST is checked as every other form is (a CSRF token signed over the cookie the
//! page set, and the request's origin), on top of the token in the path. The token alone
//! would do to decide *whether* to confirm: whoever holds it could confirm anyway, from
//! their own machine. The CSRF check makes sure *who* is recorded: the consent record
//! names the browser that pressed the button on our page, never a reader's browser that
//! another site made post the token (a cross-site form would otherwise file the reader's
//! own address and agent as their consent). It costs nothing a reader would notice: the
//! page sets the cookie itself, and a stale one gets the usual "reload and try again".

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use chrono::Utc;
use serde::Deserialize;

use super::guard::{Client, check_csrf, csrf_for_page};
use super::pages::{self, CONSENT_TEXT, CONSENT_VERSION, page};
use super::{AppState, WebError};
use crate::digest::schedule::next_send_after;
use crate::domain::Preferences;
use crate::domain::token::{hash_token, looks_like_random_token};
use crate::email::notices::describe;
use crate::store::ConsentText;

pub fn router() -> Router<AppState> {
    Router::new().route("/confirm/{token}", get(show).post(confirm))
}

/// The page behind the link: what the token would confirm, and the button. Reads only.
#[tracing::instrument(skip_all)]
async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    if !looks_like_random_token(&token) {
        return Err(WebError::NotFound);
    }
    let Some((subscriber, preferences)) = state
        .store
        .confirmation(&hash_token(&token), Utc::now())
        .await?
    else {
        return Err(WebError::NotFound);
    };
    let (cookie, set_cookie) = csrf_for_page(&headers, &state.links)?;
    let csrf = state.links.keys().csrf_token(&cookie);
    Ok(page(
        StatusCode::OK,
        pages::render(&pages::Confirm {
            email: subscriber.email.as_str(),
            schedule: &describe(&preferences),
            csrf: &csrf,
        }),
        set_cookie,
    ))
}

/// What the Confirm button posts.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct ConfirmForm {
    csrf: String,
}

#[tracing::instrument(skip_all, fields(ip = %client.ip))]
async fn confirm(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<ConfirmForm>,
) -> Result<Response, WebError> {
    if !looks_like_random_token(&token) {
        return Err(WebError::NotFound);
    }
    check_csrf(&headers, &state.links, &form.csrf)?;
    let consent = ConsentText {
        version: CONSENT_VERSION,
        text: CONSENT_TEXT,
    };
    let now = Utc::now();
    let Some(subscriber) = state
        .store
        .confirm(&hash_token(&token), &client.info(), consent, now)
        .await?
    else {
        return Err(WebError::NotFound);
    };
    tracing::info!(subscriber = subscriber.id, "subscription confirmed");
    let schedule = describe(&subscriber.preferences);
    let first_digest = first_digest(&subscriber.preferences, now);
    let preferences_url = state.links.preferences(subscriber.id, &subscriber.link_key);
    Ok(page(
        StatusCode::OK,
        pages::render(&pages::Confirmed {
            schedule: &schedule,
            first_digest: first_digest.as_deref(),
            preferences_url: &preferences_url,
        }),
        None,
    ))
}

/// When the first digest of a reader confirmed at `now` goes out, in their zone: "Thursday
/// 3 December 2026 at 07:00 (Asia/Kolkata time)". The scheduler sends it at the first send
/// instant after the confirmation.
fn first_digest(p: &Preferences, now: chrono::DateTime<Utc>) -> Option<String> {
    let at = next_send_after(p, now)?.with_timezone(&p.timezone.tz());
    Some(format!(
        "{} ({} time)",
        at.format("%A %-d %B %Y at %H:%M"),
        p.timezone.name()
    ))
}
