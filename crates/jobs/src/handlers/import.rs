//! Bulk import: a ZIP archive holding a CSV of URLs (first column), uploaded to
//! `<data_dir>/uploads/` by `POST /resources` and processed here.
//!
//! The archive comes from a user, so it is read defensively, in two passes over the file on disk:
//!
//! 1. **Inspect**: the entry count (read from the end record before the central directory is
//!    parsed), safe entry names, no nested archives, declared sizes and compression ratios within
//!    limits, at least one CSV. Then every CSV is decompressed once with the real byte counts
//!    checked against the same limits (declared sizes can lie), and its data lines are counted, so
//!    that `total` is known before anything is inserted and a bomb leaves no half import.
//! 2. **Import**: the lines are streamed again from a blocking thread, parsed into
//!    [`ResourceUrl`]s and sent in batches to this task, which inserts each batch (skipping URLs
//!    already in the catalogue or earlier in the file) and updates the request's counters in one
//!    transaction per batch.
//!
//! A bad archive ends the request `failed` with a reason and is not retried; a database error is
//! retried, and so is an attempt whose worker died (a timeout, kill -9): the request restarts from
//! zero. Its counters stay true across attempts: every resource an import inserts records the
//! request (`resources.import_id`), so a URL that an earlier attempt of the same request inserted
//! counts as created again, not as a duplicate (see `resources::import_batch`). The upload is
//! deleted once the request is finished.
//!
//! The last attempt that fails marks the request `failed` itself (the worker dead-letters the job
//! next), so a request never stays `in_process` behind a dead job; its upload is kept, so that an
//! admin who retries the dead job runs the import again. What the handler cannot see (a timeout or
//! a panic on the last attempt, a discarded job) is caught when the request is read:
//! `storage::resources::fail_request_without_job`.

use crate::{Context, Job, JobError};
use pulseboard_domain::{ResourceUrl, Timestamp};
use pulseboard_storage::resources::{self, Progress};
use serde::{Deserialize, Serialize};
use std::collections::HashSet;
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

/// Import the URLs of an uploaded ZIP into a user's catalogue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportResources {
    pub request_id: String,
    pub user_id: i64,
    /// The uploaded archive, written by the web process under `<data_dir>/uploads/`.
    pub path: String,
}

impl Job for ImportResources {
    const KIND: &'static str = "import_resources";
    const QUEUE: &'static str = super::IMPORTS_QUEUE;

    fn idempotency_key(&self) -> Option<String> {
        Some(Self::job_key(&self.request_id))
    }
}

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

/// Extensions of archives and compressed files: an import holds CSV, not more archives.
const ARCHIVE_EXTENSIONS: &[&str] = &[
    "zip", "jar", "apk", "gz", "tgz", "tar", "bz2", "tbz", "xz", "txz", "7z", "rar", "zst", "lz",
    "lzma", "z", "cab", "arj",
];

/// Leading bytes of archive formats, for nested archives renamed to `.csv`.
const ARCHIVE_MAGIC: &[&[u8]] = &[
    b"PK\x03\x04",
    b"PK\x05\x06",
    b"\x1f\x8b",
    b"7z\xbc\xaf\x27\x1c",
    b"Rar!\x1a\x07",
    b"BZh",
    b"\xfd7zXZ\x00",
    b"\x28\xb5\x2f\xfd",
];

impl ImportResources {
    /// The idempotency key of the import job of a request.
    pub fn job_key(request_id: &str) -> String {
        format!("import:{request_id}")
    }
}

/// Runs one attempt; `attempt` counts from 1. On the final attempt (`jobs.max_attempts`), a failure
/// also ends the request `failed` with the reason.
pub async fn handle(ctx: &Context, job: ImportResources, attempt: i64) -> Result<(), JobError> {
    let result = run(ctx, &job).await;
    let final_error = match &result {
        Err(JobError::Retry(e)) if attempt >= i64::from(ctx.max_attempts) => Some(e),
        Err(JobError::Fatal(e)) => Some(e),
        _ => None,
    };
    if let Some(err) = final_error {
        let reason = format!("The import stopped after repeated errors: {err}");
        tracing::warn!(request_id = %job.request_id, attempt, reason, "import failed for good");
        if let Err(e) = resources::finish_request(
            ctx.db.pool(),
            &job.request_id,
            Some(&reason),
            Timestamp::now(),
        )
        .await
        {
            // Reading the request notices the dead job and fails it then.
            tracing::warn!(request_id = %job.request_id, error = %e, "cannot mark the import failed");
        }
    }
    result
}

async fn run(ctx: &Context, job: &ImportResources) -> Result<(), JobError> {
    let job = job.clone();
    let pool = ctx.db.pool();
    let path = PathBuf::from(&job.path);
    let Some(req) = resources::request(pool, &job.request_id).await? else {
        remove_upload(&path).await;
        return Ok(());
    };
    // A failed request whose upload is still there ran out of attempts (a bad archive deletes its
    // upload): an admin retried its dead job, so it runs again. Anything else finished is done.
    let retried = req.status == resources::STATUS_FAILED && path.is_file();
    if req.is_finished() && !retried {
        remove_upload(&path).await;
        return Ok(());
    }
    // Only an attempt that started before (in_process) or ran out of attempts (failed) can have
    // inserted rows of this request: a first attempt skips the check for them.
    let resumed = req.status != resources::STATUS_PENDING;
    let limits = ImportLimits::default();

    let inspect_path = path.clone();
    let inspect_limits = limits.clone();
    let plan = tokio::task::spawn_blocking(move || inspect(&inspect_path, &inspect_limits))
        .await
        .map_err(|e| JobError::Retry(format!("inspection panicked: {e}")))?;
    let plan = match plan {
        Ok(plan) => plan,
        Err(reason) => return fail(ctx, &job, &path, &reason).await,
    };
    resources::start_request(pool, &job.request_id, plan.total_lines, Timestamp::now()).await?;
    tracing::info!(request_id = %job.request_id, total = plan.total_lines, "import started");

    let (tx, mut rx) = tokio::sync::mpsc::channel::<Result<Vec<Parsed>, String>>(4);
    let read_path = path.clone();
    let read_limits = limits.clone();
    let reader = tokio::task::spawn_blocking(move || {
        let result = stream_lines(&read_path, &plan.csv_entries, &read_limits, |batch| {
            tx.blocking_send(Ok(batch))
                .map_err(|_| "import stopped".to_owned())
        });
        if let Err(reason) = result {
            let _ = tx.blocking_send(Err(reason));
        }
    });

    let mut progress = Progress {
        total: plan.total_lines,
        ..Progress::default()
    };
    let mut seen = SeenUrls::default();
    let details = serde_json::json!({"source": "import", "request_id": job.request_id});
    let mut failure = None;
    while let Some(msg) = rx.recv().await {
        let batch = match msg {
            Ok(b) => b,
            Err(reason) => {
                failure = Some(reason);
                break;
            }
        };
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
        let now = Timestamp::now();
        let mut db_tx = ctx.db.begin().await?;
        let batch = resources::import_batch(
            &mut db_tx,
            job.user_id,
            &job.request_id,
            resumed,
            &fresh,
            &details,
            now,
        )
        .await?;
        progress.created += batch.created() as i64;
        progress.duplicates += (fresh.len() - batch.created()) as i64;
        resources::update_progress(&mut db_tx, &job.request_id, &progress, now).await?;
        db_tx
            .commit()
            .await
            .map_err(pulseboard_storage::StorageError::from)?;
    }
    drop(rx);
    reader
        .await
        .map_err(|e| JobError::Retry(format!("reader panicked: {e}")))?;
    if let Some(reason) = failure {
        return fail(ctx, &job, &path, &reason).await;
    }
    resources::finish_request(pool, &job.request_id, None, Timestamp::now()).await?;
    tracing::info!(
        request_id = %job.request_id,
        created = progress.created,
        duplicates = progress.duplicates,
        errors = progress.error_count,
        "import finished"
    );
    remove_upload(&path).await;
    Ok(())
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

async fn fail(
    ctx: &Context,
    job: &ImportResources,
    path: &Path,
    reason: &str,
) -> Result<(), JobError> {
    tracing::warn!(request_id = %job.request_id, reason, "import failed");
    resources::finish_request(
        ctx.db.pool(),
        &job.request_id,
        Some(reason),
        Timestamp::now(),
    )
    .await?;
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

/// One data line of a CSV.
#[derive(Debug)]
pub enum Parsed {
    Url(ResourceUrl),
    /// A line that is not a URL, as shown in `error_urls`.
    Bad(String),
}

#[derive(Debug)]
pub struct Plan {
    pub csv_entries: Vec<usize>,
    pub total_lines: i64,
}

/// Pass 1: checks the archive and counts the data lines of its CSV files. Err is the reason shown
/// to the user.
pub fn inspect(path: &Path, limits: &ImportLimits) -> Result<Plan, String> {
    let mut file = File::open(path).map_err(|e| format!("The upload cannot be read: {e}"))?;
    let declared_entries = end_record_entries(&mut file)?;
    if declared_entries > limits.max_entries as u64 {
        return Err(too_many_entries(limits));
    }
    file.seek(SeekFrom::Start(0)).map_err(|e| e.to_string())?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(not_a_zip)?;
    if archive.len() > limits.max_entries {
        return Err(too_many_entries(limits));
    }
    let mut csv_entries = vec![];
    let mut declared_total: u64 = 0;
    for i in 0..archive.len() {
        let entry = archive.by_index_raw(i).map_err(not_a_zip)?;
        let name = entry.name().to_owned();
        if entry.enclosed_name().is_none() || name.contains('\\') || name.contains('\0') {
            return Err(format!(
                "The archive holds an unsafe file name: {}",
                shown(&name)
            ));
        }
        if entry.is_dir() {
            continue;
        }
        let lower = name.to_ascii_lowercase();
        let ext = lower.rsplit_once('.').map(|(_, e)| e).unwrap_or("");
        if ARCHIVE_EXTENSIONS.contains(&ext) {
            return Err(format!(
                "Nested archives are not accepted: {}",
                shown(&name)
            ));
        }
        declared_total = declared_total.saturating_add(entry.size());
        if declared_total > limits.max_total_bytes {
            return Err(too_big(limits));
        }
        if entry.size() > limits.ratio_floor_bytes
            && entry.size() / entry.compressed_size().max(1) > limits.max_ratio
        {
            return Err(too_compressed(&name, limits));
        }
        let base = lower.rsplit('/').next().unwrap_or("");
        if ext == "csv" && !base.starts_with("._") && !lower.starts_with("__macosx/") {
            if entry.encrypted() {
                return Err(format!(
                    "The CSV file {} is encrypted; upload it without a password",
                    shown(&name)
                ));
            }
            csv_entries.push(i);
        }
    }
    if csv_entries.is_empty() {
        return Err("The archive holds no CSV file (expected a .csv with one URL per line)".into());
    }
    let mut total_lines: i64 = 0;
    let mut budget = limits.max_total_bytes;
    for &i in &csv_entries {
        let entry = archive.by_index(i).map_err(unreadable)?;
        let name = entry.name().to_owned();
        let compressed = entry.compressed_size();
        let mut reader = Checked::new(entry, &name, compressed, &mut budget, limits);
        let mut head = [0u8; 8];
        let n = read_up_to(&mut reader, &mut head).map_err(io_reason)?;
        if ARCHIVE_MAGIC.iter().any(|m| head[..n].starts_with(m)) {
            return Err(format!(
                "Nested archives are not accepted: {} is an archive",
                shown(&name)
            ));
        }
        let reader = BufReader::new(io::Cursor::new(head[..n].to_vec()).chain(reader));
        for_each_line(reader, limits, |_| {
            total_lines += 1;
            Ok(())
        })?;
    }
    Ok(Plan {
        csv_entries,
        total_lines,
    })
}

/// Pass 2: the data lines of the CSV entries, parsed, in batches.
pub fn stream_lines(
    path: &Path,
    entries: &[usize],
    limits: &ImportLimits,
    mut send: impl FnMut(Vec<Parsed>) -> Result<(), String>,
) -> Result<(), String> {
    let file = File::open(path).map_err(|e| format!("The upload cannot be read: {e}"))?;
    let mut archive = zip::ZipArchive::new(BufReader::new(file)).map_err(not_a_zip)?;
    let mut budget = limits.max_total_bytes;
    let mut batch = Vec::with_capacity(limits.batch);
    for &i in entries {
        let entry = archive.by_index(i).map_err(unreadable)?;
        let name = entry.name().to_owned();
        let compressed = entry.compressed_size();
        let reader = BufReader::new(Checked::new(entry, &name, compressed, &mut budget, limits));
        for_each_line(reader, limits, |line| {
            batch.push(match line {
                Line::Field(field) => match ResourceUrl::parse(&field) {
                    Ok(url) => Parsed::Url(url),
                    Err(_) => Parsed::Bad(shown(&field)),
                },
                Line::Bad(text) => Parsed::Bad(text),
            });
            if batch.len() >= limits.batch {
                send(std::mem::take(&mut batch))?;
            }
            Ok(())
        })?;
    }
    if !batch.is_empty() {
        send(batch)?;
    }
    Ok(())
}

/// A data line: its first CSV field, or why it has none.
pub enum Line {
    Field(String),
    Bad(String),
}

/// Calls `f` for each data line: blank lines are skipped, and so is a header (a first line whose
/// first field looks like a column name rather than an address). A UTF-8 byte order mark is
/// dropped; lines may end in `\n` or `\r\n`.
pub fn for_each_line(
    mut reader: impl BufRead,
    limits: &ImportLimits,
    mut f: impl FnMut(Line) -> Result<(), String>,
) -> Result<(), String> {
    let mut buf = Vec::with_capacity(256);
    let mut first = true;
    loop {
        buf.clear();
        let (n, complete) =
            read_line_capped(&mut reader, &mut buf, limits.max_line_bytes).map_err(io_reason)?;
        if n == 0 {
            return Ok(());
        }
        let mut bytes: &[u8] = &buf;
        if first {
            bytes = bytes.strip_prefix(b"\xef\xbb\xbf").unwrap_or(bytes);
        }
        if !complete {
            first = false;
            let head = String::from_utf8_lossy(&bytes[..bytes.len().min(200)]).into_owned();
            f(Line::Bad(format!(
                "{head}… (line longer than {} bytes)",
                limits.max_line_bytes
            )))?;
            continue;
        }
        while let Some(rest) = bytes
            .strip_suffix(b"\n")
            .or_else(|| bytes.strip_suffix(b"\r"))
        {
            bytes = rest;
        }
        let Ok(text) = std::str::from_utf8(bytes) else {
            first = false;
            f(Line::Bad(shown(&String::from_utf8_lossy(bytes))))?;
            continue;
        };
        if text.trim().is_empty() {
            continue;
        }
        let field = first_field(text);
        let was_first = std::mem::replace(&mut first, false);
        if was_first && looks_like_header(&field) {
            continue;
        }
        if field.is_empty() {
            f(Line::Bad(shown(text)))?;
        } else {
            f(Line::Field(field))?;
        }
    }
}

/// The first field of a CSV line: up to the first comma, or a double-quoted field (with `""` for a
/// quote), trimmed.
pub fn first_field(line: &str) -> String {
    let t = line.trim_start();
    if let Some(rest) = t.strip_prefix('"') {
        let mut out = String::new();
        let mut chars = rest.chars().peekable();
        while let Some(c) = chars.next() {
            if c == '"' {
                if chars.peek() == Some(&'"') {
                    chars.next();
                    out.push('"');
                } else {
                    break;
                }
            } else {
                out.push(c);
            }
        }
        return out.trim().to_owned();
    }
    t.split(',').next().unwrap_or("").trim().to_owned()
}

/// A first line naming its column ("url", "link", "Адрес") rather than holding an address.
fn looks_like_header(field: &str) -> bool {
    !field.is_empty()
        && !field.contains("://")
        && !field.contains('.')
        && !field.contains('/')
        && field.chars().count() <= 64
}

/// Reads one line into `buf`, keeping at most `max` bytes of it; the rest of a longer line is
/// consumed and dropped. Returns the bytes consumed and whether the line fit.
fn read_line_capped(
    r: &mut impl BufRead,
    buf: &mut Vec<u8>,
    max: usize,
) -> io::Result<(usize, bool)> {
    let mut consumed = 0;
    let mut fits = true;
    loop {
        let available = r.fill_buf()?;
        if available.is_empty() {
            return Ok((consumed, fits));
        }
        let (chunk, done) = match available.iter().position(|&b| b == b'\n') {
            Some(i) => (&available[..=i], true),
            None => (available, false),
        };
        let room = max.saturating_sub(buf.len());
        if chunk.len() > room {
            fits = false;
        }
        buf.extend_from_slice(&chunk[..chunk.len().min(room)]);
        let len = chunk.len();
        r.consume(len);
        consumed += len;
        if done {
            return Ok((consumed, fits));
        }
    }
}

fn read_up_to(r: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match r.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Reads an entry while counting the bytes it really yields: over the archive's byte budget or
/// over the compression ratio, reading stops with an error (declared sizes can lie).
struct Checked<'b, R> {
    inner: R,
    name: String,
    compressed: u64,
    read: u64,
    budget: &'b mut u64,
    max_ratio: u64,
    ratio_floor: u64,
    max_total: u64,
}

impl<'b, R: Read> Checked<'b, R> {
    fn new(inner: R, name: &str, compressed: u64, budget: &'b mut u64, l: &ImportLimits) -> Self {
        Self {
            inner,
            name: name.to_owned(),
            compressed,
            read: 0,
            budget,
            max_ratio: l.max_ratio,
            ratio_floor: l.ratio_floor_bytes,
            max_total: l.max_total_bytes,
        }
    }
}

impl<R: Read> Read for Checked<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read += n as u64;
        if n as u64 > *self.budget {
            return Err(io::Error::other(format!(
                "The archive unpacks to more than {} MiB",
                self.max_total / (1024 * 1024)
            )));
        }
        *self.budget -= n as u64;
        if self.read > self.ratio_floor && self.read / self.compressed.max(1) > self.max_ratio {
            return Err(io::Error::other(format!(
                "{} is compressed more than {}:1, which looks like a zip bomb",
                shown(&self.name),
                self.max_ratio
            )));
        }
        Ok(n)
    }
}

/// The number of entries the archive's end record declares, read before the central directory is
/// parsed (so that an archive with millions of entries is refused without building a list of them).
fn end_record_entries(file: &mut File) -> Result<u64, String> {
    let len = file.metadata().map_err(|e| e.to_string())?.len();
    if len < 22 {
        return Err("The file is not a ZIP archive (too short)".into());
    }
    let tail_len = len.min(22 + 65_535);
    file.seek(SeekFrom::Start(len - tail_len))
        .map_err(|e| e.to_string())?;
    let mut tail = vec![0u8; tail_len as usize];
    file.read_exact(&mut tail).map_err(|e| e.to_string())?;
    let pos = (0..=tail.len() - 22)
        .rev()
        .find(|&i| tail[i..].starts_with(b"PK\x05\x06"))
        .ok_or(
            "The file is not a valid ZIP archive: its end record is missing (truncated upload?)",
        )?;
    let entries = u16::from_le_bytes([tail[pos + 10], tail[pos + 11]]);
    // 0xFFFF defers to a ZIP64 record: more entries than any import needs.
    Ok(if entries == u16::MAX {
        u64::MAX
    } else {
        entries as u64
    })
}

fn too_many_entries(l: &ImportLimits) -> String {
    format!("The archive holds more than {} files", l.max_entries)
}

fn too_big(l: &ImportLimits) -> String {
    format!(
        "The archive unpacks to more than {} MiB",
        l.max_total_bytes / (1024 * 1024)
    )
}

fn too_compressed(name: &str, l: &ImportLimits) -> String {
    format!(
        "{} is compressed more than {}:1, which looks like a zip bomb",
        shown(name),
        l.max_ratio
    )
}

fn not_a_zip(e: zip::result::ZipError) -> String {
    format!("The file is not a valid ZIP archive: {e}")
}

fn unreadable(e: zip::result::ZipError) -> String {
    match e {
        zip::result::ZipError::UnsupportedArchive(m) => {
            format!("The archive cannot be read: {m} (use plain or deflate compression)")
        }
        other => format!("The archive cannot be read: {other}"),
    }
}

fn io_reason(e: io::Error) -> String {
    // Our own limit errors carry their message; others (corrupt data) are described as such.
    match e.kind() {
        io::ErrorKind::Other => e.to_string(),
        _ => format!("The archive is damaged: {e}"),
    }
}

/// Text as shown back to the user: at most 300 characters.
fn shown(s: &str) -> String {
    if s.chars().count() > 300 {
        format!("{}…", s.chars().take(300).collect::<String>())
    } else {
        s.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines(input: &[u8]) -> Vec<String> {
        let mut out = vec![];
        for_each_line(input, &ImportLimits::default(), |l| {
            out.push(match l {
                Line::Field(f) => format!("F:{f}"),
                Line::Bad(b) => format!("B:{b}"),
            });
            Ok(())
        })
        .unwrap();
        out
    }

    #[test]
    fn csv_lines() {
        assert_eq!(
            lines(b"\xef\xbb\xbfurl,title\r\nhttps://a.com,A\r\n\r\n\"https://b.com/?q=1,2\",B\n  \n,empty\nnot a url\n"),
            [
                "F:https://a.com",
                "F:https://b.com/?q=1,2",
                "B:,empty",
                "F:not a url"
            ]
        );
        // No header: the first line is data.
        assert_eq!(lines(b"https://a.com"), ["F:https://a.com"]);
        assert_eq!(lines(b"a.com\nb.com"), ["F:a.com", "F:b.com"]);
        // Invalid UTF-8 is an error line, not a failure.
        assert_eq!(lines(b"https://a.com\n\xff\xfe\n").len(), 2);
    }

    #[test]
    fn long_lines_are_capped() {
        let limits = ImportLimits {
            max_line_bytes: 16,
            ..ImportLimits::default()
        };
        let input = format!(
            "https://a.com\nhttps://{}\nhttps://b.com\n",
            "x".repeat(100)
        );
        let mut out = vec![];
        for_each_line(input.as_bytes(), &limits, |l| {
            out.push(matches!(l, Line::Field(_)));
            Ok(())
        })
        .unwrap();
        assert_eq!(out, [true, false, true]);
    }

    fn zip_of(entries: &[(&str, &[u8])]) -> Vec<u8> {
        use std::io::Write;
        let mut w = zip::ZipWriter::new(io::Cursor::new(Vec::new()));
        let opts = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in entries {
            w.start_file(*name, opts).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn inspect_bytes(bytes: &[u8], limits: &ImportLimits) -> Result<Plan, String> {
        let path = std::env::temp_dir().join(format!("pb-import-{}.zip", uuid::Uuid::new_v4()));
        std::fs::write(&path, bytes).unwrap();
        let r = inspect(&path, limits);
        std::fs::remove_file(&path).unwrap();
        r
    }

    /// Varied lines that deflate poorly (ratio well under the limit).
    fn noisy_csv(lines: usize) -> Vec<u8> {
        (0..lines)
            .map(|i| {
                format!(
                    "https://h{:x}.example/{:x}\n",
                    i * 7919,
                    (i as u64).wrapping_mul(0x9e3779b97f4a7c15)
                )
            })
            .collect::<String>()
            .into_bytes()
    }

    #[test]
    fn total_size_limit_counts_declared_sizes() {
        let limits = ImportLimits {
            max_total_bytes: 100_000,
            ..ImportLimits::default()
        };
        let csv = noisy_csv(2_000);
        assert!(csv.len() > 50_000);
        let ok = inspect_bytes(&zip_of(&[("a.csv", &csv[..40_000])]), &limits).unwrap();
        assert!(ok.total_lines > 0);
        let err = inspect_bytes(&zip_of(&[("a.csv", &csv), ("b.csv", &csv)]), &limits).unwrap_err();
        assert!(err.contains("more than"), "{err}");
    }

    /// Declared sizes lie: the central directory and local header claim 100 bytes for an entry
    /// that inflates to 2 MiB. Reading stops at the real limits, with an error, never a panic.
    #[test]
    fn lying_sizes_are_caught_while_reading() {
        let limits = ImportLimits {
            max_total_bytes: 1024 * 1024,
            ..ImportLimits::default()
        };
        let mut bytes = zip_of(&[("a.csv", &vec![b'a'; 2 * 1024 * 1024])]);
        let patch = |bytes: &mut Vec<u8>, sig: &[u8], offset: usize| {
            let at = bytes.windows(4).position(|w| w == sig).unwrap() + offset;
            bytes[at..at + 4].copy_from_slice(&100u32.to_le_bytes());
        };
        patch(&mut bytes, b"PK\x03\x04", 22);
        patch(&mut bytes, b"PK\x01\x02", 24);
        let err = inspect_bytes(&bytes, &limits).unwrap_err();
        assert!(
            err.contains("zip bomb") || err.contains("more than") || err.contains("damaged"),
            "{err}"
        );
    }

    #[test]
    fn checked_reader_enforces_budget_and_ratio() {
        let limits = ImportLimits {
            max_total_bytes: 1000,
            ratio_floor_bytes: 10,
            max_ratio: 5,
            ..ImportLimits::default()
        };
        let data = vec![b'x'; 5000];
        let mut budget = 1000;
        let mut r = Checked::new(&data[..], "a.csv", 10_000, &mut budget, &limits);
        let err = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert!(err.to_string().contains("more than"), "{err}");
        let mut budget = 1_000_000;
        let mut r = Checked::new(&data[..], "a.csv", 100, &mut budget, &limits);
        let err = io::copy(&mut r, &mut io::sink()).unwrap_err();
        assert!(err.to_string().contains("zip bomb"), "{err}");
    }

    #[test]
    fn quoted_fields() {
        assert_eq!(first_field(r#""a ""b"" c",d"#), r#"a "b" c"#);
        assert_eq!(first_field("  x  ,y"), "x");
    }
}
