//! Watch: the resource catalogue, ZIP imports, the news feed and screenshots. Everything is scoped
//! to the current user; another user's resource is a 404, like a task.

use crate::auth::CurrentUser;
use crate::error::{ApiError, ApiResult};
use crate::etag::{self, IfNoneMatch};
use crate::extract::Input;
use crate::idempotency;
use crate::state::AppState;
use crate::ApiPrefix;
use axum::body::Body;
use axum::extract::multipart::MultipartError;
use axum::extract::{FromRequest, Multipart, OriginalUri, Path, RawQuery, Request, State};
use axum::http::header::{
    CACHE_CONTROL, CONTENT_DISPOSITION, CONTENT_LENGTH, CONTENT_TYPE, LOCATION,
    X_CONTENT_TYPE_OPTIONS,
};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulseboard_domain::{ResourceUrl, Timestamp};
use pulseboard_jobs::handlers::ImportResources;
use pulseboard_storage::blobs::{self, ScreenshotError};
use pulseboard_storage::resources::{
    self, Event, Filter, ProcessingRequest, Resource, ResourceKey,
};
use pulseboard_storage::StorageError;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use std::collections::{BTreeMap, HashMap};
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

pub const DEFAULT_PER_PAGE: i64 = 10;
pub const MAX_PER_PAGE: i64 = 100;
/// Screenshots above this size are refused (and never above `http.upload_limit_bytes`).
pub const SCREENSHOT_MAX_BYTES: usize = 10 * 1024 * 1024;
/// Events shown with one resource.
const RESOURCE_EVENTS: i64 = 50;

#[derive(Serialize)]
pub struct ResourceView {
    pub id: i64,
    pub uuid: String,
    pub full_url: String,
    pub protocol: String,
    pub domain: String,
    pub domain_zone: String,
    pub url_path: String,
    pub query_params: BTreeMap<String, String>,
    pub status_code: Option<i64>,
    pub is_available: Option<bool>,
    pub checked_at: Option<String>,
    pub response_time_ms: Option<i64>,
    pub unavailable_count: i64,
    pub created_at: String,
    /// Own check interval; null: checked by every availability round.
    pub check_interval_secs: Option<i64>,
    /// When the next check is due: a new resource's first check (at once), then every interval,
    /// or with no own interval the next round.
    pub next_check_at: Option<String>,
}

impl ResourceView {
    /// Fills `next_check_at` of a resource without its own interval and without a pending first
    /// check with the next round's time.
    pub fn scheduled(mut self, next_round: Option<i64>) -> Self {
        if self.check_interval_secs.is_none() && self.next_check_at.is_none() {
            self.next_check_at = next_round.map(Timestamp::rfc3339);
        }
        self
    }
}

impl From<Resource> for ResourceView {
    fn from(r: Resource) -> Self {
        Self {
            id: r.id,
            uuid: r.uuid,
            full_url: r.full_url,
            protocol: r.protocol,
            domain: r.domain,
            domain_zone: r.domain_zone,
            url_path: r.url_path,
            query_params: r.query_params,
            status_code: r.last_status_code,
            is_available: r.last_is_available,
            checked_at: r.last_checked_at.map(Timestamp::rfc3339),
            response_time_ms: r.last_response_time_ms,
            unavailable_count: r.unavailable_count,
            created_at: Timestamp::rfc3339(r.created_at),
            check_interval_secs: r.check_interval_secs,
            next_check_at: r.next_check_at.map(Timestamp::rfc3339),
        }
    }
}

#[derive(Serialize)]
pub struct EventView {
    pub id: i64,
    pub kind: String,
    pub resource_uuid: String,
    pub url: String,
    pub created_at: String,
    pub details: Value,
    /// False once the resource is deleted: clients should not link to it.
    pub resource_exists: bool,
}

impl From<Event> for EventView {
    fn from(e: Event) -> Self {
        Self {
            id: e.id,
            kind: e.kind,
            resource_uuid: e.resource_uuid,
            url: e.url,
            created_at: Timestamp::rfc3339(e.created_at),
            details: e.details,
            resource_exists: e.resource_exists,
        }
    }
}

fn not_found() -> ApiError {
    ApiError::NotFound("Resource not found".into())
}

/// A resource in a path: its numeric id or its uuid; anything else is simply not found.
fn resource_key(raw: &str) -> ApiResult<ResourceKey> {
    ResourceKey::parse(raw).ok_or_else(not_found)
}

fn media_type(headers: &HeaderMap) -> String {
    headers
        .get(CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase()
}

fn invalid(field: &str, message: impl Into<String>) -> ApiError {
    let message = message.into();
    ApiError::Validation {
        message: message.clone(),
        details: [(field.to_owned(), message)].into(),
    }
}

fn internal(e: impl std::fmt::Display) -> ApiError {
    ApiError::Internal(e.to_string())
}

// ---------------------------------------------------------------------------------------------
// POST /resources: one URL (JSON or form), or a ZIP of CSV (multipart)

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewResource {
    url: String,
    /// Optional own check interval (see `checks::parse_interval`).
    #[serde(default)]
    check_interval_secs: Option<Value>,
}

pub async fn create(
    State(state): State<AppState>,
    user: CurrentUser,
    prefix: ApiPrefix,
    req: Request,
) -> ApiResult<Response> {
    if media_type(req.headers()) == "multipart/form-data" {
        return import(state, user, prefix, req).await;
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
        Some(v) => super::checks::parse_interval(v, &state.config.monitor)?,
        None => None,
    };
    let (user_id, now, new_url) = (user.id, Timestamp::now(), url.clone());
    let already = |e: StorageError| match e {
        StorageError::Conflict => {
            ApiError::Conflict(format!("{} is already in your catalogue", url.full_url()))
        }
        other => other.into(),
    };
    if let Some(key) = key {
        // With an Idempotency-Key: the key, the resource and its answer in one write.
        let next_round = super::checks::next_round(&state);
        let outcome = idempotency::create(&state.db, user_id, key, now, move |tx| {
            Box::pin(async move {
                let resource = resources::create(tx, user_id, &new_url, interval, now).await?;
                let view = ResourceView::from(resource).scheduled(next_round);
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
            Box::pin(async move { resources::create(tx, user_id, &new_url, interval, now).await })
        })
        .await
        .map_err(already)?;
    // Its first check now, not at the next round (it is due; this only asks for the sweep sooner).
    state.due_nudge.nudge();
    let view = ResourceView::from(resource).scheduled(super::checks::next_round(&state));
    Ok((StatusCode::CREATED, Json(view)).into_response())
}

/// Leading bytes of a ZIP archive (a local file header, or the end record of an empty archive).
fn is_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06")
}

fn multipart_error(e: MultipartError) -> ApiError {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::PayloadTooLarge("The upload is too large".into())
    } else {
        ApiError::BadRequest(format!("Malformed multipart body: {}", e.body_text()))
    }
}

fn too_large(limit: usize) -> ApiError {
    ApiError::PayloadTooLarge(format!("The upload is too large: at most {} bytes", limit))
}

// ---------------------------------------------------------------------------------------------
// Import limits: imports in flight per user, free disk space

/// How long a user over the import limit is asked to wait before uploading again.
const IMPORT_RETRY_AFTER_SECS: u64 = 30;

/// Free space is looked at again after this many bytes of an upload are spooled.
const DISK_CHECK_EVERY: u64 = 4 * 1024 * 1024;

/// Imports being uploaded (spooled) by this process right now, per user (held in [`AppState`]).
#[derive(Default)]
pub struct Uploading(Mutex<HashMap<i64, usize>>);

impl Uploading {
    fn counts(&self) -> std::sync::MutexGuard<'_, HashMap<i64, usize>> {
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// One reserved place in [`Uploading`], given back when dropped (however the upload ends).
struct UploadSlot {
    uploading: Arc<Uploading>,
    user_id: i64,
}

impl Drop for UploadSlot {
    fn drop(&mut self) {
        let mut counts = self.uploading.counts();
        if let Some(n) = counts.get_mut(&self.user_id) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&self.user_id);
            }
        }
    }
}

fn too_many_imports(max: usize) -> ApiError {
    ApiError::TooManyRequests {
        message: format!(
            "You already have {max} import{} in progress, the most allowed at once: wait until \
             one has finished (see its status_url), then upload again",
            if max == 1 { "" } else { "s" }
        ),
        retry_after_secs: IMPORT_RETRY_AFTER_SECS,
    }
}

/// Reserves one of the user's `http.imports_per_user` places, before anything of the body is
/// read: 429 when the user's uploads in this process plus their unfinished requests in the
/// database reach it.
///
/// Race-free within a process: places are taken under one lock, and each upload keeps its place
/// until its processing request is committed, so at the moment a place is taken every other
/// accepted import either still holds its place (counted here) or is already in the database
/// (counted by the query that follows; an import counted by both only makes the check stricter).
///
/// Across several `serve` processes only the database part is shared: the requests pending or in
/// process are counted by all of them, but an upload still being spooled is seen by its own
/// process only. A user sending uploads to K processes at once can therefore have up to K times
/// the limit being spooled (each process still bounds its own disk use); once those are recorded,
/// every process refuses further imports until they finish. (A strict global limit would need the
/// request row written before the body, under a per-user lock.)
async fn reserve_import(state: &AppState, user_id: i64) -> ApiResult<UploadSlot> {
    let max = state.config.http.imports_per_user;
    let (slot, uploading) = {
        let mut counts = state.uploading.counts();
        let n = counts.entry(user_id).or_insert(0);
        if *n >= max {
            return Err(too_many_imports(max));
        }
        *n += 1;
        let slot = UploadSlot {
            uploading: state.uploading.clone(),
            user_id,
        };
        (slot, *n)
    };
    let recorded =
        resources::imports_in_flight(state.db.pool(), user_id, &ImportResources::job_key(""))
            .await?;
    if uploading as u64 + recorded.max(0) as u64 > max as u64 {
        return Err(too_many_imports(max));
    }
    Ok(slot)
}

/// Bytes for people: "1.5 GiB (1610612736 bytes)".
fn show_bytes(n: u64) -> String {
    const UNITS: [&str; 5] = ["bytes", "KiB", "MiB", "GiB", "TiB"];
    let mut value = n as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{n} bytes")
    } else {
        format!("{value:.1} {} ({n} bytes)", UNITS[unit])
    }
}

/// Space available to us in the file system of `dir`.
async fn free_space(dir: &FsPath) -> ApiResult<u64> {
    let dir = dir.to_path_buf();
    tokio::task::spawn_blocking(move || fs4::available_space(&dir))
        .await
        .map_err(internal)?
        .map_err(|e| {
            internal(format!(
                "cannot read the free space of the uploads folder: {e}"
            ))
        })
}

fn insufficient_storage(free: u64, needed: u64) -> ApiError {
    ApiError::InsufficientStorage(format!(
        "The server is short of disk space: {} free, {} needed for this upload and the reserve \
         kept free; try again later",
        show_bytes(free),
        show_bytes(needed)
    ))
}

/// 507 unless the uploads folder has `needed` bytes free.
async fn ensure_free(dir: &FsPath, needed: u64) -> ApiResult<()> {
    let free = free_space(dir).await?;
    if free < needed {
        return Err(insufficient_storage(free, needed));
    }
    Ok(())
}

fn content_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

/// Where ZIP uploads are spooled until their import has run.
fn uploads_dir(data_dir: &FsPath) -> PathBuf {
    data_dir.join("uploads")
}

/// The spooled upload of an import request.
pub(crate) fn upload_path(data_dir: &FsPath, request_id: &str) -> PathBuf {
    uploads_dir(data_dir).join(format!("{request_id}.zip"))
}

async fn import(
    state: AppState,
    user: CurrentUser,
    prefix: ApiPrefix,
    req: Request,
) -> ApiResult<Response> {
    let limit = state.config.http.upload_limit_bytes;
    let dir = uploads_dir(&state.config.data_dir);
    tokio::fs::create_dir_all(&dir).await.map_err(internal)?;
    // Size, then the user's imports in flight, then disk space, all before the body is read. The
    // place is held until the request is recorded (or the upload fails).
    let declared = content_length(req.headers());
    check_declared(declared, limit)?;
    let _slot = reserve_import(&state, user.id).await?;
    let reserve = state.config.http.upload_min_free_bytes;
    ensure_free(&dir, declared.unwrap_or(0).saturating_add(reserve)).await?;
    let request_id = uuid::Uuid::new_v4().hyphenated().to_string();
    let part = dir.join(format!("{request_id}.zip.part"));
    let path = upload_path(&state.config.data_dir, &request_id);

    let spooled = spool_file(req, &state, limit, &part).await;
    let head = match spooled {
        Ok(head) => head,
        Err(e) => {
            let _ = tokio::fs::remove_file(&part).await;
            return Err(e);
        }
    };
    if !is_zip(&head) {
        let _ = tokio::fs::remove_file(&part).await;
        return Err(invalid(
            "file",
            "The file is not a ZIP archive: upload a .zip holding a CSV of URLs",
        ));
    }
    tokio::fs::rename(&part, &path).await.map_err(internal)?;

    let enqueued = async {
        let mut tx = state.db.begin().await?;
        resources::create_request(&mut tx, &request_id, user.id, Timestamp::now()).await?;
        state
            .queue
            .enqueue_in(
                &mut tx,
                &ImportResources {
                    request_id: request_id.clone(),
                    user_id: user.id,
                    path: path.to_string_lossy().into_owned(),
                },
            )
            .await?;
        tx.commit().await?;
        Ok::<_, StorageError>(())
    }
    .await;
    if let Err(e) = enqueued {
        let _ = tokio::fs::remove_file(&path).await;
        return Err(e.into());
    }
    state.queue.wake();
    let status_url = format!(
        "{}/processing-requests/{request_id}",
        if prefix.0 { "/api" } else { "" }
    );
    Ok((
        StatusCode::ACCEPTED,
        [(LOCATION, status_url.clone())],
        Json(json!({ "request_id": request_id, "status_url": status_url })),
    )
        .into_response())
}

/// Streams the `file` field to `dest`, at most `limit` bytes. Returns its first bytes. Stops with
/// 507 when the disk fills up: free space below `http.upload_min_free_bytes` (looked at every few
/// MiB) or a write that finds no room. (The caller removes the partial file on any error.)
async fn spool_file(
    req: Request,
    state: &AppState,
    limit: usize,
    dest: &PathBuf,
) -> ApiResult<Vec<u8>> {
    let mut multipart = open_multipart(req, state, limit).await?;
    // (The field is handled inside the loop: it borrows the multipart reader.)
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let dir = dest.parent().unwrap_or(FsPath::new("."));
        let reserve = state.config.http.upload_min_free_bytes;
        let mut out = tokio::fs::File::create(dest).await.map_err(internal)?;
        let mut written: usize = 0;
        let mut unchecked: u64 = 0;
        let mut head = Vec::with_capacity(8);
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            written += chunk.len();
            if written > limit {
                return Err(too_large(limit));
            }
            if head.len() < 8 {
                let take = (8 - head.len()).min(chunk.len());
                head.extend_from_slice(&chunk[..take]);
            }
            out.write_all(&chunk).await.map_err(write_error)?;
            unchecked += chunk.len() as u64;
            if unchecked >= DISK_CHECK_EVERY {
                unchecked = 0;
                let free = free_space(dir).await?;
                if free < reserve {
                    return Err(ApiError::InsufficientStorage(format!(
                        "The server ran short of disk space while receiving this upload: {} \
                         free, below the {} kept in reserve; try again later",
                        show_bytes(free),
                        show_bytes(reserve)
                    )));
                }
            }
        }
        out.flush().await.map_err(write_error)?;
        out.sync_all().await.map_err(write_error)?;
        return Ok(head);
    }
    Err(no_file_field())
}

/// A failed write of an upload: 507 when the disk is full, else internal.
fn write_error(e: std::io::Error) -> ApiError {
    if e.kind() == std::io::ErrorKind::StorageFull {
        ApiError::InsufficientStorage(
            "The server ran out of disk space while receiving this upload; try again later".into(),
        )
    } else {
        internal(e)
    }
}

/// 413 when the declared body is too large for a file of `limit` bytes.
fn check_declared(declared: Option<u64>, limit: usize) -> ApiResult<()> {
    // The body also carries the multipart framing: allow a little over the file limit.
    if declared.is_some_and(|n| n > limit as u64 + 64 * 1024) {
        return Err(too_large(limit));
    }
    Ok(())
}

async fn open_multipart(req: Request, state: &AppState, limit: usize) -> ApiResult<Multipart> {
    check_declared(content_length(req.headers()), limit)?;
    Multipart::from_request(req, state)
        .await
        .map_err(|e| ApiError::BadRequest(e.body_text()))
}

fn no_file_field() -> ApiError {
    invalid("file", "Attach the file in the multipart field `file`")
}

// ---------------------------------------------------------------------------------------------
// Listing and pagination

/// The query string as sent, in order; a key given twice counts with its last value.
struct QueryParams(Vec<(String, String)>);

impl QueryParams {
    fn parse(raw: Option<&str>) -> Self {
        Self(
            url::form_urlencoded::parse(raw.unwrap_or("").as_bytes())
                .map(|(k, v)| (k.into_owned(), v.into_owned()))
                .collect(),
        )
    }

    /// The last non-blank value of `key`.
    fn get(&self, key: &str) -> Option<&str> {
        self.0
            .iter()
            .rev()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.trim())
            .filter(|v| !v.is_empty())
    }
}

struct Paging {
    page: i64,
    per_page: i64,
}

impl Paging {
    fn parse(q: &QueryParams) -> ApiResult<Self> {
        let page = match q.get("page") {
            None => 1,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|p| (1..=1_000_000_000).contains(p))
                .ok_or_else(|| invalid("page", "page must be a whole number from 1"))?,
        };
        let per_page = match q.get("per_page") {
            None => DEFAULT_PER_PAGE,
            Some(v) => v
                .parse::<i64>()
                .ok()
                .filter(|p| (1..=MAX_PER_PAGE).contains(p))
                .ok_or_else(|| {
                    invalid(
                        "per_page",
                        format!("per_page must be a whole number from 1 to {MAX_PER_PAGE}"),
                    )
                })?,
        };
        Ok(Self { page, per_page })
    }

    fn offset(&self) -> i64 {
        (self.page - 1) * self.per_page
    }

    /// `{items, meta, links}`; links keep the client's other query parameters.
    fn envelope<T: Serialize>(
        &self,
        items: Vec<T>,
        total: i64,
        path: &str,
        q: &QueryParams,
    ) -> Value {
        let total_pages = (total + self.per_page - 1) / self.per_page;
        let link = |page: i64| {
            let mut s = url::form_urlencoded::Serializer::new(String::new());
            for (k, v) in &q.0 {
                if k != "page" && k != "per_page" {
                    s.append_pair(k, v);
                }
            }
            s.append_pair("page", &page.to_string());
            s.append_pair("per_page", &self.per_page.to_string());
            format!("{path}?{}", s.finish())
        };
        let next = (self.page < total_pages).then(|| link(self.page + 1));
        // Past the end, "prev" leads back to the last page that exists.
        let prev = (self.page > 1).then(|| link((self.page - 1).min(total_pages.max(1))));
        json!({
            "items": items,
            "meta": {
                "page": self.page,
                "per_page": self.per_page,
                "total_pages": total_pages,
                "total_items": total,
            },
            "links": { "self": link(self.page), "next": next, "prev": prev },
        })
    }
}

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
pub async fn list(
    State(state): State<AppState>,
    user: CurrentUser,
    if_none_match: IfNoneMatch,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Response> {
    let q = QueryParams::parse(raw.as_deref());
    let filter = parse_filter(&q)?;
    let paging = Paging::parse(&q)?;
    let page = resources::list(
        state.db.pool(),
        user.id,
        &filter,
        paging.per_page,
        paging.offset(),
    )
    .await?;
    let next_round = super::checks::next_round(&state);
    let items: Vec<ResourceView> = page
        .items
        .into_iter()
        .map(|r| ResourceView::from(r).scheduled(next_round))
        .collect();
    etag::json(
        &if_none_match,
        &paging.envelope(items, page.total, uri.path(), &q),
    )
}

/// `GET /feed?page=&per_page=`: the user's events, newest first.
pub async fn feed(
    State(state): State<AppState>,
    user: CurrentUser,
    OriginalUri(uri): OriginalUri,
    RawQuery(raw): RawQuery,
) -> ApiResult<Json<Value>> {
    let q = QueryParams::parse(raw.as_deref());
    let paging = Paging::parse(&q)?;
    let page = resources::feed(state.db.pool(), user.id, paging.per_page, paging.offset()).await?;
    let items: Vec<EventView> = page.items.into_iter().map(Into::into).collect();
    Ok(Json(paging.envelope(items, page.total, uri.path(), &q)))
}

// ---------------------------------------------------------------------------------------------
// One resource

fn screenshot_path(prefix: &ApiPrefix, uuid: &str) -> String {
    format!(
        "{}/resources/{uuid}/screenshot",
        if prefix.0 { "/api" } else { "" }
    )
}

/// `GET /resources/{id or uuid}`: the resource, its recent checks, its events and its screenshot;
/// with an `ETag` of the body (`If-None-Match` naming it → 304).
pub async fn get(
    State(state): State<AppState>,
    user: CurrentUser,
    prefix: ApiPrefix,
    if_none_match: IfNoneMatch,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let r = resources::get(state.db.pool(), user.id, &resource_key(&key)?)
        .await?
        .ok_or_else(not_found)?;
    let events: Vec<EventView> =
        resources::events_of(state.db.pool(), user.id, &r.uuid, RESOURCE_EVENTS)
            .await?
            .into_iter()
            .map(Into::into)
            .collect();
    let screenshot = resources::screenshot_of(state.db.pool(), r.id)
        .await?
        .map(|s| {
            json!({
                "url": screenshot_path(&prefix, &r.uuid),
                "content_type": s.content_type,
                "size_bytes": s.size_bytes,
                "source": s.source,
                "created_at": Timestamp::rfc3339(s.created_at),
            })
        });
    let (checks, uptime) = super::checks::history(&state, r.id).await?;
    let view = ResourceView::from(r).scheduled(super::checks::next_round(&state));
    let mut body = serde_json::to_value(view).map_err(internal)?;
    body["checks"] = checks;
    body["uptime"] = uptime;
    body["events"] = json!(events);
    body["screenshot"] = screenshot.unwrap_or(Value::Null);
    etag::json(&if_none_match, &body)
}

/// `DELETE /resources/{id or uuid}` → 204; the feed keeps a `resource_deleted` event.
pub async fn delete(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(key): Path<String>,
) -> ApiResult<StatusCode> {
    let deleted = resources::delete(
        state.db.pool(),
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

// ---------------------------------------------------------------------------------------------
// Import requests

fn request_view(r: ProcessingRequest) -> Value {
    let mut v = json!({
        "id": r.id,
        "status": r.status,
        "total": r.total,
        "processed": r.processed,
        "created": r.created,
        "duplicates": r.duplicates,
        "errors": { "count": r.error_count, "error_urls": r.error_urls },
        "created_at": Timestamp::rfc3339(r.created_at),
        "updated_at": Timestamp::rfc3339(r.updated_at),
    });
    if let Some(f) = r.failure {
        v["failure"] = json!(f);
    }
    v
}

/// `GET /processing-requests/{id}`: the progress of an import, live while it runs.
pub async fn processing_request(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    let nf = || ApiError::NotFound("Processing request not found".into());
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| nf())?
        .hyphenated()
        .to_string();
    let mut r = resources::request_of(state.db.pool(), user.id, &id)
        .await?
        .ok_or_else(nf)?;
    // An unfinished request whose job is dead (or gone) will never finish: say so.
    if !r.is_finished()
        && resources::fail_request_without_job(
            state.db.pool(),
            &id,
            &ImportResources::job_key(&id),
            Timestamp::now(),
        )
        .await?
    {
        r = resources::request_of(state.db.pool(), user.id, &id)
            .await?
            .ok_or_else(nf)?;
    }
    Ok(Json(request_view(r)))
}

// ---------------------------------------------------------------------------------------------
// Screenshots

/// `POST /resources/{id or uuid}` multipart `file`: stores a PNG, JPEG or WebP screenshot.
pub async fn upload_screenshot(
    State(state): State<AppState>,
    user: CurrentUser,
    prefix: ApiPrefix,
    Path(key): Path<String>,
    req: Request,
) -> ApiResult<Response> {
    let key = resource_key(&key)?;
    if media_type(req.headers()) != "multipart/form-data" {
        return Err(ApiError::UnsupportedMediaType(
            "Send the screenshot as multipart/form-data in the field `file`".into(),
        ));
    }
    let resource = resources::get(state.db.pool(), user.id, &key)
        .await?
        .ok_or_else(not_found)?;
    let limit = SCREENSHOT_MAX_BYTES.min(state.config.http.upload_limit_bytes);
    let mut multipart = open_multipart(req, &state, limit).await?;
    let mut bytes: Option<Vec<u8>> = None;
    while let Some(mut field) = multipart.next_field().await.map_err(multipart_error)? {
        if field.name() != Some("file") {
            continue;
        }
        let mut buf = Vec::new();
        while let Some(chunk) = field.chunk().await.map_err(multipart_error)? {
            if buf.len() + chunk.len() > limit {
                return Err(too_large(limit));
            }
            buf.extend_from_slice(&chunk);
        }
        bytes = Some(buf);
        break;
    }
    let bytes = bytes.ok_or_else(no_file_field)?;
    // The same path as a captured screenshot: type by content, blob, row + photo_added event.
    let shot = blobs::store_screenshot(
        state.db.pool(),
        &state.blobs,
        &resource,
        bytes.into(),
        "upload",
        Timestamp::now(),
    )
    .await
    .map_err(|e| match e {
        ScreenshotError::NotAnImage => invalid("file", "The file is not a PNG, JPEG or WebP image"),
        ScreenshotError::Storage(e) => e.into(),
        ScreenshotError::Blob(e) => internal(e),
    })?;
    let url = screenshot_path(&prefix, &resource.uuid);
    Ok((
        StatusCode::CREATED,
        [(LOCATION, url.clone())],
        Json(json!({
            "resource_uuid": resource.uuid,
            "url": url,
            "content_type": shot.content_type,
            "size_bytes": shot.size_bytes,
            "source": shot.source,
            "created_at": Timestamp::rfc3339(shot.created_at),
        })),
    )
        .into_response())
}

/// `GET /resources/{id or uuid}/screenshot`: the image.
pub async fn screenshot(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(key): Path<String>,
) -> ApiResult<Response> {
    let resource = resources::get(state.db.pool(), user.id, &resource_key(&key)?)
        .await?
        .ok_or_else(not_found)?;
    let nf = || ApiError::NotFound("This resource has no screenshot".into());
    let shot = resources::screenshot_of(state.db.pool(), resource.id)
        .await?
        .ok_or_else(nf)?;
    let bytes = state
        .blobs
        .get(&shot.blob_key)
        .await
        .map_err(internal)?
        .ok_or_else(nf)?;
    Ok((
        [
            (CONTENT_TYPE, shot.content_type),
            (CACHE_CONTROL, "private, no-cache".to_owned()),
            (X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
            (CONTENT_DISPOSITION, "inline".to_owned()),
        ],
        bytes,
    )
        .into_response())
}
