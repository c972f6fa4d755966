//! Watch: ZIP imports. `POST /resources` with a multipart `file` spools the archive to
//! `<data_dir>/uploads/`, records a processing request and its `ImportResources` job in one
//! transaction, and answers 202 with the request's status URL; `GET /processing-requests/{id}`
//! shows its progress. Before anything is spooled a user is held to `http.imports_per_user`
//! imports in flight (429) and the disk to `http.upload_min_free_bytes` free (507).

use super::upload::{
    check_declared, content_length, multipart_error, no_file_field, open_multipart, too_large,
};
use super::watch_view::{internal, invalid};
use crate::auth::{CurrentUser, Scope};
use crate::error::{ApiError, ApiResult};
use crate::state::AppState;
use crate::ApiPrefix;
use axum::extract::{Path, Request, State};
use axum::http::header::LOCATION;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use pulseboard_domain::Timestamp;
use pulseboard_jobs::handlers::ImportResources;
use pulseboard_storage::processing::{self, ProcessingRequest};
use pulseboard_storage::StorageError;
use serde_json::{json, Value};
use std::collections::HashMap;
use std::path::{Path as FsPath, PathBuf};
use std::sync::{Arc, Mutex};
use tokio::io::AsyncWriteExt;

/// Leading bytes of a ZIP archive (a local file header, or the end record of an empty archive).
fn is_zip(head: &[u8]) -> bool {
    head.starts_with(b"PK\x03\x04") || head.starts_with(b"PK\x05\x06")
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
        processing::imports_in_flight(&state.db, user_id, &ImportResources::job_key("")).await?;
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

/// Where ZIP uploads are spooled until their import has run.
fn uploads_dir(data_dir: &FsPath) -> PathBuf {
    data_dir.join("uploads")
}

/// The spooled upload of an import request.
pub(crate) fn upload_path(data_dir: &FsPath, request_id: &str) -> PathBuf {
    uploads_dir(data_dir).join(format!("{request_id}.zip"))
}

// ---------------------------------------------------------------------------------------------
// The upload

/// The multipart branch of `POST /resources` (which has checked the scope).
pub(crate) async fn import(
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
        processing::create_request(&mut tx, &request_id, user.id, Timestamp::now()).await?;
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
#[utoipa::path(
    get,
    path = "/processing-requests/{id}",
    tag = "resources",
    params(("id" = String, Path, description = "the processing request's id")),
    responses(
        (status = 200, description = "the progress of an import", body = crate::openapi::ProcessingRequest),
        (status = 403, description = "an API token without the resources:read scope", body = crate::openapi::ErrorBody),
        (status = 404, description = "no such processing request of this user", body = crate::openapi::ErrorBody)
    ),
    extensions(("x-scope" = json!("resources:read")))
)]
pub async fn processing_request(
    State(state): State<AppState>,
    user: CurrentUser,
    Path(id): Path<String>,
) -> ApiResult<Json<Value>> {
    user.require(Scope::ResourcesRead)?;
    let nf = || ApiError::NotFound("Processing request not found".into());
    let id = uuid::Uuid::parse_str(&id)
        .map_err(|_| nf())?
        .hyphenated()
        .to_string();
    let mut r = processing::request_of(&state.db, user.id, &id)
        .await?
        .ok_or_else(nf)?;
    // An unfinished request whose job is dead (or gone) will never finish: say so.
    if !r.is_finished()
        && processing::fail_request_without_job(
            &state.db,
            &id,
            &ImportResources::job_key(&id),
            Timestamp::now(),
        )
        .await?
    {
        r = processing::request_of(&state.db, user.id, &id)
            .await?
            .ok_or_else(nf)?;
    }
    Ok(Json(request_view(r)))
}
