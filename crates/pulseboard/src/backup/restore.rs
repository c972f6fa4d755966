//! `pulseboard restore`: a backup folder back into the configured database and data folder.

use super::files::{copy_blobs, count_blob_files, file_size, human, replace_sqlite, BlobCopy};
use super::*;

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

pub(super) fn pg_restore_command(url: &str, file: &Path) -> String {
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

pub(super) fn psql_command(url: &str, file: &Path) -> String {
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
