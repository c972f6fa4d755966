//! Scheduled backups (`backup.schedule`): at each occurrence the scheduler's process writes the
//! same folder as `pulseboard backup` into `<backup.dir>/<UTC time of the occurrence>/`, then deletes
//! the oldest scheduled backups beyond `backup.keep`.
//!
//! Why in the scheduler's process and not a job: a backup reads this machine's data folder
//! (SQLite file, local blobs, `jwt.key`), which a worker elsewhere may not have; the occurrence is
//! still claimed in the database, so several schedulers take one backup.

use super::{backup, blocking, folder_stamp, Report, FORMAT, MANIFEST};
use pulseboard_config::Config;
use pulseboard_jobs::scheduler::Entry;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// The scheduler entry of `backup.schedule`, or None when the schedule is empty (off).
pub fn entry(config: &Arc<Config>) -> anyhow::Result<Option<Entry>> {
    let b = &config.backup;
    if b.schedule.trim().is_empty() {
        return Ok(None);
    }
    let config = config.clone();
    // Two backups at once would both read the whole data folder and race over retention: an
    // occurrence that comes while the last backup still runs is skipped (the next one comes).
    let running = Arc::new(tokio::sync::Mutex::new(()));
    let entry = Entry::task("backup", &b.schedule, &b.timezone, move |at| {
        let (config, running) = (config.clone(), running.clone());
        async move {
            let Ok(_one) = running.try_lock() else {
                tracing::warn!("scheduled backup skipped: the previous one is still running");
                return;
            };
            match scheduled(&config, at).await {
                Ok(report) => log(&report),
                Err(e) => tracing::error!(error = %format!("{e:#}"), "scheduled backup failed"),
            }
        }
    })
    .map_err(anyhow::Error::msg)?;
    Ok(Some(entry))
}

fn log(report: &Report) {
    let dir = report.dir.display().to_string();
    for line in &report.lines {
        tracing::info!(backup = %dir, "{line}");
    }
    if report.manifest["database"]["included"] == false {
        tracing::warn!(
            backup = %dir,
            pg_dump = %report.manifest["database"]["pg_dump_command"].as_str().unwrap_or_default(),
            "the scheduled backup holds the files only: back up PostgreSQL with pg_dump"
        );
    }
}

/// Takes the backup of the occurrence at `occurrence` (Unix ms) into
/// `<backup.dir>/<its UTC time>` and deletes the oldest scheduled backups beyond `backup.keep`.
pub async fn scheduled(config: &Config, occurrence: i64) -> anyhow::Result<Report> {
    let root = config.backup_dir();
    let mut report = backup(config, Some(root.join(folder_stamp(occurrence)))).await?;
    let keep = config.backup.keep;
    let removed = blocking(move || prune(&root, keep)).await?;
    for dir in removed {
        report.lines.push(format!(
            "removed   {} (older than the newest {keep}: backup.keep)",
            dir.display()
        ));
    }
    Ok(report)
}

/// Deletes the oldest finished scheduled backups in `root` beyond `keep`; returns them.
fn prune(root: &Path, keep: usize) -> anyhow::Result<Vec<PathBuf>> {
    let mut found = finished_backups(root);
    let excess = found.len().saturating_sub(keep);
    let old: Vec<PathBuf> = found.drain(..excess).collect();
    for dir in &old {
        std::fs::remove_dir_all(dir)
            .map_err(|e| anyhow::anyhow!("cannot delete the old backup {}: {e}", dir.display()))?;
    }
    Ok(old)
}

/// The scheduled backups in `root`, oldest first: folders named like [`folder_stamp`] that hold a
/// finished manifest. Anything else there (a `pulseboard backup` folder, whose name starts with
/// `pulseboard-`, a folder being written) is never counted or deleted.
pub fn finished_backups(root: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(root) else {
        return vec![];
    };
    let mut found: Vec<PathBuf> = entries
        .flatten()
        .filter(|e| is_stamp(&e.file_name().to_string_lossy()))
        .map(|e| e.path())
        .filter(|p| {
            std::fs::read(p.join(MANIFEST))
                .ok()
                .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
                .is_some_and(|m| m["format"] == FORMAT)
        })
        .collect();
    // The stamps sort by time.
    found.sort();
    found
}

/// `20261130T005551Z`, as [`folder_stamp`] writes it.
fn is_stamp(name: &str) -> bool {
    let b = name.as_bytes();
    b.len() == 16
        && b[8] == b'T'
        && b[15] == b'Z'
        && b[..8].iter().chain(&b[9..15]).all(u8::is_ascii_digit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_stamp_folders_count() {
        assert!(is_stamp(&folder_stamp(1_700_000_000_123)));
        assert!(!is_stamp("pulseboard-20231114T221320Z"));
        assert!(!is_stamp("20231114T2213201"));
        assert!(!is_stamp("2023111xT221320Z"));
    }
}
