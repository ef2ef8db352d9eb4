//! `GET /digests/{id}?t={token}`: a whole digest (every match, not only the emailed top N)
//! in the browser. The token is signed for that digest; a wrong one is a plain 404.

use axum::Router;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::get;
use serde::Deserialize;

use super::pages::{self, page};
use super::{AppState, WebError};
use crate::digest;
use crate::domain::token::Purpose;

pub fn router() -> Router<AppState> {
    Router::new().route("/digests/{id}", get(show))
}

#[derive(Debug, Deserialize)]
struct Token {
    #[serde(default)]
    t: String,
}

#[tracing::instrument(skip_all, fields(digest = id))]
async fn show(
    State(state): State<AppState>,
    Path(id): Path<i64>,
    Query(token): Query<Token>,
) -> Result<Response, WebError> {
    let digest = state.store.digest(id).await?.ok_or(WebError::NotFound)?;
    if !state
        .links
        .keys()
        .verify(&token.t, Purpose::Archive, id, &digest.archive_key)
    {
        return Err(WebError::NotFound);
    }
    let subscriber = state
        .store
        .subscriber(digest.subscriber_id)
        .await?
        .ok_or(WebError::NotFound)?;
    let view = digest::stored_view(&state.store, &state.links, &digest, &subscriber, true).await?;
    Ok(page(
        StatusCode::OK,
        pages::render(&pages::Archive { d: &view }),
        None,
    ))
}
