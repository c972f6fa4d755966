use crate::redact::{is_secret_field, REDACTED};
use serde::{Serialize, Serializer};
use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};
use time::OffsetDateTime;
use tokio::sync::broadcast;
use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Record};
use tracing::{Event, Id, Level, Subscriber};
use tracing_subscriber::layer::Context;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::Layer;

/// Lines kept until telemetry sets the configured size.
const DEFAULT_CAPACITY: usize = 1000;
/// New lines a live viewer may fall behind before it skips ahead.
const BROADCAST_CAPACITY: usize = 1024;

/// Now in UTC, RFC 3339 with milliseconds: `2026-01-02T03:04:05.678Z` (always 24 characters).
pub fn now() -> String {
    const FORMAT: &[time::format_description::FormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    OffsetDateTime::now_utc().format(FORMAT).unwrap_or_default()
}

/// One log line, as `GET /logs` and the live stream send it.
#[derive(Debug, Clone, Serialize)]
pub struct LogLine {
    /// RFC 3339, UTC.
    pub timestamp: String,
    #[serde(serialize_with = "level_name")]
    pub level: Level,
    pub target: String,
    /// The event's message with its fields and the fields of the spans around it, as on the console.
    pub message: String,
}

fn level_name<S: Serializer>(level: &Level, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(level.as_str())
}

/// The ring buffer of the last lines and the broadcast of each new one.
pub struct LogHub {
    lines: Mutex<VecDeque<LogLine>>,
    capacity: AtomicUsize,
    tx: broadcast::Sender<LogLine>,
}

static GLOBAL: OnceLock<LogHub> = OnceLock::new();

/// The process-wide hub.
pub fn global() -> &'static LogHub {
    GLOBAL.get_or_init(|| LogHub::new(DEFAULT_CAPACITY))
}

impl LogHub {
    pub fn new(capacity: usize) -> Self {
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        Self {
            lines: Mutex::new(VecDeque::with_capacity(capacity.min(4096))),
            capacity: AtomicUsize::new(capacity.max(1)),
            tx,
        }
    }

    /// The tracing layer that feeds this hub.
    pub fn layer(&'static self) -> HubLayer {
        HubLayer { hub: self }
    }

    pub fn capacity(&self) -> usize {
        self.capacity.load(Ordering::Relaxed)
    }

    /// Changes how many lines are kept (the oldest go first).
    pub fn set_capacity(&self, capacity: usize) {
        let capacity = capacity.max(1);
        self.capacity.store(capacity, Ordering::Relaxed);
        let mut lines = self.lock();
        while lines.len() > capacity {
            lines.pop_front();
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<LogLine>> {
        // A panic while holding the lock leaves a consistent deque: keep going.
        self.lines.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a line to the buffer and sends it to live viewers.
    pub fn push(&self, line: LogLine) {
        let capacity = self.capacity();
        let mut lines = self.lock();
        while lines.len() >= capacity {
            lines.pop_front();
        }
        lines.push_back(line.clone());
        // Sent under the lock so that `subscribe` sees each line exactly once. No receivers is fine.
        let _ = self.tx.send(line);
    }

    /// The last `n` lines at `min_level` or more severe, oldest first.
    pub fn recent(&self, n: usize, min_level: Option<Level>) -> Vec<LogLine> {
        last_n(&self.lock(), n, min_level)
    }

    /// The last `n` lines and a receiver of every line after them (no gap, no repeat).
    pub fn subscribe(
        &self,
        n: usize,
        min_level: Option<Level>,
    ) -> (Vec<LogLine>, broadcast::Receiver<LogLine>) {
        let lines = self.lock();
        // Subscribed while the buffer is locked, so no line falls between the two.
        let rx = self.tx.subscribe();
        (last_n(&lines, n, min_level), rx)
    }
}

/// The last `n` of `lines` at `min_level` or more severe, oldest first.
fn last_n(lines: &VecDeque<LogLine>, n: usize, min_level: Option<Level>) -> Vec<LogLine> {
    let mut out: Vec<LogLine> = lines
        .iter()
        .rev()
        .filter(|l| min_level.is_none_or(|m| l.level <= m))
        .take(n)
        .cloned()
        .collect();
    out.reverse();
    out
}

/// Feeds a [`LogHub`]; add it to the subscriber next to the console layer.
pub struct HubLayer {
    hub: &'static LogHub,
}

/// A span's fields, formatted once when the span is created or recorded.
struct SpanFields(String);

impl<S> Layer<S> for HubLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let mut v = FieldWriter::default();
        attrs.record(&mut v);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(SpanFields(v.fields));
        }
    }

    fn on_record(&self, id: &Id, values: &Record<'_>, ctx: Context<'_, S>) {
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            let mut v = FieldWriter::default();
            values.record(&mut v);
            match ext.get_mut::<SpanFields>() {
                Some(f) => {
                    if !f.0.is_empty() && !v.fields.is_empty() {
                        f.0.push(' ');
                    }
                    f.0.push_str(&v.fields);
                }
                None => ext.insert(SpanFields(v.fields)),
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut message = String::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                message.push_str(span.name());
                if let Some(f) = span.extensions().get::<SpanFields>() {
                    if !f.0.is_empty() {
                        let _ = write!(message, "{{{}}}", f.0);
                    }
                }
                message.push(':');
            }
            if !message.is_empty() {
                message.push(' ');
            }
        }
        let mut v = FieldWriter::default();
        event.record(&mut v);
        message.push_str(&v.message);
        if !v.fields.is_empty() {
            if !v.message.is_empty() {
                message.push(' ');
            }
            message.push_str(&v.fields);
        }
        let meta = event.metadata();
        self.hub.push(LogLine {
            timestamp: now(),
            level: *meta.level(),
            target: meta.target().to_owned(),
            message,
        });
    }
}

#[derive(Default)]
struct FieldWriter {
    message: String,
    fields: String,
}

impl Visit for FieldWriter {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.message.push_str(value);
        } else if is_secret_field(field.name()) {
            self.redacted(field);
        } else {
            self.sep();
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.message, "{value:?}");
        } else if is_secret_field(field.name()) {
            self.redacted(field);
        } else if !field.name().starts_with("log.") {
            self.sep();
            let _ = write!(self.fields, "{}={value:?}", field.name());
        }
    }
}

impl FieldWriter {
    fn redacted(&mut self, field: &Field) {
        self.sep();
        let _ = write!(self.fields, "{}={REDACTED}", field.name());
    }

    fn sep(&mut self) {
        if !self.fields.is_empty() {
            self.fields.push(' ');
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tracing_subscriber::prelude::*;

    #[test]
    fn keeps_the_last_lines_with_fields_and_spans() {
        let hub: &'static LogHub = Box::leak(Box::new(LogHub::new(3)));
        let subscriber = tracing_subscriber::registry().with(hub.layer());
        tracing::subscriber::with_default(subscriber, || {
            let (_, mut rx) = hub.subscribe(10, None);
            let span = tracing::info_span!("request", path = "/x");
            let _e = span.enter();
            for i in 0..5 {
                tracing::info!(n = i, "line {i}");
            }
            tracing::warn!(password = "hunter2", "careful");
            let lines = hub.recent(10, None);
            assert_eq!(lines.len(), 3);
            assert_eq!(lines[0].message, "request{path=\"/x\"}: line 3 n=3");
            assert_eq!(lines[2].level, Level::WARN);
            assert_eq!(
                lines[2].message,
                "request{path=\"/x\"}: careful password=[redacted]"
            );
            let warn = hub.recent(10, Some(Level::WARN));
            assert_eq!(warn.len(), 1);
            assert_eq!(
                rx.try_recv().unwrap().message,
                "request{path=\"/x\"}: line 0 n=0"
            );
        });
    }
}
