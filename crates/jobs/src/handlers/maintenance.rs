use crate::{Context, Job, JobError};
use pulseboard_domain::Timestamp;
use pulseboard_storage::{idempotency, jobs, resources, sessions, throttle};
use serde::{Deserialize, Serialize};

/// Prunes finished jobs and expired refresh tokens, and folds piled-up resource count deltas.
#[derive(Debug, Serialize, Deserialize)]
pub struct Cleanup {
    /// Finished jobs older than this many days are deleted.
    pub retention_days: u64,
}

impl Job for Cleanup {
    const KIND: &'static str = "cleanup";
    const QUEUE: &'static str = super::MAINTENANCE_QUEUE;
}

pub async fn handle(ctx: &Context, job: Cleanup) -> Result<(), JobError> {
    let now = Timestamp::now();
    let before = now - (job.retention_days as i64) * 86_400_000;
    let jobs_pruned = jobs::prune_done(&ctx.db, before).await?;
    let tokens_pruned = sessions::prune_expired(&ctx.db, now).await?;
    let counts_compacted = resources::compact_all_counts(&ctx.db).await?;
    // Login windows are at most a week long (auth.login_window_secs).
    let throttles_pruned = throttle::prune(&ctx.db, now - 7 * 86_400_000).await?;
    // Idempotency keys are remembered for 24 hours.
    let idempotency_keys_pruned = idempotency::prune(&ctx.db, now - idempotency::TTL_MS).await?;
    tracing::info!(
        jobs_pruned,
        tokens_pruned,
        counts_compacted,
        throttles_pruned,
        idempotency_keys_pruned,
        "cleanup finished"
    );
    Ok(())
}

/// A job that does nothing, or fails on purpose: for measuring the queue and for testing retries,
/// dead-lettering, timeouts and crash recovery against the real worker.
#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(default)]
pub struct Noop {
    /// Attempts up to this number fail with a retryable error.
    pub fail_attempts: i64,
    /// Fail with a non-retryable error.
    pub fatal: bool,
    /// Work this long before finishing.
    pub sleep_ms: u64,
    /// Only attempts up to this number sleep; 0: every attempt does.
    pub slow_attempts: i64,
    /// Distinguishes otherwise identical jobs; also the idempotency key when set.
    pub key: Option<String>,
    /// Tests: a folder where each attempt leaves traces: `running` while it runs (removed when it
    /// ends, also when it is cancelled), `overlap` when it starts while another attempt runs, and
    /// `finished-<attempt>` once its sleep is over.
    pub trace_dir: Option<String>,
}

impl Job for Noop {
    const KIND: &'static str = "noop";
    const QUEUE: &'static str = super::MAINTENANCE_QUEUE;

    fn idempotency_key(&self) -> Option<String> {
        self.key.as_ref().map(|k| format!("noop:{k}"))
    }
}

pub async fn noop(job: Noop, attempt: i64) -> Result<(), JobError> {
    let trace = job.trace_dir.as_deref().map(std::path::Path::new);
    let _running = trace.map(|dir| Running::start(dir, attempt));
    if job.sleep_ms > 0 && (job.slow_attempts == 0 || attempt <= job.slow_attempts) {
        tokio::time::sleep(std::time::Duration::from_millis(job.sleep_ms)).await;
    }
    if let Some(dir) = trace {
        let _ = std::fs::write(dir.join(format!("finished-{attempt}")), b"");
    }
    if job.fatal {
        return Err(JobError::Fatal("noop failed on purpose (fatal)".into()));
    }
    if attempt <= job.fail_attempts {
        return Err(JobError::Retry(format!(
            "noop failed on purpose (attempt {attempt})"
        )));
    }
    Ok(())
}

/// The `running` trace of a [`Noop`] attempt, removed when the attempt ends or is dropped.
struct Running(Option<std::path::PathBuf>);

impl Running {
    fn start(dir: &std::path::Path, attempt: i64) -> Self {
        let path = dir.join("running");
        match std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&path)
        {
            Ok(_) => Running(Some(path)),
            Err(_) => {
                let _ = std::fs::write(dir.join("overlap"), attempt.to_string());
                Running(None)
            }
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(path) = &self.0 {
            let _ = std::fs::remove_file(path);
        }
    }
}
