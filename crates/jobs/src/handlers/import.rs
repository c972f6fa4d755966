//! The `import_resources` job: one attempt of a ZIP import, run by
//! [`pulseboard_watch::import::run`] (which documents the archive's defences and the
//! transactions). This handler adds the job's side: its payload, retries, and the final attempt.

use crate::{Context, Job, JobError};
use pulseboard_watch::import::{self, ImportError, ImportLimits, Request};
use serde::{Deserialize, Serialize};
use std::path::Path;

/// Import the URLs of an uploaded ZIP into a user's catalogue.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImportResources {
    pub request_id: String,
    pub user_id: i64,
    /// The uploaded archive, written by the web process under `<data_dir>/uploads/`.
    pub path: String,
}

impl Job for ImportResources {
    const KIND: &'static str = "import_resources";
    const QUEUE: &'static str = super::IMPORTS_QUEUE;

    fn idempotency_key(&self) -> Option<String> {
        Some(Self::job_key(&self.request_id))
    }
}

impl ImportResources {
    /// The idempotency key of the import job of a request.
    pub fn job_key(request_id: &str) -> String {
        format!("import:{request_id}")
    }
}

/// Runs one attempt; `attempt` counts from 1. A later attempt resumes where the last committed
/// batch of an earlier one left the request (see [`import::run`]), so retrying costs at most a batch.
/// On the final attempt (`jobs.max_attempts`), a failure also ends the request `failed` with the
/// reason.
pub async fn handle(ctx: &Context, job: ImportResources, attempt: i64) -> Result<(), JobError> {
    let req = Request {
        request_id: &job.request_id,
        user_id: job.user_id,
        path: Path::new(&job.path),
    };
    // Every error of an attempt may pass when tried again (a bad archive is not an error: it
    // ends the request `failed` and the job succeeds).
    let result = import::run(&ctx.db, req, &ImportLimits::default())
        .await
        .map_err(|e: ImportError| JobError::Retry(e.to_string()));
    if let Err(JobError::Retry(e)) = &result {
        if attempt >= i64::from(ctx.max_attempts) {
            import::give_up(&ctx.db, &job.request_id, attempt, e).await;
        }
    }
    result
}
