//! The nightly digest. The scheduler runs [`DigestSweep`] often (every 15 minutes by default); a
//! sweep finds, per time zone, users whose local midnight has passed since their last digest and
//! fans out one [`DigestEmail`] job per user, so many workers share the work. Each user's day is
//! marked in the same transaction that enqueues the job, and the job's idempotency key is the user
//! and the day: running the scheduler twice or retrying sends one digest per user per day.

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

/// One user's digest for one local day.
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

const BATCH: i64 = 500;

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

/// Enqueues the digests due at `now`. Returns how many were enqueued.
pub async fn sweep(ctx: &Context, now: i64) -> Result<u64, JobError> {
    let mut enqueued = 0;
    for tz_name in users::digest_time_zones(ctx.db.pool()).await? {
        let tz: Tz = tz_name.parse().unwrap_or(Tz::UTC);
        let day = report_day(tz, now).to_string();
        let mut after = 0;
        loop {
            let ids = users::due_for_digest(ctx.db.pool(), &tz_name, &day, after, BATCH).await?;
            let Some(&last) = ids.last() else { break };
            let mut tx = ctx.db.begin().await?;
            for id in &ids {
                // A racing sweep may have enqueued this one already: the idempotency key drops it.
                let job = DigestEmail {
                    user_id: *id,
                    day: day.clone(),
                };
                if ctx.queue.enqueue_in(&mut tx, &job).await?.is_some() {
                    enqueued += 1;
                }
            }
            users::mark_digest_day(&mut tx, &ids, &day).await?;
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

pub async fn handle(ctx: &Context, job: DigestEmail) -> Result<(), JobError> {
    let Some(user) = users::by_id(ctx.db.pool(), job.user_id).await? else {
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
    let data = tasks::digest_data(ctx.db.pool(), user.id, from, to, 5).await?;
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
