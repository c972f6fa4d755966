//! The digest's unsubscribe link: works without logging in, for the user it was signed for.
//! GET shows a confirmation button (mail scanners follow links; they must not unsubscribe anyone);
//! POST unsubscribes, which is also what a mail client's one-click `List-Unsubscribe-Post` sends.

use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use axum::extract::{Query, State};
use axum::response::Html;
use pulseboard_domain::Timestamp;
use pulseboard_mail::{html_escape, unsubscribe};
use pulseboard_storage::users;
use serde::Deserialize;

#[derive(Deserialize)]
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

fn page(body: &str) -> Html<String> {
    Html(format!(
        "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" \
         content=\"width=device-width, initial-scale=1\"><title>Pulseboard</title></head>\
         <body style=\"font-family: system-ui, sans-serif; max-width: 32rem; margin: 3rem auto; padding: 0 1rem\">\
         {body}</body></html>"
    ))
}

pub async fn confirm(
    State(state): State<AppState>,
    Query(link): Query<Link>,
) -> ApiResult<Html<String>> {
    check(&state, &link)?;
    Ok(page(&format!(
        "<h1>Stop the daily digest?</h1><form method=\"post\" action=\"unsubscribe?u={}&amp;t={}\">\
         <button type=\"submit\">Unsubscribe</button></form>",
        link.u,
        html_escape(&link.t)
    )))
}

pub async fn apply(
    State(state): State<AppState>,
    Query(link): Query<Link>,
) -> ApiResult<Html<String>> {
    check(&state, &link)?;
    let settings = users::Settings {
        digest_enabled: Some(false),
        ..Default::default()
    };
    users::update_settings(state.db.pool(), link.u, settings, Timestamp::now()).await?;
    tracing::info!(user_id = link.u, "unsubscribed from the digest");
    Ok(page(
        "<h1>You are unsubscribed</h1><p>You will no longer receive the daily digest. \
         You can turn it back on in your settings.</p>",
    ))
}
