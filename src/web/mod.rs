//! The web entry point: one axum router per feature, merged here, sharing [`AppState`].
//! Handlers call into the store and the flow; nothing below calls back up here.

mod health;

use axum::Router;

use crate::store::Store;

/// What every handler can reach.
#[derive(Clone)]
pub struct AppState {
    pub store: Store,
}

impl AppState {
    pub fn new(store: Store) -> Self {
        Self { store }
    }
}

pub fn router(state: AppState) -> Router {
    Router::new().merge(health::router()).with_state(state)
}
