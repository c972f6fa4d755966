//! The RabbitMQ backend.
//!
//! The jobs table stays the record of every job (payload, attempts, errors, the admin view) and is
//! also the outbox: enqueueing is still an INSERT in the caller's transaction, so a job exists only
//! if its cause commits, whatever the broker is doing. A relay ([`run_relay`], one per process)
//! hands due jobs to RabbitMQ — persistent messages on durable queues, publisher confirms per
//! batch — and marks them `published_at`. Workers consume with manual acks and a prefetch limit,
//! claim the row named by each message, run it, record the outcome and only then ack.
//!
//! Failure cases, and why nothing is lost:
//! - broker down at commit time: the row waits unpublished; the relay publishes it on reconnect;
//! - relay dies between marking and publishing, or a message vanishes: the sweep republishes jobs
//!   published long ago (`jobs.amqp_republish_secs`) and still queued;
//! - worker dies mid-job: its heartbeat stops, its lease (`jobs.lease_secs`) expires and the next
//!   sweep republishes the job (a live worker renews its leases, so its jobs are never republished;
//!   each renewal clears `published_at`, so a job published during a late heartbeat is still
//!   republished at once when its worker later dies);
//! - duplicate messages: claiming a row is atomic, so a stale message is acked and dropped.
//!
//! Retries are not broker-delayed: a failed attempt goes back to the table with its `run_at`, and
//! the relay publishes it again when it is due. A dead-lettered job is rejected without requeue,
//! so RabbitMQ moves its message to `<prefix>.dead` (bounded), while the table keeps its error.

use futures_util::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicPublishOptions, BasicQosOptions, ConfirmSelectOptions,
    ExchangeDeclareOptions, ExchangeDeleteOptions, QueueBindOptions, QueueDeclareOptions,
    QueueDeleteOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::Confirmation;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use pulseboard_domain::Timestamp;
use pulseboard_storage::{jobs, Db};
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{watch, Notify};

/// Longest message list a dead-letter queue keeps; older ones are dropped first.
const DEAD_LETTER_MAX: i64 = 100_000;
/// Jobs the relay marks and publishes per round trip.
const RELAY_BATCH: i64 = 500;

#[derive(Debug, Clone)]
pub struct AmqpOptions {
    pub url: String,
    pub prefix: String,
    pub prefetch: u16,
    pub quorum: bool,
    pub republish_after: Duration,
    /// How often an idle relay looks for due jobs (retries that came due, other processes' jobs).
    pub poll_interval: Duration,
}

impl AmqpOptions {
    /// None when the queue lives in the database (`jobs.amqp_url` empty).
    pub fn from_config(j: &pulseboard_config::Jobs) -> Option<Self> {
        (!j.amqp_url.is_empty()).then(|| Self {
            url: j.amqp_url.clone(),
            prefix: j.amqp_prefix.clone(),
            prefetch: j.amqp_prefetch,
            quorum: j.amqp_quorum,
            republish_after: Duration::from_secs(j.amqp_republish_secs),
            poll_interval: Duration::from_millis(j.poll_interval_ms),
        })
    }

    pub fn queue_name(&self, queue: &str) -> String {
        format!("{}.{queue}", self.prefix)
    }

    fn dead_queue(&self) -> String {
        format!("{}.dead", self.prefix)
    }

    fn dead_exchange(&self) -> String {
        format!("{}.dlx", self.prefix)
    }

    /// How often the relay sweeps for lost messages and expired leases.
    fn sweep_interval(&self) -> Duration {
        (self.poll_interval * 20).max(Duration::from_secs(1))
    }
}

/// The message body: the job's id (the payload stays in the table) and its kind, for humans
/// looking at the queue.
#[derive(Debug, Serialize, Deserialize)]
pub struct Message {
    pub id: i64,
    pub kind: String,
}

/// Connects; the URL's password never reaches the logs.
pub async fn connect(opts: &AmqpOptions, role: &str) -> lapin::Result<Connection> {
    Connection::connect(
        &opts.url,
        ConnectionProperties::default()
            .with_connection_name(format!("pulseboard {role} (pid {})", std::process::id()).into()),
    )
    .await
}

/// Declares the exchange and queues (idempotent: same arguments every time).
pub async fn declare(channel: &Channel, opts: &AmqpOptions, queues: &[&str]) -> lapin::Result<()> {
    let durable = QueueDeclareOptions {
        durable: true,
        ..Default::default()
    };
    channel
        .exchange_declare(
            opts.dead_exchange().as_str().into(),
            ExchangeKind::Direct,
            ExchangeDeclareOptions {
                durable: true,
                ..Default::default()
            },
            FieldTable::default(),
        )
        .await?;
    let mut dead_args = FieldTable::default();
    dead_args.insert(
        "x-max-length".into(),
        AMQPValue::LongLongInt(DEAD_LETTER_MAX),
    );
    channel
        .queue_declare(opts.dead_queue().as_str().into(), durable, dead_args)
        .await?;
    channel
        .queue_bind(
            opts.dead_queue().as_str().into(),
            opts.dead_exchange().as_str().into(),
            opts.dead_queue().as_str().into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    for queue in queues {
        let mut args = FieldTable::default();
        args.insert(
            "x-dead-letter-exchange".into(),
            AMQPValue::LongString(opts.dead_exchange().into()),
        );
        args.insert(
            "x-dead-letter-routing-key".into(),
            AMQPValue::LongString(opts.dead_queue().into()),
        );
        if opts.quorum {
            args.insert(
                "x-queue-type".into(),
                AMQPValue::LongString("quorum".into()),
            );
        }
        channel
            .queue_declare(opts.queue_name(queue).as_str().into(), durable, args)
            .await?;
    }
    Ok(())
}

/// Messages waiting per queue (the admin view), read by passive declares.
pub async fn depths(opts: &AmqpOptions, queues: &[&str]) -> lapin::Result<Vec<(String, u32)>> {
    let conn = connect(opts, "admin").await?;
    let channel = conn.create_channel().await?;
    let mut out = Vec::new();
    for queue in queues
        .iter()
        .map(|q| opts.queue_name(q))
        .chain([opts.dead_queue()])
    {
        let q = channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await;
        match q {
            Ok(q) => out.push((queue, q.message_count())),
            // Not declared yet (no process has connected): nothing waits there.
            Err(_) => break,
        }
    }
    let _ = conn.close(200, "bye".into()).await;
    Ok(out)
}

/// Deletes everything [`declare`] made (tests and benchmarks use a prefix of their own).
pub async fn delete_topology(opts: &AmqpOptions, queues: &[&str]) -> lapin::Result<()> {
    let conn = connect(opts, "cleanup").await?;
    let channel = conn.create_channel().await?;
    for queue in queues
        .iter()
        .map(|q| opts.queue_name(q))
        .chain([opts.dead_queue()])
    {
        channel
            .queue_delete(queue.as_str().into(), QueueDeleteOptions::default())
            .await?;
    }
    channel
        .exchange_delete(
            opts.dead_exchange().as_str().into(),
            ExchangeDeleteOptions::default(),
        )
        .await?;
    let _ = conn.close(200, "bye".into()).await;
    Ok(())
}

/// How long to wait before reconnecting after `failures` failed attempts in a row: 0.4 s, doubling,
/// at most 5 s.
pub fn reconnect_delay(failures: u32) -> Duration {
    Duration::from_millis(200 * 2u64.pow(failures.min(5))).min(Duration::from_secs(5))
}

/// Publishes due jobs from the table to RabbitMQ until `shutdown`; reconnects after any broker
/// error with capped back-off. Safe to run in many processes at once.
pub async fn run_relay(
    db: Db,
    opts: AmqpOptions,
    wake: Arc<Notify>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut failures = 0u32;
    while !*shutdown.borrow() {
        match relay_session(&db, &opts, &wake, &mut shutdown, &mut failures).await {
            Ok(()) => break,
            Err(e) => {
                failures += 1;
                let wait = reconnect_delay(failures);
                if failures == 1 {
                    tracing::warn!(error = %e, "RabbitMQ unavailable to the outbox relay; jobs wait in the database until it is back");
                } else {
                    tracing::debug!(error = %e, attempt = failures, "outbox relay reconnecting");
                }
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}

async fn relay_session(
    db: &Db,
    opts: &AmqpOptions,
    wake: &Notify,
    shutdown: &mut watch::Receiver<bool>,
    failures: &mut u32,
) -> anyhow::Result<()> {
    let conn = connect(opts, "relay").await?;
    let channel = conn.create_channel().await?;
    channel
        .confirm_select(ConfirmSelectOptions::default())
        .await?;
    declare(&channel, opts, crate::ALL_QUEUES).await?;
    if *failures > 0 {
        tracing::info!("outbox relay connected to RabbitMQ again");
    }
    *failures = 0;
    // Sweep at once: a restart is exactly when lost messages and dead workers are likely.
    let mut next_sweep = std::time::Instant::now();
    loop {
        if *shutdown.borrow() {
            let _ = conn.close(200, "shutdown".into()).await;
            return Ok(());
        }
        let sweep = std::time::Instant::now() >= next_sweep;
        if sweep {
            next_sweep = std::time::Instant::now() + opts.sweep_interval();
        }
        let published = publish_due(db, opts, &channel, sweep).await?;
        if published as i64 == RELAY_BATCH {
            continue;
        }
        if !channel.status().connected() {
            anyhow::bail!("channel closed");
        }
        tokio::select! {
            _ = tokio::time::sleep(opts.poll_interval) => {}
            _ = wake.notified() => {}
            _ = shutdown.changed() => {}
        }
    }
}

/// One relay round: mark a batch, publish it, wait for the broker's confirms; unmark what was
/// not confirmed so that the next round tries again.
async fn publish_due(
    db: &Db,
    opts: &AmqpOptions,
    channel: &Channel,
    sweep: bool,
) -> anyhow::Result<usize> {
    let now = Timestamp::now();
    let stale = sweep.then(|| now - opts.republish_after.as_millis() as i64);
    let batch = jobs::mark_for_publishing(db, now, stale, RELAY_BATCH).await?;
    if batch.is_empty() {
        return Ok(0);
    }
    let result = publish_batch(opts, channel, &batch).await;
    let ids: Vec<i64> = batch.iter().map(|j| j.id).collect();
    match result {
        Ok(nacked) if nacked.is_empty() => {
            tracing::trace!(jobs = ids.len(), "published to RabbitMQ");
            Ok(ids.len())
        }
        Ok(nacked) => {
            tracing::warn!(
                jobs = nacked.len(),
                "RabbitMQ refused some messages; they will be published again"
            );
            jobs::unmark_published(db, &nacked, now).await?;
            Ok(ids.len() - nacked.len())
        }
        Err(e) => {
            // Unconfirmed: maybe published, maybe not. Publishing again is harmless (a duplicate
            // is dropped by the atomic claim); not publishing would strand the job.
            if let Err(db_err) = jobs::unmark_published(db, &ids, now).await {
                tracing::warn!(error = %db_err, "could not unmark unpublished jobs; the sweep will republish them");
            }
            Err(e)
        }
    }
}

/// Publishes every job of the batch, then waits for all confirms. Returns the ids the broker
/// negatively acknowledged.
async fn publish_batch(
    opts: &AmqpOptions,
    channel: &Channel,
    batch: &[jobs::Unpublished],
) -> anyhow::Result<Vec<i64>> {
    let mut confirms = Vec::with_capacity(batch.len());
    for job in batch {
        let body = serde_json::to_vec(&Message {
            id: job.id,
            kind: job.kind.clone(),
        })?;
        let props = BasicProperties::default()
            .with_delivery_mode(2) // persistent
            .with_content_type("application/json".into())
            .with_message_id(job.id.to_string().into())
            .with_type(job.kind.as_str().into());
        let confirm = channel
            .basic_publish(
                "".into(),
                opts.queue_name(&job.queue).as_str().into(),
                // Unroutable (a queue deleted under us) comes back instead of vanishing.
                BasicPublishOptions {
                    mandatory: true,
                    ..Default::default()
                },
                &body,
                props,
            )
            .await?;
        confirms.push((job.id, confirm));
    }
    let mut nacked = Vec::new();
    let mut returned = 0;
    for (id, confirm) in confirms {
        match confirm.await? {
            Confirmation::Ack(None) | Confirmation::NotRequested => {}
            Confirmation::Ack(Some(_)) => {
                returned += 1;
                nacked.push(id);
            }
            Confirmation::Nack(_) => nacked.push(id),
        }
    }
    if returned > 0 {
        // Reconnecting declares the queues again.
        anyhow::bail!("{returned} messages had no queue to go to");
    }
    Ok(nacked)
}

/// A consumer over the worker's queues on one channel, with a prefetch limit per consumer
/// (quorum queues do not support a channel-wide one).
pub struct Consumer {
    pub connection: Connection,
    stream: futures_util::stream::SelectAll<Deliveries>,
}

/// One queue's deliveries; its end (the broker cancelled the consumer, e.g. the queue was deleted)
/// shows as an error, so that the worker reconnects instead of silently consuming one queue less.
type Deliveries =
    futures_util::stream::BoxStream<'static, Result<lapin::message::Delivery, String>>;

/// Queues whose jobs take seconds or more (a batch of checks, an import, a capture): a worker takes
/// one message per free slot from them, so that it never hoards work another worker could do now.
/// Short jobs (mail, maintenance) are prefetched in bulk, which is what makes them fast.
const LONG_JOB_QUEUES: &[&str] = &[
    crate::handlers::MONITOR_QUEUE,
    crate::handlers::IMPORTS_QUEUE,
    crate::handlers::SCREENSHOTS_QUEUE,
];

pub async fn consume(
    opts: &AmqpOptions,
    queues: &[String],
    tag: &str,
    slots: u16,
) -> lapin::Result<Consumer> {
    let connection = connect(opts, "worker").await?;
    let channel = connection.create_channel().await?;
    let all: Vec<&str> = crate::ALL_QUEUES.to_vec();
    declare(&channel, opts, &all).await?;
    let mut consumers: Vec<Deliveries> = Vec::new();
    for queue in queues {
        // basic.qos applies to the consumers started after it on this channel.
        let prefetch = if LONG_JOB_QUEUES.contains(&queue.as_str()) {
            slots.max(1)
        } else {
            opts.prefetch
        };
        channel
            .basic_qos(prefetch, BasicQosOptions { global: false })
            .await?;
        let consumer = channel
            .basic_consume(
                opts.queue_name(queue).as_str().into(),
                format!("{tag}-{queue}").as_str().into(),
                BasicConsumeOptions::default(),
                FieldTable::default(),
            )
            .await?;
        let name = opts.queue_name(queue);
        consumers.push(
            consumer
                .map(|d| d.map_err(|e| e.to_string()))
                .chain(futures_util::stream::once(async move {
                    Err(format!("the broker cancelled the consumer of {name}"))
                }))
                .boxed(),
        );
    }
    Ok(Consumer {
        connection,
        stream: futures_util::stream::select_all(consumers),
    })
}

impl Consumer {
    pub async fn next(&mut self) -> Option<Result<lapin::message::Delivery, String>> {
        self.stream.next().await
    }
}
