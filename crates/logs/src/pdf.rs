//! Log lines as a PDF, rendered on the server with an embedded DejaVu Sans Mono (Latin, Cyrillic…).

use crate::LogLine;
use krilla::color::rgb;
use krilla::geom::Point;
use krilla::page::PageSettings;
use krilla::paint::Fill;
use krilla::text::{Font, TextDirection};
use krilla::Document;
use std::sync::OnceLock;

static FONT_DATA: &[u8] = include_bytes!("../assets/DejaVuSansMono.ttf");

// A4 portrait, in points.
const WIDTH: f32 = 595.0;
const HEIGHT: f32 = 842.0;
const MARGIN: f32 = 40.0;
const TITLE_SIZE: f32 = 15.0;
const SIZE: f32 = 7.5;
const LEADING: f32 = 10.0;
/// DejaVu Sans Mono advances every glyph by 0.602 em.
const ADVANCE: f32 = 0.602;

fn font() -> Option<Font> {
    static FONT: OnceLock<Option<Font>> = OnceLock::new();
    FONT.get_or_init(|| Font::new(FONT_DATA.into(), 0)).clone()
}

/// What the document is about, printed under the title.
pub struct PdfInfo<'a> {
    pub title: &'a str,
    /// e.g. "warn and above"; `None` for all levels.
    pub level: Option<&'a str>,
    /// When the document was made (RFC 3339).
    pub generated_at: &'a str,
}

fn color(level: tracing::Level) -> rgb::Color {
    match level {
        tracing::Level::ERROR => rgb::Color::new(180, 20, 20),
        tracing::Level::WARN => rgb::Color::new(160, 100, 0),
        tracing::Level::INFO => rgb::Color::new(20, 90, 160),
        _ => rgb::Color::new(110, 110, 110),
    }
}

fn fill(c: rgb::Color) -> Fill {
    Fill {
        paint: c.into(),
        ..Default::default()
    }
}

/// Splits `text` into pieces of at most `cols` characters.
fn wrap(text: &str, cols: usize) -> Vec<String> {
    let mut out = Vec::new();
    for raw in text.lines() {
        let chars: Vec<char> = raw.chars().filter(|c| !c.is_control()).collect();
        if chars.is_empty() {
            continue;
        }
        out.extend(chars.chunks(cols.max(1)).map(|c| c.iter().collect()));
    }
    if out.is_empty() {
        out.push(String::new());
    }
    out
}

/// Renders `lines` (oldest first): a title, the time range they span, then one entry per line with
/// its time, level and target, long messages wrapped.
pub fn render(lines: &[LogLine], info: &PdfInfo<'_>) -> Result<Vec<u8>, String> {
    let font = font().ok_or("the embedded font cannot be read")?;
    let mut document = Document::new();
    document.set_metadata(
        krilla::metadata::Metadata::new()
            .title(info.title.to_owned())
            .creator("Pulseboard".to_owned()),
    );
    let char_w = SIZE * ADVANCE;
    let cols = ((WIDTH - 2.0 * MARGIN) / char_w).floor() as usize;
    // "2026-01-02T03:04:05.678Z " + "ERROR " : the message column.
    let indent: usize = 31;

    let range = match (lines.first(), lines.last()) {
        (Some(first), Some(last)) => format!(
            "{} lines, from {} to {} (UTC)",
            lines.len(),
            first.timestamp,
            last.timestamp
        ),
        _ => "No log lines".to_owned(),
    };
    let levels = match info.level {
        Some(l) => format!("Levels: {l}"),
        None => "Levels: all".to_owned(),
    };
    let header = [
        range,
        format!("{levels}. Generated at {}.", info.generated_at),
    ];

    // (time, level, text): the first row of a line has all three, wrapped rows the text only.
    type Row = (Option<(String, tracing::Level)>, String);
    let mut rows: Vec<Row> = Vec::new();
    for line in lines {
        let body = if line.target.is_empty() {
            line.message.clone()
        } else {
            format!("{}: {}", line.target, line.message)
        };
        for (i, piece) in wrap(&body, cols.saturating_sub(indent))
            .into_iter()
            .enumerate()
        {
            let head = (i == 0).then(|| (line.timestamp.clone(), line.level));
            rows.push((head, piece));
        }
    }

    let mut rows = rows.into_iter().peekable();
    let mut first_page = true;
    let mut page_no = 0;
    while first_page || rows.peek().is_some() {
        page_no += 1;
        let mut page =
            document.start_page_with(PageSettings::from_wh(WIDTH, HEIGHT).ok_or("bad page size")?);
        let mut surface = page.surface();
        let mut y = MARGIN + TITLE_SIZE;
        if first_page {
            surface.set_fill(Some(fill(rgb::Color::black())));
            surface.draw_text(
                Point::from_xy(MARGIN, y),
                font.clone(),
                TITLE_SIZE,
                info.title,
                false,
                TextDirection::Auto,
            );
            y += LEADING * 1.5;
            for h in &header {
                for piece in wrap(h, cols) {
                    y += LEADING;
                    surface.draw_text(
                        Point::from_xy(MARGIN, y),
                        font.clone(),
                        SIZE,
                        &piece,
                        false,
                        TextDirection::Auto,
                    );
                }
            }
            y += LEADING;
            first_page = false;
        }
        while y + LEADING <= HEIGHT - MARGIN {
            let Some((head, text)) = rows.next() else {
                break;
            };
            y += LEADING;
            let mut parts = Vec::with_capacity(3);
            if let Some((ts, level)) = &head {
                parts.push((ts.clone(), rgb::Color::new(110, 110, 110)));
                parts.push((level.as_str().to_owned(), color(*level)));
            }
            parts.push((text, rgb::Color::black()));
            // Time in grey, level in its colour, the rest in black, in fixed columns.
            let columns = [0, 25, indent];
            let first = if parts.len() == 1 { 2 } else { 0 };
            for (i, (part, c)) in parts.into_iter().enumerate() {
                surface.set_fill(Some(fill(c)));
                surface.draw_text(
                    Point::from_xy(MARGIN + columns[first + i] as f32 * char_w, y),
                    font.clone(),
                    SIZE,
                    &part,
                    false,
                    TextDirection::Auto,
                );
            }
        }
        surface.set_fill(Some(fill(rgb::Color::new(110, 110, 110))));
        surface.draw_text(
            Point::from_xy(WIDTH - MARGIN - 8.0 * char_w, HEIGHT - MARGIN / 2.0),
            font.clone(),
            SIZE,
            &format!("page {page_no}"),
            false,
            TextDirection::Auto,
        );
        surface.finish();
        page.finish();
    }
    document.finish().map_err(|e| format!("{e:?}"))
}
