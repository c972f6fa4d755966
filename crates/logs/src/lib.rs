//! Log plumbing shared by the binary and the web layer.
//!
//! - [`LogHub`]: the last lines in a ring buffer and a broadcast of each new line, fed by a tracing
//!   [`Layer`](tracing_subscriber::Layer) ([`HubLayer`]). There is one hub per process
//!   ([`global`]), because the global tracing subscriber can be set only once: telemetry installs
//!   its layer, the web layer reads it.
//! - [`RotatingFile`]: a file writer that rotates by size and keeps a fixed number of old files.

mod hub;
mod pdf;
mod redact;
mod rotate;

pub use hub::{global, now, HubLayer, LogHub, LogLine};
pub use pdf::{render as render_pdf, PdfInfo};
pub use redact::{is_secret_field, redacting_fields};
pub use rotate::RotatingFile;
pub use tracing::Level;
