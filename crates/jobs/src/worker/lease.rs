//! Leases: which jobs this worker holds, and the heartbeat that renews them all in one
//! statement and stops the ones it finds held by someone else (see the module above).

use crate::Context;
use pulseboard_domain::Timestamp;
use pulseboard_storage::jobs;
use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::oneshot;
use tokio::task::AbortHandle;

/// The jobs this worker holds a lease on, claimed and not yet settled. The heartbeat renews them
/// all, and drops (and aborts) those it finds held no longer.
pub(super) type InFlight = Arc<Mutex<HashMap<i64, Held>>>;

#[derive(Debug)]
pub(super) enum Held {
    /// Claimed, waiting for a slot (a batch of RabbitMQ deliveries).
    Waiting,
    /// Its handler runs: aborting it cancels the attempt.
    Running(AbortHandle),
    /// Its handler has ended; its outcome is being recorded.
    Settling,
}

/// How often a worker renews its leases: a third of the lease, so that one late or failed
/// renewal still leaves time for the next.
pub fn heartbeat_interval(lease: Duration) -> Duration {
    (lease / 3).max(Duration::from_millis(100))
}

/// Renews the leases of every job in flight each [`heartbeat_interval`], in one statement, until
/// `stop`. A job the renewal finds held no longer is dropped from `in_flight` and its handler
/// aborted; if renewals keep failing until the leases may have run out, all of them are, since
/// another worker may be taking the jobs over.
pub(super) async fn heartbeat(
    ctx: Context,
    worker: String,
    lease: Duration,
    in_flight: InFlight,
    mut stop: oneshot::Receiver<()>,
) {
    let every = heartbeat_interval(lease);
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    let mut renewed = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut stop => return,
        }
        let ids: Vec<i64> = in_flight.lock().unwrap().keys().copied().collect();
        let attempt = Instant::now();
        if ids.is_empty() {
            renewed = attempt;
            continue;
        }
        let until = Timestamp::now() + lease.as_millis() as i64;
        match jobs::renew(&ctx.db, &ids, &worker, until).await {
            Ok(held) => {
                renewed = attempt;
                if held.len() < ids.len() {
                    let held: HashSet<i64> = held.into_iter().collect();
                    let lost: Vec<i64> = ids.into_iter().filter(|id| !held.contains(id)).collect();
                    drop_lost(&in_flight, &lost, "held by another worker now");
                }
            }
            Err(e) => {
                tracing::warn!(worker = %worker, error = %e, jobs = ids.len(), "could not renew job leases");
                // Before the next tick the leases may run out and the jobs be claimed elsewhere.
                if attempt.duration_since(renewed) + every >= lease {
                    drop_lost(&in_flight, &ids, "leases not renewed in time");
                }
            }
        }
    }
}

/// Stops the jobs among `ids` that this worker no longer holds (unless they already finished).
fn drop_lost(in_flight: &InFlight, ids: &[i64], why: &str) {
    let mut held = in_flight.lock().unwrap();
    for id in ids {
        match held.get(id) {
            // Finished between the snapshot and the renewal: its outcome is being recorded.
            None | Some(Held::Settling) => {}
            Some(Held::Waiting) => {
                held.remove(id);
                tracing::warn!(job_id = id, why, "job lost its lease before it started");
            }
            Some(Held::Running(handler)) => {
                handler.abort();
                held.remove(id);
                tracing::warn!(job_id = id, why, "job lost its lease; cancelling it");
            }
        }
    }
}
