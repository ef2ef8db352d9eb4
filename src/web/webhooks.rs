//! `POST /webhooks/bounces/{provider}`: bounce and complaint events pushed by a sending
//! provider. Only Mailgun's (signed, fresh, used once) is served, and only when its
//! signing key is set; any other provider is a 404. An unauthenticated, tampered, stale or
//! replayed call changes nothing and answers 401.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use chrono::Utc;

use super::{AppState, WebError};
use crate::delivery::webhooks::{WebhookError, WebhookOutcome, mailgun};
use crate::store::Recorded;

pub fn router() -> Router<AppState> {
    Router::new().route("/webhooks/bounces/{provider}", post(receive))
}

#[tracing::instrument(skip_all, fields(provider = %provider))]
async fn receive(
    State(state): State<AppState>,
    Path(provider): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let Some(key) = state.mailgun_key.as_ref().filter(|_| provider == "mailgun") else {
        return Err(WebError::NotFound);
    };
    match mailgun(&state.store, key.expose(), &body, Utc::now()).await {
        Ok(outcome) => {
            let said = match outcome {
                WebhookOutcome::Recorded(Recorded::Stored {
                    suppressed: true, ..
                }) => "recorded; the reader is suppressed",
                WebhookOutcome::Recorded(Recorded::Stored { .. }) => "recorded",
                WebhookOutcome::Recorded(Recorded::Duplicate) => "known already",
                WebhookOutcome::Recorded(Recorded::UnknownDelivery) | WebhookOutcome::Ignored => {
                    "nothing to record"
                }
            };
            tracing::info!("webhook event: {said}");
            Ok((StatusCode::OK, "ok\n").into_response())
        }
        Err(WebhookError::Unauthenticated(why)) => {
            tracing::warn!(why, "webhook call refused");
            Ok((StatusCode::UNAUTHORIZED, "not authenticated\n").into_response())
        }
        Err(e) => Err(WebError::Internal(e.into())),
    }
}
