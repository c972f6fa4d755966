//! The OpenAPI document and a page that browses it, with no assets from the network.

use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse};

pub const OPENAPI_JSON: &str = include_str!("../../openapi.json");

pub async fn openapi() -> impl IntoResponse {
    ([(CONTENT_TYPE, "application/json")], OPENAPI_JSON)
}

pub async fn page() -> Html<&'static str> {
    Html(include_str!("docs.html"))
}

pub async fn script() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "text/javascript; charset=utf-8")],
        include_str!("docs.js"),
    )
}
