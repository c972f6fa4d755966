//! The scheduler: enqueues periodic jobs at their cron occurrences.
//!
//! Each occurrence is claimed in the database (`schedule_runs`) in the same transaction that
//! enqueues its job, so any number of schedulers fire it once. After downtime, the latest missed
//! occurrence fires once, not once per missed tick.

use crate::{Job, Queue};
use chrono::{DateTime, TimeZone, Utc};
use chrono_tz::Tz;
use pulseboard_domain::Timestamp;
use pulseboard_storage::jobs;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::time::Duration;
use tokio::sync::watch;

/// Builds the job of one occurrence (given its time in Unix millis).
type Enqueue = Box<dyn Fn(i64) -> Pending + Send + Sync>;

/// Work of one occurrence that runs in the scheduler's own process (given its time).
type Task = Box<dyn Fn(i64) -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

enum Action {
    Enqueue(Enqueue),
    /// For work that needs what only this process has (its configuration, the local disk), not a
    /// worker: claimed like a job's occurrence, so it runs once across schedulers, but at most once
    /// (a crash during it is not retried; the next occurrence comes).
    Run(Task),
}

/// A job ready to insert: kind, queue and payload.
pub struct Pending {
    kind: &'static str,
    queue: &'static str,
    payload: String,
}

impl Pending {
    pub fn of<J: Job>(job: &J) -> Self {
        Self {
            kind: J::KIND,
            queue: J::QUEUE,
            payload: serde_json::to_string(job).expect("job payloads serialise"),
        }
    }
}

pub struct Entry {
    pub name: String,
    schedule: cron::Schedule,
    tz: Tz,
    action: Action,
    /// Fires often (seconds apart): log each occurrence at debug, not info.
    quiet: bool,
}

impl Entry {
    /// `cron` and `tz` were validated with the configuration.
    pub fn new(
        name: &str,
        cron: &str,
        tz: &str,
        make: impl Fn(i64) -> Pending + Send + Sync + 'static,
    ) -> Result<Self, String> {
        Self::with_action(name, cron, tz, Action::Enqueue(Box::new(make)))
    }

    /// An entry whose occurrences run `task` in the scheduler's process (spawned, so a long task
    /// does not hold up the other schedules) instead of enqueueing a job.
    pub fn task<F>(
        name: &str,
        cron: &str,
        tz: &str,
        task: impl Fn(i64) -> F + Send + Sync + 'static,
    ) -> Result<Self, String>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let run: Task =
            Box::new(move |at| -> Pin<Box<dyn Future<Output = ()> + Send>> { Box::pin(task(at)) });
        Self::with_action(name, cron, tz, Action::Run(run))
    }

    fn with_action(name: &str, cron: &str, tz: &str, action: Action) -> Result<Self, String> {
        Ok(Self {
            name: name.to_owned(),
            schedule: cron::Schedule::from_str(cron).map_err(|e| format!("{name}: {e}"))?,
            tz: tz.parse().map_err(|e| format!("{name}: {e}"))?,
            action,
            quiet: false,
        })
    }

    /// Logs its occurrences at debug level (a schedule that fires every few seconds).
    pub fn quiet(mut self) -> Self {
        self.quiet = true;
        self
    }

    /// The latest occurrence after `since` and not after `now`, if any.
    pub fn due(&self, since: i64, now: i64) -> Option<i64> {
        let since = self.tz.from_utc_datetime(&ms_to_utc(since).naive_utc());
        let mut latest = None;
        for t in self.schedule.after(&since).take(100_000) {
            let ms = t.with_timezone(&Utc).timestamp_millis();
            if ms > now {
                break;
            }
            latest = Some(ms);
        }
        latest
    }
}

fn ms_to_utc(ms: i64) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

/// The first occurrence of a cron schedule strictly after `after` (Unix ms), e.g. when the next
/// availability round runs. None for an invalid expression or time zone (validated with the
/// configuration) or a schedule that never fires again.
pub fn next_occurrence(cron: &str, tz: &str, after: i64) -> Option<i64> {
    let schedule = cron::Schedule::from_str(cron).ok()?;
    let tz: Tz = tz.parse().ok()?;
    let since = tz.from_utc_datetime(&ms_to_utc(after).naive_utc());
    schedule
        .after(&since)
        .next()
        .map(|t| t.with_timezone(&Utc).timestamp_millis())
}

pub struct Scheduler {
    queue: Queue,
    entries: Vec<Entry>,
    tick: Duration,
}

impl Scheduler {
    pub fn new(queue: Queue, entries: Vec<Entry>) -> Self {
        Self {
            queue,
            entries,
            tick: Duration::from_secs(1),
        }
    }

    /// The names of the schedules this scheduler fires.
    pub fn names(&self) -> Vec<&str> {
        self.entries.iter().map(|e| e.name.as_str()).collect()
    }

    pub fn with_tick(mut self, tick: Duration) -> Self {
        self.tick = tick;
        self
    }

    pub async fn run(self, mut shutdown: watch::Receiver<bool>) {
        let started = Timestamp::now();
        tracing::info!(schedules = ?self.entries.iter().map(|e| &e.name).collect::<Vec<_>>(), "scheduler started");
        while !*shutdown.borrow() {
            for entry in &self.entries {
                if let Err(e) = self.fire_if_due(entry, started).await {
                    tracing::warn!(schedule = %entry.name, error = %e, "scheduler tick failed; will retry");
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(self.tick) => {}
                _ = shutdown.changed() => {}
            }
        }
        tracing::info!("scheduler stopped");
    }

    /// Fires the entry's latest due occurrence, once across all schedulers. True if this call fired.
    pub async fn fire_if_due(
        &self,
        entry: &Entry,
        first_start: i64,
    ) -> Result<bool, pulseboard_storage::StorageError> {
        let db = self.queue.db();
        // A schedule never fired before starts counting from now, not from the epoch.
        let since = jobs::last_occurrence(db, &entry.name)
            .await?
            .unwrap_or(first_start);
        let now = Timestamp::now();
        let Some(occurrence) = entry.due(since, now) else {
            return Ok(false);
        };
        let pending = match &entry.action {
            Action::Enqueue(make) => Some(make(occurrence)),
            Action::Run(_) => None,
        };
        let mut tx = db.begin().await?;
        if !jobs::claim_occurrence(&mut tx, &entry.name, occurrence).await? {
            return Ok(false);
        }
        let Some(pending) = pending else {
            tx.commit().await?;
            if let Action::Run(task) = &entry.action {
                tracing::info!(schedule = %entry.name, occurrence = %Timestamp::rfc3339(occurrence), "scheduled task started");
                tokio::spawn(task(occurrence));
            }
            return Ok(true);
        };
        let key = format!("schedule:{}:{occurrence}", entry.name);
        jobs::insert(
            &mut tx,
            &jobs::NewJob {
                queue: pending.queue,
                kind: pending.kind,
                payload: &pending.payload,
                max_attempts: 3,
                run_at: now,
                idempotency_key: Some(&key),
            },
            now,
        )
        .await?;
        tx.commit().await?;
        self.queue.wake();
        if entry.quiet {
            tracing::debug!(schedule = %entry.name, occurrence = %Timestamp::rfc3339(occurrence), "scheduled job enqueued");
        } else {
            tracing::info!(schedule = %entry.name, occurrence = %Timestamp::rfc3339(occurrence), "scheduled job enqueued");
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(cron: &str, tz: &str) -> Entry {
        Entry::new("t", cron, tz, |_| Pending {
            kind: "k",
            queue: "q",
            payload: "{}".into(),
        })
        .unwrap()
    }

    #[test]
    fn missed_occurrences_collapse_to_the_latest() {
        let e = entry("0 0 * * * *", "UTC"); // hourly
        let since = 0; // 1970-01-01T00:00Z
        let now = 10 * 3_600_000 + 5; // just after 10:00
        assert_eq!(e.due(since, now), Some(10 * 3_600_000));
        assert_eq!(e.due(10 * 3_600_000, now), None);
    }

    #[test]
    fn the_next_occurrence_is_strictly_after() {
        let h = 3_600_000;
        assert_eq!(
            next_occurrence("0 0 */12 * * *", "UTC", 5 * h),
            Some(12 * h)
        );
        assert_eq!(
            next_occurrence("0 0 */12 * * *", "UTC", 12 * h),
            Some(24 * h)
        );
        assert_eq!(next_occurrence("not cron", "UTC", 0), None);
    }

    #[test]
    fn time_zones_shift_occurrences() {
        // Midnight in Moscow (UTC+3) is 21:00 UTC the day before.
        let e = entry("0 0 0 * * *", "Europe/Moscow");
        let day = 86_400_000;
        let due = e.due(0, 2 * day).unwrap();
        assert_eq!(due % day, 21 * 3_600_000);
    }
}
