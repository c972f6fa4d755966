//! The OpenAPI document (generated: see [`crate::openapi`]) and a page that browses it, with no
//! assets from the network.

use axum::http::header::CONTENT_TYPE;
use axum::response::{Html, IntoResponse};

pub async fn openapi() -> impl IntoResponse {
    (
        [(CONTENT_TYPE, "application/json")],
        crate::openapi::document_json(),
    )
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
