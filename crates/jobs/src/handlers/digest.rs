//! The nightly digest. The scheduler runs [`DigestSweep`] often (every 15 minutes by default); a
//! sweep finds, per time zone, users whose local midnight has passed since their last digest and
//! fans out one [`DigestBatch`] job per [`BATCH`] users, so many workers share the work (a batch
//! sends one message after another: 100 keep a batch well inside `jobs.timeout_secs` even with a
//! slow relay). The sweep
//! claims each user's day (`users.last_digest_day`, a conditional update) in the transaction that
//! enqueues the batch, so two sweeps never put one user in two batches; and every message is sent
//! through `send_once` (keyed by user and day): running the scheduler twice or retrying a batch
//! sends one digest per user per day.
//!
//! Why batches and not one job per user: 100,000 users would be 100,000 jobs claimed one by one
//! (docs/benchmarks.md, `digest-100k`). A user whose digest fails inside a batch gets a
//! [`DigestEmail`] job of their own, which retries with back-off and dead-letters with the relay's
//! reply like any mail, so one bad address never holds up or sinks the rest of the batch.

use super::send::send_once;
use crate::{Context, Job, JobError};
use chrono::{DateTime, Days, NaiveDate, TimeZone, Utc};
use chrono_tz::Tz;
use pulseboard_domain::Timestamp;
use pulseboard_mail::{templates, unsubscribe, Message};
use pulseboard_storage::{tasks, users};
use serde::{Deserialize, Serialize};

/// Finds users due for a digest and enqueues one job each.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct DigestSweep {}

impl Job for DigestSweep {
    const KIND: &'static str = "digest_sweep";
    const QUEUE: &'static str = super::MAINTENANCE_QUEUE;
}

/// The digests of up to [`BATCH`] users (claimed by the sweep) for one local day.
#[derive(Debug, Serialize, Deserialize)]
pub struct DigestBatch {
    /// The local day the digests report on, YYYY-MM-DD.
    pub day: String,
    pub user_ids: Vec<i64>,
}

impl Job for DigestBatch {
    const KIND: &'static str = "digest_batch";
    const QUEUE: &'static str = super::EMAIL_QUEUE;

    fn idempotency_key(&self) -> Option<String> {
        let first = self.user_ids.first().copied().unwrap_or(0);
        let last = self.user_ids.last().copied().unwrap_or(0);
        Some(format!(
            "digest_batch:{}:{first}-{last}:{}",
            self.day,
            self.user_ids.len()
        ))
    }
}

/// One user's digest for one local day (a user whose digest failed inside a batch).
#[derive(Debug, Serialize, Deserialize)]
pub struct DigestEmail {
    pub user_id: i64,
    /// The local day the digest reports on, YYYY-MM-DD.
    pub day: String,
}

impl Job for DigestEmail {
    const KIND: &'static str = "digest_email";
    const QUEUE: &'static str = super::EMAIL_QUEUE;

    fn idempotency_key(&self) -> Option<String> {
        Some(format!("digest:{}:{}", self.user_id, self.day))
    }
}

/// Users read (and claimed) per sweep transaction.
const PAGE: i64 = 500;
/// Users per [`DigestBatch`].
pub const BATCH: usize = 100;
/// Failures in a row after which a batch hands all its remaining users to jobs of their own
/// (the relay is probably down: each of those retries with back-off on its own).
const FAILURES_IN_A_ROW: usize = 3;

/// The day whose digest is due at `now` in `tz`: yesterday, local time.
pub fn report_day(tz: Tz, now: i64) -> NaiveDate {
    let local = tz.from_utc_datetime(
        &DateTime::<Utc>::from_timestamp_millis(now)
            .unwrap_or_default()
            .naive_utc(),
    );
    local.date_naive() - Days::new(1)
}

/// `[start, end)` of a local day, in UTC millis.
pub fn day_bounds(tz: Tz, day: NaiveDate) -> (i64, i64) {
    let start_of = |d: NaiveDate| {
        let midnight = d.and_hms_opt(0, 0, 0).expect("midnight exists");
        // On a DST gap at midnight, take the first instant that exists.
        tz.from_local_datetime(&midnight)
            .earliest()
            .or_else(|| {
                tz.from_local_datetime(&(midnight + chrono::Duration::hours(1)))
                    .earliest()
            })
            .map(|t| t.with_timezone(&Utc).timestamp_millis())
            .unwrap_or(0)
    };
    (start_of(day), start_of(day + Days::new(1)))
}

/// Enqueues the digests due at `now`. Returns for how many users (a racing or repeated sweep
/// enqueues none for users already claimed).
pub async fn sweep(ctx: &Context, now: i64) -> Result<u64, JobError> {
    let mut enqueued = 0;
    for tz_name in users::digest_time_zones(&ctx.db).await? {
        let tz: Tz = tz_name.parse().unwrap_or(Tz::UTC);
        let day = report_day(tz, now).to_string();
        let mut after = 0;
        loop {
            let ids = users::due_for_digest(&ctx.db, &tz_name, &day, after, PAGE).await?;
            let Some(&last) = ids.last() else { break };
            let mut tx = ctx.db.begin().await?;
            // Only the users this transaction claims go into the batch: a racing sweep claims none
            // of them.
            let claimed = users::claim_digest_day(&mut tx, &ids, &day).await?;
            for chunk in claimed.chunks(BATCH) {
                let job = DigestBatch {
                    day: day.clone(),
                    user_ids: chunk.to_vec(),
                };
                if ctx.queue.enqueue_in(&mut tx, &job).await?.is_some() {
                    enqueued += chunk.len() as u64;
                }
            }
            tx.commit()
                .await
                .map_err(pulseboard_storage::StorageError::from)?;
            ctx.queue.wake();
            after = last;
        }
    }
    if enqueued > 0 {
        tracing::info!(enqueued, "digests enqueued");
    }
    Ok(enqueued)
}

pub async fn handle_sweep(ctx: &Context, _job: DigestSweep) -> Result<(), JobError> {
    sweep(ctx, Timestamp::now()).await.map(|_| ())
}

/// Sends the batch's digests one after another. A user whose digest fails is handed to a
/// [`DigestEmail`] job of their own; after [`FAILURES_IN_A_ROW`] failures in a row, all the
/// remaining users are. The batch itself fails (and is retried) only if that hand-off fails.
pub async fn handle_batch(ctx: &Context, job: DigestBatch) -> Result<(), JobError> {
    let mut failures = 0;
    for (i, &user_id) in job.user_ids.iter().enumerate() {
        let one = DigestEmail {
            user_id,
            day: job.day.clone(),
        };
        let error = match handle(ctx, one).await {
            Ok(()) => {
                failures = 0;
                continue;
            }
            Err(e) => e,
        };
        failures += 1;
        let handed: &[i64] = if failures >= FAILURES_IN_A_ROW {
            &job.user_ids[i..]
        } else {
            &job.user_ids[i..=i]
        };
        tracing::warn!(
            user_id,
            day = %job.day,
            error = %error,
            users = handed.len(),
            "digest failed inside a batch; handing it to a job of its own"
        );
        let mut tx = ctx.db.begin().await?;
        for &user_id in handed {
            let single = DigestEmail {
                user_id,
                day: job.day.clone(),
            };
            ctx.queue.enqueue_in(&mut tx, &single).await?;
        }
        tx.commit()
            .await
            .map_err(pulseboard_storage::StorageError::from)?;
        ctx.queue.wake();
        if handed.len() > 1 {
            break;
        }
    }
    Ok(())
}

pub async fn handle(ctx: &Context, job: DigestEmail) -> Result<(), JobError> {
    let Some(user) = users::by_id(&ctx.db, job.user_id).await? else {
        return Ok(());
    };
    if !user.digest_enabled {
        return Ok(());
    }
    let day: NaiveDate = job
        .day
        .parse()
        .map_err(|e| JobError::Fatal(format!("bad digest day {:?}: {e}", job.day)))?;
    let tz: Tz = user.time_zone.parse().unwrap_or(Tz::UTC);
    let (from, to) = day_bounds(tz, day);
    let data = tasks::digest_data(&ctx.db, user.id, from, to, 5).await?;
    if data.undone_count == 0 && data.done.is_empty() {
        // Nothing to say: no email.
        return Ok(());
    }
    let public = ctx.public_url.trim_end_matches('/');
    let unsubscribe_url = unsubscribe::link(public, &ctx.signing_key, user.id);
    let (text, html) = templates::render(
        "digest",
        &user.locale,
        serde_json::json!({
            "day": job.day,
            "done_count": data.done.len(),
            "done": data.done,
            "undone_count": data.undone_count,
            "undone": data.undone,
            "app_url": format!("{public}/"),
            "unsubscribe_url": unsubscribe_url,
        }),
    )
    .map_err(JobError::Fatal)?;
    let ru = templates::language(&user.locale) == "ru";
    let subject = match (data.done.is_empty(), data.undone_count) {
        (false, 0) if ru => format!("За сегодня вы выполнили задач: {}", data.done.len()),
        (false, 0) => format!(
            "Today you completed {} {}",
            data.done.len(),
            plural(data.done.len() as i64)
        ),
        (true, n) if ru => format!("У вас осталось несделанных задач: {n}"),
        (true, n) => format!("You have {n} undone {}", plural(n)),
        (false, n) if ru => format!("Выполнено: {}, осталось: {n}", data.done.len()),
        (false, n) => format!(
            "Today you completed {} {}; {n} left",
            data.done.len(),
            plural(data.done.len() as i64)
        ),
    };
    let msg = Message {
        to: user.email.to_string(),
        subject,
        text,
        html,
        message_id: format!("<digest-{}-{}@pulseboard>", user.id, job.day),
        headers: vec![
            ("List-Unsubscribe", format!("<{unsubscribe_url}>")),
            ("List-Unsubscribe-Post", "List-Unsubscribe=One-Click".into()),
        ],
    };
    send_once(ctx, &format!("digest:{}:{}", user.id, job.day), &msg).await
}

fn plural(n: i64) -> &'static str {
    if n == 1 {
        "task"
    } else {
        "tasks"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn moscow_midnight_is_21_utc() {
        let tz: Tz = "Europe/Moscow".parse().unwrap();
        let day = NaiveDate::from_ymd_opt(2026, 11, 23).unwrap();
        let (from, to) = day_bounds(tz, day);
        assert_eq!(Timestamp::rfc3339(from), "2026-11-22T21:00:00Z");
        assert_eq!(to - from, 86_400_000);
        // At 20:59 UTC on the 23rd it is still the 23rd in Moscow: the 22nd is the report day.
        let t = DateTime::parse_from_rfc3339("2026-11-23T20:59:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(report_day(tz, t).to_string(), "2026-11-22");
        let t = DateTime::parse_from_rfc3339("2026-11-23T21:00:00Z")
            .unwrap()
            .timestamp_millis();
        assert_eq!(report_day(tz, t).to_string(), "2026-11-23");
    }
}
