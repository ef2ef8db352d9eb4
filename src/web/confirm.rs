//! `GET /confirm/{token}`: the link in the confirmation email. It works once, for 48
//! hours, and turns a pending reader into an active one with the consent recorded.

use axum::Router;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use chrono::Utc;

use super::guard::Client;
use super::pages::{self, CONSENT_TEXT, CONSENT_VERSION, page};
use super::{AppState, WebError};
use crate::digest::schedule::next_send_after;
use crate::domain::Preferences;
use crate::domain::token::{hash_token, looks_like_random_token};
use crate::email::notices::describe;
use crate::store::ConsentText;

pub fn router() -> Router<AppState> {
    Router::new().route("/confirm/{token}", get(confirm))
}

#[tracing::instrument(skip_all, fields(ip = %client.ip))]
async fn confirm(
    State(state): State<AppState>,
    client: Client,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    if !looks_like_random_token(&token) {
        return Err(WebError::NotFound);
    }
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
