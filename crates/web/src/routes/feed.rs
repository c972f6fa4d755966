//! Watch: the news feed, `GET /feed`: the user's events (resources added and deleted, flips of
//! availability, new screenshots), newest first, kept after their resource is gone.

use super::watch_view::{EventView, Paging, QueryParams};
use crate::auth::{CurrentUser, Scope};
use crate::error::ApiResult;
use crate::state::AppState;
use axum::extract::{OriginalUri, RawQuery, State};
use axum::Json;
use pulseboard_storage::feed;
use serde_json::Value;

/// `GET /feed?page=&per_page=`: the user's events, newest first.
#[utoipa::path(
    get,
    path = "/feed",
    tag = "resources",
    params(("page" = Option<i64>, Query, minimum = 1, description = "from 1"), ("per_page" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100; 10 by default")),
    responses(
        (status = 200, description = "a page of the user's events, newest first", body = crate::openapi::EventPage),
        (status = 403, description = "an API token without the resources:read scope", body = crate::openapi::ErrorBody),
        (status = 422, description = "page or per_page is invalid", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:read")))
)]
pub async fn feed(
    State(state): State<AppState>,
    user: CurrentUser,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    user.require(Scope::ResourcesRead)?;
    let q = QueryParams::parse(raw.as_deref());
    let paging = Paging::parse(&q)?;
    let page = feed::feed(&state.db, user.id, paging.per_page, paging.offset()).await?;
    let items: Vec<EventView> = page.items.into_iter().map(Into::into).collect();
    Ok(Json(paging.envelope(items, page.total, uri.path(), &q)))
}
