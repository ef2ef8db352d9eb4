//! `GET /digests/{id}?t={token}`: a whole digest (every match, not only the emailed top N)
//! in the browser, each paper with its "more / less like this" buttons and what the
//! reader already said of it. The token is signed for that digest; a wrong one is a plain
//! 404. The page only shows: the buttons post to `/digests/{id}/rate`.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::Response;
use axum::routing::get;

use super::guard::{LinkToken, csrf_for_page, digest_for};
use super::pages::{self, RateButtons, page};
use super::{AppState, WebError};
use crate::digest;

pub fn router() -> Router<AppState> {
    Router::new().route("/digests/{id}", get(show))
}

#[tracing::instrument(skip_all, fields(digest = id))]
async fn show(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Query(token): Query<LinkToken>,
) -> Result<Response, WebError> {
    let digest = digest_for(&state, id, &token.t).await?;
    let subscriber = state
        .store
        .subscriber(digest.subscriber_id)
        .await?
        .ok_or(WebError::NotFound)?;
    let view = digest::stored_view(&state.store, &state.links, &digest, &subscriber, true).await?;
    let (cookie, set_cookie) = csrf_for_page(&headers, &state.links)?;
    let rated = state.store.ratings_of(subscriber.id).await?;
    let action = format!("/digests/{id}/rate?{}", token.query());
    let rate = RateButtons::new(action, state.links.keys().csrf_token(&cookie), &rated);
    Ok(page(
        StatusCode::OK,
        pages::render(&pages::Archive {
            d: &view,
            rate: Some(&rate),
        }),
        set_cookie,
    ))
}
