//! `GET`/`POST /preferences/{token}`: a reader edits queries and settings, pauses,
//! resumes, unsubscribes or comes back, and sees the papers they rated (removing them
//! posts to `/preferences/{token}/ratings`). The signed token in the link is the only key;
//! a token that does not verify is a plain 404 and changes nothing.

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;
use axum::{Form, Router};
use chrono::Utc;

use super::forms::{Choices, FieldErrors, FormFields};
use super::guard::{Client, check_csrf, csrf_for_page, subscriber_for};
use super::pages::{self, CONSENT_TEXT, CONSENT_VERSION, RatingList, page};
use super::{AppState, WebError};
use crate::domain::Subscriber;
use crate::domain::SubscriberStatus;
use crate::domain::token::Purpose;
use crate::store::ConsentText;

pub fn router() -> Router<AppState> {
    Router::new().route("/preferences/{token}", get(show).post(change))
}

fn status_text(status: SubscriberStatus) -> &'static str {
    match status {
        SubscriberStatus::Pending => "waiting for your confirmation",
        SubscriberStatus::Active => "subscribed",
        SubscriberStatus::Paused => "paused",
        SubscriberStatus::Unsubscribed => "unsubscribed",
        SubscriberStatus::Bounced => "stopped: mail to this address bounced",
    }
}

/// The reader's ratings, newest first, as the page lists them.
async fn ratings(
    state: &AppState,
    token: &str,
    subscriber: &Subscriber,
) -> Result<RatingList, WebError> {
    let ratings = state.store.ratings_of(subscriber.id).await?;
    Ok(RatingList::new(
        format!("/preferences/{token}/ratings"),
        &ratings,
        &subscriber.preferences.timezone,
    ))
}

fn render(
    state: &AppState,
    subscriber: &Subscriber,
    form: &FormFields,
    errors: &FieldErrors,
    flash: Option<&str>,
    cookie: &str,
    ratings: &RatingList,
) -> String {
    let choices = Choices::for_form(form, false);
    let csrf = state.links.keys().csrf_token(cookie);
    pages::render(&pages::Preferences {
        email: subscriber.email.as_str(),
        status: subscriber.status.as_str(),
        status_text: status_text(subscriber.status),
        flash,
        form,
        errors,
        choices: &choices,
        csrf: &csrf,
        can_edit: !matches!(
            subscriber.status,
            SubscriberStatus::Unsubscribed | SubscriberStatus::Bounced
        ),
        can_resubscribe: subscriber.confirmed_at.is_some(),
        ratings,
    })
}

#[tracing::instrument(skip_all)]
async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let subscriber = subscriber_for(&state, &token, Purpose::Preferences).await?;
    let (cookie, set_cookie) = csrf_for_page(&headers, &state.links)?;
    let form = FormFields::from_preferences(&subscriber.preferences);
    let ratings = ratings(&state, &token, &subscriber).await?;
    Ok(page(
        StatusCode::OK,
        render(
            &state,
            &subscriber,
            &form,
            &FieldErrors::default(),
            None,
            &cookie,
            &ratings,
        ),
        set_cookie,
    ))
}

/// Brings back an unsubscribed subscriber who confirmed once, with a fresh consent
/// record. Whether they came back.
async fn resubscribe(
    state: &AppState,
    id: i64,
    client: &Client,
    now: chrono::DateTime<Utc>,
) -> Result<bool, WebError> {
    let back = state
        .store
        .change_status(
            id,
            &[SubscriberStatus::Unsubscribed],
            SubscriberStatus::Active,
            now,
        )
        .await?;
    if back {
        let consent = ConsentText {
            version: CONSENT_VERSION,
            text: CONSENT_TEXT,
        };
        state
            .store
            .record_consent(id, &client.info(), consent, now)
            .await?;
    }
    Ok(back)
}

#[tracing::instrument(skip_all, fields(ip = %client.ip))]
async fn change(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<FormFields>,
) -> Result<Response, WebError> {
    let subscriber = subscriber_for(&state, &token, Purpose::Preferences).await?;
    check_csrf(&headers, &state.links, &form.csrf)?;
    let (cookie, set_cookie) = csrf_for_page(&headers, &state.links)?;
    let now = Utc::now();
    let id = subscriber.id;
    use SubscriberStatus::*;
    let flash = match form.action.as_str() {
        "pause" => state
            .store
            .change_status(id, &[Active], Paused, now)
            .await?
            .then_some("Paused: no digests until you resume."),
        "resume" => state
            .store
            .change_status(id, &[Paused], Active, now)
            .await?
            .then_some("Resumed: your next digest comes at its usual time."),
        "unsubscribe" => state
            .store
            .change_status(id, &[Pending, Active, Paused], Unsubscribed, now)
            .await?
            .then_some("You are unsubscribed: paperboy sends nothing more."),
        // Only a reader who confirmed once comes back in one click; anyone else confirms
        // through the form and a fresh link.
        "resubscribe" if subscriber.confirmed_at.is_none() => Some(
            "Your address was never confirmed: subscribe on the front page to get a confirmation link.",
        ),
        "resubscribe" => resubscribe(&state, id, &client, now)
            .await?
            .then_some("Welcome back: you are subscribed again."),
        _ => {
            if matches!(subscriber.status, Unsubscribed | Bounced) {
                return Err(WebError::NotFound);
            }
            let mut errors = FieldErrors::default();
            let Some(preferences) = form.preferences(&mut errors) else {
                let refill = FormFields {
                    csrf: String::new(),
                    ..form
                };
                let ratings = ratings(&state, &token, &subscriber).await?;
                return Ok(page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    render(
                        &state,
                        &subscriber,
                        &refill,
                        &errors,
                        None,
                        &cookie,
                        &ratings,
                    ),
                    set_cookie,
                ));
            };
            state
                .store
                .update_preferences(id, &preferences, now)
                .await?;
            Some("Saved.")
        }
    };
    tracing::info!(subscriber = id, action = %form.action, changed = flash.is_some(), "preferences");
    let subscriber = state
        .store
        .subscriber(id)
        .await?
        .ok_or(WebError::NotFound)?;
    let current = FormFields::from_preferences(&subscriber.preferences);
    let ratings = ratings(&state, &token, &subscriber).await?;
    Ok(page(
        StatusCode::OK,
        render(
            &state,
            &subscriber,
            &current,
            &FieldErrors::default(),
            Some(flash.unwrap_or("Nothing to change.")),
            &cookie,
            &ratings,
        ),
        set_cookie,
    ))
}
