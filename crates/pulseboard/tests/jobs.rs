//! The job system: delivery, retries, dead letters, crash recovery with a real process kill,
//! graceful shutdown, the scheduler, and the admin API. On the database queue (SQLite or
//! PostgreSQL), and through RabbitMQ when `AMQP_URL` is set (see also tests/amqp.rs).

mod common;

use common::{eventually, Fetch, TestApp};
use pulseboard_domain::Timestamp;
use pulseboard_jobs::handlers::Noop;
use pulseboard_jobs::scheduler::{Entry, Pending, Scheduler};
use pulseboard_storage::jobs::{self, JobRow};
use reqwest::StatusCode;
use serde_json::{json, Value};
use std::time::Duration;
use tokio::sync::watch;

async fn job(app: &TestApp, id: i64) -> JobRow {
    jobs::get(&app.app.db, id)
        .await
        .unwrap()
        .expect("job exists")
}

async fn wait_status(app: &TestApp, id: i64, status: &str, secs: u64) -> JobRow {
    eventually(secs, || async move {
        let j = job(app, id).await;
        (j.status == status).then_some(j)
    })
    .await
}

/// A no-op job with idempotency key `key`, changed by `set` (how long it sleeps, how it fails).
fn noop_with(key: &str, set: impl FnOnce(&mut Noop)) -> Noop {
    let mut job = noop(key);
    set(&mut job);
    job
}

fn noop(key: &str) -> Noop {
    Noop {
        key: Some(key.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_job_is_handled_once() {
    let app = TestApp::spawn_with_worker().await;
    let id = app.enqueue(&noop("once")).await;
    let j = wait_status(&app, id, "done", 10).await;
    assert_eq!(j.attempts, 1);
    assert!(j.last_error.is_none());
    // Same idempotency key: not enqueued again.
    assert!(app
        .app
        .queue
        .enqueue(&noop("once"))
        .await
        .unwrap()
        .is_none());
    app.stop().await;
}

#[tokio::test]
async fn a_job_failing_twice_is_retried_with_backoff_then_succeeds() {
    let app = TestApp::spawn_with_worker().await;
    let id = app
        .enqueue(&noop_with("flaky", |n| n.fail_attempts = 2))
        .await;
    let j = wait_status(&app, id, "done", 15).await;
    assert_eq!(j.attempts, 3);
    assert!(j.last_error.unwrap().contains("attempt 2"));
    // Back-off: the second retry waited about base * 2 (50 ms * 2, jittered to at least half).
    assert!(
        j.updated_at - j.created_at >= 50 / 2 + 100 / 2,
        "retries were spaced out"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_job_that_always_fails_is_dead_lettered_with_its_error() {
    let app = TestApp::spawn_with_worker_configured(|c| c.jobs.max_attempts = 3).await;
    let id = app
        .enqueue(&noop_with("doomed", |n| n.fail_attempts = 99))
        .await;
    let j = wait_status(&app, id, "dead", 15).await;
    assert_eq!(j.attempts, 3);
    assert!(j.last_error.unwrap().contains("attempt 3"));
    let fatal = app.enqueue(&noop_with("fatal", |n| n.fatal = true)).await;
    let j = wait_status(&app, fatal, "dead", 10).await;
    assert_eq!(j.attempts, 1, "fatal errors are not retried");
    app.stop().await;
}

#[tokio::test]
async fn a_job_over_its_timeout_is_retried_as_failed() {
    let app = TestApp::spawn_with_worker_configured(|c| {
        c.jobs.timeout_secs = 1;
        c.jobs.max_attempts = 1;
    })
    .await;
    let id = app
        .enqueue(&noop_with("slow", |n| n.sleep_ms = 3_000))
        .await;
    let j = wait_status(&app, id, "dead", 10).await;
    assert!(j.last_error.unwrap().contains("timed out"));
    app.stop().await;
}

/// A timed-out attempt is aborted, and the next one starts only after it has ended: they never run
/// at once, and the first does no work after its timeout.
#[tokio::test]
async fn a_timed_out_attempt_is_stopped_before_the_next_one_starts() {
    let app = TestApp::spawn_with_worker_configured(|c| {
        c.jobs.timeout_secs = 1;
        c.jobs.max_attempts = 3;
    })
    .await;
    let trace = Trace::new(&app, "timeout");
    let started = std::time::Instant::now();
    let id = app
        .enqueue(&Noop {
            sleep_ms: 3_000,
            slow_attempts: 1,
            trace_dir: trace.dir(),
            ..noop("timeout")
        })
        .await;
    let j = wait_status(&app, id, "done", 10).await;
    assert_eq!(j.attempts, 2);
    assert!(j.last_error.unwrap().contains("timed out"));
    assert!(trace.has("finished-2"));
    assert!(
        !trace.has("overlap"),
        "attempt 2 started while attempt 1 ran"
    );
    // Past the end of attempt 1's sleep: had it kept running, it would have finished by now.
    tokio::time::sleep(Duration::from_millis(3_500).saturating_sub(started.elapsed())).await;
    assert!(
        !trace.has("finished-1"),
        "attempt 1 kept working after its timeout"
    );
    assert!(!trace.has("running"));
    app.stop().await;
}

#[tokio::test]
async fn a_rolled_back_transaction_enqueues_nothing() {
    let app = TestApp::spawn().await;
    let mut tx = app.app.db.begin().await.unwrap();
    app.app
        .queue
        .enqueue_in(&mut tx, &noop("rolled-back"))
        .await
        .unwrap();
    tx.rollback().await.unwrap();
    let mut tx = app.app.db.begin().await.unwrap();
    app.app
        .queue
        .enqueue_in(&mut tx, &noop("committed"))
        .await
        .unwrap();
    tx.commit().await.unwrap();
    let keys: Vec<(String,)> = sqlx::query_as("SELECT idempotency_key FROM jobs ORDER BY id")
        .fetch_all(&mut *app.sql().await)
        .await
        .unwrap();
    assert_eq!(keys, vec![("noop:committed".to_owned(),)]);
    app.stop().await;
}

/// The lease a job's worker holds on it (`locked_until`), and by whom.
async fn lease(app: &TestApp, id: i64) -> (Option<i64>, Option<String>) {
    sqlx::query_as("SELECT locked_until, locked_by FROM jobs WHERE id = $1")
        .bind(id)
        .fetch_one(&mut *app.sql().await)
        .await
        .unwrap()
}

/// A folder for a [`Noop`]'s traces (see `Noop::trace_dir`), and what it holds.
struct Trace(std::path::PathBuf);

impl Trace {
    fn new(app: &TestApp, name: &str) -> Self {
        let dir = app.data_dir.join(format!("trace-{name}"));
        std::fs::create_dir_all(&dir).unwrap();
        Trace(dir)
    }

    fn dir(&self) -> Option<String> {
        Some(self.0.display().to_string())
    }

    fn has(&self, name: &str) -> bool {
        self.0.join(name).exists()
    }
}

/// A child process, killed if the test fails before it does.
struct Child(std::process::Child);

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// With a short lease: the killed worker's job is taken over within about the lease, although it
/// runs longer than that (its worker renewed the lease while it lived).
#[tokio::test]
async fn a_worker_killed_mid_job_leaves_it_to_another_worker_within_the_lease() {
    const LEASE_SECS: u64 = 2;
    let app = TestApp::spawn_configured(|c| {
        c.jobs.timeout_secs = 30;
        c.jobs.lease_secs = LEASE_SECS;
    })
    .await;
    let id = app
        .enqueue(&Noop {
            sleep_ms: 20_000,
            slow_attempts: 1,
            ..noop("crash")
        })
        .await;
    let mut child = Child(
        std::process::Command::new(env!("CARGO_BIN_EXE_pulseboard"))
            .args(["worker", "--queues", "maintenance"])
            .envs(app.child_env())
            .env("PULSEBOARD_JOBS__POLL_INTERVAL_MS", "50")
            .env("PULSEBOARD_JOBS__TIMEOUT_SECS", "30")
            .env("PULSEBOARD_JOBS__LEASE_SECS", LEASE_SECS.to_string())
            .env("PULSEBOARD_LOGGING__LEVEL", "warn")
            .spawn()
            .unwrap(),
    );
    wait_status(&app, id, "running", 30).await;
    // The child renews its lease while the job runs.
    let (claimed_until, _) = lease(&app, id).await;
    eventually(5, || async {
        (lease(&app, id).await.0 > claimed_until).then_some(())
    })
    .await;
    child.0.kill().unwrap(); // SIGKILL: no chance to clean up
    child.0.wait().unwrap();
    let killed = std::time::Instant::now();
    let j = job(&app, id).await;
    assert_eq!(
        (j.status.as_str(), j.attempts),
        ("running", 1),
        "the dead worker's lease still holds the job"
    );

    let (tx, rx) = watch::channel(false);
    let worker = app
        .app
        .worker(Some(vec!["maintenance".into()]), None)
        .unwrap();
    let handle = tokio::spawn(worker.run(rx));
    eventually(15, || async {
        (job(&app, id).await.attempts == 2).then_some(())
    })
    .await;
    let taken_over = killed.elapsed();
    // The lease, plus a poll (or, on RabbitMQ, the relay's sweep every second) and some slack.
    assert!(
        taken_over < Duration::from_secs(LEASE_SECS + 3),
        "taken over {taken_over:?} after the kill"
    );
    let j = wait_status(&app, id, "done", 15).await;
    assert_eq!(j.attempts, 2, "picked up again after the lease expired");
    tx.send(true).unwrap();
    handle.await.unwrap();
    app.stop().await;
}

/// With a lease shorter than the job, two workers on one database: the heartbeat keeps the job
/// with its worker, so it runs once.
#[tokio::test]
async fn a_job_longer_than_its_lease_runs_once_while_its_worker_lives() {
    let app = TestApp::spawn_with_worker_configured(|c| {
        c.jobs.timeout_secs = 30;
        c.jobs.lease_secs = 2;
    })
    .await;
    let (tx, rx) = watch::channel(false);
    let second = app
        .app
        .worker(Some(vec!["maintenance".into()]), None)
        .unwrap();
    let handle = tokio::spawn(second.run(rx));
    let trace = Trace::new(&app, "long");
    let id = app
        .enqueue(&Noop {
            sleep_ms: 5_000,
            trace_dir: trace.dir(),
            ..noop("long")
        })
        .await;
    let j = wait_status(&app, id, "done", 20).await;
    assert_eq!(j.attempts, 1, "never claimed by the other worker");
    assert!(trace.has("finished-1"));
    assert!(!trace.has("overlap"), "two attempts ran at once");
    tx.send(true).unwrap();
    handle.await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn a_job_taken_from_its_worker_is_cancelled_there() {
    let app = TestApp::spawn_with_worker_configured(|c| c.jobs.lease_secs = 2).await;
    let trace = Trace::new(&app, "taken");
    let id = app
        .enqueue(&Noop {
            sleep_ms: 4_000,
            trace_dir: trace.dir(),
            ..noop("taken")
        })
        .await;
    wait_status(&app, id, "running", 10).await;
    eventually(5, || async { trace.has("running").then_some(()) }).await;
    let started = std::time::Instant::now();
    // As if its lease had run out and another worker had claimed it (for a minute).
    sqlx::query("UPDATE jobs SET locked_by = 'another-worker', locked_until = $1 WHERE id = $2")
        .bind(Timestamp::now() + 60_000)
        .bind(id)
        .execute(&mut *app.sql().await)
        .await
        .unwrap();
    // The next heartbeat (every lease / 3) finds it gone and aborts the attempt.
    eventually(3, || async { (!trace.has("running")).then_some(()) }).await;
    assert!(started.elapsed() < Duration::from_secs(2));
    tokio::time::sleep(Duration::from_millis(4_500).saturating_sub(started.elapsed())).await;
    assert!(!trace.has("finished-1"), "the attempt kept working");
    let j = job(&app, id).await;
    assert_eq!(
        (j.status.as_str(), lease(&app, id).await.1.as_deref()),
        ("running", Some("another-worker")),
        "the worker that lost it recorded nothing"
    );
    app.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_returns_unfinished_jobs_to_the_queue() {
    let app = TestApp::spawn_configured(|c| c.jobs.shutdown_grace_secs = 1).await;
    let slow = app
        .enqueue(&noop_with("long", |n| n.sleep_ms = 10_000))
        .await;
    let quick = app.enqueue(&noop_with("short", |n| n.sleep_ms = 300)).await;
    let (tx, rx) = watch::channel(false);
    let worker = app
        .app
        .worker(Some(vec!["maintenance".into()]), None)
        .unwrap();
    let handle = tokio::spawn(worker.run(rx));
    wait_status(&app, slow, "running", 10).await;
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(10), handle)
        .await
        .expect("stops within the grace period")
        .unwrap();
    let q = job(&app, quick).await;
    assert_eq!(
        q.status, "done",
        "a job that fits in the grace period finishes"
    );
    let s = job(&app, slow).await;
    assert_eq!(
        (s.status.as_str(), s.attempts),
        ("queued", 0),
        "the unfinished job goes back, its attempt returned"
    );
    app.stop().await;
}

fn every_second() -> Entry {
    Entry::new("test-tick", "* * * * * *", "UTC", |_| {
        Pending::of(&Noop::default())
    })
    .unwrap()
}

#[tokio::test]
async fn two_schedulers_fire_an_occurrence_once() {
    let app = TestApp::spawn().await;
    let a = Scheduler::new(app.app.queue.clone(), vec![]);
    let b = Scheduler::new(app.app.queue.clone(), vec![]);
    let (ea, eb) = (every_second(), every_second());
    let since = Timestamp::now() - 3_000;
    let (ra, rb) = tokio::join!(a.fire_if_due(&ea, since), b.fire_if_due(&eb, since));
    let fired = [ra.unwrap(), rb.unwrap()];
    assert_eq!(fired.iter().filter(|f| **f).count(), 1, "{fired:?}");
    let ticks = "SELECT COUNT(*) FROM jobs WHERE idempotency_key LIKE 'schedule:test-tick:%'";
    assert_eq!(app.count(ticks).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn every_configured_schedule_is_registered() {
    let app = TestApp::spawn().await;
    let scheduler = app.app.scheduler().unwrap();
    let mut names = scheduler.names();
    names.sort();
    assert_eq!(names, ["cleanup", "digest", "monitor", "monitor_due"]);
    app.stop().await;
}

#[tokio::test]
async fn after_downtime_a_missed_occurrence_fires_once() {
    let app = TestApp::spawn().await;
    let hourly = Entry::new("hourly", "0 0 * * * *", "UTC", |_| {
        Pending::of(&Noop::default())
    })
    .unwrap();
    let s = Scheduler::new(app.app.queue.clone(), vec![]);
    let ten_hours_ago = Timestamp::now() - 10 * 3_600_000;
    assert!(
        s.fire_if_due(&hourly, ten_hours_ago).await.unwrap(),
        "the latest missed occurrence fires"
    );
    assert!(
        !s.fire_if_due(&hourly, ten_hours_ago).await.unwrap(),
        "and only once"
    );
    let hourly_jobs = "SELECT COUNT(*) FROM jobs WHERE idempotency_key LIKE 'schedule:hourly:%'";
    assert_eq!(app.count(hourly_jobs).await, 1);
    app.stop().await;
}

#[tokio::test]
async fn admins_see_queues_and_retry_or_discard_dead_jobs() {
    let app = TestApp::spawn_with_worker_configured(|c| c.jobs.max_attempts = 1).await;
    let guest = app.new_client();
    assert_eq!(
        guest.get(app.url("/admin/queues")).fetch_status().await,
        StatusCode::UNAUTHORIZED
    );
    app.register(&app.client, "boss@example.com").await;
    assert_eq!(
        app.client
            .get(app.url("/admin/queues"))
            .fetch_status()
            .await,
        StatusCode::FORBIDDEN
    );
    app.promote("boss@example.com").await;
    // The role is carried by the access token: log in again to get an admin one.
    let admin = app.new_client();
    app.login(&admin, "boss@example.com").await;

    let dead = app.enqueue(&noop_with("bad", |n| n.fatal = true)).await;
    wait_status(&app, dead, "dead", 10).await;
    let view: Value = admin.get(app.url("/admin/queues")).fetch_json().await;
    assert_eq!(view["queues"]["maintenance"]["dead"], 1);
    assert_eq!(
        view["stale"],
        json!([]),
        "no running job with an expired lease"
    );
    assert_eq!(view["dead"][0]["id"], dead);
    assert!(view["dead"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("fatal"));

    admin
        .post(app.url(&format!("/admin/jobs/{dead}/retry")))
        .expect_status(StatusCode::ACCEPTED)
        .await;
    let j = wait_status(&app, dead, "dead", 10).await; // fails again: fatal by design
    assert_eq!(j.attempts, 1, "a retried job starts with fresh attempts");
    admin
        .delete(app.url(&format!("/admin/jobs/{dead}")))
        .expect_status(StatusCode::NO_CONTENT)
        .await;
    assert!(jobs::get(&app.app.db, dead).await.unwrap().is_none());
    admin
        .delete(app.url(&format!("/admin/jobs/{dead}")))
        .expect_status(StatusCode::NOT_FOUND)
        .await;
    app.stop().await;
}

/// Found by the fault suite: a dead worker's jobs (expired leases) are claimed before queued
/// ones, so a backlog cannot strand them (ARCHITECTURE.md, "Jobs").
#[tokio::test]
async fn expired_leases_are_claimed_before_a_backlog() {
    let app = TestApp::spawn().await;
    // A queue no worker of the test app consumes: only the claims below touch it.
    let queues = ["claim-order".to_owned()];
    let insert = |key: &'static str, now: i64| {
        let app = &app;
        async move {
            let job = jobs::NewJob {
                queue: "claim-order",
                kind: "noop",
                payload: "{}",
                max_attempts: 3,
                run_at: now,
                idempotency_key: Some(key),
            };
            jobs::insert(&mut *app.sql().await, &job, now)
                .await
                .unwrap()
                .unwrap()
        }
    };
    let t0 = Timestamp::now();
    let stranded = insert("stranded", t0).await;
    let held = jobs::claim(&app.app.db, &queues, "dead-worker", 1, t0, t0 + 1_000)
        .await
        .unwrap();
    assert_eq!(held.iter().map(|j| j.id).collect::<Vec<_>>(), [stranded]);
    for key in ["backlog-1", "backlog-2", "backlog-3"] {
        insert(key, t0).await;
    }
    // The dead worker's lease has run out; a live worker with one free slot takes its job first.
    let later = t0 + 2_000;
    let next = jobs::claim(
        &app.app.db,
        &queues,
        "live-worker",
        1,
        later,
        later + 30_000,
    )
    .await
    .unwrap();
    assert_eq!(next.iter().map(|j| j.id).collect::<Vec<_>>(), [stranded]);
    app.stop().await;
}
