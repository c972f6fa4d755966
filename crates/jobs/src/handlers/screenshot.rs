//! Screenshot capture: `POST /resources/{uuid}/screenshot/capture` enqueues [`CaptureScreenshot`]
//! on the screenshots queue; a worker loads the page in its headless Chromium
//! ([`pulseboard_watch::capture::Capturer`]) and stores the PNG exactly like an uploaded screenshot
//! (`storage::blobs::store_screenshot`: the blob, the row, the `photo_added` event).
//!
//! A resource deleted in the meantime is nothing to do. A timeout or a browser failure is retried;
//! a target the guard refuses, a page that cannot be loaded, or a missing Chromium is not.

use crate::{Context, Job, JobError};
use pulseboard_domain::Timestamp;
use pulseboard_storage::blobs::{self, ScreenshotError};
use pulseboard_storage::resources::{self, ResourceKey};
use serde::{Deserialize, Serialize};

/// Capture the current look of a user's resource.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CaptureScreenshot {
    pub user_id: i64,
    pub resource_uuid: String,
}

impl Job for CaptureScreenshot {
    const KIND: &'static str = "capture_screenshot";
    const QUEUE: &'static str = super::SCREENSHOTS_QUEUE;
}

pub async fn handle(ctx: &Context, job: CaptureScreenshot) -> Result<(), JobError> {
    let key = ResourceKey::Uuid(job.resource_uuid.clone());
    let Some(resource) = resources::get(&ctx.db, job.user_id, &key).await? else {
        tracing::info!(uuid = %job.resource_uuid, "capture skipped: the resource is gone");
        return Ok(());
    };
    let started = std::time::Instant::now();
    let png = ctx
        .capturer
        .capture(&resource.full_url)
        .await
        .map_err(|e| {
            tracing::warn!(uuid = %resource.uuid, url = %resource.full_url, error = %e, "capture failed");
            if e.is_transient() {
                JobError::Retry(e.to_string())
            } else {
                JobError::Fatal(e.to_string())
            }
        })?;
    let shot = blobs::store_screenshot(
        &ctx.db,
        &ctx.blobs,
        &resource,
        png.into(),
        "capture",
        Timestamp::now(),
    )
    .await
    .map_err(|e| match e {
        ScreenshotError::NotAnImage => JobError::Fatal("Chromium returned no PNG".into()),
        other => JobError::Retry(other.to_string()),
    })?;
    tracing::info!(
        uuid = %resource.uuid,
        url = %resource.full_url,
        size_bytes = shot.size_bytes,
        elapsed_ms = started.elapsed().as_millis() as u64,
        "screenshot captured"
    );
    Ok(())
}
