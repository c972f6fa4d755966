//! The worker: takes jobs from the table (polling) or from RabbitMQ (see `amqp.rs`; consumed in
//! `worker/broker.rs`), runs each under a timeout, records the outcome.
//!
//! Delivery is at-least-once: a job is leased, not removed, when claimed; if this process dies the
//! lease expires and another worker runs the job again. Handlers are therefore idempotent.
//!
//! Leases are short (`jobs.lease_secs`, 30 s by default) and renewed while the job runs: a
//! heartbeat extends every lease this worker holds in one UPDATE each [`heartbeat_interval`]
//! (a third of the lease). So a job whose worker died is taken over within about a lease, however
//! long it runs, and a live worker's job is never taken over. A job found no longer held (taken
//! over after a late heartbeat, or by hand) is cancelled here, as is one past `jobs.timeout_secs`:
//! its task is aborted and awaited, so that its transaction is dropped (rolled back) before its
//! outcome is recorded and another attempt can start. The leases and their heartbeat are in
//! `worker/lease.rs`.

mod broker;
mod lease;

pub use lease::heartbeat_interval;

use crate::amqp::AmqpOptions;
use crate::{handlers, Context, JobError};
use broker::consume_broker;
use lapin::options::{BasicAckOptions, BasicRejectOptions};
use lapin::Acker;
use lease::{heartbeat, Held, InFlight};
use pulseboard_domain::Timestamp;
use pulseboard_storage::jobs::{self, JobRow};
use rand::Rng;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot, watch, OwnedSemaphorePermit, Semaphore};
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
    /// Some: jobs arrive from RabbitMQ instead of by polling the table.
    pub amqp: Option<AmqpOptions>,
}

pub struct Worker {
    ctx: Context,
    opts: WorkerOptions,
    id: String,
}

/// The broker message of a job, acknowledged once the job's outcome is recorded (RabbitMQ only).
type Ack = Option<Acker>;

/// What both job sources share: the pool of running jobs and how they report back.
struct Pool {
    ctx: Context,
    opts: WorkerOptions,
    id: String,
    permits: Arc<Semaphore>,
    in_flight: InFlight,
    running: JoinSet<()>,
    done_tx: mpsc::UnboundedSender<(i64, Ack)>,
}

impl Pool {
    /// Waits for a free slot; None when shutdown comes first.
    async fn slot(&self, shutdown: &mut watch::Receiver<bool>) -> Option<OwnedSemaphorePermit> {
        tokio::select! {
            p = self.permits.clone().acquire_owned() => Some(p.expect("semaphore is never closed")),
            _ = shutdown.wait_for(|stop| *stop) => None,
        }
    }

    /// Runs a claimed job (already in `in_flight`) in the slot it was given.
    fn spawn(&mut self, job: JobRow, ack: Ack, permit: OwnedSemaphorePermit) {
        let (ctx, opts, id, done_tx, in_flight) = (
            self.ctx.clone(),
            self.opts.clone(),
            self.id.clone(),
            self.done_tx.clone(),
            self.in_flight.clone(),
        );
        self.running.spawn(async move {
            run_one(&ctx, &opts, &id, job, ack, &done_tx, &in_flight).await;
            drop(permit);
        });
    }

    fn reap(&mut self) {
        while self.running.try_join_next().is_some() {}
    }
}

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
        let backend = if opts.amqp.is_some() {
            "rabbitmq"
        } else {
            "database"
        };
        tracing::info!(worker = %id, queues = ?opts.queues, concurrency = opts.concurrency, backend, "worker started");
        let in_flight: InFlight = Arc::default();
        let (done_tx, done_rx) = mpsc::unbounded_channel();
        let flusher = tokio::spawn(flush_completions(
            ctx.clone(),
            id.clone(),
            done_rx,
            in_flight.clone(),
        ));
        let (stop_heartbeat, heartbeat_stopped) = oneshot::channel();
        let heartbeat = tokio::spawn(heartbeat(
            ctx.clone(),
            id.clone(),
            opts.lease,
            in_flight.clone(),
            heartbeat_stopped,
        ));
        let mut pool = Pool {
            permits: Arc::new(Semaphore::new(opts.concurrency)),
            ctx,
            opts,
            id,
            in_flight,
            running: JoinSet::new(),
            done_tx,
        };

        // The broker connection stays open while in-flight jobs finish, so that they can be acked.
        let broker = match pool.opts.amqp.clone() {
            None => {
                poll_database(&mut pool, &mut shutdown).await;
                None
            }
            Some(amqp) => consume_broker(&mut pool, &amqp, &mut shutdown).await,
        };

        let Pool {
            ctx,
            opts,
            id,
            in_flight,
            mut running,
            done_tx,
            ..
        } = pool;
        tracing::info!(worker = %id, in_flight = running.len(), "worker stopping");
        let drained = tokio::time::timeout(opts.shutdown_grace, async {
            while running.join_next().await.is_some() {}
        })
        .await;
        if drained.is_err() {
            // Cancel the attempts still running and wait for them to end, so that none is still
            // at work when its job goes back to the queue. They stay in flight, to be released.
            for held in in_flight.lock().unwrap().values() {
                if let Held::Running(handler) = held {
                    handler.abort();
                }
            }
            let ended = tokio::time::timeout(Duration::from_secs(5), async {
                while running.join_next().await.is_some() {}
            })
            .await;
            if ended.is_err() {
                tracing::warn!(worker = %id, "jobs did not stop when cancelled");
                running.abort_all();
                while running.join_next().await.is_some() {}
            }
        }
        drop(done_tx);
        let _ = flusher.await;
        let _ = stop_heartbeat.send(());
        let _ = heartbeat.await;
        let leftover: Vec<i64> = in_flight
            .lock()
            .unwrap()
            .drain()
            .map(|(id, _)| id)
            .collect();
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
        // Closing hands unacked messages back to RabbitMQ; their jobs were released above.
        if let Some(consumer) = broker {
            let _ = consumer
                .connection
                .close(200, "worker stopped".into())
                .await;
        }
        tracing::info!(worker = %id, "worker stopped");
    }
}

/// The embedded queue: claim due jobs from the table in batches, sleep when there are none.
async fn poll_database(pool: &mut Pool, shutdown: &mut watch::Receiver<bool>) {
    let notify = pool.ctx.queue.notifier();
    while !*shutdown.borrow() {
        pool.reap();
        let free = pool.permits.available_permits();
        if free == 0 {
            tokio::select! {
                _ = pool.running.join_next() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        let now = Timestamp::now();
        let lease_until = now + pool.opts.lease.as_millis() as i64;
        let claimed = match jobs::claim(
            &pool.ctx.db,
            &pool.opts.queues,
            &pool.id,
            free as i64,
            now,
            lease_until,
        )
        .await
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(worker = %pool.id, error = %e, "claiming jobs failed; retrying");
                tokio::select! {
                    _ = tokio::time::sleep(pool.opts.poll_interval * 4) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        if claimed.is_empty() {
            tokio::select! {
                _ = tokio::time::sleep(pool.opts.poll_interval) => {}
                _ = notify.notified() => {}
                _ = shutdown.changed() => {}
            }
            continue;
        }
        pool.in_flight
            .lock()
            .unwrap()
            .extend(claimed.iter().map(|j| (j.id, Held::Waiting)));
        for job in claimed {
            // Claimed no more than the free slots: this does not wait.
            let permit = pool
                .permits
                .clone()
                .try_acquire_owned()
                .expect("claimed only as many jobs as free slots");
            pool.spawn(job, None, permit);
        }
    }
}

async fn run_one(
    ctx: &Context,
    opts: &WorkerOptions,
    worker: &str,
    job: JobRow,
    ack: Ack,
    done: &mpsc::UnboundedSender<(i64, Ack)>,
    in_flight: &InFlight,
) {
    let started = Instant::now();
    // The handler runs in its own task so that a panic is an error of this job, not of the worker,
    // and so that the heartbeat, a timeout or shutdown can abort it.
    let handler = {
        let mut held = in_flight.lock().unwrap();
        held.get_mut(&job.id).map(|slot| {
            let (ctx, kind, payload, attempt) = (
                ctx.clone(),
                job.kind.clone(),
                job.payload.clone(),
                job.attempts,
            );
            let handler =
                tokio::spawn(
                    async move { handlers::dispatch(&ctx, &kind, &payload, attempt).await },
                );
            *slot = Held::Running(handler.abort_handle());
            handler
        })
    };
    let Some(mut handler) = handler else {
        // The heartbeat dropped it while it waited for a slot: its message is stale.
        settle(ack, false).await;
        return;
    };
    tracing::debug!(job_id = job.id, kind = %job.kind, attempt = job.attempts, "job started");
    let outcome = match tokio::time::timeout(opts.timeout, &mut handler).await {
        Ok(Ok(result)) => Some(result),
        // Aborted by the heartbeat (lease lost) or at shutdown: decided below.
        Ok(Err(join)) if join.is_cancelled() => None,
        Ok(Err(join)) => Some(Err(JobError::Retry(format!("handler panicked: {join}")))),
        Err(_) => {
            // Cancel the attempt and wait until it has ended (its future dropped, so its
            // transaction rolled back) before recording the retry: no two attempts overlap.
            handler.abort();
            let _ = handler.await;
            Some(Err(JobError::Retry(format!(
                "timed out after {:?}",
                opts.timeout
            ))))
        }
    };
    let still_held = match in_flight.lock().unwrap().get_mut(&job.id) {
        Some(slot) => {
            if outcome.is_some() {
                *slot = Held::Settling;
            }
            true
        }
        None => false,
    };
    if !still_held {
        // The heartbeat found the job held by someone else and dropped it: whatever this attempt
        // did, its new holder decides the outcome. Its message is stale.
        tracing::warn!(job_id = job.id, kind = %job.kind, attempt = job.attempts, "job attempt abandoned: its lease was lost");
        settle(ack, false).await;
        return;
    }
    // None: cancelled at shutdown; the job stays in flight, to be released.
    let Some(outcome) = outcome else { return };
    let now = Timestamp::now();
    let mut dead = false;
    let recorded = match outcome {
        Ok(()) => {
            tracing::debug!(job_id = job.id, kind = %job.kind, elapsed_ms = started.elapsed().as_millis() as u64, "job finished");
            // Completion is batched by the flusher; it also clears the in-flight mark and acks.
            match done.send((job.id, ack)) {
                Ok(()) => return,
                Err(mpsc::error::SendError((_, ack))) => {
                    let r = jobs::complete(&ctx.db, job.id, worker, now).await;
                    settle(ack, false).await;
                    in_flight.lock().unwrap().remove(&job.id);
                    if let Err(e) = r {
                        tracing::warn!(job_id = job.id, error = %e, "could not record job outcome; its lease will expire and it will run again");
                    }
                    return;
                }
            }
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
            dead = true;
            jobs::bury(&ctx.db, job.id, worker, &err, now).await
        }
    };
    if let Err(e) = recorded {
        tracing::warn!(job_id = job.id, error = %e, "could not record job outcome; its lease will expire and it will run again");
    }
    settle(ack, dead).await;
    in_flight.lock().unwrap().remove(&job.id);
}

/// Acknowledges a job's message once its outcome is recorded; a dead job's message is rejected
/// so that RabbitMQ moves it to the dead-letter queue.
async fn settle(ack: Ack, dead: bool) {
    let Some(acker) = ack else { return };
    let r = if dead {
        acker.reject(BasicRejectOptions { requeue: false }).await
    } else {
        acker.ack(BasicAckOptions::default()).await
    };
    if let Err(e) = r {
        // The channel is gone: RabbitMQ redelivers, and the claim finds the job settled.
        tracing::debug!(error = %e, "could not acknowledge a message");
    }
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
    mut rx: mpsc::UnboundedReceiver<(i64, Ack)>,
    in_flight: InFlight,
) {
    let mut batch = Vec::with_capacity(256);
    let mut ids = Vec::with_capacity(256);
    while rx.recv_many(&mut batch, 512).await > 0 {
        ids.clear();
        ids.extend(batch.iter().map(|(id, _)| *id));
        let mut tries = 0;
        loop {
            match jobs::complete_many(&ctx.db, &ids, &worker, Timestamp::now()).await {
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
        for (_, ack) in batch.iter_mut() {
            settle(ack.take(), false).await;
        }
        let mut set = in_flight.lock().unwrap();
        for (id, _) in batch.drain(..) {
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
            amqp: None,
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
