//! Checks of new resources soon after they are added, without a job per resource.
//!
//! A new resource is due at once (`next_check_at` = its creation). The frequent `monitor_due`
//! schedule would find it within its period (30 s); a [`DueNudge`] asks for that sweep now. Many
//! nudges within [`DueNudge::GATHER`] become one [`MonitorDue`] job, so a thousand resources added
//! in a second cost one sweep, which batches them like any other due resources.

use crate::handlers::MonitorDue;
use crate::Queue;
use pulseboard_domain::Timestamp;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::Notify;

#[derive(Clone)]
pub struct DueNudge {
    notify: Arc<Notify>,
}

impl DueNudge {
    /// How long a nudge waits for others before the sweep is enqueued.
    pub const GATHER: Duration = Duration::from_millis(250);

    /// Starts the task that turns nudges into sweeps (on the current runtime); it ends with the
    /// last handle.
    pub fn start(queue: Queue) -> Self {
        let notify = Arc::new(Notify::new());
        let weak = Arc::downgrade(&notify);
        tokio::spawn(async move {
            loop {
                let Some(notify) = weak.upgrade() else { return };
                notify.notified().await;
                drop(notify);
                tokio::time::sleep(Self::GATHER).await;
                let job = MonitorDue {
                    at: Timestamp::now(),
                };
                // Nothing is lost if this fails: the resource stays due for the next scheduled sweep.
                if let Err(e) = queue.enqueue(&job).await {
                    tracing::warn!(error = %e, "could not ask for the first checks of new resources; the next due sweep will run them");
                }
            }
        });
        Self { notify }
    }

    /// A resource became due now: ask for a sweep soon.
    pub fn nudge(&self) {
        self.notify.notify_one();
    }
}
