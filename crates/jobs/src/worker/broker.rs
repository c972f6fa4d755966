//! The RabbitMQ source of jobs: deliveries are claimed in batches (the table stays the record of
//! each job), and the connection is opened again when the broker goes away.

use super::lease::Held;
use super::Pool;
use crate::amqp::{self, AmqpOptions};
use futures_util::FutureExt;
use lapin::options::{BasicAckOptions, BasicNackOptions, BasicRejectOptions};
use lapin::Acker;
use pulseboard_domain::Timestamp;
use pulseboard_storage::jobs;
use std::collections::HashMap;
use tokio::sync::watch;

/// Most messages claimed in one statement.
const CLAIM_BATCH: usize = 512;

/// RabbitMQ: take deliveries as they come, claim their rows in batches, reconnect when the broker
/// goes away. Returns the open consumer at shutdown.
pub(super) async fn consume_broker(
    pool: &mut Pool,
    amqp: &AmqpOptions,
    shutdown: &mut watch::Receiver<bool>,
) -> Option<amqp::Consumer> {
    let mut failures = 0u32;
    while !*shutdown.borrow() {
        let mut consumer = match amqp::consume(
            amqp,
            &pool.opts.queues,
            &pool.id,
            pool.opts.concurrency.min(u16::MAX as usize) as u16,
        )
        .await
        {
            Ok(c) => {
                if failures > 0 {
                    tracing::info!(worker = %pool.id, "worker connected to RabbitMQ again");
                }
                c
            }
            Err(e) => {
                failures += 1;
                if failures == 1 {
                    tracing::warn!(worker = %pool.id, error = %e, "cannot consume from RabbitMQ; retrying");
                }
                let wait = amqp::reconnect_delay(failures);
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    _ = shutdown.changed() => {}
                }
                continue;
            }
        };
        loop {
            pool.reap();
            let first = tokio::select! {
                d = consumer.next() => d,
                _ = shutdown.changed() => return Some(consumer),
            };
            let mut batch = match first {
                Some(Ok(d)) => vec![d],
                Some(Err(e)) => {
                    tracing::warn!(worker = %pool.id, error = %e, "RabbitMQ connection lost; reconnecting");
                    break;
                }
                None => {
                    tracing::warn!(worker = %pool.id, "RabbitMQ ended the consumer; reconnecting");
                    break;
                }
            };
            while batch.len() < CLAIM_BATCH {
                match consumer.next().now_or_never() {
                    Some(Some(Ok(d))) => batch.push(d),
                    _ => break,
                }
            }
            claim_deliveries(pool, batch, shutdown).await;
        }
        // In-flight jobs of the old connection finish and record their outcome; their acks
        // fail, and RabbitMQ's redelivery finds the jobs settled and is dropped.
        let _ = consumer.connection.close(200, "reconnecting".into()).await;
        failures = 1;
    }
    None
}

async fn claim_deliveries(
    pool: &mut Pool,
    batch: Vec<lapin::message::Delivery>,
    shutdown: &mut watch::Receiver<bool>,
) {
    let mut acks: HashMap<i64, Acker> = HashMap::with_capacity(batch.len());
    for delivery in batch {
        match serde_json::from_slice::<amqp::Message>(&delivery.data) {
            Ok(m) => {
                if let Some(extra) = acks.insert(m.id, delivery.acker) {
                    let _ = extra.ack(BasicAckOptions::default()).await;
                }
            }
            Err(e) => {
                tracing::error!(worker = %pool.id, error = %e, "unreadable message moved to the dead-letter queue");
                let _ = delivery
                    .acker
                    .reject(BasicRejectOptions { requeue: false })
                    .await;
            }
        }
    }
    let ids: Vec<i64> = acks.keys().copied().collect();
    let now = Timestamp::now();
    let lease_until = now + pool.opts.lease.as_millis() as i64;
    let claimed = match jobs::claim_ids(&pool.ctx.db, &ids, &pool.id, now, lease_until).await {
        Ok(c) => c,
        Err(e) => {
            tracing::warn!(worker = %pool.id, error = %e, "claiming jobs failed; handing the messages back");
            tokio::time::sleep(pool.opts.poll_interval * 4).await;
            for (_, acker) in acks {
                let _ = acker
                    .nack(BasicNackOptions {
                        requeue: true,
                        multiple: false,
                    })
                    .await;
            }
            return;
        }
    };
    let mut runnable = Vec::with_capacity(claimed.len());
    for job in claimed {
        let ack = acks.remove(&job.id);
        runnable.push((job, ack));
    }
    // What is left was stale (done, not due, or held by a live worker): drop it.
    for (_, acker) in acks {
        let _ = acker.ack(BasicAckOptions::default()).await;
    }
    // Marked in flight at once: if shutdown comes while they wait for a slot, they are released.
    pool.in_flight
        .lock()
        .unwrap()
        .extend(runnable.iter().map(|(j, _)| (j.id, Held::Waiting)));
    for (job, ack) in runnable {
        let Some(permit) = pool.slot(shutdown).await else {
            return;
        };
        pool.spawn(job, ack, permit);
    }
}
