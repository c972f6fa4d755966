//! Logging: human-readable lines on the console (JSON when configured). File rotation, the in-memory
//! buffer and the live stream come with the logs feature.

use pulseboard_config::{Config, LogFormat};
use tracing_subscriber::{fmt, prelude::*, EnvFilter};

pub struct Guard;

pub fn init(config: &Config, quiet: bool) -> anyhow::Result<Guard> {
    let level = if quiet {
        "warn"
    } else {
        config.logging.level.as_str()
    };
    let filter = EnvFilter::try_from_env("RUST_LOG")
        .or_else(|_| EnvFilter::try_new(format!("{level},sqlx=warn,tower_http=warn")))
        .map_err(|e| anyhow::anyhow!("invalid logging.level {:?}: {e}", config.logging.level))?;
    let registry = tracing_subscriber::registry().with(filter);
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = match config.logging.format {
        LogFormat::Json => registry
            .with(fmt::layer().json().with_writer(std::io::stderr))
            .try_init(),
        LogFormat::Text => registry
            .with(fmt::layer().with_ansi(ansi).with_writer(std::io::stderr))
            .try_init(),
    };
    // A second init (tests start many apps in one process) keeps the first subscriber.
    let _ = result;
    Ok(Guard)
}
