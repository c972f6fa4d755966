//! The job system: delivery, retries, dead letters, crash recovery with a real process kill,
//! graceful shutdown, the scheduler, and the admin API. On the database queue (SQLite or
//! PostgreSQL), and through RabbitMQ when `AMQP_URL` is set (see also tests/amqp.rs).

mod common;

use common::{eventually, Options, TestApp, PASSWORD};
use pulseboard_domain::{Email, Role, Timestamp};
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

fn noop(key: &str) -> Noop {
    Noop {
        key: Some(key.into()),
        ..Default::default()
    }
}

#[tokio::test]
async fn a_job_is_handled_once() {
    let app = TestApp::spawn_with_worker().await;
    let id = app.app.queue.enqueue(&noop("once")).await.unwrap().unwrap();
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
        .app
        .queue
        .enqueue(&Noop {
            fail_attempts: 2,
            ..noop("flaky")
        })
        .await
        .unwrap()
        .unwrap();
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
    let app = TestApp::spawn_with(
        Options {
            worker: true,
            scheduler: false,
        },
        |c| c.jobs.max_attempts = 3,
    )
    .await;
    let id = app
        .app
        .queue
        .enqueue(&Noop {
            fail_attempts: 99,
            ..noop("doomed")
        })
        .await
        .unwrap()
        .unwrap();
    let j = wait_status(&app, id, "dead", 15).await;
    assert_eq!(j.attempts, 3);
    assert!(j.last_error.unwrap().contains("attempt 3"));
    let fatal = app
        .app
        .queue
        .enqueue(&Noop {
            fatal: true,
            ..noop("fatal")
        })
        .await
        .unwrap()
        .unwrap();
    let j = wait_status(&app, fatal, "dead", 10).await;
    assert_eq!(j.attempts, 1, "fatal errors are not retried");
    app.stop().await;
}

#[tokio::test]
async fn a_job_over_its_timeout_is_retried_as_failed() {
    let app = TestApp::spawn_with(
        Options {
            worker: true,
            scheduler: false,
        },
        |c| {
            c.jobs.timeout_secs = 1;
            c.jobs.max_attempts = 1;
        },
    )
    .await;
    let id = app
        .app
        .queue
        .enqueue(&Noop {
            sleep_ms: 3_000,
            ..noop("slow")
        })
        .await
        .unwrap()
        .unwrap();
    let j = wait_status(&app, id, "dead", 10).await;
    assert!(j.last_error.unwrap().contains("timed out"));
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
        .fetch_all(app.app.db.pool())
        .await
        .unwrap();
    assert_eq!(keys, vec![("noop:committed".to_owned(),)]);
    app.stop().await;
}

#[tokio::test]
async fn a_worker_killed_mid_job_leaves_it_to_another_worker() {
    let app = TestApp::spawn_with(
        Options {
            worker: false,
            scheduler: false,
        },
        |c| {
            c.jobs.timeout_secs = 2;
            c.jobs.lease_secs = 3;
        },
    )
    .await;
    let id = app
        .app
        .queue
        .enqueue(&Noop {
            sleep_ms: 1_500,
            ..noop("crash")
        })
        .await
        .unwrap()
        .unwrap();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pulseboard"))
        .args(["worker", "--queues", "maintenance"])
        .envs(app.child_env())
        .env("PULSEBOARD_JOBS__POLL_INTERVAL_MS", "50")
        .env("PULSEBOARD_JOBS__TIMEOUT_SECS", "2")
        .env("PULSEBOARD_JOBS__LEASE_SECS", "3")
        .env("PULSEBOARD_LOGGING__LEVEL", "warn")
        .spawn()
        .unwrap();
    wait_status(&app, id, "running", 30).await;
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
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
    let j = wait_status(&app, id, "done", 15).await;
    assert_eq!(j.attempts, 2, "picked up again after the lease expired");
    tx.send(true).unwrap();
    handle.await.unwrap();
    app.stop().await;
}

#[tokio::test]
async fn graceful_shutdown_returns_unfinished_jobs_to_the_queue() {
    let app = TestApp::spawn_with(
        Options {
            worker: false,
            scheduler: false,
        },
        |c| c.jobs.shutdown_grace_secs = 1,
    )
    .await;
    let slow = app
        .app
        .queue
        .enqueue(&Noop {
            sleep_ms: 10_000,
            ..noop("long")
        })
        .await
        .unwrap()
        .unwrap();
    let quick = app
        .app
        .queue
        .enqueue(&Noop {
            sleep_ms: 300,
            ..noop("short")
        })
        .await
        .unwrap()
        .unwrap();
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
    let n: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM jobs WHERE idempotency_key LIKE 'schedule:test-tick:%'",
    )
    .fetch_one(app.app.db.pool())
    .await
    .unwrap();
    assert_eq!(n.0, 1);
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
    let n: (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE idempotency_key LIKE 'schedule:hourly:%'")
            .fetch_one(app.app.db.pool())
            .await
            .unwrap();
    assert_eq!(n.0, 1);
    app.stop().await;
}

#[tokio::test]
async fn admins_see_queues_and_retry_or_discard_dead_jobs() {
    let app = TestApp::spawn_with(
        Options {
            worker: true,
            scheduler: false,
        },
        |c| c.jobs.max_attempts = 1,
    )
    .await;
    let guest = app.new_client();
    assert_eq!(
        guest
            .get(app.url("/admin/queues"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::UNAUTHORIZED
    );
    app.register(&app.client, "boss@example.com").await;
    assert_eq!(
        app.client
            .get(app.url("/admin/queues"))
            .send()
            .await
            .unwrap()
            .status(),
        StatusCode::FORBIDDEN
    );
    let email = Email::parse("boss@example.com").unwrap();
    pulseboard_storage::users::set_role(app.app.db.pool(), &email, Role::Admin, Timestamp::now())
        .await
        .unwrap();
    // The role is carried by the access token: log in again to get an admin one.
    let admin = app.new_client();
    let r = admin
        .post(app.url("/session"))
        .json(&json!({"email": "boss@example.com", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let dead = app
        .app
        .queue
        .enqueue(&Noop {
            fatal: true,
            ..noop("bad")
        })
        .await
        .unwrap()
        .unwrap();
    wait_status(&app, dead, "dead", 10).await;
    let view: Value = admin
        .get(app.url("/admin/queues"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(view["queues"]["maintenance"]["dead"], 1);
    assert_eq!(view["dead"][0]["id"], dead);
    assert!(view["dead"][0]["last_error"]
        .as_str()
        .unwrap()
        .contains("fatal"));

    let r = admin
        .post(app.url(&format!("/admin/jobs/{dead}/retry")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::ACCEPTED);
    let j = wait_status(&app, dead, "dead", 10).await; // fails again: fatal by design
    assert_eq!(j.attempts, 1, "a retried job starts with fresh attempts");
    let r = admin
        .delete(app.url(&format!("/admin/jobs/{dead}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NO_CONTENT);
    assert!(jobs::get(&app.app.db, dead).await.unwrap().is_none());
    let r = admin
        .delete(app.url(&format!("/admin/jobs/{dead}")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    app.stop().await;
}
