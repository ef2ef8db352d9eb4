//! `GET`/`POST /preferences/{token}`: a reader edits queries and settings, pauses,
//! resumes, unsubscribes or comes back; `POST /preferences/{token}/likes` takes a list of
//! papers they like. The signed token in the link is the only key; a token that does not
//! verify is a plain 404 and changes nothing.

use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;

use super::forms::{Choices, FieldErrors, FormFields};
use super::guard::{Client, check_csrf, csrf_for_page, subscriber_for};
use super::pages::{self, CONSENT_TEXT, CONSENT_VERSION, LikesOutcome, LikesPanel, page};
use super::{AppState, WebError};
use crate::digest::taste;
use crate::domain::token::Purpose;
use crate::domain::{
    MAX_SEED_ENTRIES, Rating, RatingSource, SeedList, Subscriber, SubscriberStatus,
};
use crate::feeds::resolve_seeds;
use crate::store::ConsentText;

pub fn router() -> Router<AppState> {
    Router::new()
        .route("/preferences/{token}", get(show).post(change))
        .route("/preferences/{token}/likes", post(like))
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

fn render(
    state: &AppState,
    subscriber: &Subscriber,
    form: &FormFields,
    errors: &FieldErrors,
    flash: Option<&str>,
    cookie: &str,
    likes: LikesPanel<'_>,
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
        likes,
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
    Ok(page(
        StatusCode::OK,
        render(
            &state,
            &subscriber,
            &form,
            &FieldErrors::default(),
            None,
            &cookie,
            likes_panel(&state, &likes_url(&token), None),
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
                return Ok(page(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    render(
                        &state,
                        &subscriber,
                        &refill,
                        &errors,
                        None,
                        &cookie,
                        likes_panel(&state, &likes_url(&token), None),
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
    Ok(page(
        StatusCode::OK,
        render(
            &state,
            &subscriber,
            &current,
            &FieldErrors::default(),
            Some(flash.unwrap_or("Nothing to change.")),
            &cookie,
            likes_panel(&state, &likes_url(&token), None),
        ),
        set_cookie,
    ))
}

fn likes_url(token: &str) -> String {
    format!("/preferences/{token}/likes")
}

fn likes_panel<'a>(
    state: &AppState,
    url: &'a str,
    outcome: Option<&'a LikesOutcome>,
) -> LikesPanel<'a> {
    LikesPanel {
        url,
        max_entries: MAX_SEED_ENTRIES,
        max_kib: state.max_body_bytes / 1024,
        outcome,
    }
}

/// What the "Papers you like" form posted: the pasted lines, or the file when one was
/// chosen.
#[derive(Default)]
struct LikesForm {
    csrf: String,
    papers: String,
    file: Option<Vec<u8>>,
}

impl LikesForm {
    async fn read(
        mut multipart: Multipart,
    ) -> Result<LikesForm, axum::extract::multipart::MultipartError> {
        let mut form = LikesForm::default();
        while let Some(field) = multipart.next_field().await? {
            match field.name() {
                Some("csrf") => form.csrf = field.text().await?,
                Some("papers") => form.papers = field.text().await?,
                Some("file") => {
                    let bytes = field.bytes().await?;
                    if !bytes.is_empty() {
                        form.file = Some(bytes.to_vec());
                    }
                }
                _ => {}
            }
        }
        Ok(form)
    }
}

/// `POST /preferences/{token}/likes` (multipart, so a file can come along): the papers
/// found count as "more like this" ratings, papers paperboy lacks are fetched from arXiv
/// first, and the page tells what was recorded and what could not be found. A list that
/// cannot be read (malformed BibTeX, more than 500 entries, nothing in it) records nothing.
#[tracing::instrument(skip_all, fields(ip = %client.ip))]
async fn like(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(token): Path<String>,
    multipart: Multipart,
) -> Result<Response, WebError> {
    let subscriber = subscriber_for(&state, &token, Purpose::Preferences).await?;
    if matches!(
        subscriber.status,
        SubscriberStatus::Unsubscribed | SubscriberStatus::Bounced
    ) {
        return Err(WebError::NotFound);
    }
    let (cookie, set_cookie) = csrf_for_page(&headers, &state.links)?;
    let url = likes_url(&token);
    let answer = |status: StatusCode, outcome: &LikesOutcome, set_cookie: Option<HeaderValue>| {
        let form = FormFields::from_preferences(&subscriber.preferences);
        let body = render(
            &state,
            &subscriber,
            &form,
            &FieldErrors::default(),
            None,
            &cookie,
            likes_panel(&state, &url, Some(outcome)),
        );
        page(status, body, set_cookie)
    };
    let refused = |why: String| LikesOutcome {
        refused: Some(why),
        ..LikesOutcome::default()
    };
    let form = match LikesForm::read(multipart).await {
        Ok(form) => form,
        // Nothing is done with a form that did not arrive whole, so no CSRF check is owed.
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let why = format!(
                "the file is larger than {} KiB, the most this page takes. Export fewer \
                 papers, or without abstracts and notes, or paste their ids instead.",
                state.max_body_bytes / 1024
            );
            return Ok(answer(e.status(), &refused(why), set_cookie));
        }
        Err(e) => {
            tracing::info!(error = %e, "unreadable likes form");
            let why = "the form did not arrive whole; please send it again.".to_string();
            return Ok(answer(StatusCode::BAD_REQUEST, &refused(why), set_cookie));
        }
    };
    check_csrf(&headers, &state.links, &form.csrf)?;
    state.guard.likes_from(client.ip, subscriber.id)?;
    let text = match form.file {
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                let why = "the file is not UTF-8 text (save or export it as UTF-8).".to_string();
                return Ok(answer(
                    StatusCode::UNPROCESSABLE_ENTITY,
                    &refused(why),
                    set_cookie,
                ));
            }
        },
        None => form.papers,
    };
    let list = match SeedList::parse(&text) {
        Ok(list) => list,
        Err(e) => {
            return Ok(answer(
                StatusCode::UNPROCESSABLE_ENTITY,
                &refused(format!("{e}.")),
                set_cookie,
            ));
        }
    };
    let now = Utc::now();
    let resolution = resolve_seeds(&state.store, &state.arxiv, &list, now).await?;
    let recorded = if resolution.papers.is_empty() {
        0
    } else {
        taste::rate(
            &state.store,
            subscriber.id,
            &resolution.paper_ids(),
            Rating::More,
            RatingSource::Import,
            now,
        )
        .await?
    };
    let outcome = LikesOutcome {
        refused: None,
        recorded,
        fetched: resolution
            .fetched()
            .map(|p| (p.key.to_string(), p.title.clone()))
            .collect(),
        unresolved: resolution
            .unresolved
            .iter()
            .map(|u| (u.entry.clone(), u.reason.clone()))
            .collect(),
    };
    tracing::info!(
        subscriber = subscriber.id,
        entries = list.entries.len(),
        recorded,
        fetched = outcome.fetched.len(),
        unresolved = outcome.unresolved.len(),
        "papers liked"
    );
    Ok(answer(StatusCode::OK, &outcome, set_cookie))
}
