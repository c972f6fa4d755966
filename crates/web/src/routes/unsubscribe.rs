//! The digest's unsubscribe link: works without logging in, for the user it was signed for.
//! GET shows a confirmation button (mail scanners follow links; they must not unsubscribe anyone);
//! POST unsubscribes, which is also what a mail client's one-click `List-Unsubscribe-Post` sends.

use super::link_page;
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::response::Html;
use pulseboard_domain::Timestamp;
use pulseboard_mail::{html_escape, unsubscribe};
use pulseboard_storage::users;
use serde::Deserialize;

/// The signed link's query: `u`, the user's id; `t`, the signature.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct Link {
    u: i64,
    t: String,
}

fn check(state: &AppState, link: &Link) -> ApiResult<()> {
    if unsubscribe::verify(&state.signing_key, link.u, &link.t) {
        Ok(())
    } else {
        Err(ApiError::NotFound(
            "This unsubscribe link is not valid".into(),
        ))
    }
}

/// `GET /unsubscribe?u=&t=`: a page that asks before unsubscribing (mail scanners follow links).
#[utoipa::path(
    get,
    path = "/unsubscribe",
    tag = "account",
    security(()),
    params(Link),
    responses(
        (status = 200, description = "a page with a button that unsubscribes", body = String, content_type = "text/html"),
        (status = 400, description = "u or t is missing or malformed", body = crate::openapi::ErrorBody),
        (status = 404, description = "the link is not valid", body = crate::openapi::ErrorBody)
    )
)]
pub async fn confirm(
    State(state): State<AppState>,
    Query(link): Query<Link>,
) -> ApiResult<Html<String>> {
    check(&state, &link)?;
    Ok(link_page(&format!(
        "<h1>Stop the daily digest?</h1><form method=\"post\" action=\"unsubscribe?u={}&amp;t={}\">\
         <button type=\"submit\">Unsubscribe</button></form>",
        link.u,
        html_escape(&link.t)
    )))
}

/// `POST /unsubscribe?u=&t=`: turns the daily digest off (also a mail client's one-click unsubscribe).
#[utoipa::path(
    post,
    path = "/unsubscribe",
    tag = "account",
    security(()),
    params(Link),
    responses(
        (status = 200, description = "unsubscribed from the daily digest", body = String, content_type = "text/html"),
        (status = 400, description = "u or t is missing or malformed", body = crate::openapi::ErrorBody),
        (status = 404, description = "the link is not valid", body = crate::openapi::ErrorBody)
    )
)]
pub async fn apply(
    State(state): State<AppState>,
    Query(link): Query<Link>,
) -> ApiResult<Html<String>> {
    check(&state, &link)?;
    let settings = users::Settings {
        digest_enabled: Some(false),
        ..Default::default()
    };
    users::update_settings(&state.db, link.u, settings, Timestamp::now()).await?;
    tracing::info!(user_id = link.u, "unsubscribed from the digest");
    Ok(link_page(
        "<h1>You are unsubscribed</h1><p>You will no longer receive the daily digest. \
         You can turn it back on in your settings.</p>",
    ))
}
