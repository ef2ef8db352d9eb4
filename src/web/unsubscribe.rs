//! `GET /unsubscribe/{token}` shows one button; `POST` to the same address unsubscribes at
//! once (RFC 8058 one-click: `List-Unsubscribe=One-Click`, urlencoded or multipart, no
//! cookie, no CSRF token, 200 and never a redirect). A GET never unsubscribes: link
//! scanners open every link in a mail.

use axum::Router;
use axum::extract::{FromRequest, Multipart, Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use axum::routing::get;
use chrono::Utc;

use super::guard::subscriber_for;
use super::pages::{self, page};
use super::{AppState, WebError};
use crate::domain::SubscriberStatus;
use crate::domain::token::Purpose;

pub fn router() -> Router<AppState> {
    Router::new().route("/unsubscribe/{token}", get(show).post(unsubscribe))
}

#[tracing::instrument(skip_all)]
async fn show(
    State(state): State<AppState>,
    Path(token): Path<String>,
) -> Result<Response, WebError> {
    let subscriber = subscriber_for(&state, &token, Purpose::Unsubscribe).await?;
    let preferences_url = state.links.preferences(subscriber.id, &subscriber.link_key);
    Ok(page(
        StatusCode::OK,
        pages::render(&pages::Unsubscribe {
            email: subscriber.email.as_str(),
            preferences_url: &preferences_url,
        }),
        None,
    ))
}

/// Whether the body carries `List-Unsubscribe=One-Click`, in either form encoding.
async fn is_one_click(state: &AppState, request: Request) -> bool {
    let content_type = request
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if content_type.starts_with("multipart/form-data") {
        let Ok(mut multipart) = Multipart::from_request(request, state).await else {
            return false;
        };
        while let Ok(Some(field)) = multipart.next_field().await {
            if field.name() == Some("List-Unsubscribe") {
                return field.text().await.is_ok_and(|v| v.trim() == "One-Click");
            }
        }
        return false;
    }
    let Ok(body) = axum::body::to_bytes(request.into_body(), 64 * 1024).await else {
        return false;
    };
    url::form_urlencoded::parse(&body)
        .any(|(k, v)| k == "List-Unsubscribe" && v.trim() == "One-Click")
}

#[tracing::instrument(skip_all)]
async fn unsubscribe(
    State(state): State<AppState>,
    Path(token): Path<String>,
    request: Request,
) -> Result<Response, WebError> {
    let subscriber = subscriber_for(&state, &token, Purpose::Unsubscribe).await?;
    if !is_one_click(&state, request).await {
        return Ok(page(
            StatusCode::BAD_REQUEST,
            pages::render(&pages::Message {
                title: "Nothing changed",
                message: "This request did not say List-Unsubscribe=One-Click, so nothing changed. Use the button on the unsubscribe page.",
            }),
            None,
        ));
    }
    use SubscriberStatus::*;
    let changed = state
        .store
        .change_status(
            subscriber.id,
            &[Pending, Active, Paused],
            Unsubscribed,
            Utc::now(),
        )
        .await?;
    tracing::info!(subscriber = subscriber.id, changed, "one-click unsubscribe");
    let preferences_url = state.links.preferences(subscriber.id, &subscriber.link_key);
    Ok(page(
        StatusCode::OK,
        pages::render(&pages::Unsubscribed {
            email: subscriber.email.as_str(),
            preferences_url: &preferences_url,
        }),
        None,
    ))
}
