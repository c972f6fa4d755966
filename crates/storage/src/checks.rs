//! Watch: availability checks, the rounds that run them and the failure policy.
//!
//! A round (one occurrence of `schedules.monitor`, named by its scheduled time) claims each
//! resource once through `resources.check_round`, so duplicated batches or several workers never
//! check a resource twice in one round. The results of a batch are written in one transaction:
//! the check rows, the resource's `last_*` columns and `unavailable_count`, a `status_changed`
//! event on every flip of availability (none on the very first check: there is nothing to change
//! from), and, when `unavailable_count` reaches `max_retries`, the deletion of the resource with
//! its `resource_deleted` event (which keeps the URL).

use crate::feed::{insert_event, STATUS_CHANGED};
use crate::resources::{delete_in, Deleted, ResourceKey};
use crate::{flag, Db, Result};
use pulseboard_domain::UnixMillis;
use serde_json::json;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};
use std::collections::HashMap;

/// One stored check.
#[derive(Debug, Clone)]
pub struct Check {
    pub id: i64,
    pub resource_id: i64,
    pub checked_at: UnixMillis,
    pub status_code: Option<i64>,
    pub error_kind: Option<String>,
    pub response_time_ms: i64,
    pub is_available: bool,
    pub final_url: Option<String>,
}

impl FromRow<'_, AnyRow> for Check {
    fn from_row(row: &AnyRow) -> std::result::Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            resource_id: row.try_get("resource_id")?,
            checked_at: row.try_get("checked_at")?,
            status_code: row.try_get("status_code")?,
            error_kind: row.try_get("error_kind")?,
            response_time_ms: row.try_get("response_time_ms")?,
            is_available: flag(row, "is_available")?,
            final_url: row.try_get("final_url")?,
        })
    }
}

const CHECK_COLUMNS: &str =
    "id, resource_id, checked_at, status_code, error_kind, response_time_ms, is_available, final_url";

/// A check to record.
#[derive(Debug, Clone)]
pub struct NewCheck {
    pub resource_id: i64,
    pub checked_at: UnixMillis,
    pub status_code: Option<i64>,
    pub error_kind: Option<String>,
    pub response_time_ms: i64,
    pub is_available: bool,
    pub final_url: Option<String>,
}

/// A resource to check.
#[derive(Debug, Clone)]
pub struct Target {
    pub id: i64,
    pub full_url: String,
}

// ---------------------------------------------------------------------------------------------
// Per-resource intervals: which resources a sweep enqueues.
//
// A resource without `check_interval_secs` is checked by every round. One with an interval is due
// when `next_check_at` has passed; the sweep that enqueues it moves `next_check_at` one interval
// on in the same transaction (so the next sweep does not enqueue it again while its batch waits in
// the queue), keeping the cadence aligned to the schedule rather than drifting by the time each
// check takes. After a long pause it restarts from the sweep's time instead of catching up.

/// The `SET` expression that moves a due resource's `next_check_at` on from `$1` (the sweep time).
const ADVANCE: &str = "next_check_at = CASE \
     WHEN check_interval_secs IS NULL THEN NULL \
     WHEN COALESCE(next_check_at, $1) + check_interval_secs * 1000 > $1 \
         THEN COALESCE(next_check_at, $1) + check_interval_secs * 1000 \
     ELSE $1 + check_interval_secs * 1000 END";

/// A page of the resources a round at `at` checks, in id order after `after_id`: every resource
/// without its own interval, and those with one that are due. Returns `(id, scheduled)`, where
/// `scheduled` says it has a `next_check_at` ([`advance_due`] moves or clears it).
pub async fn round_page(
    db: &Db,
    at: UnixMillis,
    after_id: i64,
    limit: i64,
) -> Result<Vec<(i64, bool)>> {
    let rows: Vec<(i64, Option<i64>)> = sqlx::query_as(
        "SELECT id, next_check_at FROM resources \
         WHERE id > $1 AND (check_interval_secs IS NULL OR next_check_at <= $2) \
         ORDER BY id LIMIT $3",
    )
    .bind(after_id)
    .bind(at)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows
        .into_iter()
        .map(|(id, next)| (id, next.is_some()))
        .collect())
}

/// Moves the given resources with an interval that are still due at `at` one interval on, and
/// clears the pending first check of those without (a round checks them anyway), in the
/// caller's transaction. Returns the ids it moved: the
/// ones this sweep should enqueue.
pub async fn advance_due(
    conn: &mut AnyConnection,
    at: UnixMillis,
    ids: &[i64],
) -> Result<Vec<i64>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let list = crate::placeholders(2, ids.len());
    let sql = format!(
        "UPDATE resources SET {ADVANCE} WHERE id IN ({}) \
         AND (check_interval_secs IS NULL OR next_check_at <= $1) RETURNING id",
        list
    );
    let mut q = sqlx::query_as::<_, (i64,)>(&sql).bind(at);
    for id in ids {
        q = q.bind(*id);
    }
    let mut moved: Vec<i64> = q
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect();
    moved.sort_unstable();
    Ok(moved)
}

/// Takes up to `limit` resources that are due at `at` (soonest first) — those with their own
/// interval, and new ones awaiting their first check — and moves them one interval on (or clears
/// the pending first check), in the caller's transaction. Returns their ids, sorted.
pub async fn take_due(conn: &mut AnyConnection, at: UnixMillis, limit: i64) -> Result<Vec<i64>> {
    let sql = format!(
        "UPDATE resources SET {ADVANCE} \
         WHERE id IN (SELECT id FROM resources WHERE next_check_at <= $1 \
                      ORDER BY next_check_at LIMIT $2) \
           AND next_check_at <= $1 \
         RETURNING id"
    );
    let mut ids: Vec<i64> = sqlx::query_as::<_, (i64,)>(&sql)
        .bind(at)
        .bind(limit)
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect();
    ids.sort_unstable();
    Ok(ids)
}

/// After a check on demand: a resource with its own interval is next due one interval after it.
/// (A request-sized write: through [`Db::write`].)
pub async fn reschedule_after(db: &Db, resource_id: i64, checked_at: UnixMillis) -> Result<()> {
    db.write(move |tx| {
        Box::pin(async move {
            sqlx::query(
                "UPDATE resources SET next_check_at = $1 + check_interval_secs * 1000 \
                 WHERE id = $2 AND check_interval_secs IS NOT NULL",
            )
            .bind(checked_at)
            .bind(resource_id)
            .execute(tx)
            .await?;
            Ok(())
        })
    })
    .await
}

/// Sets (or, with None, clears) a resource's own interval. With one, it is next due an interval
/// after its last check (at once if it was never checked, or if that time has passed); without,
/// it follows the rounds. Returns the resource's id, None when the user has no such resource.
/// (A request-sized write: through [`Db::write`].)
pub async fn set_interval(
    db: &Db,
    user_id: i64,
    key: &ResourceKey,
    check_interval_secs: Option<i64>,
    now: UnixMillis,
) -> Result<Option<i64>> {
    let key = key.clone();
    db.write(move |tx| {
        Box::pin(async move { set_interval_in(tx, user_id, &key, check_interval_secs, now).await })
    })
    .await
}

async fn set_interval_in(
    tx: &mut AnyConnection,
    user_id: i64,
    key: &ResourceKey,
    check_interval_secs: Option<i64>,
    now: UnixMillis,
) -> Result<Option<i64>> {
    let col = match key {
        ResourceKey::Id(_) => "id",
        ResourceKey::Uuid(_) => "uuid",
    };
    let sql = format!(
        "UPDATE resources SET check_interval_secs = $1, \
             next_check_at = CASE WHEN last_checked_at IS NULL THEN $2 \
                                  ELSE last_checked_at + $3 END \
         WHERE user_id = $4 AND {col} = $5 RETURNING id"
    );
    let q = sqlx::query_as::<_, (i64,)>(&sql)
        .bind(check_interval_secs)
        .bind(check_interval_secs.map(|_| now))
        .bind(check_interval_secs.map(|s| s * 1000))
        .bind(user_id);
    let q = match key {
        ResourceKey::Id(id) => q.bind(*id),
        ResourceKey::Uuid(u) => q.bind(u.clone()),
    };
    Ok(q.fetch_optional(tx).await?.map(|(id,)| id))
}

/// Claims the given resources for `round`: returns those no earlier claim of this (or a later)
/// round holds. One statement, so two workers racing on the same ids split them.
pub async fn claim_for_round(db: &Db, round: i64, ids: &[i64]) -> Result<Vec<Target>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let list = crate::placeholders(2, ids.len());
    let sql = format!(
        "UPDATE resources SET check_round = $1 \
         WHERE id IN ({}) AND (check_round IS NULL OR check_round < $1) RETURNING id, full_url",
        list
    );
    let mut q = sqlx::query_as::<_, (i64, String)>(&sql).bind(round);
    for id in ids {
        q = q.bind(*id);
    }
    Ok(q.fetch_all(db.pool())
        .await?
        .into_iter()
        .map(|(id, full_url)| Target { id, full_url })
        .collect())
}

/// An alert to send: a resource went down (its failures reached `alert_after`), is still down (a
/// reminder), or is back up after a down alert.
#[derive(Debug, Clone)]
pub struct StatusChange {
    pub user_id: i64,
    pub resource_uuid: String,
    pub url: String,
    pub is_available: bool,
    /// A reminder of an outage already alerted (`remind_every_hours`).
    pub reminder: bool,
    /// The channels it goes to (the resource's own list, or all of the owner's), read before a
    /// deletion in the same batch could remove the list.
    pub channel_ids: Vec<i64>,
    pub check: NewCheck,
}

/// What recording a batch did besides storing the checks.
#[derive(Debug, Default)]
pub struct Recorded {
    pub stored: usize,
    pub changes: Vec<StatusChange>,
    pub deleted: Vec<Deleted>,
}

/// A checked resource as [`update_last`] left it: what the alert and failure policies need.
#[derive(Debug, Clone)]
struct Updated {
    user_id: i64,
    uuid: String,
    url: String,
    count: i64,
    alert_after: i64,
    delete_after_failures: Option<i64>,
    remind_every_hours: Option<i64>,
    down_alerted: bool,
    last_alert_at: Option<i64>,
}

const HOUR_MS_ALERT: i64 = 3_600_000;

/// Records the checks of one batch in one transaction and applies the failure policy
/// (see the module docs). Checks of resources deleted meanwhile are dropped.
/// `tx` is the caller's transaction (which may enqueue alert jobs with it before committing).
///
/// Alerts follow each resource's settings (migration 0015): one down alert per outage, when the
/// failures in a row reach `alert_after` (never on a resource's very first check, as before:
/// there is no state to change from), a reminder every `remind_every_hours` while down, and the
/// recovery alert only after a down alert. Deletion comes at `delete_after_failures` failures
/// (0: never), or `max_retries` when the resource has none of its own.
pub async fn record_batch(
    tx: &mut AnyConnection,
    results: &[NewCheck],
    max_retries: i64,
    now: UnixMillis,
) -> Result<Recorded> {
    let mut out = Recorded::default();
    if results.is_empty() {
        return Ok(out);
    }
    // A statement per step for the whole batch, not per check: at 500 checks a batch that is
    // 4 statements instead of 2,000, and the write lock is held that much shorter.
    let mut ids: Vec<i64> = results.iter().map(|c| c.resource_id).collect();
    ids.sort_unstable();
    ids.dedup();
    let mut was: HashMap<i64, Option<bool>> = HashMap::with_capacity(ids.len());
    for chunk in ids.chunks(ROWS_PER_STATEMENT * 4) {
        // Write first: on SQLite this takes the write lock at once (a deferred transaction that
        // reads, then writes, fails with SQLITE_BUSY when another writer committed in between);
        // on PostgreSQL it locks the rows (in id order), so the read below cannot race another
        // recorder.
        let list = crate::placeholders(1, chunk.len());
        let lock_sql = format!(
            "UPDATE resources SET check_round = check_round WHERE id IN ({list}) RETURNING id"
        );
        let mut lock = sqlx::query_as::<_, (i64,)>(&lock_sql);
        for id in chunk {
            lock = lock.bind(*id);
        }
        lock.fetch_all(&mut *tx).await?;
        let read_sql = format!("SELECT id, last_is_available FROM resources WHERE id IN ({list})");
        let mut read = sqlx::query(&read_sql);
        for id in chunk {
            read = read.bind(*id);
        }
        for row in read.fetch_all(&mut *tx).await? {
            was.insert(
                row.try_get("id")?,
                crate::optional_flag(&row, "last_is_available")?,
            );
        }
    }
    // Checks of resources deleted meanwhile are dropped; so is a repeated id.
    let mut fresh: Vec<&NewCheck> = Vec::with_capacity(results.len());
    let mut taken = std::collections::HashSet::with_capacity(results.len());
    for c in results {
        if was.contains_key(&c.resource_id) && taken.insert(c.resource_id) {
            fresh.push(c);
        }
    }
    let mut updated: HashMap<i64, Updated> = HashMap::new();
    for chunk in fresh.chunks(ROWS_PER_STATEMENT) {
        updated.extend(update_last(tx, chunk).await?);
    }
    let stored: Vec<&NewCheck> = fresh
        .into_iter()
        .filter(|c| updated.contains_key(&c.resource_id))
        .collect();
    for chunk in stored.chunks(ROWS_PER_STATEMENT) {
        insert_checks(tx, chunk).await?;
    }
    out.stored = stored.len();
    for c in stored {
        let u = &updated[&c.resource_id];
        let (user_id, uuid, url, count) = (u.user_id, &u.uuid, &u.url, &u.count);
        let previous = was.get(&c.resource_id).copied().flatten();
        if previous.is_some_and(|w| w != c.is_available) {
            insert_event(
                tx,
                user_id,
                uuid,
                url,
                STATUS_CHANGED,
                &json!({
                    "from": if c.is_available { "down" } else { "up" },
                    "to": if c.is_available { "up" } else { "down" },
                    "status_code": c.status_code,
                    "error_kind": c.error_kind,
                }),
                now,
            )
            .await?;
        }
        // (alert?, reminder?, down_alerted afterwards)
        let (alert, reminder, alerted) = if c.is_available {
            (u.down_alerted, false, false)
        } else if !u.down_alerted {
            let due = previous.is_some() && *count >= u.alert_after.max(1);
            (due, false, due)
        } else {
            let due = u.remind_every_hours.is_some_and(|h| {
                u.last_alert_at
                    .is_none_or(|at| now - at >= h * HOUR_MS_ALERT)
            });
            (due, due, true)
        };
        if alert {
            sqlx::query("UPDATE resources SET down_alerted = $1, last_alert_at = $2 WHERE id = $3")
                .bind(alerted)
                .bind(now)
                .bind(c.resource_id)
                .execute(&mut *tx)
                .await?;
            let channel_ids = crate::channels::deliverable_for(tx, user_id, c.resource_id).await?;
            out.changes.push(StatusChange {
                user_id,
                resource_uuid: uuid.clone(),
                url: url.clone(),
                is_available: c.is_available,
                reminder,
                channel_ids,
                check: c.clone(),
            });
        }
        let limit = match u.delete_after_failures {
            Some(0) => None,
            Some(n) => Some(n),
            None => Some(max_retries),
        };
        if !c.is_available && limit.is_some_and(|l| *count >= l) {
            let details = json!({
                "reason": "unavailable",
                "unavailable_count": count,
                "status_code": c.status_code,
                "error_kind": c.error_kind,
            });
            if let Some(d) =
                delete_in(tx, user_id, &ResourceKey::Id(c.resource_id), &details, now).await?
            {
                out.deleted.push(d);
            }
        }
    }
    Ok(out)
}

/// Rows per multi-row statement of [`record_batch`] (see `imports::ROWS_PER_INSERT` on why
/// SQLite wants few parameters per statement).
const ROWS_PER_STATEMENT: usize = 64;

/// Writes the `last_*` columns and the failure counter of checked resources.
/// Returns, per resource id, what the alert and failure policies need.
async fn update_last(tx: &mut AnyConnection, checks: &[&NewCheck]) -> Result<Vec<(i64, Updated)>> {
    let values: Vec<String> = (0..checks.len())
        .map(|i| {
            let b = i * 5;
            format!(
                "(${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5
            )
        })
        .collect();
    let sql = format!(
        "WITH v (id, status_code, is_available, checked_at, response_time_ms) AS (VALUES {}) \
         UPDATE resources SET last_status_code = v.status_code, \
             last_is_available = v.is_available, last_checked_at = v.checked_at, \
             last_response_time_ms = v.response_time_ms, \
             unavailable_count = CASE WHEN v.is_available THEN 0 \
                                      ELSE resources.unavailable_count + 1 END \
         FROM v WHERE resources.id = v.id \
         RETURNING resources.id, resources.user_id, resources.uuid, resources.full_url, \
                   resources.unavailable_count, resources.alert_after, \
                   resources.delete_after_failures, resources.remind_every_hours, \
                   resources.down_alerted, resources.last_alert_at",
        values.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for c in checks {
        q = q
            .bind(c.resource_id)
            .bind(c.status_code)
            .bind(c.is_available)
            .bind(c.checked_at)
            .bind(c.response_time_ms);
    }
    let mut out = Vec::with_capacity(checks.len());
    for row in q.fetch_all(&mut *tx).await? {
        out.push((
            row.try_get("id")?,
            Updated {
                user_id: row.try_get("user_id")?,
                uuid: row.try_get("uuid")?,
                url: row.try_get("full_url")?,
                count: row.try_get("unavailable_count")?,
                alert_after: row.try_get("alert_after")?,
                delete_after_failures: row.try_get("delete_after_failures")?,
                remind_every_hours: row.try_get("remind_every_hours")?,
                down_alerted: flag(&row, "down_alerted")?,
                last_alert_at: row.try_get("last_alert_at")?,
            },
        ));
    }
    Ok(out)
}

async fn insert_checks(tx: &mut AnyConnection, checks: &[&NewCheck]) -> Result<()> {
    let values: Vec<String> = (0..checks.len())
        .map(|i| {
            let b = i * 7;
            format!(
                "(${}, ${}, ${}, ${}, ${}, ${}, ${})",
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6,
                b + 7
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO checks (resource_id, checked_at, status_code, error_kind, \
                             response_time_ms, is_available, final_url) VALUES {}",
        values.join(", ")
    );
    let mut q = sqlx::query(&sql);
    for c in checks {
        q = q
            .bind(c.resource_id)
            .bind(c.checked_at)
            .bind(c.status_code)
            .bind(c.error_kind.clone())
            .bind(c.response_time_ms)
            .bind(c.is_available)
            .bind(c.final_url.clone());
    }
    q.execute(&mut *tx).await?;
    Ok(())
}

/// The latest checks of a resource, newest first.
pub async fn recent(db: &Db, resource_id: i64, limit: i64) -> Result<Vec<Check>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {CHECK_COLUMNS} FROM checks WHERE resource_id = $1 \
         ORDER BY checked_at DESC, id DESC LIMIT $2"
    ))
    .bind(resource_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?)
}

/// (checks, available checks) of a resource since `since`: raw checks plus hourly roll-ups.
pub async fn uptime(db: &Db, resource_id: i64, since: UnixMillis) -> Result<(i64, i64)> {
    let (total, up): (i64, Option<i64>) = sqlx::query_as(
        "SELECT COUNT(*), SUM(CASE WHEN is_available THEN 1 ELSE 0 END) FROM checks \
         WHERE resource_id = $1 AND checked_at >= $2",
    )
    .bind(resource_id)
    .bind(since)
    .fetch_one(db.pool())
    .await?;
    let (old_total, old_up): (Option<i64>, Option<i64>) = sqlx::query_as(
        "SELECT CAST(SUM(checks) AS BIGINT), CAST(SUM(available) AS BIGINT) FROM check_hourly \
         WHERE resource_id = $1 AND hour_start >= $2",
    )
    .bind(resource_id)
    .bind(since)
    .fetch_one(db.pool())
    .await?;
    Ok((
        total + old_total.unwrap_or(0),
        up.unwrap_or(0) + old_up.unwrap_or(0),
    ))
}

const HOUR_MS: i64 = 3_600_000;

/// Rolls raw checks older than `raw_before` up into hourly aggregates (one transaction), and drops
/// aggregates older than `aggregates_before`. Returns the number of raw checks rolled up.
pub async fn roll_up(
    db: &Db,
    raw_before: UnixMillis,
    aggregates_before: UnixMillis,
) -> Result<u64> {
    // Whole hours only, so an hour is never half raw and half rolled up.
    let cutoff = raw_before.div_euclid(HOUR_MS) * HOUR_MS;
    let mut tx = db.begin().await?;
    sqlx::query(
        "INSERT INTO check_hourly (resource_id, hour_start, checks, available, response_ms_sum) \
         SELECT resource_id, (checked_at / 3600000) * 3600000, COUNT(*), \
                SUM(CASE WHEN is_available THEN 1 ELSE 0 END), CAST(SUM(response_time_ms) AS BIGINT) \
         FROM checks WHERE checked_at < $1 GROUP BY resource_id, (checked_at / 3600000) * 3600000 \
         ON CONFLICT (resource_id, hour_start) DO UPDATE SET \
             checks = check_hourly.checks + excluded.checks, \
             available = check_hourly.available + excluded.available, \
             response_ms_sum = check_hourly.response_ms_sum + excluded.response_ms_sum",
    )
    .bind(cutoff)
    .execute(&mut *tx)
    .await?;
    let rolled = sqlx::query("DELETE FROM checks WHERE checked_at < $1")
        .bind(cutoff)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    sqlx::query("DELETE FROM check_hourly WHERE hour_start < $1")
        .bind(aggregates_before)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(rolled)
}

/// Whether the user wants availability alerts (read in the transaction that records the change).
pub async fn alerts_wanted(conn: &mut AnyConnection, user_id: i64) -> Result<bool> {
    let row: Option<AnyRow> = sqlx::query("SELECT alerts_enabled FROM users WHERE id = $1")
        .bind(user_id)
        .fetch_optional(conn)
        .await?;
    Ok(match row {
        Some(r) => flag(&r, "alerts_enabled")?,
        None => false,
    })
}
