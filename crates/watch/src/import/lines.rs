//! The CSV side of an import: the data lines of one file and the first field of each, read with
//! a cap on line length so that a file of one endless line is not held in memory.

use super::ImportLimits;
use std::io::{self, BufRead};

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

pub(super) fn io_reason(e: io::Error) -> String {
    // Our own limit errors carry their message; others (corrupt data) are described as such.
    match e.kind() {
        io::ErrorKind::Other => e.to_string(),
        _ => format!("The archive is damaged: {e}"),
    }
}

/// Text as shown back to the user: at most 300 characters.
pub(super) fn shown(s: &str) -> String {
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

    #[test]
    fn quoted_fields() {
        assert_eq!(first_field(r#""a ""b"" c",d"#), r#"a "b" c"#);
        assert_eq!(first_field("  x  ,y"), "x");
    }
}
