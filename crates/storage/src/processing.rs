//! Watch: processing requests, the progress record of a ZIP import. Created with its import job
//! in one transaction; the job moves it through `in_process` to `succeeded` or `failed`, and a
//! request whose job can no longer run is failed when it is read, so none stays unfinished.

use crate::{Db, Result};
use pulseboard_domain::UnixMillis;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};

pub const STATUS_PENDING: &str = "pending";
pub const STATUS_IN_PROCESS: &str = "in_process";
pub const STATUS_SUCCEEDED: &str = "succeeded";
pub const STATUS_FAILED: &str = "failed";

#[derive(Debug, Clone)]
pub struct ProcessingRequest {
    pub id: String,
    pub user_id: i64,
    pub status: String,
    pub total: i64,
    pub processed: i64,
    pub created: i64,
    pub duplicates: i64,
    pub error_count: i64,
    pub error_urls: Vec<String>,
    pub failure: Option<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

impl ProcessingRequest {
    pub fn is_finished(&self) -> bool {
        self.status == STATUS_SUCCEEDED || self.status == STATUS_FAILED
    }
}

impl FromRow<'_, AnyRow> for ProcessingRequest {
    fn from_row(row: &AnyRow) -> std::result::Result<Self, sqlx::Error> {
        let errors: String = row.try_get("error_urls")?;
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            status: row.try_get("status")?,
            total: row.try_get("total")?,
            processed: row.try_get("processed")?,
            created: row.try_get("created")?,
            duplicates: row.try_get("duplicates")?,
            error_count: row.try_get("error_count")?,
            error_urls: serde_json::from_str(&errors).unwrap_or_default(),
            failure: row.try_get("failure")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

const REQUEST_COLUMNS: &str = "id, user_id, status, total, processed, created, duplicates, \
                               error_count, error_urls, failure, created_at, updated_at";

/// Creates a pending import request on the given connection (with its job, in one transaction).
pub async fn create_request(
    conn: &mut AnyConnection,
    id: &str,
    user_id: i64,
    now: UnixMillis,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO processing_requests (id, user_id, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(id)
    .bind(user_id)
    .bind(STATUS_PENDING)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The user's imports still to finish: pending or in process, with their job (idempotency key
/// `job_key_prefix` + request id) queued or running. A request whose job is dead or gone will
/// never finish, so it does not count (reading it fails it: [`fail_request_without_job`]).
pub async fn imports_in_flight(db: &Db, user_id: i64, job_key_prefix: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM processing_requests p \
         WHERE p.user_id = $1 AND p.status IN ($2, $3) AND EXISTS \
           (SELECT 1 FROM jobs j WHERE j.idempotency_key = $4 || p.id \
              AND j.status IN ('queued', 'running'))",
    )
    .bind(user_id)
    .bind(STATUS_PENDING)
    .bind(STATUS_IN_PROCESS)
    .bind(job_key_prefix)
    .fetch_one(db.pool())
    .await?)
}

/// A request of this user (None for another user's).
pub async fn request_of(db: &Db, user_id: i64, id: &str) -> Result<Option<ProcessingRequest>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM processing_requests WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

pub async fn request(db: &Db, id: &str) -> Result<Option<ProcessingRequest>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM processing_requests WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(db.pool())
    .await?)
}

/// Counters of an import so far. `processed` is also its position: the data lines of the archive
/// consumed, in order, by the batches committed so far (a resumed attempt skips that many).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: i64,
    pub processed: i64,
    pub created: i64,
    pub duplicates: i64,
    pub error_count: i64,
    pub error_urls: Vec<String>,
}

/// Starts processing, or resumes it after an attempt that stopped (a crash, a timeout, a database
/// error, a dead job retried by an admin): status in_process, no failure. The counters are kept:
/// they were committed with the rows they count, so the next attempt continues from them.
pub async fn start_request(db: &Db, id: &str, total: i64, now: UnixMillis) -> Result<()> {
    sqlx::query(
        "UPDATE processing_requests SET status = $1, total = $2, failure = NULL, updated_at = $3 \
         WHERE id = $4",
    )
    .bind(STATUS_IN_PROCESS)
    .bind(total)
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Records progress, the position included, in the transaction of the batch it counts: rows and
/// position commit together, which is what lets a retry resume instead of starting over.
pub async fn update_progress(
    conn: &mut AnyConnection,
    id: &str,
    from: i64,
    p: &Progress,
    now: UnixMillis,
) -> Result<bool> {
    // Fenced on the position the batch started from: an attempt that was taken over (its lease
    // lost under load, its task not yet aborted) finds the position moved by its successor,
    // writes nothing, and its caller rolls the batch back, so two attempts never both count
    // the same lines.
    let updated = sqlx::query(
        "UPDATE processing_requests SET total = $1, processed = $2, created = $3, duplicates = $4, \
         error_count = $5, error_urls = $6, updated_at = $7 WHERE id = $8 AND processed = $9",
    )
    .bind(p.total)
    .bind(p.processed)
    .bind(p.created)
    .bind(p.duplicates)
    .bind(p.error_count)
    .bind(serde_json::to_string(&p.error_urls).unwrap_or_else(|_| "[]".into()))
    .bind(now)
    .bind(id)
    .bind(from)
    .execute(conn)
    .await?;
    Ok(updated.rows_affected() == 1)
}

/// Ends a request: succeeded, or failed with a reason.
pub async fn finish_request(
    db: &Db,
    id: &str,
    failure: Option<&str>,
    now: UnixMillis,
) -> Result<()> {
    let status = if failure.is_some() {
        STATUS_FAILED
    } else {
        STATUS_SUCCEEDED
    };
    sqlx::query(
        "UPDATE processing_requests SET status = $1, failure = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(status)
    .bind(failure)
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Ends an unfinished request as `failed` when its import job (idempotency key `job_key`) can no
/// longer run: dead-lettered (out of attempts, timed out or panicked every time, a crashed worker)
/// or discarded by an admin. The reason is the dead job's last error. True if it changed the row.
/// (The import handler marks its own final failure; this catches the ends it cannot see.)
/// Run by a request that reads the status, so through [`Db::write`].
pub async fn fail_request_without_job(
    db: &Db,
    id: &str,
    job_key: &str,
    now: UnixMillis,
) -> Result<bool> {
    let (id, job_key) = (id.to_owned(), job_key.to_owned());
    db.write(move |tx| Box::pin(async move { fail_without_job(tx, &id, &job_key, now).await }))
        .await
}

async fn fail_without_job(
    tx: &mut AnyConnection,
    id: &str,
    job_key: &str,
    now: UnixMillis,
) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE processing_requests SET status = $1, updated_at = $2, failure = \
           'The import stopped after repeated errors: ' || COALESCE( \
             (SELECT last_error FROM jobs WHERE idempotency_key = $3 AND status = 'dead'), \
             'its job was removed') \
         WHERE id = $4 AND status IN ($5, $6) AND NOT EXISTS \
           (SELECT 1 FROM jobs WHERE idempotency_key = $3 AND status IN ('queued', 'running', 'done'))",
    )
    .bind(STATUS_FAILED)
    .bind(now)
    .bind(job_key)
    .bind(id)
    .bind(STATUS_PENDING)
    .bind(STATUS_IN_PROCESS)
    .execute(tx)
    .await?;
    Ok(r.rows_affected() > 0)
}
