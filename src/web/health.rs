//! `GET /healthz`: 200 when the database answers, with the age of each feed's last
//! successful fetch; 503 otherwise.

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use chrono::Utc;
use serde_json::{Value, json};

use super::AppState;

pub fn router() -> Router<AppState> {
    Router::new().route("/healthz", get(healthz))
}

#[tracing::instrument(skip_all)]
async fn healthz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    if let Err(e) = state.store.ping().await {
        tracing::error!(error = %e, "health check: database unreachable");
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
                })
            })
            .collect(),
        Err(e) => {
            tracing::error!(error = %e, "health check: cannot list feeds");
            return (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "database": "error" })),
            );
        }
    };
    (
        StatusCode::OK,
        Json(json!({ "status": "ok", "database": "ok", "feeds": feeds })),
    )
}
