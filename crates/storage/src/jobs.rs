//! The embedded job queue's SQL. Claiming differs by engine: PostgreSQL uses
//! `FOR UPDATE SKIP LOCKED` so that many workers claim different rows without waiting; SQLite has
//! one writer at a time, so a plain `UPDATE … WHERE id IN (SELECT …)` is already exclusive.

use crate::{Backend, Db, Result};
use pulseboard_domain::UnixMillis;
use sqlx::{AnyConnection, FromRow};

#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    pub payload: String,
    pub status: String,
    pub attempts: i64,
    pub max_attempts: i64,
    pub run_at: i64,
    pub last_error: Option<String>,
    pub idempotency_key: Option<String>,
    pub created_at: i64,
    pub updated_at: i64,
}

const COLUMNS: &str = "id, queue, kind, payload, status, attempts, max_attempts, run_at, \
                       last_error, idempotency_key, created_at, updated_at";

pub struct NewJob<'a> {
    pub queue: &'a str,
    pub kind: &'a str,
    pub payload: &'a str,
    pub max_attempts: i64,
    pub run_at: UnixMillis,
    pub idempotency_key: Option<&'a str>,
}

/// A queued or running job of `kind` with exactly this payload (to answer a repeated request
/// with the job already under way rather than a second one).
pub async fn unfinished_with_payload(db: &Db, kind: &str, payload: &str) -> Result<Option<i64>> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM jobs WHERE kind = $1 AND payload = $2 \
         AND status IN ('queued', 'running') ORDER BY id LIMIT 1",
    )
    .bind(kind)
    .bind(payload)
    .fetch_optional(db.pool())
    .await?;
    Ok(row.map(|(id,)| id))
}

/// Inserts a job on the given connection (often a transaction, so that the job exists only if the
/// change that caused it commits). Returns None when a job with the same idempotency key exists.
pub async fn insert(
    conn: &mut AnyConnection,
    job: &NewJob<'_>,
    now: UnixMillis,
) -> Result<Option<i64>> {
    let id: Option<(i64,)> = sqlx::query_as(
        "INSERT INTO jobs (queue, kind, payload, max_attempts, run_at, idempotency_key, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) \
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING id",
    )
    .bind(job.queue)
    .bind(job.kind)
    .bind(job.payload)
    .bind(job.max_attempts)
    .bind(job.run_at)
    .bind(job.idempotency_key)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(id.map(|(id,)| id))
}

/// Claims up to `limit` due jobs from `queues` for `worker`, leasing them until `lease_until`.
/// Jobs whose lease expired (their worker died) are due again.
pub async fn claim(
    db: &Db,
    queues: &[String],
    worker: &str,
    limit: i64,
    now: UnixMillis,
    lease_until: UnixMillis,
) -> Result<Vec<JobRow>> {
    // Two simple statements rather than one with an OR, so that each walks a small partial index
    // in order (running jobs by lease; queued jobs by run_at) instead of scanning the backlog.
    // Expired leases go first: they are a dead worker's jobs, already waiting since their claim,
    // and a backlog of queued jobs must not strand them (the fault suite's worker-kill case).
    let mut claimed =
        claim_where(db, &EXPIRED_LEASE, queues, worker, limit, now, lease_until).await?;
    if (claimed.len() as i64) < limit {
        let queued = claim_where(
            db,
            &QUEUED,
            queues,
            worker,
            limit - claimed.len() as i64,
            now,
            lease_until,
        )
        .await?;
        claimed.extend(queued);
    }
    Ok(claimed)
}

/// Which jobs are due, in what order, and the partial index that serves exactly that.
struct Due {
    filter: &'static str,
    order: &'static str,
    index: &'static str,
}

const QUEUED: Due = Due {
    filter: "status = 'queued' AND run_at <= $1",
    order: "run_at, id",
    index: "jobs_queued_idx",
};

const EXPIRED_LEASE: Due = Due {
    filter: "status = 'running' AND locked_until < $1",
    order: "locked_until",
    index: "jobs_running_lease_idx",
};

async fn claim_where(
    db: &Db,
    due: &Due,
    queues: &[String],
    worker: &str,
    limit: i64,
    now: UnixMillis,
    lease_until: UnixMillis,
) -> Result<Vec<JobRow>> {
    // Queue names are bound as parameters $5.. so that the list can vary in length.
    let placeholders = crate::placeholders(5, queues.len());
    // SQLite, without statistics, would pick the (queue, status, run_at) index and sort every due
    // job of the listed queues; walking the partial index in order stops after `limit` rows.
    let hint = match db.backend() {
        Backend::Sqlite => format!(" INDEXED BY {}", due.index),
        Backend::Postgres => String::new(),
    };
    let select = format!(
        "SELECT id FROM jobs{hint} WHERE {} AND queue IN ({placeholders}) ORDER BY {} LIMIT $2",
        due.filter, due.order
    );
    let select = match db.backend() {
        Backend::Postgres => format!("{select} FOR UPDATE SKIP LOCKED"),
        Backend::Sqlite => select,
    };
    let sql = format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_until = $3, \
         locked_by = $4, updated_at = $1 WHERE id IN ({select}) RETURNING {COLUMNS}"
    );
    let mut q = sqlx::query_as(&sql)
        .bind(now)
        .bind(limit)
        .bind(lease_until)
        .bind(worker);
    for queue in queues {
        q = q.bind(queue);
    }
    Ok(q.fetch_all(db.pool()).await?)
}

/// Claims the given jobs (their ids came from the broker) for `worker`, as [`claim`] does for due
/// jobs: only those still queued and due, or whose lease expired, are returned. Anything else (done
/// already, a duplicate delivery, held by a live worker) is left alone: the broker message was
/// stale and the outbox relay republishes the job if it ever needs to run again.
pub async fn claim_ids(
    db: &Db,
    ids: &[i64],
    worker: &str,
    now: UnixMillis,
    lease_until: UnixMillis,
) -> Result<Vec<JobRow>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let placeholders = crate::placeholders(4, ids.len());
    let sql = format!(
        "UPDATE jobs SET status = 'running', attempts = attempts + 1, locked_until = $2, \
         locked_by = $3, published_at = NULL, updated_at = $1 \
         WHERE id IN ({}) AND ((status = 'queued' AND run_at <= $1) \
         OR (status = 'running' AND locked_until < $1)) RETURNING {COLUMNS}",
        placeholders
    );
    let mut q = sqlx::query_as(&sql)
        .bind(now)
        .bind(lease_until)
        .bind(worker);
    for id in ids {
        q = q.bind(*id);
    }
    Ok(q.fetch_all(db.pool()).await?)
}

/// A job the outbox relay hands to the broker.
#[derive(Debug, Clone, FromRow)]
pub struct Unpublished {
    pub id: i64,
    pub queue: String,
    pub kind: String,
}

/// Marks up to `limit` jobs as published at `now` and returns them, for the relay to publish:
/// due queued jobs never published, and with `sweep`, also jobs published before `stale_before`
/// that are still queued (a lost message) and jobs whose lease expired (a dead worker). Two relays
/// never get the same job from one call, since the mark is one atomic UPDATE.
pub async fn mark_for_publishing(
    db: &Db,
    now: UnixMillis,
    stale_before: Option<UnixMillis>,
    limit: i64,
) -> Result<Vec<Unpublished>> {
    // The common case reads only the small partial index of unpublished queued jobs.
    let hint = match db.backend() {
        Backend::Sqlite => " INDEXED BY jobs_unpublished_idx",
        Backend::Postgres => "",
    };
    let due = match stale_before {
        None => format!(
            "SELECT id FROM jobs{hint} WHERE status = 'queued' AND published_at IS NULL \
             AND run_at <= $1 ORDER BY run_at, id LIMIT $2"
        ),
        Some(_) => "SELECT id FROM jobs WHERE \
                 (status = 'queued' AND run_at <= $1 AND (published_at IS NULL OR published_at < $3)) \
                 OR (status = 'running' AND locked_until < $1 \
                     AND (published_at IS NULL OR published_at < $3)) \
                 ORDER BY run_at, id LIMIT $2"
            .to_owned(),
    };
    let due = match db.backend() {
        Backend::Postgres => format!("{due} FOR UPDATE SKIP LOCKED"),
        Backend::Sqlite => due,
    };
    let sql =
        format!("UPDATE jobs SET published_at = $1 WHERE id IN ({due}) RETURNING id, queue, kind");
    let mut q = sqlx::query_as(&sql).bind(now).bind(limit);
    if let Some(stale) = stale_before {
        q = q.bind(stale);
    }
    Ok(q.fetch_all(db.pool()).await?)
}

/// Undoes [`mark_for_publishing`] for jobs the broker did not confirm, unless something else has
/// touched them since.
pub async fn unmark_published(db: &Db, ids: &[i64], mark: UnixMillis) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let placeholders = crate::placeholders(2, ids.len());
    let sql = format!(
        "UPDATE jobs SET published_at = NULL WHERE published_at = $1 AND id IN ({})",
        placeholders
    );
    let mut q = sqlx::query(&sql).bind(mark);
    for id in ids {
        q = q.bind(*id);
    }
    Ok(q.execute(db.pool()).await?.rows_affected())
}

/// Marks a job finished. Only the worker holding the lease may, so that a job whose lease expired
/// and was taken over is not completed twice.
pub async fn complete(db: &Db, id: i64, worker: &str, now: UnixMillis) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE jobs SET status = 'done', finished_at = $1, updated_at = $1, locked_until = NULL \
         WHERE id = $2 AND locked_by = $3 AND status = 'running'",
    )
    .bind(now)
    .bind(id)
    .bind(worker)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Marks many jobs finished in one statement (the worker batches completions under load).
pub async fn complete_many(db: &Db, ids: &[i64], worker: &str, now: UnixMillis) -> Result<u64> {
    if ids.is_empty() {
        return Ok(0);
    }
    let placeholders = crate::placeholders(3, ids.len());
    let sql = format!(
        "UPDATE jobs SET status = 'done', finished_at = $1, updated_at = $1, locked_until = NULL \
         WHERE locked_by = $2 AND status = 'running' AND id IN ({})",
        placeholders
    );
    let mut q = sqlx::query(&sql).bind(now).bind(worker);
    for id in ids {
        q = q.bind(*id);
    }
    Ok(q.execute(db.pool()).await?.rows_affected())
}

/// Schedules another attempt at `run_at`, keeping the error.
pub async fn retry_later(
    db: &Db,
    id: i64,
    worker: &str,
    error: &str,
    run_at: UnixMillis,
    now: UnixMillis,
) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE jobs SET status = 'queued', run_at = $1, last_error = $2, locked_until = NULL, \
         locked_by = NULL, published_at = NULL, updated_at = $3 \
         WHERE id = $4 AND locked_by = $5 AND status = 'running'",
    )
    .bind(run_at)
    .bind(error)
    .bind(now)
    .bind(id)
    .bind(worker)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Dead-letters a job with its last error.
pub async fn bury(db: &Db, id: i64, worker: &str, error: &str, now: UnixMillis) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE jobs SET status = 'dead', last_error = $1, finished_at = $2, updated_at = $2, \
         locked_until = NULL WHERE id = $3 AND locked_by = $4 AND status = 'running'",
    )
    .bind(error)
    .bind(now)
    .bind(id)
    .bind(worker)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Most ids one heartbeat statement renews (SQLite's parameter lookup grows with their square).
const RENEW_BATCH: usize = 500;

/// A worker's heartbeat: extends to `lease_until` the lease of those of `ids` that `worker` still
/// holds, and returns them. An id missing from the answer is no longer this worker's (its lease ran
/// out and another worker claimed it, or it was settled meanwhile). Also clears `published_at`:
/// should the worker die later, the RabbitMQ sweep republishes the job as soon as the lease runs
/// out, even if an earlier sweep published it during a late heartbeat.
pub async fn renew(
    db: &Db,
    ids: &[i64],
    worker: &str,
    lease_until: UnixMillis,
) -> Result<Vec<i64>> {
    let mut held = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(RENEW_BATCH) {
        let placeholders = crate::placeholders(3, chunk.len());
        let sql = format!(
            "UPDATE jobs SET locked_until = $1, published_at = NULL \
             WHERE locked_by = $2 AND status = 'running' AND id IN ({placeholders}) RETURNING id"
        );
        let mut q = sqlx::query_as::<_, (i64,)>(&sql)
            .bind(lease_until)
            .bind(worker);
        for id in chunk {
            q = q.bind(*id);
        }
        held.extend(q.fetch_all(db.pool()).await?.into_iter().map(|(id,)| id));
    }
    Ok(held)
}

/// A running job whose lease has run out: its worker stopped renewing it (died, hung or lost the
/// database), and the next claim will take it over.
#[derive(Debug, Clone, FromRow)]
pub struct Stale {
    pub id: i64,
    pub queue: String,
    pub kind: String,
    pub attempts: i64,
    pub locked_by: Option<String>,
    pub locked_until: i64,
}

/// Running jobs whose lease expired before `now`, longest expired first (the admin view).
pub async fn stale(db: &Db, now: UnixMillis, limit: i64) -> Result<Vec<Stale>> {
    Ok(sqlx::query_as(
        "SELECT id, queue, kind, attempts, locked_by, locked_until FROM jobs \
         WHERE status = 'running' AND locked_until < $1 ORDER BY locked_until LIMIT $2",
    )
    .bind(now)
    .bind(limit)
    .fetch_all(db.pool())
    .await?)
}

/// Gives leased jobs back (graceful shutdown): they run again at once, and the attempt they used is
/// returned too, since they never ran to an outcome.
pub async fn release(db: &Db, ids: &[i64], worker: &str, now: UnixMillis) -> Result<u64> {
    let mut n = 0;
    for id in ids {
        n += sqlx::query(
            "UPDATE jobs SET status = 'queued', run_at = $1, attempts = attempts - 1, \
             locked_until = NULL, locked_by = NULL, published_at = NULL, updated_at = $1 \
             WHERE id = $2 AND locked_by = $3 AND status = 'running'",
        )
        .bind(now)
        .bind(*id)
        .bind(worker)
        .execute(db.pool())
        .await?
        .rows_affected();
    }
    Ok(n)
}

pub async fn get(db: &Db, id: i64) -> Result<Option<JobRow>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM jobs WHERE id = $1"))
            .bind(id)
            .fetch_optional(db.pool())
            .await?,
    )
}

/// Counts per queue and status, for the admin view.
pub async fn counts(db: &Db) -> Result<Vec<(String, String, i64)>> {
    Ok(sqlx::query_as(
        "SELECT queue, status, COUNT(*) FROM jobs GROUP BY queue, status ORDER BY queue, status",
    )
    .fetch_all(db.pool())
    .await?)
}

/// Dead jobs, newest first.
pub async fn dead(db: &Db, limit: i64) -> Result<Vec<JobRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM jobs WHERE status = 'dead' ORDER BY updated_at DESC, id DESC LIMIT $1"
    ))
    .bind(limit)
    .fetch_all(db.pool())
    .await?)
}

/// Puts a dead job back in its queue with a fresh set of attempts.
pub async fn requeue_dead(db: &Db, id: i64, now: UnixMillis) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE jobs SET status = 'queued', attempts = 0, run_at = $1, updated_at = $1, \
         finished_at = NULL, locked_by = NULL, published_at = NULL WHERE id = $2 AND status = 'dead'",
    )
    .bind(now)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn discard_dead(db: &Db, id: i64) -> Result<bool> {
    let r = sqlx::query("DELETE FROM jobs WHERE id = $1 AND status = 'dead'")
        .bind(id)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Deletes finished jobs older than `before`.
pub async fn prune_done(db: &Db, before: UnixMillis) -> Result<u64> {
    let r = sqlx::query("DELETE FROM jobs WHERE status = 'done' AND finished_at < $1")
        .bind(before)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}

/// Records that occurrence `at` of schedule `name` fired, unless it (or a later one) already did.
/// True for exactly one caller per occurrence, however many schedulers race.
pub async fn claim_occurrence(
    conn: &mut AnyConnection,
    name: &str,
    at: UnixMillis,
) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO schedule_runs (name, last_occurrence) VALUES ($1, $2) \
         ON CONFLICT (name) DO UPDATE SET last_occurrence = excluded.last_occurrence \
         WHERE schedule_runs.last_occurrence < excluded.last_occurrence",
    )
    .bind(name)
    .bind(at)
    .execute(conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

pub async fn last_occurrence(db: &Db, name: &str) -> Result<Option<UnixMillis>> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT last_occurrence FROM schedule_runs WHERE name = $1")
            .bind(name)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.map(|(t,)| t))
}

/// Jobs not yet finished (queued or running), for benchmarks and health views.
pub async fn unfinished(db: &Db) -> Result<i64> {
    let (n,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE status IN ('queued', 'running')")
            .fetch_one(db.pool())
            .await?;
    Ok(n)
}

/// Enqueue-to-finish latency of finished jobs in milliseconds, sorted (benchmarks).
pub async fn latencies(db: &Db) -> Result<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT finished_at - created_at FROM jobs WHERE status = 'done' ORDER BY 1",
    )
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|(v,)| v).collect())
}
