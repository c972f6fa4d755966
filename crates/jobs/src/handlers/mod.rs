//! The jobs Pulseboard runs. Each is a payload type plus a plain async function of it.

mod deliver;
mod digest;
mod import;
mod maintenance;
mod monitor;
mod screenshot;
mod send;
mod welcome;

pub use deliver::{ChannelConfirmation, ChannelDelivery};
pub use digest::{
    day_bounds, report_day, sweep as digest_sweep, DigestBatch, DigestEmail, DigestSweep,
};
pub use import::ImportResources;
pub use maintenance::{Cleanup, Noop};
pub use monitor::{
    new_check, record as record_checks, roll_up as roll_up_checks, sweep as monitor_sweep,
    sweep_due as monitor_sweep_due, AvailabilityAlert, CheckBatch, MonitorDue, MonitorSweep,
};
pub use pulseboard_watch::import::{remove_upload, ImportLimits};
pub use screenshot::CaptureScreenshot;
pub use welcome::WelcomeEmail;

use crate::{Context, Job, JobError};
use std::future::Future;
use std::pin::Pin;

pub const EMAIL_QUEUE: &str = "email";
pub const MAINTENANCE_QUEUE: &str = "maintenance";
/// Queues of the Watch features (availability checks, screenshot capture, ZIP imports).
pub const MONITOR_QUEUE: &str = "monitor";
pub const SCREENSHOTS_QUEUE: &str = "screenshots";
pub const IMPORTS_QUEUE: &str = "imports";
/// Deliveries to notification channels: apart, so that a slow service never delays mail or checks.
pub const ALERTS_QUEUE: &str = "alerts";

type BoxFuture<'a> = Pin<Box<dyn Future<Output = Result<(), JobError>> + Send + 'a>>;

/// Runs the handler for a stored job.
pub fn dispatch<'a>(ctx: &'a Context, kind: &str, payload: &'a str, attempt: i64) -> BoxFuture<'a> {
    match kind {
        WelcomeEmail::KIND => run(payload, move |j| welcome::handle(ctx, j)),
        Cleanup::KIND => run(payload, move |j| maintenance::handle(ctx, j)),
        Noop::KIND => run(payload, move |j| maintenance::noop(j, attempt)),
        ImportResources::KIND => run(payload, move |j| import::handle(ctx, j, attempt)),
        CaptureScreenshot::KIND => run(payload, move |j| screenshot::handle(ctx, j)),
        DigestSweep::KIND => run(payload, move |j| digest::handle_sweep(ctx, j)),
        DigestEmail::KIND => run(payload, move |j| digest::handle(ctx, j)),
        DigestBatch::KIND => run(payload, move |j| digest::handle_batch(ctx, j)),
        MonitorSweep::KIND => run(payload, move |j| monitor::handle_sweep(ctx, j)),
        MonitorDue::KIND => run(payload, move |j| monitor::handle_due(ctx, j)),
        CheckBatch::KIND => run(payload, move |j| monitor::handle_batch(ctx, j)),
        AvailabilityAlert::KIND => run(payload, move |j| monitor::handle_alert(ctx, j)),
        ChannelDelivery::KIND => run(payload, move |j| deliver::handle(ctx, j, attempt)),
        ChannelConfirmation::KIND => run(payload, move |j| deliver::handle_confirmation(ctx, j)),
        other => {
            let msg = format!("no handler for job kind {other:?}");
            Box::pin(async move { Err(JobError::Fatal(msg)) })
        }
    }
}

fn run<'a, J, F, Fut>(payload: &'a str, f: F) -> BoxFuture<'a>
where
    J: Job,
    F: FnOnce(J) -> Fut + Send + 'a,
    Fut: Future<Output = Result<(), JobError>> + Send + 'a,
{
    Box::pin(async move {
        let job: J = serde_json::from_str(payload)
            .map_err(|e| JobError::Fatal(format!("malformed {} payload: {e}", J::KIND)))?;
        f(job).await
    })
}
