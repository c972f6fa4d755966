//! Availability rounds. The scheduler fires [`MonitorSweep`] on `schedules.monitor`; the sweep
//! pages through the resources the round checks (every resource without its own interval, and
//! those with one whose `next_check_at` has passed) and fans out [`CheckBatch`] jobs of `monitor.batch_size`
//! ids on the monitor queue, so every worker consuming that queue shares the round. Between
//! rounds, [`MonitorDue`] (on the frequent `schedules.monitor_due`, and nudged right after a
//! resource is added) enqueues only the resources that are due: those with their own interval, and
//! new ones awaiting their first check; both move a resource's `next_check_at` one interval on (or
//! clear it after the first check) in the transaction that enqueues it (`storage::checks::take_due`). A batch claims its resources for
//! the round (`storage::checks::claim_for_round`), checks them concurrently under the checker's
//! pool and per-host limits, and records the results and the failure policy in one transaction,
//! together with the [`AvailabilityAlert`] jobs of owners who want alerts.
//!
//! Idempotency: the sweep's key is its round, each batch's key its round and id range, and the
//! claim makes a resource checked at most once per round even if a batch runs twice. A batch that
//! dies between claiming and recording loses those checks for the round (they run next round).

use super::send::send_once;
use crate::{Context, Job, JobError, Queue};
use pulseboard_domain::Timestamp;
use pulseboard_mail::{templates, Message};
use pulseboard_storage::checks::{self, NewCheck, Recorded};
use pulseboard_storage::users;
use pulseboard_storage::Db;
use pulseboard_watch::checker::CheckResult;
use serde::{Deserialize, Serialize};

/// Ids read (and batches enqueued) per sweep transaction, at least (or one batch, if larger).
const PAGE: usize = 1000;

/// Ids per sweep page: whole batches of `monitor.batch_size`.
fn page_size(batch: usize) -> i64 {
    (PAGE.div_ceil(batch) * batch) as i64
}

/// One monitoring round; `round` is its scheduled time (Unix ms).
#[derive(Debug, Serialize, Deserialize)]
pub struct MonitorSweep {
    pub round: i64,
}

impl Job for MonitorSweep {
    const KIND: &'static str = "monitor_sweep";
    const QUEUE: &'static str = super::MONITOR_QUEUE;

    fn idempotency_key(&self) -> Option<String> {
        Some(format!("monitor_sweep:{}", self.round))
    }
}

/// Resources with their own `check_interval_secs` that are due at `at` (an occurrence of the
/// frequent `schedules.monitor_due`): enqueued in batches like a round, but only those.
#[derive(Debug, Serialize, Deserialize)]
pub struct MonitorDue {
    pub at: i64,
}

impl Job for MonitorDue {
    const KIND: &'static str = "monitor_due";
    const QUEUE: &'static str = super::MONITOR_QUEUE;

    fn idempotency_key(&self) -> Option<String> {
        Some(format!("monitor_due:{}", self.at))
    }
}

/// Up to `monitor.batch_size` resources to check in `round`.
#[derive(Debug, Serialize, Deserialize)]
pub struct CheckBatch {
    pub round: i64,
    pub resource_ids: Vec<i64>,
}

impl Job for CheckBatch {
    const KIND: &'static str = "check_batch";
    const QUEUE: &'static str = super::MONITOR_QUEUE;

    fn idempotency_key(&self) -> Option<String> {
        let first = self.resource_ids.first().copied().unwrap_or(0);
        let last = self.resource_ids.last().copied().unwrap_or(0);
        // A round and a due sweep at the same instant may both batch ids from `first` to `last`
        // with different ids in between: the key covers every id (FNV-1a), not only the range.
        let hash = self
            .resource_ids
            .iter()
            .fold(0xcbf2_9ce4_8422_2325_u64, |h, id| {
                (h ^ *id as u64).wrapping_mul(0x0100_0000_01b3)
            });
        Some(format!(
            "check_batch:{}:{first}-{last}:{hash:016x}",
            self.round
        ))
    }
}

/// An email to a resource's owner: it went down, or it is back.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AvailabilityAlert {
    pub user_id: i64,
    pub resource_uuid: String,
    pub url: String,
    pub is_available: bool,
    pub status_code: Option<i64>,
    pub error_kind: Option<String>,
    pub checked_at: i64,
}

impl Job for AvailabilityAlert {
    const KIND: &'static str = "availability_alert";
    const QUEUE: &'static str = super::EMAIL_QUEUE;

    fn idempotency_key(&self) -> Option<String> {
        Some(self.key())
    }
}

impl AvailabilityAlert {
    fn key(&self) -> String {
        format!("alert:{}:{}", self.resource_uuid, self.checked_at)
    }
}

/// Enqueues the batches of `round`: every resource without its own interval, and the ones with an
/// interval that are due (moved one interval on). Returns how many batch jobs were enqueued (a
/// repeated sweep of the same round enqueues none: the keys already exist, and its due resources
/// have moved on).
pub async fn sweep(ctx: &Context, round: i64) -> Result<u64, JobError> {
    let batch = ctx.checker.batch_size();
    let mut enqueued = 0;
    let mut after = 0;
    loop {
        let page = checks::round_page(&ctx.db, round, after, page_size(batch)).await?;
        let Some(&(last, _)) = page.last() else { break };
        let mut tx = ctx.db.begin().await?;
        // Resources with a next_check_at (an interval, or a first check pending) are taken only
        // if still due, and moved on in this transaction, so the due sweep does not take them too.
        let scheduled: Vec<i64> = page.iter().filter(|p| p.1).map(|p| p.0).collect();
        let mut ids: Vec<i64> = page.iter().filter(|p| !p.1).map(|p| p.0).collect();
        if !scheduled.is_empty() {
            ids.extend(checks::advance_due(&mut tx, round, &scheduled).await?);
            ids.sort_unstable();
        }
        for chunk in ids.chunks(batch) {
            let job = CheckBatch {
                round,
                resource_ids: chunk.to_vec(),
            };
            if ctx.queue.enqueue_in(&mut tx, &job).await?.is_some() {
                enqueued += 1;
            }
        }
        tx.commit()
            .await
            .map_err(pulseboard_storage::StorageError::from)?;
        ctx.queue.wake();
        after = last;
    }
    tracing::info!(round, batches = enqueued, "monitoring round enqueued");
    Ok(enqueued)
}

/// Enqueues the resources that are due at `at` (own interval, or first check), in batches.
/// Returns how many batch jobs were enqueued.
pub async fn sweep_due(ctx: &Context, at: i64) -> Result<u64, JobError> {
    let batch = ctx.checker.batch_size();
    let mut enqueued = 0;
    loop {
        let mut tx = ctx.db.begin().await?;
        let ids = checks::take_due(&mut tx, at, page_size(batch)).await?;
        if ids.is_empty() {
            break;
        }
        for chunk in ids.chunks(batch) {
            let job = CheckBatch {
                round: at,
                resource_ids: chunk.to_vec(),
            };
            if ctx.queue.enqueue_in(&mut tx, &job).await?.is_some() {
                enqueued += 1;
            }
        }
        tx.commit()
            .await
            .map_err(pulseboard_storage::StorageError::from)?;
        ctx.queue.wake();
    }
    if enqueued > 0 {
        tracing::debug!(at, batches = enqueued, "due resources enqueued");
    }
    Ok(enqueued)
}

pub async fn handle_due(ctx: &Context, job: MonitorDue) -> Result<(), JobError> {
    sweep_due(ctx, job.at).await.map(|_| ())
}

pub async fn handle_sweep(ctx: &Context, job: MonitorSweep) -> Result<(), JobError> {
    sweep(ctx, job.round).await?;
    roll_up(ctx, Timestamp::now()).await.map(|_| ())
}

/// Rolls checks older than `monitor.check_retention_days` up into hourly aggregates and drops
/// aggregates older than `monitor.aggregate_retention_days` (run with each round).
pub async fn roll_up(ctx: &Context, now: i64) -> Result<u64, JobError> {
    const DAY_MS: i64 = 86_400_000;
    let (raw, agg) = ctx.checker.retention_days();
    let rolled = checks::roll_up(
        &ctx.db,
        now - i64::from(raw) * DAY_MS,
        now - i64::from(agg) * DAY_MS,
    )
    .await?;
    if rolled > 0 {
        tracing::info!(rolled, "old checks rolled up into hourly aggregates");
    }
    Ok(rolled)
}

/// The stored form of a check result.
pub fn new_check(resource_id: i64, r: &CheckResult) -> NewCheck {
    NewCheck {
        resource_id,
        checked_at: r.checked_at,
        status_code: r.status_code.map(i64::from),
        error_kind: r.error_kind.map(|k| k.as_str().to_owned()),
        response_time_ms: r.response_time_ms,
        is_available: r.is_available,
        final_url: r.final_url.clone(),
    }
}

/// Records checks in one transaction with the failure policy, and enqueues the alerts of owners
/// who enabled them in the same transaction.
/// (Also used by `POST /resources/{uuid}/check`.)
pub async fn record(
    db: &Db,
    queue: &Queue,
    max_retries: u32,
    results: &[NewCheck],
) -> Result<Recorded, JobError> {
    let now = Timestamp::now();
    let mut tx = db.begin().await?;
    let recorded = checks::record_batch(&mut tx, results, i64::from(max_retries), now).await?;
    let mut alerts = 0;
    for change in &recorded.changes {
        if checks::alerts_wanted(&mut tx, change.user_id).await? {
            let alert = AvailabilityAlert {
                user_id: change.user_id,
                resource_uuid: change.resource_uuid.clone(),
                url: change.url.clone(),
                is_available: change.is_available,
                status_code: change.check.status_code,
                error_kind: change.check.error_kind.clone(),
                checked_at: change.check.checked_at,
            };
            queue.enqueue_in(&mut tx, &alert).await?;
            alerts += 1;
        }
        alerts += super::deliver::enqueue_for_change(queue, &mut tx, change).await?;
    }
    tx.commit()
        .await
        .map_err(pulseboard_storage::StorageError::from)?;
    if alerts > 0 {
        queue.wake();
    }
    for d in &recorded.deleted {
        tracing::info!(
            uuid = %d.resource.uuid,
            url = %d.resource.full_url,
            "resource deleted after repeated failed checks"
        );
    }
    Ok(recorded)
}

pub async fn handle_batch(ctx: &Context, job: CheckBatch) -> Result<(), JobError> {
    let targets = checks::claim_for_round(&ctx.db, job.round, &job.resource_ids).await?;
    if targets.is_empty() {
        return Ok(());
    }
    let mut set = tokio::task::JoinSet::new();
    for t in targets {
        let checker = ctx.checker.clone();
        set.spawn(async move {
            let r = checker.check_limited(&t.full_url).await;
            new_check(t.id, &r)
        });
    }
    let mut results = Vec::with_capacity(set.len());
    while let Some(r) = set.join_next().await {
        match r {
            Ok(c) => results.push(c),
            Err(e) => tracing::error!(error = %e, "a check task failed"),
        }
    }
    let recorded = record(&ctx.db, &ctx.queue, ctx.checker.max_retries(), &results).await?;
    // Deleted resources' screenshots go too (the rows went with the resources).
    let gone: Vec<&str> = (recorded.deleted.iter())
        .filter_map(|d| d.screenshot_blob.as_deref())
        .collect();
    ctx.blobs.delete_all(gone).await;
    tracing::debug!(
        round = job.round,
        checked = recorded.stored,
        changes = recorded.changes.len(),
        deleted = recorded.deleted.len(),
        "check batch done"
    );
    Ok(())
}

pub async fn handle_alert(ctx: &Context, job: AvailabilityAlert) -> Result<(), JobError> {
    let Some(user) = users::by_id(&ctx.db, job.user_id).await? else {
        return Ok(());
    };
    if !user.alerts_enabled {
        return Ok(());
    }
    // The check's time as the owner reads a clock: in their time zone, named (UTC if unknown).
    let tz: chrono_tz::Tz = user.time_zone.parse().unwrap_or(chrono_tz::Tz::UTC);
    let checked_at = chrono::DateTime::from_timestamp_millis(job.checked_at)
        .map(|t| {
            let local = t.with_timezone(&tz);
            format!("{} ({})", local.format("%Y-%m-%d %H:%M:%S"), tz.name())
        })
        .unwrap_or_else(|| Timestamp::rfc3339(job.checked_at));
    let public = ctx.public_url.trim_end_matches('/');
    let template = if job.is_available {
        "alert_up"
    } else {
        "alert_down"
    };
    let (text, html) = templates::render(
        template,
        &user.locale,
        serde_json::json!({
            "url": job.url,
            "status_code": job.status_code,
            "error_kind": job.error_kind,
            "checked_at": checked_at,
            "link": format!("{public}/#/resources/{}", job.resource_uuid),
        }),
    )
    .map_err(JobError::Fatal)?;
    let subject = match (templates::language(&user.locale), job.is_available) {
        ("ru", true) => format!("Снова доступен: {}", job.url),
        ("ru", false) => format!("Недоступен: {}", job.url),
        (_, true) => format!("Back up: {}", job.url),
        (_, false) => format!("Down: {}", job.url),
    };
    let msg = Message {
        to: user.email.to_string(),
        subject,
        text,
        html,
        message_id: format!(
            "<alert-{}-{}@pulseboard>",
            job.resource_uuid, job.checked_at
        ),
        headers: vec![],
    };
    send_once(ctx, &job.key(), &msg).await
}
