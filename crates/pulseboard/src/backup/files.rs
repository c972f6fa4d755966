//! The file work of backup and restore: blob folders copied file by file, files written aside,
//! synced and renamed, a SQLite database put in place, sizes.

use anyhow::Context as _;
use std::path::{Path, PathBuf};

#[derive(Default, Clone, Copy)]
pub(super) struct BlobCopy {
    pub(super) files: u64,
    pub(super) bytes: u64,
}

/// A blob key (`[A-Za-z0-9._-]`, not starting with a dot): skips the store's temporary files.
pub(super) fn is_blob_name(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

pub(super) fn count_blob_files(dir: &Path) -> u64 {
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
pub(super) fn copy_blobs(src: &Path, dst: &Path, mut acc: BlobCopy) -> anyhow::Result<BlobCopy> {
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

pub(super) fn copy_private(src: &Path, dst: &Path) -> anyhow::Result<u64> {
    let bytes = std::fs::read(src).with_context(|| format!("cannot read {}", src.display()))?;
    write_atomic(dst, &bytes, true)?;
    Ok(bytes.len() as u64)
}

/// Writes `bytes` to a temporary file beside `path`, syncs it and renames it into place.
pub(super) fn write_atomic(path: &Path, bytes: &[u8], private: bool) -> anyhow::Result<()> {
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

pub(super) fn temp_beside(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.restore-tmp-{}", std::process::id()))
}

pub(super) fn sync_file(path: &Path) -> anyhow::Result<()> {
    std::fs::File::open(path)
        .and_then(|f| f.sync_all())
        .with_context(|| format!("cannot sync {}", path.display()))
}

/// Puts the backup's database at `target`: copied aside and synced, the old database and its
/// `-wal`/`-shm`/`-journal` moved away (kept as `*.replaced-<stamp>` when it held data, else
/// deleted, so no stale log is ever applied to the new file), then renamed into place.
pub(super) fn replace_sqlite(
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

pub(super) fn file_size(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

pub(super) fn dir_size(dir: &Path) -> u64 {
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

pub(super) fn human(bytes: u64) -> String {
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
