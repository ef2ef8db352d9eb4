//! The stylesheet, the small script and the icon of the pages, built into the binary.

use axum::Router;
use axum::http::header;
use axum::routing::get;

use super::AppState;

const STYLE: &str = include_str!("../../assets/style.css");
const SCRIPT: &str = include_str!("../../assets/app.js");
/// A blue square with a white "p".
const ICON_SVG: &str = include_str!("../../assets/favicon.svg");
/// The same icon drawn at 32 px, as a PNG inside an ICO, for `/favicon.ico`.
const ICON_ICO: &[u8] = include_bytes!("../../assets/favicon.ico");

pub fn router() -> Router<AppState> {
    Router::new()
        .route(
            "/static/style.css",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/css; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    STYLE,
                )
            }),
        )
        .route(
            "/static/app.js",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
                        (header::CACHE_CONTROL, "public, max-age=3600"),
                    ],
                    SCRIPT,
                )
            }),
        )
        .route(
            "/static/favicon.svg",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "image/svg+xml"),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    ICON_SVG,
                )
            }),
        )
        .route(
            "/favicon.ico",
            get(|| async {
                (
                    [
                        (header::CONTENT_TYPE, "image/x-icon"),
                        (header::CACHE_CONTROL, "public, max-age=86400"),
                    ],
                    ICON_ICO,
                )
            }),
        )
}
