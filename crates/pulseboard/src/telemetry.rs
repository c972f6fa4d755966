//! Logging: human-readable lines on the console (JSON when configured), the same lines in
//! size-rotated files under `<data_dir>/logs/`, and the in-memory hub (ring buffer + live
//! broadcast) that `GET /logs` and `/logs/stream` read.

use pulseboard_config::{Config, LogFormat};
use tracing_subscriber::{fmt, prelude::*, EnvFilter, Layer, Registry};

/// Keeps the background file writer alive; dropping it flushes the last lines.
pub struct Guard(#[allow(dead_code)] Option<tracing_appender::non_blocking::WorkerGuard>);

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The log file of a process: `pulseboard.log` for `all` and `serve`; workers and schedulers, which
/// may share the data folder with the server (docker-compose), rotate files of their own.
pub fn log_file_name(command: &crate::cli::Command) -> &'static str {
    match command {
        crate::cli::Command::Worker { .. } => "pulseboard-worker.log",
        crate::cli::Command::Scheduler => "pulseboard-scheduler.log",
        _ => "pulseboard.log",
    }
}

pub fn init(config: &Config, quiet: bool, file_name: &str) -> anyhow::Result<Guard> {
    // A second init (tests start many apps in one process) keeps the first subscriber.
    if tracing::dispatcher::has_been_set() {
        return Ok(Guard(None));
    }
    let level = if quiet {
        "warn"
    } else {
        config.logging.level.as_str()
    };
    // chromiumoxide warns about each DevTools message its protocol types do not know (newer
    // Chromium releases send many); they are skipped and harmless. lapin logs a broker restart as
    // ERROR lines of its own; the relay and the workers report it once, at WARN, as the reconnect
    // it is (a restart is expected, and loses nothing).
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| {
            EnvFilter::try_new(format!(
                "{level},sqlx=warn,tower_http=warn,chromiumoxide=error,lapin=off"
            ))
        })
        .map_err(|e| anyhow::anyhow!("invalid logging.level {:?}: {e}", config.logging.level))?;
    let hub = pulseboard_logs::global();
    hub.set_capacity(config.logging.buffer_lines);

    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut layers: Vec<BoxedLayer> = vec![match config.logging.format {
        LogFormat::Json => fmt::layer().json().with_writer(std::io::stderr).boxed(),
        LogFormat::Text => fmt::layer()
            .with_ansi(ansi)
            .fmt_fields(pulseboard_logs::redacting_fields())
            .with_writer(std::io::stderr)
            .boxed(),
    }];
    let mut guard = None;
    // One-off commands (migrate, user) log to the console only.
    if !quiet {
        let path = config.data_dir.join("logs").join(file_name);
        match pulseboard_logs::RotatingFile::open(
            &path,
            config.logging.file_max_bytes,
            config.logging.file_backups,
        ) {
            Ok(file) => {
                // Lines go through a channel to a writer thread: a slow disk never blocks a
                // request (when the channel is full, lines are dropped rather than waited for).
                let (writer, g) = tracing_appender::non_blocking(file);
                guard = Some(g);
                layers.push(match config.logging.format {
                    LogFormat::Json => fmt::layer().json().with_writer(writer).boxed(),
                    LogFormat::Text => fmt::layer()
                        .with_ansi(false)
                        .fmt_fields(pulseboard_logs::redacting_fields())
                        .with_writer(writer)
                        .boxed(),
                });
            }
            Err(e) => eprintln!(
                "warning: cannot write log file {}: {e}; logging to the console only",
                path.display()
            ),
        }
    }
    layers.push(hub.layer().boxed());
    let _ = tracing_subscriber::registry()
        .with(layers)
        .with(filter)
        .try_init();
    Ok(Guard(guard))
}
