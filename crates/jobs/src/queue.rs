use crate::Job;
use pulseboard_domain::Timestamp;
use pulseboard_storage::{jobs, Conn, Db, Result};
use std::sync::Arc;
use tokio::sync::Notify;

#[derive(Debug, Clone)]
pub struct QueueOptions {
    pub max_attempts: u32,
}

/// Enqueues jobs into the database queue.
#[derive(Clone)]
pub struct Queue {
    db: Db,
    opts: QueueOptions,
    /// Wakes workers in this process at once instead of at their next poll.
    notify: Arc<Notify>,
}

impl Queue {
    pub fn new(db: Db, opts: QueueOptions) -> Self {
        Self {
            db,
            opts,
            notify: Arc::new(Notify::new()),
        }
    }

    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Signalled on every enqueue in this process (workers polling the table, the outbox relay).
    pub fn notifier(&self) -> Arc<Notify> {
        self.notify.clone()
    }

    /// Enqueues a job on its own. Returns the job id, or None if its idempotency key was taken.
    pub async fn enqueue<J: Job>(&self, job: &J) -> Result<Option<i64>> {
        // A request-sized write: on SQLite it joins the group commit (`Db::write`).
        let payload = serde_json::to_string(job).expect("job payloads serialise");
        let key = job.idempotency_key();
        let max_attempts = self.opts.max_attempts as i64;
        let id = self
            .db
            .write(move |conn| {
                Box::pin(async move {
                    let now = Timestamp::now();
                    let new = jobs::NewJob {
                        queue: J::QUEUE,
                        kind: J::KIND,
                        payload: &payload,
                        max_attempts,
                        run_at: now,
                        idempotency_key: key.as_deref(),
                    };
                    jobs::insert(conn, &new, now).await
                })
            })
            .await?;
        self.notify.notify_waiters();
        Ok(id)
    }

    /// The id of a queued or running job equal to `job` (same kind and payload), if any.
    pub async fn unfinished<J: Job>(&self, job: &J) -> Result<Option<i64>> {
        let payload = serde_json::to_string(job).expect("job payloads serialise");
        jobs::unfinished_with_payload(&self.db, J::KIND, &payload).await
    }

    /// Enqueues a job inside the caller's transaction: it exists only if that transaction commits.
    /// Call [`Queue::wake`] after the commit.
    pub async fn enqueue_in<J: Job>(&self, conn: &mut Conn, job: &J) -> Result<Option<i64>> {
        self.enqueue_at_in(conn, job, Timestamp::now()).await
    }

    pub async fn enqueue_at_in<J: Job>(
        &self,
        conn: &mut Conn,
        job: &J,
        run_at: i64,
    ) -> Result<Option<i64>> {
        let payload = serde_json::to_string(job).expect("job payloads serialise");
        let key = job.idempotency_key();
        jobs::insert(
            conn,
            &jobs::NewJob {
                queue: J::QUEUE,
                kind: J::KIND,
                payload: &payload,
                max_attempts: self.opts.max_attempts as i64,
                run_at,
                idempotency_key: key.as_deref(),
            },
            Timestamp::now(),
        )
        .await
    }

    /// Tells local workers that new jobs are waiting.
    pub fn wake(&self) {
        self.notify.notify_waiters();
    }
}
