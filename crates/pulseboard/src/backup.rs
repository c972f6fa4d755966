//! `pulseboard backup` and `pulseboard restore`: a consistent online copy of one installation.
//!
//! A backup is a folder: `pulseboard.db` (SQLite, written with `VACUUM INTO`, which reads one
//! snapshot while other connections keep writing), `blobs/` (when blobs are on the local disk),
//! `jwt.key` (the generated development key, when there is one) and `manifest.json`, written last,
//! so a folder without it is not a finished backup. PostgreSQL is not dumped here: the commands
//! print the `pg_dump` / `pg_restore` lines for the configured URL and handle the files only.

use anyhow::{bail, Context as _};
use pulseboard_config::{Config, RunMode};
use pulseboard_domain::Timestamp;
use pulseboard_storage::{sqlite_file_counts, Backend, BACKUP_COUNTED_TABLES};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

/// The `format` field of every manifest.
pub const FORMAT: &str = "pulseboard-backup";
const DB_FILE: &str = "pulseboard.db";
const KEY_FILE: &str = "jwt.key";
const MANIFEST: &str = "manifest.json";
const PG_DUMP_FILE: &str = "pulseboard.pgdump";

/// What a backup or restore did: the folder, the manifest, and the lines the CLI prints.
#[derive(Debug)]
pub struct Report {
    /// The backup folder (written or read).
    pub dir: PathBuf,
    pub manifest: Value,
    pub lines: Vec<String>,
}

/// Writes a backup into `to` (default `<data_dir>/backups/pulseboard-<UTC time>`), which must not
/// exist or be an empty folder. Safe while the server and workers run.
pub async fn backup(config: &Config, to: Option<PathBuf>) -> anyhow::Result<Report> {
    let now = Timestamp::now();
    let dir = to.unwrap_or_else(|| {
        config
            .data_dir
            .join("backups")
            .join(format!("pulseboard-{}", folder_stamp(now)))
    });
    if dir.exists() {
        let empty = std::fs::read_dir(&dir)
            .with_context(|| format!("cannot read the backup folder {}", dir.display()))?
            .next()
            .is_none();
        if !empty {
            bail!(
                "the backup folder {} already exists and is not empty: choose another --to",
                dir.display()
            );
        }
    }
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the backup folder {}", dir.display()))?;
    // It holds password hashes and the session key: for the owner only.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let _ = std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700));
    }
    match write_backup(config, &dir, now).await {
        Ok(report) => Ok(report),
        Err(e) => {
            // A half-written backup must not pass for one (it has no manifest anyway).
            let _ = std::fs::remove_dir_all(&dir);
            Err(e)
        }
    }
}

async fn write_backup(config: &Config, dir: &Path, now: i64) -> anyhow::Result<Report> {
    let url = config.database_url();
    let backend = backend_of(&url)?;
    let mut lines = vec![];
    let blob_source = BlobSource::of(config);

    // Blobs are copied before and after the database snapshot: a blob is written before the row
    // that names it commits and deleted after the row is, so every blob the snapshot names is
    // caught by one pass or the other (the second copies only new files).
    let mut blob_copy = BlobCopy::default();
    if let BlobSource::Local(src) = &blob_source {
        let (src, dst) = (src.clone(), dir.join("blobs"));
        blob_copy = blocking(move || copy_blobs(&src, &dst, BlobCopy::default())).await?;
    }

    let (database, counts) = match backend {
        Backend::Sqlite => {
            let src = sqlite_path(&url)?;
            if !src.exists() {
                bail!(
                    "no SQLite database at {}: nothing to back up (check data_dir / \
                     PULSEBOARD_DATA_DIR and DATABASE_URL)",
                    src.display()
                );
            }
            let dest = dir.join(DB_FILE);
            let db = crate::open_db(config).await?;
            let done = db.vacuum_into(&dest).await;
            db.close().await;
            done.with_context(|| format!("VACUUM INTO {} failed", dest.display()))?;
            let d = dest.clone();
            blocking(move || sync_file(&d)).await?;
            let counts = sqlite_file_counts(&dest, &BACKUP_COUNTED_TABLES).await?;
            let size = file_size(&dest);
            lines.push(format!(
                "database  {} -> {} ({}; {})",
                src.display(),
                dest.display(),
                human(size),
                describe_counts(&counts)
            ));
            (
                json!({"included": true, "file": DB_FILE, "bytes": size, "source": src}),
                Some(counts),
            )
        }
        Backend::Postgres => {
            let command = pg_dump_command(&url, &dir.join(PG_DUMP_FILE));
            lines.push(
                "database  PostgreSQL is NOT in this backup: pulseboard does not dump it itself \
                 (pg_dump of the server's version does, consistently, while it runs). Run:"
                    .into(),
            );
            lines.push(format!("            {command}"));
            if command.starts_with("PGPASSWORD") {
                lines.push(
                    "          (the password is redacted: put it in place of *** or in ~/.pgpass)"
                        .into(),
                );
            }
            let counts = match crate::open_db(config).await {
                Ok(db) => {
                    let c = db.count_rows(&BACKUP_COUNTED_TABLES).await;
                    db.close().await;
                    c.ok()
                }
                Err(e) => {
                    lines.push(format!("          (cannot count rows: {e:#})"));
                    None
                }
            };
            (
                json!({
                    "included": false,
                    "note": "PostgreSQL is not dumped by pulseboard backup: run pg_dump_command",
                    "pg_dump_command": command,
                }),
                counts,
            )
        }
    };

    let blobs = match &blob_source {
        BlobSource::Local(src) => {
            let (s, dst) = (src.clone(), dir.join("blobs"));
            blob_copy = blocking(move || copy_blobs(&s, &dst, blob_copy)).await?;
            lines.push(format!(
                "blobs     {} -> {} ({} files, {})",
                src.display(),
                dir.join("blobs").display(),
                blob_copy.files,
                human(blob_copy.bytes)
            ));
            json!({"included": true, "source": src, "files": blob_copy.files, "bytes": blob_copy.bytes})
        }
        BlobSource::Remote(url) => {
            lines.push(format!(
                "blobs     NOT copied: blobs.url is {url}; that bucket is not on this machine \
                 (back it up with the store's versioning or replication, or `aws s3 sync`)"
            ));
            json!({"included": false, "source": url, "note": "blobs.url is not local"})
        }
    };

    let key_src = config.data_dir.join(KEY_FILE);
    let env_secret = env_secret_name();
    let key = if key_src.exists() {
        copy_key(&key_src, &dir.join(KEY_FILE), &mut lines).await?;
        true
    } else {
        false
    };
    if let Some(name) = env_secret {
        lines.push(format!(
            "secret    the JWT secret comes from {name}: it is not in the backup; keep it in \
             your secret store"
        ));
    } else if !key && config.env == RunMode::Production {
        lines.push(
            "secret    production takes the JWT secret from the environment \
             (PULSEBOARD_JWT_SECRET): keep it in your secret store"
                .into(),
        );
    }

    let counts_json = counts.as_ref().map(|c| {
        BACKUP_COUNTED_TABLES
            .iter()
            .zip(c)
            .map(|(t, n)| (t.to_string(), json!(n)))
            .collect::<serde_json::Map<_, _>>()
    });
    let manifest = json!({
        "format": FORMAT,
        "format_version": 1,
        "version": env!("CARGO_PKG_VERSION"),
        "created_at": Timestamp::rfc3339(now),
        "created_at_ms": now,
        "backend": backend.name(),
        "database": database,
        "counts": counts_json,
        "blobs": blobs,
        "jwt_key_included": key,
    });
    let text = serde_json::to_vec_pretty(&manifest)?;
    let m = dir.join(MANIFEST);
    blocking(move || write_atomic(&m, &text, false)).await?;
    lines.push(format!("manifest  {}", dir.join(MANIFEST).display()));
    lines.insert(
        0,
        format!(
            "backup written to {} ({} in all)",
            dir.display(),
            human(dir_size(dir))
        ),
    );
    Ok(Report {
        dir: dir.to_path_buf(),
        manifest,
        lines,
    })
}

/// Restores the backup in `from` into the configured database and data folder. Refuses a SQLite
/// database or blob folder that already holds data unless `force` (the replaced database files
/// are kept beside it as `*.replaced-<time>`). Every Pulseboard process using them must be stopped.
pub async fn restore(config: &Config, from: &Path, force: bool) -> anyhow::Result<Report> {
    if !from.exists() {
        bail!("the backup folder {} does not exist", from.display());
    }
    if !from.is_dir() {
        bail!(
            "{} is not a folder: pass the backup folder that `pulseboard backup` printed",
            from.display()
        );
    }
    let manifest_path = from.join(MANIFEST);
    let manifest: Value = match std::fs::read(&manifest_path) {
        Ok(bytes) => serde_json::from_slice(&bytes).with_context(|| {
            format!(
                "{} is not a Pulseboard backup: {} is not valid JSON",
                from.display(),
                manifest_path.display()
            )
        })?,
        Err(_) => bail!(
            "{} is not a Pulseboard backup: it has no {MANIFEST} (an unfinished backup, or \
             another folder)",
            from.display()
        ),
    };
    if manifest["format"] != FORMAT {
        bail!(
            "{} is not a Pulseboard backup: {} has no \"format\": \"{FORMAT}\"",
            from.display(),
            manifest_path.display()
        );
    }
    let url = config.database_url();
    let backend = backend_of(&url)?;
    let now = Timestamp::now();
    let mut lines = vec![format!("restoring {}", from.display())];
    if manifest["version"] != env!("CARGO_PKG_VERSION") {
        lines.push(format!(
            "note      the backup was made by version {}, this is {}",
            manifest["version"],
            env!("CARGO_PKG_VERSION")
        ));
    }
    let blob_target = BlobSource::of(config);
    let backup_blobs = from.join("blobs");

    // First every check, then every change.
    let mut sqlite_plan = None;
    match backend {
        Backend::Sqlite => {
            let src = from.join(DB_FILE);
            if !src.exists() {
                bail!(
                    "{} has no {DB_FILE}: it was taken from {} and holds no database to restore \
                     into SQLite",
                    from.display(),
                    manifest["backend"].as_str().unwrap_or("another database")
                );
            }
            let counts = sqlite_file_counts(&src, &BACKUP_COUNTED_TABLES)
                .await
                .with_context(|| format!("{} cannot be restored", src.display()))?;
            let target = sqlite_path(&url)?;
            // SQLite deletes the shared-memory file when the last connection closes cleanly.
            let shm = PathBuf::from(format!("{}-shm", target.display()));
            if shm.exists() && !force {
                bail!(
                    "refusing to restore: the database {} looks in use ({} exists); stop every \
                     Pulseboard process using it (after a crash, pass --force)",
                    target.display(),
                    shm.display()
                );
            }
            let existing = if target.exists() {
                let db = crate::open_db(config).await?;
                let c = db.count_rows(&BACKUP_COUNTED_TABLES).await;
                db.close().await;
                c?
            } else {
                vec![0; BACKUP_COUNTED_TABLES.len()]
            };
            let has_data = existing.iter().any(|n| *n > 0);
            if has_data && !force {
                bail!(
                    "refusing to restore: the database {} is not empty ({}); stop Pulseboard \
                     and pass --force to replace it (the current files are kept as \
                     {}.replaced-<time>)",
                    target.display(),
                    describe_counts(&existing),
                    target.display()
                );
            }
            sqlite_plan = Some((src, target, counts, has_data));
        }
        Backend::Postgres => {
            let dump = from.join(PG_DUMP_FILE);
            let dump_shown = if dump.exists() {
                dump.display().to_string()
            } else {
                "<your pg_dump file>".into()
            };
            lines.push(
                "database  PostgreSQL is NOT restored by pulseboard: load the dump with \
                 pg_restore (custom format from the backup's pg_dump command) or psql (plain SQL):"
                    .into(),
            );
            lines.push(format!(
                "            {}",
                pg_restore_command(&url, Path::new(&dump_shown))
            ));
            lines.push(format!(
                "            {}",
                psql_command(&url, Path::new("<dump.sql>"))
            ));
            if manifest["backend"] == "sqlite" {
                lines.push(
                    "          (this backup holds a SQLite database, which cannot be loaded \
                     into PostgreSQL this way)"
                        .into(),
                );
            }
        }
    }

    if let BlobSource::Local(dst) = &blob_target {
        let existing = count_blob_files(dst);
        if existing > 0 && !force {
            bail!(
                "refusing to restore: the blob folder {} is not empty ({existing} files); stop \
                 Pulseboard and pass --force to restore into it anyway",
                dst.display()
            );
        }
    }
    if let Some((src, target, counts, had_data)) = sqlite_plan {
        let stamp = folder_stamp(now);
        let (s, t) = (src.clone(), target.clone());
        let kept = blocking(move || replace_sqlite(&s, &t, had_data, &stamp)).await?;
        lines.push(format!(
            "database  {} -> {} ({}; {})",
            src.display(),
            target.display(),
            human(file_size(&target)),
            describe_counts(&counts)
        ));
        if let Some(kept) = kept {
            lines.push(format!(
                "          the replaced database is kept as {}",
                kept.display()
            ));
        }
    }

    if backup_blobs.is_dir() {
        match &blob_target {
            BlobSource::Local(dst) => {
                let (s, d) = (backup_blobs.clone(), dst.clone());
                let copied = blocking(move || copy_blobs(&s, &d, BlobCopy::default())).await?;
                lines.push(format!(
                    "blobs     {} -> {} ({} files, {})",
                    backup_blobs.display(),
                    dst.display(),
                    copied.files,
                    human(copied.bytes)
                ));
            }
            BlobSource::Remote(url) => lines.push(format!(
                "blobs     NOT restored: blobs.url is {url}; upload them with \
                 `aws s3 sync {} {url}`",
                backup_blobs.display()
            )),
        }
    }

    let key_src = from.join(KEY_FILE);
    if key_src.exists() {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!("cannot create data directory {}", config.data_dir.display())
        })?;
        copy_key(&key_src, &config.data_dir.join(KEY_FILE), &mut lines).await?;
    }
    if let Some(name) = env_secret_name() {
        lines.push(format!(
            "secret    {name} is set: it, not jwt.key, signs sessions; keep the same value so \
             that logins survive"
        ));
    }
    lines.push("done: start Pulseboard on it (it applies newer migrations at start)".into());
    Ok(Report {
        dir: from.to_path_buf(),
        manifest,
        lines,
    })
}

// ---- the pieces --------------------------------------------------------------------------------

enum BlobSource {
    Local(PathBuf),
    Remote(String),
}

impl BlobSource {
    fn of(config: &Config) -> Self {
        let url = config.blobs.url.trim();
        if url.is_empty() {
            BlobSource::Local(config.data_dir.join("blobs"))
        } else if let Some(path) = url.strip_prefix("file://") {
            BlobSource::Local(PathBuf::from(path))
        } else {
            BlobSource::Remote(url.to_owned())
        }
    }
}

fn backend_of(url: &str) -> anyhow::Result<Backend> {
    if url.starts_with("sqlite:") {
        Ok(Backend::Sqlite)
    } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        Ok(Backend::Postgres)
    } else {
        bail!("unsupported database URL scheme: use sqlite:// or postgres://")
    }
}

/// The file a `sqlite:` URL names.
fn sqlite_path(url: &str) -> anyhow::Result<PathBuf> {
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))
        .unwrap_or(url);
    let path = rest.split('?').next().unwrap_or_default();
    if path.is_empty() || path.contains(":memory:") {
        bail!("the database URL {url:?} names no SQLite file to back up or restore");
    }
    Ok(PathBuf::from(path))
}

/// `20261130T005551Z`: sortable, no characters that need quoting.
fn folder_stamp(ms: i64) -> String {
    let t = Timestamp::to_datetime(ms);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

fn env_secret_name() -> Option<&'static str> {
    ["PULSEBOARD_JWT_SECRET", "PULSEBOARD_JWT_SECRET_FILE"]
        .into_iter()
        .find(|n| std::env::var_os(n).is_some_and(|v| !v.is_empty()))
}

fn describe_counts(counts: &[i64]) -> String {
    BACKUP_COUNTED_TABLES
        .iter()
        .zip(counts)
        .map(|(t, n)| format!("{n} {t}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The URL without its password (from the user part or a `password=` parameter), and whether it
/// had one.
fn url_without_password(url: &str) -> (String, bool) {
    let mut had = false;
    let (scheme, rest) = url.split_once("://").unwrap_or(("postgres", url));
    let (authority_end, _) = rest
        .char_indices()
        .find(|(_, c)| matches!(c, '/' | '?'))
        .unwrap_or((rest.len(), ' '));
    let (authority, tail) = rest.split_at(authority_end);
    let authority = match authority.rsplit_once('@') {
        Some((user, host)) => match user.split_once(':') {
            Some((name, _)) => {
                had = true;
                format!("{name}@{host}")
            }
            None => authority.to_owned(),
        },
        None => authority.to_owned(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let kept: Vec<&str> = query
                .split('&')
                .filter(|p| {
                    let secret = p.starts_with("password=");
                    had |= secret;
                    !secret && !p.is_empty()
                })
                .collect();
            if kept.is_empty() {
                path.to_owned()
            } else {
                format!("{path}?{}", kept.join("&"))
            }
        }
        None => tail.to_owned(),
    };
    (format!("{scheme}://{authority}{tail}"), had)
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

fn with_password(had: bool, command: String) -> String {
    if had {
        format!("PGPASSWORD='***' {command}")
    } else {
        command
    }
}

/// The `pg_dump` line for `url` (password redacted), writing a custom-format dump to `file`.
pub fn pg_dump_command(url: &str, file: &Path) -> String {
    let (url, had) = url_without_password(url);
    with_password(
        had,
        format!(
            "pg_dump --format=custom --no-owner --file={} {}",
            quote(&file.display().to_string()),
            quote(&url)
        ),
    )
}

fn pg_restore_command(url: &str, file: &Path) -> String {
    let (url, had) = url_without_password(url);
    with_password(
        had,
        format!(
            "pg_restore --clean --if-exists --no-owner --dbname={} {}",
            quote(&url),
            quote(&file.display().to_string())
        ),
    )
}

fn psql_command(url: &str, file: &Path) -> String {
    let (url, had) = url_without_password(url);
    with_password(
        had,
        format!(
            "psql --single-transaction {} -f {}",
            quote(&url),
            quote(&file.display().to_string())
        ),
    )
}

/// Copies the generated JWT key (owner-only) and says so in `lines`.
async fn copy_key(src: &Path, dst: &Path, lines: &mut Vec<String>) -> anyhow::Result<()> {
    let (s, d) = (src.to_path_buf(), dst.to_path_buf());
    let size = blocking(move || copy_private(&s, &d)).await?;
    lines.push(format!(
        "jwt.key   {} -> {} ({})",
        src.display(),
        dst.display(),
        human(size)
    ));
    Ok(())
}

async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> anyhow::Result<T> + Send + 'static,
) -> anyhow::Result<T> {
    tokio::task::spawn_blocking(f).await?
}

#[derive(Default, Clone, Copy)]
struct BlobCopy {
    files: u64,
    bytes: u64,
}

/// A blob key (`[A-Za-z0-9._-]`, not starting with a dot): skips the store's temporary files.
fn is_blob_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

fn count_blob_files(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| u64::from(is_blob_name(&e.file_name().to_string_lossy())))
        .sum()
}

/// Copies the blob files of `src` that `dst` lacks, each written aside and renamed. The layout is
/// one flat folder (keys have no slashes), so folders in it are not blobs and are skipped. A
/// missing `src` is an empty one.
fn copy_blobs(src: &Path, dst: &Path, mut acc: BlobCopy) -> anyhow::Result<BlobCopy> {
    std::fs::create_dir_all(dst).with_context(|| format!("cannot create {}", dst.display()))?;
    let entries = match std::fs::read_dir(src) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(acc),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", src.display())),
    };
    for entry in entries {
        let entry = entry.with_context(|| format!("cannot read {}", src.display()))?;
        let name = entry.file_name();
        let path = entry.path();
        let file_type = entry.file_type()?;
        if !file_type.is_file() || !is_blob_name(&name.to_string_lossy()) {
            continue;
        }
        let target = dst.join(&name);
        if target.exists() && file_size(&target) == file_size(&path) {
            continue;
        }
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            // Deleted since the listing: it was not in the snapshot's rows either.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
        };
        write_atomic(&target, &bytes, false)?;
        acc.files += 1;
        acc.bytes += bytes.len() as u64;
    }
    Ok(acc)
}

fn copy_private(src: &Path, dst: &Path) -> anyhow::Result<u64> {
    let bytes = std::fs::read(src).with_context(|| format!("cannot read {}", src.display()))?;
    write_atomic(dst, &bytes, true)?;
    Ok(bytes.len() as u64)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it into place.
fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> anyhow::Result<()> {
    use std::io::Write;
    let tmp = temp_beside(path);
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let result = (|| {
        let mut f = opts.open(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = result {
        let _ = std::fs::remove_file(&tmp);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    Ok(())
}

fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.restore-tmp-{}", std::process::id()))
}

fn sync_file(path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", path.display()))
}

/// Puts the backup's database at `target`: copied aside and synced, the old database and its
/// `-wal`/`-shm`/`-journal` moved away (kept as `*.replaced-<stamp>` when it held data, else
/// deleted, so no stale log is ever applied to the new file), then renamed into place.
fn replace_sqlite(
    src: &Path,
    target: &Path,
    keep_old: bool,
    stamp: &str,
) -> anyhow::Result<Option<PathBuf>> {
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    let tmp = temp_beside(target);
    std::fs::copy(src, &tmp)
        .with_context(|| format!("cannot copy {} to {}", src.display(), tmp.display()))?;
    sync_file(&tmp)?;
    let mut kept = None;
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let file = PathBuf::from(format!("{}{suffix}", target.display()));
        if !file.exists() {
            continue;
        }
        let moved = if keep_old {
            let to = PathBuf::from(format!("{}.replaced-{stamp}{suffix}", target.display()));
            std::fs::rename(&file, &to)
                .with_context(|| format!("cannot move {} aside", file.display()))?;
            if suffix.is_empty() {
                kept = Some(to);
            }
            Ok(())
        } else {
            std::fs::remove_file(&file)
        };
        moved.with_context(|| format!("cannot remove the stale {}", file.display()))?;
    }
    std::fs::rename(&tmp, target)
        .with_context(|| format!("cannot move {} into place", target.display()))?;
    if let Some(parent) = target.parent().filter(|p| !p.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(parent) {
            let _ = d.sync_all();
        }
    }
    Ok(kept)
}

fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

fn dir_size(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .flatten()
                .map(|e| {
                    let p = e.path();
                    if p.is_dir() {
                        dir_size(&p)
                    } else {
                        file_size(&p)
                    }
                })
                .sum()
        })
        .unwrap_or(0)
}

fn human(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    let mut value = bytes as f64 / 1024.0;
    let mut unit = 0;
    while value >= 1024.0 && unit < UNITS.len() - 1 {
        value /= 1024.0;
        unit += 1;
    }
    format!("{value:.1} {}", UNITS[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pg_commands_redact_the_password() {
        let cmd = pg_dump_command(
            "postgres://pb:s3cret@db.internal:5432/pulseboard?sslmode=require&password=x",
            Path::new("/b/pulseboard.pgdump"),
        );
        assert_eq!(
            cmd,
            "PGPASSWORD='***' pg_dump --format=custom --no-owner --file='/b/pulseboard.pgdump' \
             'postgres://pb@db.internal:5432/pulseboard?sslmode=require'"
        );
        let cmd = pg_dump_command("postgres://postgres@127.0.0.1/test", Path::new("/b/x"));
        assert!(!cmd.contains("PGPASSWORD"), "{cmd}");
        assert!(
            cmd.ends_with("'postgres://postgres@127.0.0.1/test'"),
            "{cmd}"
        );
    }

    #[test]
    fn sqlite_paths_and_stamps() {
        assert_eq!(
            sqlite_path("sqlite:///data/pulseboard.db?mode=rwc").unwrap(),
            PathBuf::from("/data/pulseboard.db")
        );
        assert_eq!(
            sqlite_path("sqlite:rel.db").unwrap(),
            PathBuf::from("rel.db")
        );
        assert!(sqlite_path("sqlite::memory:").is_err());
        assert_eq!(folder_stamp(1_700_000_000_123), "20231114T221320Z");
        assert_eq!(human(512), "512 B");
        assert_eq!(human(1536), "1.5 KiB");
        assert!(is_blob_name("screenshot-1.png") && !is_blob_name("a.png#1"));
    }
}
