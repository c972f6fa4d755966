//! Bulk import: a ZIP archive holding a CSV of URLs (first column), uploaded to
//! `<data_dir>/uploads/` by `POST /resources` and processed by the `import_resources` job, which
//! calls [`run`].
//!
//! The archive comes from a user, so it is read defensively, in two passes over the file on disk
//! ([`archive`]):
//!
//! 1. **Inspect**: the entry count (read from the end record before the central directory is
//!    parsed), safe entry names, no nested archives, declared sizes and compression ratios within
//!    limits, at least one CSV. Then every CSV is decompressed once with the real byte counts
//!    checked against the same limits (declared sizes can lie), and its data lines are counted, so
//!    that `total` is known before anything is inserted and a bomb leaves no half import.
//! 2. **Import**: the lines ([`lines`]) are streamed again from a blocking thread, parsed into
//!    [`ResourceUrl`]s and sent in batches to this task, which inserts each batch (skipping URLs
//!    already in the catalogue or earlier in the file) and updates the request's counters in one
//!    transaction per batch.
//!
//! A bad archive ends the request `failed` with a reason and is not retried; a database error is
//! retried, and so is an attempt whose worker died (a timeout, kill -9). **A retry resumes**: each
//! batch's transaction commits its rows, their events and the request's counters together, and
//! `processed` (the data lines consumed so far) is the position. A new attempt inspects the archive
//! again, starts its counters from the stored ones and skips the first `processed` data lines:
//! still parsed, without database work, to refill the set of URLs seen in the file (so that a
//! later line repeating a skipped one is still a duplicate). No row past the position can exist
//! from an earlier attempt, so a URL already in the catalogue is a real duplicate, and the counters
//! stay true across any number of crashes (`created` counts the rows this request created).
//! What a crash costs is the batch in flight (at most `batch` lines) and the reading of the
//! skipped lines again. The upload is deleted once the request is finished.
//!
//! The last attempt that fails marks the request `failed` itself ([`give_up`]; the worker
//! dead-letters the job next), so a request never stays `in_process` behind a dead job; its upload
//! is kept, so that an admin who retries the dead job runs the import again. What the handler
//! cannot see (a timeout or a panic on the last attempt, a discarded job) is caught when the
//! request is read: `storage::processing::fail_request_without_job`.

pub mod archive;
pub mod lines;

use archive::Parsed;
use pulseboard_domain::{ResourceUrl, Timestamp};
use pulseboard_storage::imports;
use pulseboard_storage::processing::{self as requests, Progress};
use pulseboard_storage::{Db, StorageError};
use std::collections::HashSet;
use std::io;
use std::path::{Path, PathBuf};

/// What an archive may hold.
#[derive(Debug, Clone)]
pub struct ImportLimits {
    /// Entries in the archive (files and folders).
    pub max_entries: usize,
    /// Uncompressed bytes of all entries together, declared and actually read.
    pub max_total_bytes: u64,
    /// Uncompressed / compressed size of one entry, checked for entries above `ratio_floor_bytes`.
    pub max_ratio: u64,
    pub ratio_floor_bytes: u64,
    /// A longer CSV line is an error line (and is not held in memory).
    pub max_line_bytes: usize,
    /// Bad lines kept in `error_urls`.
    pub max_error_urls: usize,
    /// URLs inserted per transaction.
    pub batch: usize,
}

impl Default for ImportLimits {
    fn default() -> Self {
        Self {
            max_entries: 100,
            max_total_bytes: 64 * 1024 * 1024,
            max_ratio: 100,
            ratio_floor_bytes: 64 * 1024,
            max_line_bytes: 8 * 1024,
            max_error_urls: 100,
            batch: 1000,
        }
    }
}

/// An attempt that may succeed when tried again. A bad archive is not one: it ends the request
/// `failed` and [`run`] returns Ok.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error(transparent)]
    Storage(#[from] StorageError),
    /// A reading thread panicked (the message says which).
    #[error("{0}")]
    Crashed(String),
    /// Another attempt of the same request moved its position on: this one was taken over.
    #[error("another attempt took this import over")]
    Superseded,
}

/// One import request: whose, and where its upload lies.
#[derive(Debug, Clone, Copy)]
pub struct Request<'a> {
    pub request_id: &'a str,
    pub user_id: i64,
    pub path: &'a Path,
}

/// Runs one attempt of an import request: from the start, or from where an earlier attempt of
/// the same request stopped.
pub async fn run(db: &Db, req: Request<'_>, limits: &ImportLimits) -> Result<(), ImportError> {
    run_attempt(db, req, limits, None).await.map(|_| ())
}

/// For tests of resumption only: an attempt that stops as a killed worker would, once `batches`
/// batches have committed: no error, the request left `in_process`, the upload kept. True if it
/// stopped there, false if the import finished first.
#[doc(hidden)]
pub async fn run_killed_after(
    db: &Db,
    req: Request<'_>,
    limits: &ImportLimits,
    batches: usize,
) -> Result<bool, ImportError> {
    let finished = run_attempt(db, req, limits, Some(batches)).await?;
    Ok(!finished)
}

/// One attempt; with `stop_after`, it returns once that many batches have committed. Ok(true) if
/// the request was finished (or had nothing to do).
async fn run_attempt(
    db: &Db,
    req: Request<'_>,
    limits: &ImportLimits,
    stop_after: Option<usize>,
) -> Result<bool, ImportError> {
    let path = req.path.to_path_buf();
    let Some(stored) = requests::request(db, req.request_id).await? else {
        remove_upload(&path).await;
        return Ok(true);
    };
    // A failed request whose upload is still there ran out of attempts (a bad archive deletes its
    // upload): an admin retried its dead job, so it runs again. Anything else finished is done.
    let retried = stored.status == requests::STATUS_FAILED && path.is_file();
    if stored.is_finished() && !retried {
        remove_upload(&path).await;
        return Ok(true);
    }

    // Inspected again on a retry: cheap next to the import, and an upload truncated since (a disk
    // problem) must fail here rather than half-way.
    let inspect_path = path.clone();
    let inspect_limits = limits.clone();
    let plan =
        tokio::task::spawn_blocking(move || archive::inspect(&inspect_path, &inspect_limits))
            .await
            .map_err(|e| ImportError::Crashed(format!("inspection panicked: {e}")))?;
    let plan = match plan {
        Ok(plan) => plan,
        Err(reason) => return fail(db, req.request_id, &path, &reason).await.map(|_| true),
    };
    // The position (data lines consumed) and the counters commit with each batch's rows, so they
    // are where an earlier attempt's last commit left them: nothing past them is in the database.
    let mut progress = if stored.status == requests::STATUS_PENDING {
        Progress::default()
    } else {
        Progress {
            total: stored.total,
            processed: stored.processed,
            created: stored.created,
            duplicates: stored.duplicates,
            error_count: stored.error_count,
            error_urls: stored.error_urls.clone(),
        }
    };
    if progress.processed > plan.total_lines {
        let reason = format!(
            "The upload changed during the import: it holds {} lines, {} were already imported",
            plan.total_lines, progress.processed
        );
        return fail(db, req.request_id, &path, &reason).await.map(|_| true);
    }
    progress.total = plan.total_lines;
    let position = progress.processed;
    requests::start_request(db, req.request_id, plan.total_lines, Timestamp::now()).await?;
    tracing::info!(
        request_id = %req.request_id,
        total = plan.total_lines,
        position,
        "import started"
    );

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<Parsed>, String>>(4);
    let reader = spawn_reader(path.clone(), plan.csv_entries, limits.clone(), tx);

    let mut seen = SeenUrls::default();
    // Lines before the position are parsed again only to refill `seen`, so that a later line
    // repeating one of them is still a duplicate; they were counted and written already.
    let mut to_skip = position;
    let details = serde_json::json!({"source": "import", "request_id": req.request_id});
    let mut failure = None;
    let mut committed = 0;
    while let Some(msg) = rx.recv().await {
        let mut batch = match msg {
            Ok(b) => b,
            Err(reason) => {
                failure = Some(reason);
                break;
            }
        };
        if to_skip > 0 {
            let skipped = batch.len().min(to_skip as usize);
            for item in batch.drain(..skipped) {
                if let Parsed::Url(url) = item {
                    seen.insert(url.full_url());
                }
            }
            to_skip -= skipped as i64;
            if batch.is_empty() {
                continue;
            }
        }
        if stop_after.is_some_and(|n| committed >= n) {
            // As if killed: the reader stops at the closed channel, nothing more is recorded.
            drop(rx);
            let _ = reader.await;
            return Ok(false);
        }
        let from = progress.processed;
        let fresh = sort_batch(batch, &mut seen, &mut progress, limits);
        let now = Timestamp::now();
        let mut db_tx = db.begin().await?;
        let created = imports::import_batch(
            &mut db_tx,
            req.user_id,
            req.request_id,
            &fresh,
            &details,
            now,
        )
        .await?;
        progress.created += created as i64;
        progress.duplicates += (fresh.len() - created) as i64;
        if !requests::update_progress(&mut db_tx, req.request_id, from, &progress, now).await? {
            // Dropping the transaction rolls this batch's rows back.
            drop(db_tx);
            drop(rx);
            let _ = reader.await;
            return Err(ImportError::Superseded);
        }
        db_tx.commit().await.map_err(StorageError::from)?;
        committed += 1;
    }
    drop(rx);
    reader
        .await
        .map_err(|e| ImportError::Crashed(format!("reader panicked: {e}")))?;
    if let Some(reason) = failure {
        return fail(db, req.request_id, &path, &reason).await.map(|_| true);
    }
    if to_skip > 0 {
        // Inspection counted at least `position` lines, so reading yields them too, unless the
        // file changed in between.
        let reason =
            "The upload changed during the import: it ended before the lines already imported";
        return fail(db, req.request_id, &path, reason).await.map(|_| true);
    }
    requests::finish_request(db, req.request_id, None, Timestamp::now()).await?;
    tracing::info!(
        request_id = %req.request_id,
        created = progress.created,
        duplicates = progress.duplicates,
        errors = progress.error_count,
        "import finished"
    );
    remove_upload(&path).await;
    Ok(true)
}

/// Pass 2 on a blocking thread: batches of parsed lines into `tx`, or the reason reading stopped.
fn spawn_reader(
    path: PathBuf,
    entries: Vec<usize>,
    limits: ImportLimits,
    tx: tokio::sync::mpsc::Sender<Result<Vec<Parsed>, String>>,
) -> tokio::task::JoinHandle<()> {
    tokio::task::spawn_blocking(move || {
        let result = archive::stream_lines(&path, &entries, &limits, |batch| {
            tx.blocking_send(Ok(batch))
                .map_err(|_| "import stopped".to_owned())
        });
        if let Err(reason) = result {
            let _ = tx.blocking_send(Err(reason));
        }
    })
}

/// Counts a batch into `progress` and returns its URLs not met earlier in the file.
fn sort_batch(
    batch: Vec<Parsed>,
    seen: &mut SeenUrls,
    progress: &mut Progress,
    limits: &ImportLimits,
) -> Vec<ResourceUrl> {
    let mut fresh = Vec::with_capacity(batch.len());
    for item in batch {
        progress.processed += 1;
        match item {
            Parsed::Url(url) => {
                if seen.insert(url.full_url()) {
                    fresh.push(url);
                } else {
                    progress.duplicates += 1;
                }
            }
            Parsed::Bad(line) => {
                progress.error_count += 1;
                if progress.error_urls.len() < limits.max_error_urls {
                    progress.error_urls.push(line);
                }
            }
        }
    }
    fresh
}

/// Ends a request whose last attempt failed with `err` (called by the job on its final attempt),
/// so that it does not stay `in_process` behind a dead job. Its upload is kept for a retry.
pub async fn give_up(db: &Db, request_id: &str, attempt: i64, err: &str) {
    let reason = format!("The import stopped after repeated errors: {err}");
    tracing::warn!(request_id = %request_id, attempt, reason, "import failed for good");
    if let Err(e) = requests::finish_request(db, request_id, Some(&reason), Timestamp::now()).await
    {
        // Reading the request notices the dead job and fails it then.
        tracing::warn!(request_id = %request_id, error = %e, "cannot mark the import failed");
    }
}

/// The URLs met so far in one file, for its duplicates. Keeps a 128-bit hash per URL rather than
/// the URL (16 bytes instead of about 60 with its allocation): a million-line import stays within
/// its memory budget, and two URLs colliding is as likely as guessing a random UUID.
#[derive(Default)]
struct SeenUrls {
    hashes: HashSet<u128>,
    keys: (std::hash::RandomState, std::hash::RandomState),
}

impl SeenUrls {
    /// True the first time a URL is met.
    fn insert(&mut self, url: &str) -> bool {
        use std::hash::BuildHasher;
        let hash =
            (u128::from(self.keys.0.hash_one(url)) << 64) | u128::from(self.keys.1.hash_one(url));
        self.hashes.insert(hash)
    }
}

/// A bad archive: the request ends `failed` with the reason, and its upload is deleted (so a
/// retry of the job finds nothing to do).
async fn fail(db: &Db, request_id: &str, path: &Path, reason: &str) -> Result<(), ImportError> {
    tracing::warn!(request_id = %request_id, reason, "import failed");
    requests::finish_request(db, request_id, Some(reason), Timestamp::now()).await?;
    remove_upload(path).await;
    Ok(())
}

/// Removes a spooled upload; one already gone is fine, anything else is logged.
pub async fn remove_upload(path: &Path) {
    if let Err(e) = tokio::fs::remove_file(path).await {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(path = %path.display(), error = %e, "cannot remove upload");
        }
    }
}
