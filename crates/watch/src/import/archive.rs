//! The ZIP side of an import, read defensively in two passes over the file on disk (see the
//! module above): [`inspect`] checks the archive and counts its data lines before anything is
//! inserted, [`stream_lines`] reads them again, parsed, in batches.

use super::lines::{for_each_line, io_reason, shown, Line};
use super::ImportLimits;
use pulseboard_domain::ResourceUrl;
use std::fs::File;
use std::io::{self, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

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

#[cfg(test)]
mod tests {
    use super::*;

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
}
