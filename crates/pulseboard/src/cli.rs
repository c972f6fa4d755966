use clap::{Parser, Subcommand};
use std::path::PathBuf;

/// Pulseboard: a task board and a web-resource monitor in one self-hosted binary.
///
/// Without a subcommand it runs everything in one process (`all`) on the embedded defaults:
/// SQLite in ./data, the job queue in that database, mail written to ./data/outbox, port 8080.
#[derive(Debug, Parser)]
#[command(name = "pulseboard", version, about, long_about)]
pub struct Cli {
    /// Configuration file with overrides of the built-in defaults (see config.yaml).
    #[arg(long, global = true, env = "PULSEBOARD_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,

    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// API + web app + worker + scheduler in one process (the default).
    All,
    /// The HTTP API and the web app's files only; scale out by running many behind a load balancer.
    Serve,
    /// A background job consumer (emails, imports, checks, screenshots).
    Worker {
        /// Queues to consume, comma-separated (default: all of them).
        #[arg(long, value_delimiter = ',', value_name = "QUEUE,…")]
        queues: Option<Vec<String>>,
        /// Jobs handled at once (default: jobs.concurrency from the configuration).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=1024))]
        concurrency: Option<u16>,
    },
    /// Fires periodic jobs from the cron schedules in the configuration, and takes the scheduled
    /// backups (`backup.schedule`); safe to run more than one.
    Scheduler,
    /// Applies database migrations and exits.
    Migrate,
    /// Account administration.
    User {
        #[command(subcommand)]
        action: UserAction,
    },
    /// Writes a consistent copy of the data while the server runs: the SQLite database
    /// (VACUUM INTO), local blobs, the generated JWT key and a manifest. On PostgreSQL it prints the
    /// pg_dump command instead of dumping, and still copies the files.
    Backup {
        /// The backup folder to create (default: <data_dir>/backups/pulseboard-<UTC time>).
        #[arg(long, value_name = "PATH")]
        to: Option<PathBuf>,
    },
    /// Restores a backup folder into the configured data folder and database. Stop every
    /// Pulseboard process that uses them first.
    Restore {
        /// The backup folder (the one `pulseboard backup` printed).
        path: PathBuf,
        /// Replace a database or blob folder that already holds data (the replaced database
        /// files are kept beside it as `*.replaced-<time>`).
        #[arg(long)]
        force: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserAction {
    /// Gives the account with this email the admin role (logs, job queues).
    Promote {
        /// The account's email address.
        email: String,
    },
    /// Takes the admin role away.
    Demote {
        /// The account's email address.
        email: String,
    },
}
