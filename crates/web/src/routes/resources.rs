//! Watch: the resource catalogue: add one URL, list with filters and pages, read one with its
//! checks, events and screenshot, delete. Everything is scoped to the current user; another
//! user's resource is a 404, like a task. A multipart `POST /resources` is a ZIP import
//! ([`super::imports`]).

use super::upload::media_type;
use super::watch_view::{
    internal, invalid, next_round, not_found, parse_alert_settings, parse_interval, resource_key,
    screenshot_path, AlertFields, EventView, Paging, QueryParams, ResourceView,
};
use crate::auth::{CurrentUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::etag::{self, IfNoneMatch};
use crate::extract::Input;
use crate::idempotency;
use crate::state::AppState;
use crate::ApiPrefix;
use axum::body::Body;
use axum::extract::{FromRequest, OriginalUri, Path, RawQuery, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulseboard_domain::{ResourceUrl, Timestamp};
use pulseboard_storage::resources::{self, AlertSettings, Filter};
use pulseboard_storage::{channels, feed, screenshots, StorageError};
use serde::Deserialize;
use serde_json::{json, Value};

/// Events shown with one resource.
const RESOURCE_EVENTS: i64 = 50;

// ---------------------------------------------------------------------------------------------
// POST /resources: one URL (JSON or form); a multipart body is a ZIP import

#[derive(Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewResource {
    url: String,
    /// Optional own check interval (see `watch_view::parse_interval`).
    #[serde(default)]
    #[schema(value_type = Option<i64>)]
    check_interval_secs: Option<Value>,
    /// Consecutive failed checks before the down alert, 1 to 100 (default 1).
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 100)]
    alert_after: Option<Value>,
    /// Failed checks in a row that delete the resource, 0 to 1000 (0: never); null or absent
    /// follows the server's `monitor.max_retries`.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 0, maximum = 1000)]
    delete_after_failures: Option<Value>,
    /// A reminder every 1 to 168 hours while down; null or absent for none.
    #[serde(default)]
    #[schema(value_type = Option<i64>, minimum = 1, maximum = 168)]
    remind_every_hours: Option<Value>,
    /// Ids of the user's channels that get its alerts; null or absent for all of them.
    #[serde(default)]
    #[schema(value_type = Option<Vec<i64>>)]
    channels: Option<Value>,
}

/// `POST /resources`: adds one URL (JSON or form), or imports a ZIP of CSV files (multipart).
#[utoipa::path(
    post,
    path = "/resources",
    tag = "resources",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 255, pattern = "^[!-~]{1,255}$", description = "1-255 visible ASCII characters: a retry with the same key and body answers the first response within 24 hours; the same key with another body is 422")),
    request_body(description = "one URL (JSON or form), or a ZIP of CSV files to import (multipart, field `file`)", content((NewResource = "application/json"), (NewResource = "application/x-www-form-urlencoded"), (crate::openapi::ZipUpload = "multipart/form-data"))),
    responses(
        (status = 201, description = "added (or, with Idempotent-Replayed: true, the first answer to this Idempotency-Key)", body = ResourceView),
        (status = 202, description = "a ZIP import was accepted: follow the processing request", body = crate::openapi::ImportAccepted),
        (status = 403, description = "an API token without the resources:write scope", body = crate::openapi::ErrorBody),
        (status = 409, description = "the URL is already in the catalogue, or this Idempotency-Key is still being processed", body = crate::openapi::ErrorBody),
        (status = 422, description = "a field is invalid (details names it): url, check_interval_secs, alert_after, delete_after_failures, remind_every_hours, or channels (not a list of the user's channel ids)", body = crate::openapi::ErrorBody),
        (status = 429, description = "too many imports of this user are unfinished (Retry-After)", body = crate::openapi::ErrorBody),
        (status = 507, description = "the server has too little disk space for the upload", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:write")))
)]
pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    prefix: ApiPrefix,
    req: Request,
) -> ApiResult<Response> {
    user.require(Scope::ResourcesWrite)?;
    if media_type(req.headers()) == "multipart/form-data" {
        return super::imports::import(state, user, prefix, req).await;
    }
    // This route lifts the app-wide body limit for uploads; a JSON or form body keeps it.
    let limit = state.config.http.json_body_limit_bytes;
    let key = idempotency::key_of(req.headers())?;
    let (parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::PayloadTooLarge("Request body is too large".into()))?;
    let key = key.map(|key| idempotency::Key {
        fingerprint: idempotency::fingerprint(&parts.method, parts.uri.path(), &bytes),
        key,
    });
    let Input(body) =
        Input::<NewResource>::from_request(Request::from_parts(parts, Body::from(bytes)), &state)
            .await?;
    let url = ResourceUrl::parse(&body.url)?;
    let interval = match &body.check_interval_secs {
        Some(v) => parse_interval(v, &state.config.monitor)?,
        None => None,
    };
    let settings = parse_alert_settings(
        &state,
        user.id,
        AlertFields {
            alert_after: body.alert_after.as_ref(),
            delete_after_failures: body.delete_after_failures.as_ref(),
            remind_every_hours: body.remind_every_hours.as_ref(),
            channels: body.channels.as_ref(),
        },
    )
    .await?;
    let own_channels = settings.channels.clone().flatten();
    let max_retries = state.config.monitor.max_retries;
    let (user_id, now, new_url) = (user.id, Timestamp::now(), url.clone());
    let already = |e: StorageError| match e {
        StorageError::Conflict => {
            ApiError::Conflict(format!("{} is already in your catalogue", url.full_url()))
        }
        other => other.into(),
    };
    if let Some(key) = key {
        // With an Idempotency-Key: the key, the resource and its answer in one write.
        let next_round = next_round(&state);
        let outcome = idempotency::create(&state.db, user_id, key, now, move |tx| {
            Box::pin(async move {
                let resource = create_with(tx, user_id, &new_url, interval, &settings, now).await?;
                let view = view_of(resource, next_round, max_retries, own_channels);
                Ok(serde_json::to_string(&view).expect("a resource serialises"))
            })
        })
        .await
        .map_err(already)?;
        return Ok(match outcome {
            Ok(body) => {
                state.due_nudge.nudge();
                idempotency::created(body)
            }
            Err(earlier) => idempotency::answer(earlier),
        });
    }
    let resource = state
        .db
        .write(move |tx| {
            Box::pin(
                async move { create_with(tx, user_id, &new_url, interval, &settings, now).await },
            )
        })
        .await
        .map_err(already)?;
    // Its first check now, not at the next round (it is due; this only asks for the sweep sooner).
    state.due_nudge.nudge();
    let view = view_of(resource, next_round(&state), max_retries, own_channels);
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Adds the resource and, when any were given, its alert settings, in one write.
async fn create_with(
    tx: &mut pulseboard_storage::Conn,
    user_id: i64,
    url: &ResourceUrl,
    interval: Option<i64>,
    settings: &AlertSettings,
    now: i64,
) -> Result<resources::Resource, StorageError> {
    let mut resource = resources::create(tx, user_id, url, interval, now).await?;
    if !settings.is_empty() {
        resources::set_alert_settings(tx, user_id, resource.id, settings).await?;
        // The row as returned before the settings: patch the copy rather than read it again.
        if let Some(a) = settings.alert_after {
            resource.alert_after = a;
        }
        if let Some(d) = settings.delete_after_failures {
            resource.delete_after_failures = d;
        }
        if let Some(r) = settings.remind_every_hours {
            resource.remind_every_hours = r;
        }
        if let Some(c) = &settings.channels {
            resource.all_channels = c.is_none();
        }
    }
    Ok(resource)
}

/// A new resource's view: its schedule, removal policy and own channel list.
fn view_of(
    r: resources::Resource,
    next_round: Option<i64>,
    max_retries: u32,
    own_channels: Option<Vec<i64>>,
) -> ResourceView {
    let id = r.id;
    let lists = own_channels.map(|c| (id, c)).into_iter().collect();
    ResourceView::from(r)
        .scheduled(next_round)
        .policy(max_retries)
        .with_channels(&lists)
}

// ---------------------------------------------------------------------------------------------
// Listing

fn parse_filter(q: &QueryParams) -> ApiResult<Filter> {
    let available = match q.get("availability") {
        None => None,
        Some(v) if v.eq_ignore_ascii_case("true") => Some(true),
        Some(v) if v.eq_ignore_ascii_case("false") => Some(false),
        Some(_) => {
            return Err(invalid(
                "availability",
                "availability must be true or false",
            ))
        }
    };
    let id = match q.get("id") {
        None => None,
        Some(v) => Some(
            v.parse::<i64>()
                .ok()
                .filter(|id| *id > 0)
                .ok_or_else(|| invalid("id", "id must be a positive whole number"))?,
        ),
    };
    let uuid = match q.get("uuid") {
        None => None,
        Some(v) => Some(
            uuid::Uuid::parse_str(v)
                .map_err(|_| invalid("uuid", "uuid must be a UUID"))?
                .hyphenated()
                .to_string(),
        ),
    };
    let domain_zone = match q.get("domain_zone") {
        None => None,
        Some(v) => {
            let v = v.trim_start_matches('.');
            // Same normalisation as hosts: lower case, international names in punycode.
            match url::Host::parse(v) {
                Ok(url::Host::Domain(d)) if d.len() <= 253 => Some(d),
                _ => {
                    return Err(invalid(
                        "domain_zone",
                        "domain_zone must be a domain suffix such as org or co.uk",
                    ))
                }
            }
        }
    };
    Ok(Filter {
        available,
        id,
        uuid,
        domain_zone,
    })
}

/// `GET /resources?availability=&id=&uuid=&domain_zone=&page=&per_page=`
/// With an `ETag` of the body; `If-None-Match` naming it → 304.
#[utoipa::path(
    get,
    path = "/resources",
    tag = "resources",
    params(("availability" = Option<String>, Query, description = "available, unavailable or unchecked"), ("id" = Option<String>, Query, description = "ids, comma-separated"), ("uuid" = Option<String>, Query, description = "uuids, comma-separated"), ("domain_zone" = Option<String>, Query, description = "e.g. com"), ("page" = Option<i64>, Query, minimum = 1, description = "from 1"), ("per_page" = Option<i64>, Query, minimum = 1, maximum = 100, description = "1 to 100; 10 by default"), ("If-None-Match" = Option<String>, Header, description = "an ETag from an earlier answer: 304 while the body is unchanged")),
    responses(
        (status = 200, description = "a page of the user's resources (ETag)", body = crate::openapi::ResourcePage),
        (status = 304, description = "unchanged since the ETag in If-None-Match"),
        (status = 403, description = "an API token without the resources:read scope", body = crate::openapi::ErrorBody),
        (status = 422, description = "a filter or paging parameter is invalid (details names it)", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:read")))
)]
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    if_none_match: IfNoneMatch,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    user.require(Scope::ResourcesRead)?;
    let q = QueryParams::parse(raw.as_deref());
    let filter = parse_filter(&q)?;
    let paging = Paging::parse(&q)?;
    let page = resources::list(
        &state.db,
        user.id,
        &filter,
        paging.per_page,
        paging.offset(),
    )
    .await?;
    let next_round = next_round(&state);
    let max_retries = state.config.monitor.max_retries;
    // One query for the channel lists of the page's resources that have their own.
    let listing: Vec<i64> = page
        .items
        .iter()
        .filter(|r| !r.all_channels)
        .map(|r| r.id)
        .collect();
    let lists = channels::of_resources(&state.db, &listing).await?;
    let items: Vec<ResourceView> = page
        .items
        .into_iter()
        .map(|r| {
            ResourceView::from(r)
                .scheduled(next_round)
                .policy(max_retries)
                .with_channels(&lists)
        })
        .collect();
    etag::json(
        &if_none_match,
        &paging.envelope(items, page.total, uri.path(), &q),
    )
}

// ---------------------------------------------------------------------------------------------
// One resource

/// `GET /resources/{id or uuid}`: the resource, its recent checks, its events and its screenshot;
/// with an `ETag` of the body (`If-None-Match` naming it → 304).
#[utoipa::path(
    get,
    path = "/resources/{key}",
    tag = "resources",
    params(("key" = String, Path, description = "the resource's id or uuid"), ("If-None-Match" = Option<String>, Header, description = "an ETag from an earlier answer: 304 while the body is unchanged")),
    responses(
        (status = 200, description = "the resource, its recent checks, uptime, events and screenshot (ETag)", body = crate::openapi::ResourceDetail),
        (status = 304, description = "unchanged since the ETag in If-None-Match"),
        (status = 403, description = "an API token without the resources:read scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such resource of this user", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:read")))
)]
pub async fn get(
    State(state): State<AppState>,
    user: CurrentUser,
    prefix: ApiPrefix,
    if_none_match: IfNoneMatch,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    user.require(Scope::ResourcesRead)?;
    let r = resources::get(&state.db, user.id, &resource_key(&key)?)
        .await?
        .ok_or_else(not_found)?;
    let events: Vec<EventView> = feed::events_of(&state.db, user.id, &r.uuid, RESOURCE_EVENTS)
        .await?
        .into_iter()
        .map(Into::into)
        .collect();
    let screenshot = screenshots::screenshot_of(&state.db, r.id).await?.map(|s| {
        json!({
            "url": screenshot_path(&prefix, &r.uuid),
            "content_type": s.content_type,
            "size_bytes": s.size_bytes,
            "source": s.source,
            "created_at": Timestamp::rfc3339(s.created_at),
        })
    });
    let (checks, uptime) = super::checks::history(&state, r.id).await?;
    let lists = channels::of_resources(&state.db, &[r.id]).await?;
    let view = ResourceView::from(r)
        .scheduled(next_round(&state))
        .policy(state.config.monitor.max_retries)
        .with_channels(&lists);
    let mut body = serde_json::to_value(view).map_err(internal)?;
    body["checks"] = checks;
    body["uptime"] = uptime;
    body["events"] = json!(events);
    body["screenshot"] = screenshot.unwrap_or(Value::Null);
    etag::json(&if_none_match, &body)
}

/// `DELETE /resources/{id or uuid}` → 204; the feed keeps a `resource_deleted` event.
#[utoipa::path(
    delete,
    path = "/resources/{key}",
    tag = "resources",
    params(("key" = String, Path, description = "the resource's id or uuid")),
    responses(
        (status = 204, description = "deleted; the feed keeps a resource_deleted event"),
        (status = 403, description = "an API token without the resources:write scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such resource of this user", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:write")))
)]
pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    user.require(Scope::ResourcesWrite)?;
    let deleted = resources::delete(
        &state.db,
        user.id,
        &resource_key(&key)?,
        &json!({"reason": "deleted_by_user"}),
        Timestamp::now(),
    )
    .await?
    .ok_or_else(not_found)?;
    if let Some(blob) = deleted.screenshot_blob {
        state.blobs.delete_all([blob.as_str()]).await;
    }
    Ok(StatusCode::NO_CONTENT)
}
