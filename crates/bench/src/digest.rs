//! `digest-100k`: the nightly digest for 100,000 users with 1,000,000 tasks (issue #5).
//!
//! Users and tasks are seeded straight into the database in large transactions. Each user has 10
//! tasks; 9 users in 10 have 7 undone ones and 3 done yesterday (a digest with both parts), the
//! tenth has all 10 done long ago (nothing to say: no mail). The harness then enqueues one
//! `DigestSweep`, as the scheduler does after midnight UTC, and times the server's one worker
//! until every digest job is finished and the mails are in the file outbox. Peak RSS is the
//! server's `VmHWM`.

use crate::server::Server;
use crate::Sample;
use anyhow::Result;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

const TASKS_PER_USER: usize = 10;
/// A digest still running after this long is stopped and reported as far as it got.
const LIMIT: Duration = Duration::from_secs(600);
const DAY_MS: i64 = 86_400_000;

/// What one run measured.
pub struct Digest {
    pub sample: Sample,
    pub notes: Vec<String>,
}

/// No digest sweep fired by the scheduler on its own: the harness fires the one it measures.
pub fn server_env() -> Vec<(&'static str, &'static str)> {
    vec![("PULSEBOARD_SCHEDULES__DIGEST__CRON", "0 0 0 1 1 *")]
}

pub async fn run(server: &Server, users: usize) -> Result<Digest> {
    let db = server.connect_db().await?;
    let now = pulseboard_domain::Timestamp::now();
    let yesterday = now - now.rem_euclid(DAY_MS) - DAY_MS;
    let long_ago = yesterday - 30 * DAY_MS;

    // Seed: literal multi-row INSERTs of 1,000 rows, 10,000 users (100,000 tasks) per transaction.
    let seeded = Instant::now();
    let (first_id,): (i64,) = sqlx::query_as("SELECT COALESCE(MAX(id), 0) FROM users")
        .fetch_one(&mut *db.acquire().await?)
        .await?;
    for block in (0..users).collect::<Vec<_>>().chunks(10_000) {
        let mut tx = db.begin().await?;
        for chunk in block.chunks(1_000) {
            let mut sql = String::from(
                "INSERT INTO users (email, password_hash, created_at, updated_at) VALUES ",
            );
            for (k, i) in chunk.iter().enumerate() {
                if k > 0 {
                    sql.push(',');
                }
                write!(sql, "('user{i}@bench.example', '-', {now}, {now})")?;
            }
            sqlx::query(&sql).execute(&mut *tx).await?;
        }
        for chunk in block.chunks(100) {
            let mut sql = String::from(
                "INSERT INTO tasks (user_id, title, description, done, done_at, position, \
                 created_at, updated_at) VALUES ",
            );
            for (k, i) in chunk.iter().enumerate() {
                // Ids follow insertion order in a fresh database.
                let user_id = first_id + 1 + *i as i64;
                for t in 0..TASKS_PER_USER {
                    if k > 0 || t > 0 {
                        sql.push(',');
                    }
                    let (done, done_at) = if i % 10 == 9 {
                        ("TRUE", (long_ago + t as i64).to_string())
                    } else if t >= 7 {
                        (
                            "TRUE",
                            (yesterday + ((*i as i64 * 7919 + t as i64 * 104_729) % DAY_MS))
                                .to_string(),
                        )
                    } else {
                        ("FALSE", "NULL".to_owned())
                    };
                    write!(
                        sql,
                        "({user_id}, 'Task {t} of user {i}', '', {done}, {done_at}, {t}, {now}, {now})"
                    )?;
                }
            }
            sqlx::query(&sql).execute(&mut *tx).await?;
        }
        tx.commit().await?;
    }
    let (tasks,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM tasks")
        .fetch_one(&mut *db.acquire().await?)
        .await?;
    eprintln!(
        "  seeded {users} users and {tasks} tasks in {:.1} s",
        seeded.elapsed().as_secs_f64()
    );

    // The digest: what the scheduler enqueues after midnight.
    let cpu_before = server.cpu_seconds()?;
    let started = Instant::now();
    let queue = pulseboard_jobs::Queue::new(
        db.clone(),
        pulseboard_jobs::QueueOptions { max_attempts: 3 },
    );
    queue
        .enqueue(&pulseboard_jobs::handlers::DigestSweep {})
        .await?;
    let mut left = 1;
    while started.elapsed() < LIMIT {
        tokio::time::sleep(Duration::from_millis(250)).await;
        left = pulseboard_storage::jobs::unfinished(&db).await?;
        if left == 0 {
            break;
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let cpu = server.cpu_seconds()? - cpu_before;
    let (sent,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM mail_log")
        .fetch_one(&mut *db.acquire().await?)
        .await?;
    let (dead,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE status = 'dead'")
        .fetch_one(&mut *db.acquire().await?)
        .await?;
    db.close().await;
    let outbox = std::fs::read_dir(server.data_dir().join("outbox"))
        .map(|d| d.count())
        .unwrap_or(0);
    let expected = users - users / 10;
    let mut notes = vec![format!(
        "digest for {users} users / {tasks} tasks: {} {secs:.1} s, {sent} mails recorded \
         ({outbox} .eml files in the outbox; {expected} expected), {dead} dead jobs, \
         server CPU {cpu:.1} s",
        if left == 0 {
            "finished in"
        } else {
            "NOT finished, stopped after"
        },
    )];
    if left > 0 {
        notes.push(format!("{left} jobs were still unfinished"));
    }
    if dead > 0 || (left == 0 && sent as usize != expected) {
        notes.push("the digest did not deliver exactly the expected mails".to_owned());
    }
    Ok(Digest {
        sample: Sample {
            per_sec: sent as f64 / secs,
            p50_ms: f64::NAN,
            p99_ms: f64::NAN,
        },
        notes,
    })
}
