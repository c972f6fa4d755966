//! Background jobs: Pulseboard's Celery and Celery Beat.
//!
//! A job is a typed, serialisable payload ([`Job`]) with a kind, a queue and a handler. Code
//! enqueues it through [`Queue`] without knowing the backend; [`worker::Worker`] claims due jobs
//! and runs their handlers; [`scheduler::Scheduler`] enqueues periodic jobs from cron expressions.
//! Handlers are plain async functions of their payload and a [`Context`] (see `handlers/`); Watch's
//! work itself (checks, captures, imports, alert delivery) is in `pulseboard-watch`, whose
//! per-process services the [`Context`] carries.

pub mod amqp;
pub mod handlers;
pub mod nudge;
pub mod queue;
pub mod scheduler;
pub mod worker;

pub use queue::{Queue, QueueOptions};

use pulseboard_mail::Mailer;
use pulseboard_storage::Db;
use serde::{de::DeserializeOwned, Serialize};

/// A kind of background job.
pub trait Job: Serialize + DeserializeOwned + Send + Sync + 'static {
    /// Stable name stored with each job; never derived from the Rust type name, so renaming a type
    /// does not strand the jobs already queued.
    const KIND: &'static str;
    /// The queue it runs on (`worker --queues` picks queues).
    const QUEUE: &'static str;

    /// Jobs with the same key are enqueued once (at-least-once delivery + idempotent enqueue).
    fn idempotency_key(&self) -> Option<String> {
        None
    }
}

/// The outcome of one failed attempt.
#[derive(Debug, thiserror::Error)]
pub enum JobError {
    /// Try again later, with back-off, until the attempts run out.
    #[error("{0}")]
    Retry(String),
    /// Retrying cannot help: dead-letter now.
    #[error("{0}")]
    Fatal(String),
}

impl From<pulseboard_storage::StorageError> for JobError {
    fn from(e: pulseboard_storage::StorageError) -> Self {
        JobError::Retry(e.to_string())
    }
}

/// What handlers may use.
#[derive(Clone)]
pub struct Context {
    pub db: Db,
    pub queue: Queue,
    pub mailer: Mailer,
    pub public_url: String,
    /// Signs links that act without a login (unsubscribe).
    pub signing_key: std::sync::Arc<Vec<u8>>,
    /// Availability checks (one per process: it holds the connection pool and the limits).
    pub checker: std::sync::Arc<pulseboard_watch::checker::Checker>,
    /// Screenshot images (local folder or S3), the same store the API uses.
    pub blobs: pulseboard_storage::blobs::Blobs,
    /// Screenshot capture (one per process: it owns the browser and the tab limit).
    pub capturer: std::sync::Arc<pulseboard_watch::capture::Capturer>,
    /// Deliveries to notification channels (one per process: it holds the connection pool).
    pub notifier: std::sync::Arc<pulseboard_watch::alerts::Notifier>,
    /// `jobs.max_attempts`: handlers that must record their own final failure compare with it.
    pub max_attempts: u32,
}

/// Every queue a default worker consumes.
pub const ALL_QUEUES: &[&str] = &[
    handlers::EMAIL_QUEUE,
    handlers::MAINTENANCE_QUEUE,
    handlers::MONITOR_QUEUE,
    handlers::SCREENSHOTS_QUEUE,
    handlers::IMPORTS_QUEUE,
    handlers::ALERTS_QUEUE,
];
