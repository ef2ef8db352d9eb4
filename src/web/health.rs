//! `GET /healthz`: 200 when the database answers, with the age of each feed's last
//! successful fetch; 503 otherwise. `GET /metrics`: Prometheus text format.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{Value, json};

use super::AppState;
use crate::error::chain;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

/// `/metrics`, on the public listener or on the admin one.
pub fn metrics_router() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

#[tracing::instrument(skip_all)]
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if let Err(e) = state.store.ping().await {
        tracing::error!(error = %chain(&e), "health check: database unreachable");
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({ "status": "unavailable", "database": "unreachable" })),
        );
    }
    let now = Utc::now();
    let feeds: Vec<Value> = match state.store.list_feeds().await {
        Ok(feeds) => feeds
            .into_iter()
            .map(|f| {
                json!({
                    "name": f.name,
                    "last_success_age_secs": f.health.last_success_at.map(|t| (now - t).num_seconds()),
                    "consecutive_failures": f.health.consecutive_failures,
                    "degraded": f.health.warning.is_some(),
                })
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %chain(&e), "health check: cannot list feeds");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "error" })),
            );
        }
    };
    let stopped = state
        .delivery_stopped
        .lock()
        .ok()
        .and_then(|slot| slot.clone());
    if let Some(reason) = stopped {
        // Mail is not leaving until the operator fixes the relay settings and restarts.
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({
                "status": "unavailable",
                "database": "ok",
                "delivery": "stopped",
                "delivery_error": reason,
                "feeds": feeds,
            })),
        );
    }
    (
        StatusCode::OK,
        Json(json!({ "status": "ok", "database": "ok", "feeds": feeds })),
    )
}

#[tracing::instrument(skip_all)]
async fn metrics(State(state): State<AppState>) -> axum::response::Response {
    use axum::response::IntoResponse;
    match crate::metrics::render(&state.store).await {
        Ok(text) => (
            [(
                axum::http::header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            text,
        )
            .into_response(),
        Err(e) => {
            tracing::error!(
                error = %chain(e.as_ref()),
                "metrics: cannot read the database"
            );
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
