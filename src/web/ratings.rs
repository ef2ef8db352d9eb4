//! "More / less like this": `POST /digests/{id}/rate?t=…` records (or takes back) a
//! reader's rating of one paper of that digest, and `POST /preferences/{token}/ratings`
//! removes one of their ratings or all of them. Both are forms under the CSRF rules of
//! the other forms, limited per client, answered with a 303 back to where the reader
//! was. A GET of either address records nothing (mail filters follow links): it only
//! leads back to the page.

use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Redirect;
use axum::routing::post;
use axum::{Form, Router};
use chrono::Utc;
use serde::Deserialize;

use super::guard::{Client, LinkToken, check_csrf, digest_for, subscriber_for};
use super::{AppState, WebError};
use crate::digest::taste;
use crate::domain::token::Purpose;
use crate::domain::{Rating, RatingSource};
use crate::email::digest::anchor;

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/digests/{id}/rate",
            post(rate_from_digest).get(back_to_digest),
        )
        .route(
            "/preferences/{token}/ratings",
            post(change_from_preferences).get(back_to_preferences),
        )
}

/// What a rating form posts; absent fields are empty.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct RatingForm {
    csrf: String,
    /// The paper's id, as its entry on the page carries it.
    paper: String,
    /// `more`, `less` or `remove` on a digest's page; `remove` or `remove-all` on the
    /// settings page.
    action: String,
}

impl RatingForm {
    fn paper(&self) -> Result<i64, WebError> {
        self.paper.trim().parse().map_err(|_| {
            WebError::BadRequest("The form did not say which paper: reload the page and try again.")
        })
    }
}

/// Rates a paper of the digest (or takes the rating back), then shows the paper again.
#[tracing::instrument(skip_all, fields(digest = id, ip = %client.ip))]
async fn rate_from_digest(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(token): Query<LinkToken>,
    Form(form): Form<RatingForm>,
) -> Result<Redirect, WebError> {
    state.guard.ratings_from(client.ip)?;
    let digest = digest_for(&state, id, &token.t).await?;
    check_csrf(&headers, &state.links, &form.csrf)?;
    let paper_id = form.paper()?;
    let rating = match form.action.as_str() {
        "more" => Some(Rating::More),
        "less" => Some(Rating::Less),
        "remove" => None,
        _ => {
            return Err(WebError::BadRequest(
                "Choose \u{201c}More like this\u{201d} or \u{201c}Less like this\u{201d}.",
            ));
        }
    };
    if !state.store.digest_holds(id, paper_id).await? {
        return Err(WebError::BadRequest(
            "That paper is not in this digest, so nothing was recorded.",
        ));
    }
    let subscriber_id = digest.subscriber_id;
    let now = Utc::now();
    match rating {
        Some(rating) => {
            taste::rate(
                &state.store,
                subscriber_id,
                &[paper_id],
                rating,
                RatingSource::Digest,
                now,
            )
            .await?
        }
        None => taste::unrate(&state.store, subscriber_id, Some(paper_id), now).await?,
    };
    tracing::info!(
        subscriber = subscriber_id,
        paper = paper_id,
        action = %form.action,
        "rating from a digest's page"
    );
    Ok(Redirect::to(&format!(
        "/digests/{id}?{}#{}",
        token.query(),
        anchor(paper_id)
    )))
}

async fn back_to_digest(Path(id): Path<i64>, Query(token): Query<LinkToken>) -> Redirect {
    Redirect::to(&format!("/digests/{id}?{}", token.query()))
}

/// Removes one of the reader's ratings, or all of them, then shows the list again.
#[tracing::instrument(skip_all, fields(ip = %client.ip))]
async fn change_from_preferences(
    State(state): State<AppState>,
    client: Client,
    headers: HeaderMap,
    Path(token): Path<String>,
    Form(form): Form<RatingForm>,
) -> Result<Redirect, WebError> {
    state.guard.ratings_from(client.ip)?;
    let subscriber = subscriber_for(&state, &token, Purpose::Preferences).await?;
    check_csrf(&headers, &state.links, &form.csrf)?;
    let which = match form.action.as_str() {
        "remove" => Some(form.paper()?),
        "remove-all" => None,
        _ => {
            return Err(WebError::BadRequest(
                "Choose a rating to remove, or \u{201c}Remove all\u{201d}.",
            ));
        }
    };
    let removed = taste::unrate(&state.store, subscriber.id, which, Utc::now()).await?;
    tracing::info!(subscriber = subscriber.id, removed, "ratings removed");
    // The token was checked above: it is digits, a dot and URL-safe base64.
    Ok(Redirect::to(&format!("/preferences/{token}#ratings")))
}

async fn back_to_preferences(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Redirect, WebError> {
    // Only a token that checks out goes into the Location header.
    subscriber_for(&state, &token, Purpose::Preferences).await?;
    Ok(Redirect::to(&format!("/preferences/{token}")))
}
