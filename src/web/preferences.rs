//! `GET`/`POST /preferences/{token}`: a reader edits queries and settings (seeing what
//! each query line finds among the recent papers), pauses, resumes, unsubscribes or comes
//! back, and sees the papers they rated (removing them posts to
//! `/preferences/{token}/ratings`); `GET /preferences/{token}/preview` shows what their
//! next digest would hold if it were sent now, storing nothing; `POST
//! /preferences/{token}/likes` takes a list of papers they like. The signed token in the
//! link is the only key; a token that does not verify is a plain 404 and changes nothing.

use axum::extract::{DefaultBodyLimit, Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::{get, post};
use axum::{Form, Router};
use chrono::Utc;

use super::forms::{Choices, FieldErrors, FormFields};
use super::guard::{Client, check_csrf, csrf_for_page, subscriber_for};
use super::pages::{
    self, CONSENT_TEXT, CONSENT_VERSION, LikesOutcome, LikesPanel, RatingList, page,
};
use super::recent::{LinePreview, query_lines};
use super::{AppState, WebError};
use crate::digest;
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
        .route("/preferences/{token}/preview", get(digest_preview))
        // A reference manager's export runs to about 2 KB a paper with abstracts: this
        // form alone takes more than the other forms' limit.
        .route(
            "/preferences/{token}/likes",
            post(like).layer(DefaultBodyLimit::max(LIKES_MAX_BYTES)),
        )
}

/// The largest list of liked papers the page takes (500 papers of a BibTeX export with
/// abstracts, with room to spare).
const LIKES_MAX_BYTES: usize = 2 * 1024 * 1024;

fn status_text(status: SubscriberStatus) -> &'static str {
    match status {
        SubscriberStatus::Pending => "waiting for your confirmation",
        SubscriberStatus::Active => "subscribed",
        SubscriberStatus::Paused => "paused",
        SubscriberStatus::Unsubscribed => "unsubscribed",
        SubscriberStatus::Bounced => "stopped: mail to this address bounced",
    }
}

/// What the settings page shows besides the form: what each query line finds.
async fn previews(
    state: &AppState,
    subscriber: &Subscriber,
    form: &FormFields,
) -> Result<Vec<LinePreview>, WebError> {
    if matches!(
        subscriber.status,
        SubscriberStatus::Unsubscribed | SubscriberStatus::Bounced
    ) {
        return Ok(Vec::new());
    }
    state
        .preview
        .preview(&state.store, query_lines(&form.queries))
        .await
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

/// The page, with what each line of the queries box finds and the reader's ratings;
/// `token` is the page's own. `likes` is what a list of liked papers just sent came to,
/// on the page that answers it.
#[allow(clippy::too_many_arguments)]
async fn render(
    state: &AppState,
    token: &str,
    subscriber: &Subscriber,
    form: &FormFields,
    errors: &FieldErrors,
    flash: Option<&str>,
    cookie: &str,
    likes: Option<&LikesOutcome>,
) -> Result<String, WebError> {
    let previews = previews(state, subscriber, form).await?;
    let ratings = ratings(state, token, subscriber).await?;
    let choices = Choices::for_form(form, false);
    let csrf = state.links.keys().csrf_token(cookie);
    let digest_preview_url = format!("/preferences/{token}/preview");
    let feed_url = state.links.feed(subscriber.id, &subscriber.link_key);
    let gets_digests = subscriber.status.gets_digests();
    let likes_url = format!("/preferences/{token}/likes");
    Ok(pages::render(&pages::Preferences {
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
        previews: &previews,
        digest_preview_url: gets_digests.then_some(digest_preview_url.as_str()),
        feed_url: gets_digests.then_some(feed_url.as_str()),
        ratings: &ratings,
        likes: LikesPanel {
            url: &likes_url,
            max_entries: MAX_SEED_ENTRIES,
            max_kib: LIKES_MAX_BYTES / 1024,
            outcome: likes,
        },
    }))
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
            &token,
            &subscriber,
            &form,
            &FieldErrors::default(),
            None,
            &cookie,
            None,
        )
        .await?,
        set_cookie,
    ))
}

/// What the reader's next digest would hold if it were composed now, as its page shows
/// it: the same view as `paperboy digest preview`. A GET that stores and sends nothing.
#[tracing::instrument(skip_all, fields(ip = %client.ip))]
async fn digest_preview(
    State(state): State<AppState>,
    client: Client,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let subscriber = subscriber_for(&state, &token, Purpose::Preferences).await?;
    if !subscriber.status.gets_digests() {
        return Err(WebError::NotFound);
    }
    // Composing reads and ranks the whole window: limited like the query previews.
    state.guard.preview_from(client.ip)?;
    let (view, _) = digest::preview(&state.store, &state.links, &subscriber, Utc::now()).await?;
    let preferences_url = format!("/preferences/{token}");
    Ok(page(
        StatusCode::OK,
        pages::render(&pages::DigestPreview {
            d: &view,
            preferences_url: &preferences_url,
            rate: None,
        }),
        None,
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
                        &token,
                        &subscriber,
                        &refill,
                        &errors,
                        None,
                        &cookie,
                        None,
                    )
                    .await?,
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
            &token,
            &subscriber,
            &current,
            &FieldErrors::default(),
            Some(flash.unwrap_or("Nothing to change.")),
            &cookie,
            None,
        )
        .await?,
        set_cookie,
    ))
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
    let (status, outcome) = take_likes(&state, &client, &headers, &subscriber, multipart).await?;
    let form = FormFields::from_preferences(&subscriber.preferences);
    let body = render(
        &state,
        &token,
        &subscriber,
        &form,
        &FieldErrors::default(),
        None,
        &cookie,
        Some(&outcome),
    )
    .await?;
    Ok(page(status, body, set_cookie))
}

/// Reads the form, checks it (CSRF, the rate limits), and records the papers of its list:
/// the status to answer with and what the list came to.
async fn take_likes(
    state: &AppState,
    client: &Client,
    headers: &HeaderMap,
    subscriber: &Subscriber,
    multipart: Multipart,
) -> Result<(StatusCode, LikesOutcome), WebError> {
    let refused = |status: StatusCode, why: String| {
        let outcome = LikesOutcome {
            refused: Some(why),
            ..LikesOutcome::default()
        };
        Ok((status, outcome))
    };
    let form = match LikesForm::read(multipart).await {
        Ok(form) => form,
        // Nothing is done with a form that did not arrive whole, so no CSRF check is owed.
        Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => {
            let why = format!(
                "the file is larger than {} KiB, the most this page takes. Export fewer \
                 papers, or without abstracts and notes, or paste their ids instead.",
                LIKES_MAX_BYTES / 1024
            );
            return refused(e.status(), why);
        }
        Err(e) => {
            tracing::info!(error = %e, "unreadable likes form");
            let why = "the form did not arrive whole; please send it again.".to_string();
            return refused(StatusCode::BAD_REQUEST, why);
        }
    };
    check_csrf(headers, &state.links, &form.csrf)?;
    state.guard.likes_from(client.ip, subscriber.id)?;
    let text = match form.file {
        Some(bytes) => match String::from_utf8(bytes) {
            Ok(text) => text,
            Err(_) => {
                let why = "the file is not UTF-8 text (save or export it as UTF-8).".to_string();
                return refused(StatusCode::UNPROCESSABLE_ENTITY, why);
            }
        },
        None => form.papers,
    };
    let list = match SeedList::parse(&text) {
        Ok(list) => list,
        Err(e) => return refused(StatusCode::UNPROCESSABLE_ENTITY, format!("{e}.")),
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
    Ok((StatusCode::OK, outcome))
}
