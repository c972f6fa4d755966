//! `pulseboard backup` and `pulseboard restore`: a consistent online copy of one installation.
//!
//! A backup is a folder: `pulseboard.db` (SQLite, written with `VACUUM INTO`, which reads one
//! snapshot while other connections keep writing), `blobs/` (when blobs are on the local disk),
//! `jwt.key` (the generated development key, when there is one) and `manifest.json`, written last,
//! so a folder without it is not a finished backup. PostgreSQL is not dumped here: the commands
//! print the `pg_dump` / `pg_restore` lines for the configured URL and handle the files only.
//!
//! Here: taking a backup; `restore` puts one back; `schedule` takes them on `backup.schedule` with
//! retention; `files` holds the file copying both directions share.

use anyhow::{bail, Context as _};
use pulseboard_config::{Config, RunMode};
use pulseboard_domain::Timestamp;
use pulseboard_storage::{sqlite_file_counts, Backend, BACKUP_COUNTED_TABLES};
use serde_json::{json, Value};
use std::path::{Path, PathBuf};

mod files;
mod restore;
mod schedule;

use files::{
    copy_blobs, copy_private, dir_size, file_size, human, sync_file, write_atomic, BlobCopy,
};
pub use restore::restore;
pub use schedule::{entry as schedule_entry, finished_backups, scheduled};

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

#[cfg(test)]
mod tests {
    use super::files::is_blob_name;
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
