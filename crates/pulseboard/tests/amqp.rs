//! The RabbitMQ backend against the real broker on 127.0.0.1:5672 (or AMQP_URL /
//! PULSEBOARD_TEST_AMQP_URL): jobs really travel through it, a broker outage loses nothing, two
//! relays publish each job once, and dead jobs reach the dead-letter queue. Each test uses queues
//! under a prefix of its own, deleted afterwards. The rest of the job suite (tests/jobs.rs) runs
//! on RabbitMQ too when AMQP_URL is set.

mod common;

use common::{amqp_test_url, eventually, Options, TestApp};
use common::{
    proxy::{target_of, Proxy},
    Fetch,
};
use pulseboard_jobs::amqp;
use pulseboard_jobs::handlers::Noop;
use pulseboard_storage::jobs;
use std::time::Duration;
use tokio::sync::watch;

fn api_only() -> Options {
    Options {
        worker: false,
        scheduler: false,
    }
}

fn noop(key: String) -> Noop {
    Noop {
        key: Some(key),
        ..Default::default()
    }
}

async fn enqueue_many(app: &TestApp, prefix: &str, n: usize) -> Vec<i64> {
    let mut ids = Vec::with_capacity(n);
    let mut tx = app.app.db.begin().await.unwrap();
    for i in 0..n {
        let id = app
            .app
            .queue
            .enqueue_in(&mut tx, &noop(format!("{prefix}-{i}")))
            .await
            .unwrap()
            .unwrap();
        ids.push(id);
    }
    tx.commit().await.unwrap();
    app.app.queue.wake();
    ids
}

async fn count_status(app: &TestApp, status: &str) -> i64 {
    let (n,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM jobs WHERE status = $1")
        .bind(status)
        .fetch_one(&mut *app.sql().await)
        .await
        .unwrap();
    n
}

async fn depth(app: &TestApp, queue: &str) -> u32 {
    let opts = app.amqp.as_ref().expect("on RabbitMQ").0.clone();
    let name = opts.queue_name(queue);
    amqp::depths(&opts, pulseboard_jobs::ALL_QUEUES)
        .await
        .expect("broker reachable")
        .into_iter()
        .find(|(q, _)| *q == name)
        .map(|(_, n)| n)
        .unwrap_or(0)
}

#[tokio::test]
async fn jobs_wait_in_rabbitmq_until_a_worker_takes_them_once() {
    let url = amqp_test_url();
    let app = TestApp::spawn_with(api_only(), |c| c.jobs.amqp_url = url).await;
    let ids = enqueue_many(&app, "through", 200).await;
    // No worker yet: the relay has moved every job into the broker's durable queue.
    eventually(20, || async {
        (depth(&app, "maintenance").await == 200).then_some(())
    })
    .await;
    assert_eq!(count_status(&app, "queued").await, 200);

    let (tx, rx) = watch::channel(false);
    let worker = app.app.worker(None, None).unwrap();
    let handle = tokio::spawn(worker.run(rx));
    eventually(30, || async {
        (count_status(&app, "done").await == 200).then_some(())
    })
    .await;
    for id in [ids[0], ids[99], ids[199]] {
        let j = jobs::get(&app.app.db, id).await.unwrap().unwrap();
        assert_eq!((j.status.as_str(), j.attempts), ("done", 1), "job {id}");
    }
    // Every message was acknowledged, none dead-lettered.
    eventually(10, || async {
        (depth(&app, "maintenance").await == 0).then_some(())
    })
    .await;
    assert_eq!(depth(&app, "dead").await, 0);
    tx.send(true).unwrap();
    handle.await.unwrap();

    // The admin view says where the jobs go and what waits in the broker.
    let admin = app.client.clone();
    app.register(&admin, "root@example.com").await;
    app.promote("root@example.com").await;
    admin
        .post(app.url("/session"))
        .json(&serde_json::json!({"email": "root@example.com", "password": common::PASSWORD}))
        .fetch()
        .await;
    let view: serde_json::Value = admin.get(app.url("/admin/queues")).fetch_json().await;
    assert_eq!(view["backend"], "rabbitmq", "{view}");
    assert_eq!(view["broker"]["connected"], true, "{view}");
    let key = format!("{}.maintenance", app.app.config.jobs.amqp_prefix);
    assert_eq!(view["broker"]["messages"][&key], 0, "{view}");
    app.stop().await;
}

#[tokio::test]
async fn quorum_queues_carry_jobs_too() {
    let url = amqp_test_url();
    let app = TestApp::spawn_with_worker_configured(|c| {
        c.jobs.amqp_url = url;
        c.jobs.amqp_quorum = true;
    })
    .await;
    enqueue_many(&app, "quorum", 20).await;
    eventually(20, || async {
        (count_status(&app, "done").await == 20).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn a_rabbitmq_outage_loses_no_job() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter("debug,sqlx=warn,hyper=info,reqwest=info")
        .with_test_writer()
        .try_init();
    eprintln!("start");
    let real = amqp_test_url();
    let proxy = Proxy::start(&target_of(&real)).await;
    let via_proxy = proxy.url_for(&real);
    let mut app = TestApp::spawn_with_worker_configured(|c| c.jobs.amqp_url = via_proxy).await;
    // Clean up through the broker itself: the proxy runs on this test's (blocked) thread then.
    app.amqp.as_mut().unwrap().0.url = real.clone();
    enqueue_many(&app, "before", 50).await;
    eventually(20, || async {
        (count_status(&app, "done").await == 50).then_some(())
    })
    .await;

    // The broker goes away: commits still succeed, and their jobs wait in the table.
    proxy.cut();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let during = enqueue_many(&app, "during", 100).await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(
        count_status(&app, "done").await,
        50,
        "nothing runs while it is down"
    );
    let waiting: (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM jobs WHERE status = 'queued' AND published_at IS NULL",
    )
    .fetch_one(&mut *app.sql().await)
    .await
    .unwrap();
    assert_eq!(waiting.0, 100, "unpublished, in the outbox");

    // Back: relay and worker reconnect on their own; every job runs, none dies.
    proxy.restore();
    eventually(60, || async {
        (count_status(&app, "done").await == 150).then_some(())
    })
    .await;
    for id in during {
        let j = jobs::get(&app.app.db, id).await.unwrap().unwrap();
        assert_eq!((j.status.as_str(), j.attempts), ("done", 1), "job {id}");
    }
    assert_eq!(count_status(&app, "dead").await, 0);
    app.stop().await;
}

#[tokio::test]
async fn a_queue_deleted_under_the_app_is_declared_again() {
    let url = amqp_test_url();
    let app = TestApp::spawn_with_worker_configured(|c| c.jobs.amqp_url = url).await;
    enqueue_many(&app, "first", 5).await;
    eventually(20, || async {
        (count_status(&app, "done").await == 5).then_some(())
    })
    .await;

    // An operator deletes the queue: published messages would have nowhere to go.
    let opts = app.amqp.as_ref().unwrap().0.clone();
    let conn = amqp::connect(&opts, "test").await.unwrap();
    let channel = conn.create_channel().await.unwrap();
    channel
        .queue_delete(
            opts.queue_name("maintenance").as_str().into(),
            lapin::options::QueueDeleteOptions::default(),
        )
        .await
        .unwrap();
    conn.close(200, "bye".into()).await.unwrap();

    enqueue_many(&app, "second", 5).await;
    eventually(30, || async {
        (count_status(&app, "done").await == 10).then_some(())
    })
    .await;
    app.stop().await;
}

#[tokio::test]
async fn two_relays_publish_each_job_once() {
    let url = amqp_test_url();
    let prefix = format!("pb_test_{}", uuid::Uuid::new_v4().simple());
    let (u, p) = (url.clone(), prefix.clone());
    let first = TestApp::spawn_with(api_only(), move |c| {
        c.jobs.amqp_url = u;
        c.jobs.amqp_prefix = p;
    })
    .await;
    // A second process on the same database and the same queues.
    let mut config = (*first.app.config).clone();
    config.http.port = 0;
    let second_app = pulseboard::App::build(config, false).await.unwrap();
    let second = pulseboard::start(&second_app, true, false, false, None, None)
        .await
        .unwrap();

    let n = 600;
    let mut tx = first.app.db.begin().await.unwrap();
    for i in 0..n {
        first
            .app
            .queue
            .enqueue_in(&mut tx, &noop(format!("relay-{i}")))
            .await
            .unwrap();
    }
    tx.commit().await.unwrap();
    first.app.queue.wake();
    second_app.queue.wake();
    eventually(30, || async {
        (depth(&first, "maintenance").await == n).then_some(())
    })
    .await;
    // Give a duplicate time to show up, then check again.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(depth(&first, "maintenance").await, n);
    second.stop().await.unwrap();
    second_app.db.close().await;
    first.stop().await;
}

#[tokio::test]
async fn a_dead_job_is_dead_lettered_in_the_table_and_the_broker() {
    let url = amqp_test_url();
    let app = TestApp::spawn_with_worker_configured(|c| c.jobs.amqp_url = url).await;
    let id = app
        .enqueue(&Noop {
            fatal: true,
            ..noop("doomed".into())
        })
        .await;
    let j = eventually(20, || async {
        let j = jobs::get(&app.app.db, id).await.unwrap().unwrap();
        (j.status == "dead").then_some(j)
    })
    .await;
    assert!(j.last_error.unwrap().contains("fatal"));
    eventually(10, || async {
        (depth(&app, "dead").await == 1).then_some(())
    })
    .await;

    // Retried from the admin side: it goes through the broker again (and fails again).
    assert!(
        jobs::requeue_dead(&app.app.db, id, pulseboard_domain::Timestamp::now())
            .await
            .unwrap()
    );
    app.app.queue.wake();
    eventually(20, || async {
        (depth(&app, "dead").await == 2).then_some(())
    })
    .await;
    app.stop().await;
}
