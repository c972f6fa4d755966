//! The worker: claims due jobs in batches, runs each under a timeout, records the outcome.
//!
//! Delivery is at-least-once: a job is leased, not removed, when claimed; if this process dies the
//! lease expires and another worker runs the job again. Handlers are therefore idempotent.

use crate::{handlers, Context, JobError};
use pulseboard_domain::Timestamp;
use pulseboard_storage::jobs::{self, JobRow};
use rand::Rng;
use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::{mpsc, watch, Semaphore};
use tokio::task::JoinSet;

#[derive(Debug, Clone)]
pub struct WorkerOptions {
    pub queues: Vec<String>,
    pub concurrency: usize,
    pub poll_interval: Duration,
    pub timeout: Duration,
    pub lease: Duration,
    pub backoff_base: Duration,
    pub backoff_max: Duration,
    pub shutdown_grace: Duration,
}

pub struct Worker {
    ctx: Context,
    opts: WorkerOptions,
    id: String,
}

type InFlight = Arc<Mutex<HashSet<i64>>>;

impl Worker {
    pub fn new(ctx: Context, opts: WorkerOptions) -> Self {
        let id = format!(
            "worker-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        );
        Self { ctx, opts, id }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// Runs until `shutdown` turns true, then lets in-flight jobs finish within the grace period
    /// and gives the rest back to the queue.
    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let Worker { ctx, opts, id } = self;
        tracing::info!(worker = %id, queues = ?opts.queues, concurrency = opts.concurrency, "worker started");
        let permits = Arc::new(Semaphore::new(opts.concurrency));
        let in_flight: InFlight = Arc::default();
        let mut running = JoinSet::new();
        let (done_tx, done_rx) = mpsc::unbounded_channel::<i64>();
        let flusher = tokio::spawn(flush_completions(
            ctx.clone(),
            id.clone(),
            done_rx,
            in_flight.clone(),
        ));
        let notify = ctx.queue.notifier();

        while !*shutdown.borrow() {
            while running.try_join_next().is_some() {}
            let free = permits.available_permits();
            if free == 0 {
                tokio::select! {
                    _ = running.join_next() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            let now = Timestamp::now();
            let lease_until = now + opts.lease.as_millis() as i64;
            let claimed = match jobs::claim(
                &ctx.db,
                &opts.queues,
                &id,
                free as i64,
                now,
                lease_until,
            )
            .await
            {
                Ok(c) => c,
                Err(e) => {
                    tracing::warn!(worker = %id, error = %e, "claiming jobs failed; retrying");
                    tokio::select! {
                        _ = tokio::time::sleep(opts.poll_interval * 4) => {}
                        _ = shutdown.changed() => {}
                    }
                    continue;
                }
            };
            if claimed.is_empty() {
                tokio::select! {
                    _ = tokio::time::sleep(opts.poll_interval) => {}
                    _ = notify.notified() => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
            for job in claimed {
                let permit = permits
                    .clone()
                    .acquire_owned()
                    .await
                    .expect("semaphore is never closed");
                in_flight.lock().unwrap().insert(job.id);
                let (ctx, opts, id, done_tx, in_flight) = (
                    ctx.clone(),
                    opts.clone(),
                    id.clone(),
                    done_tx.clone(),
                    in_flight.clone(),
                );
                running.spawn(async move {
                    run_one(&ctx, &opts, &id, job, &done_tx, &in_flight).await;
                    drop(permit);
                });
            }
        }

        tracing::info!(worker = %id, in_flight = running.len(), "worker stopping");
        let drained = tokio::time::timeout(opts.shutdown_grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            running.abort_all();
            while running.join_next().await.is_some() {}
        }
        drop(done_tx);
        let _ = flusher.await;
        let leftover: Vec<i64> = in_flight.lock().unwrap().drain().collect();
        if !leftover.is_empty() {
            match jobs::release(&ctx.db, &leftover, &id, Timestamp::now()).await {
                Ok(n) => {
                    tracing::info!(worker = %id, released = n, "unfinished jobs returned to the queue")
                }
                Err(e) => {
                    tracing::warn!(worker = %id, error = %e, "could not return jobs; their leases will expire")
                }
            }
        }
        tracing::info!(worker = %id, "worker stopped");
    }
}

async fn run_one(
    ctx: &Context,
    opts: &WorkerOptions,
    worker: &str,
    job: JobRow,
    done: &mpsc::UnboundedSender<i64>,
    in_flight: &InFlight,
) {
    let started = std::time::Instant::now();
    tracing::debug!(job_id = job.id, kind = %job.kind, attempt = job.attempts, "job started");
    // The handler runs in its own task so that a panic is an error of this job, not of the worker.
    let handler = {
        let (ctx, kind, payload, attempt) = (
            ctx.clone(),
            job.kind.clone(),
            job.payload.clone(),
            job.attempts,
        );
        tokio::spawn(async move { handlers::dispatch(&ctx, &kind, &payload, attempt).await })
    };
    let outcome = match tokio::time::timeout(opts.timeout, handler).await {
        Ok(Ok(result)) => result,
        Ok(Err(join)) => Err(JobError::Retry(format!("handler panicked: {join}"))),
        Err(_) => Err(JobError::Retry(format!(
            "timed out after {:?}",
            opts.timeout
        ))),
    };
    let now = Timestamp::now();
    let recorded = match outcome {
        Ok(()) => {
            tracing::debug!(job_id = job.id, kind = %job.kind, elapsed_ms = started.elapsed().as_millis() as u64, "job finished");
            // Completion is batched by the flusher; it also clears the in-flight mark.
            if done.send(job.id).is_ok() {
                return;
            }
            jobs::complete(&ctx.db, job.id, worker, now).await
        }
        Err(JobError::Retry(err)) if job.attempts < job.max_attempts => {
            let delay = backoff(opts, job.attempts as u32);
            tracing::warn!(job_id = job.id, kind = %job.kind, attempt = job.attempts, retry_in_ms = delay.as_millis() as u64, error = %err, "job failed; will retry");
            jobs::retry_later(
                &ctx.db,
                job.id,
                worker,
                &err,
                now + delay.as_millis() as i64,
                now,
            )
            .await
        }
        Err(JobError::Retry(err) | JobError::Fatal(err)) => {
            tracing::error!(job_id = job.id, kind = %job.kind, attempt = job.attempts, error = %err, "job dead-lettered");
            jobs::bury(&ctx.db, job.id, worker, &err, now).await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(job_id = job.id, error = %e, "could not record job outcome; its lease will expire and it will run again");
    }
    in_flight.lock().unwrap().remove(&job.id);
}

/// Exponential back-off with jitter: about base * 2^(attempt-1), between half and all of it.
pub fn backoff(opts: &WorkerOptions, attempt: u32) -> Duration {
    let exp = opts
        .backoff_base
        .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1).min(20)));
    let capped = exp.min(opts.backoff_max);
    let jitter = rand::thread_rng().gen_range(0.5..=1.0);
    capped.mul_f64(jitter)
}

/// Records successful jobs in batches: one UPDATE for everything finished since the last flush.
async fn flush_completions(
    ctx: Context,
    worker: String,
    mut rx: mpsc::UnboundedReceiver<i64>,
    in_flight: InFlight,
) {
    let mut batch = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 512).await > 0 {
        let mut tries = 0;
        loop {
            match jobs::complete_many(&ctx.db, &batch, &worker, Timestamp::now()).await {
                Ok(_) => break,
                Err(e) if tries < 5 => {
                    tries += 1;
                    tracing::warn!(error = %e, "recording finished jobs failed; retrying");
                    tokio::time::sleep(Duration::from_millis(200 * tries)).await;
                }
                Err(e) => {
                    tracing::error!(error = %e, jobs = batch.len(), "could not record finished jobs; they will run again when their lease expires");
                    break;
                }
            }
        }
        let mut set = in_flight.lock().unwrap();
        for id in batch.drain(..) {
            set.remove(&id);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_and_is_capped() {
        let opts = WorkerOptions {
            queues: vec![],
            concurrency: 1,
            poll_interval: Duration::from_millis(10),
            timeout: Duration::from_secs(1),
            lease: Duration::from_secs(2),
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            shutdown_grace: Duration::from_secs(1),
        };
        for _ in 0..50 {
            let first = backoff(&opts, 1);
            assert!(first >= Duration::from_secs(1) && first <= Duration::from_secs(2));
            let third = backoff(&opts, 3);
            assert!(third >= Duration::from_secs(4) && third <= Duration::from_secs(8));
            assert!(backoff(&opts, 30) <= Duration::from_secs(60));
        }
    }
}
