//! Watch: the resource catalogue: adding one, reading, listing with filters and totals, deleting.
//!
//! Every change to a resource writes its event (see [`crate::feed`]) in the same transaction, so
//! the feed never shows an addition that rolled back or misses a deletion that happened. Bulk
//! inserts of imports are in [`crate::imports`], screenshots in [`crate::screenshots`].

use crate::feed::{insert_event, RESOURCE_ADDED, RESOURCE_DELETED};
use crate::page::Page;
use crate::{Backend, Db, Result, StorageError};
use pulseboard_domain::{ResourceUrl, UnixMillis};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};
use std::collections::BTreeMap;

#[derive(Debug, Clone)]
pub struct Resource {
    pub id: i64,
    pub uuid: String,
    pub user_id: i64,
    pub full_url: String,
    pub protocol: String,
    pub domain: String,
    pub domain_zone: String,
    pub url_path: String,
    pub query_params: BTreeMap<String, String>,
    pub unavailable_count: i64,
    pub last_status_code: Option<i64>,
    pub last_is_available: Option<bool>,
    pub last_checked_at: Option<UnixMillis>,
    pub last_response_time_ms: Option<i64>,
    pub created_at: UnixMillis,
    /// Own check interval; None: checked by every availability round (see `checks`).
    pub check_interval_secs: Option<i64>,
    /// When the resource is next due: its first check (set at creation), then every interval;
    /// None for a resource without an interval once checked (it follows the rounds).
    pub next_check_at: Option<UnixMillis>,
    /// Consecutive failed checks before the down alert (see `checks::record_batch`).
    pub alert_after: i64,
    /// Failed checks in a row that delete it; None follows `monitor.max_retries`, 0 never.
    pub delete_after_failures: Option<i64>,
    /// A reminder every so many hours while down and alerted; None for none.
    pub remind_every_hours: Option<i64>,
    /// Alerts go to every channel of the owner (else only to its `resource_channels`).
    pub all_channels: bool,
}

impl FromRow<'_, AnyRow> for Resource {
    fn from_row(row: &AnyRow) -> std::result::Result<Self, sqlx::Error> {
        let params: String = row.try_get("query_params")?;
        Ok(Self {
            id: row.try_get("id")?,
            uuid: row.try_get("uuid")?,
            user_id: row.try_get("user_id")?,
            full_url: row.try_get("full_url")?,
            protocol: row.try_get("protocol")?,
            domain: row.try_get("domain")?,
            domain_zone: row.try_get("domain_zone")?,
            url_path: row.try_get("url_path")?,
            query_params: serde_json::from_str(&params).unwrap_or_default(),
            unavailable_count: row.try_get("unavailable_count")?,
            last_status_code: row.try_get("last_status_code")?,
            last_is_available: crate::optional_flag(row, "last_is_available")?,
            last_checked_at: row.try_get("last_checked_at")?,
            last_response_time_ms: row.try_get("last_response_time_ms")?,
            created_at: row.try_get("created_at")?,
            check_interval_secs: row.try_get("check_interval_secs")?,
            next_check_at: row.try_get("next_check_at")?,
            alert_after: row.try_get("alert_after")?,
            delete_after_failures: row.try_get("delete_after_failures")?,
            remind_every_hours: row.try_get("remind_every_hours")?,
            all_channels: crate::flag(row, "all_channels")?,
        })
    }
}

pub(crate) const COLUMNS: &str =
    "id, uuid, user_id, full_url, protocol, domain, domain_zone, url_path, \
                       query_params, unavailable_count, last_status_code, last_is_available, \
                       last_checked_at, last_response_time_ms, created_at, \
                       check_interval_secs, next_check_at, alert_after, delete_after_failures, \
                       remind_every_hours, all_channels";

/// A resource named in a path: by its numeric id or by its uuid.
#[derive(Debug, Clone)]
pub enum ResourceKey {
    Id(i64),
    Uuid(String),
}

impl ResourceKey {
    /// Numeric ids and canonical (lower-case, hyphenated) uuids; None for anything else.
    pub fn parse(raw: &str) -> Option<Self> {
        if let Ok(id) = raw.parse::<i64>() {
            return (id > 0).then_some(ResourceKey::Id(id));
        }
        uuid::Uuid::parse_str(raw)
            .ok()
            .map(|u| ResourceKey::Uuid(u.hyphenated().to_string()))
    }

    fn clause(&self) -> (&'static str, Bind) {
        match self {
            ResourceKey::Id(id) => ("id", Bind::I64(*id)),
            ResourceKey::Uuid(u) => ("uuid", Bind::Str(u.clone())),
        }
    }
}

/// Filters of `GET /resources`; all optional, combined with AND.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub available: Option<bool>,
    pub id: Option<i64>,
    pub uuid: Option<String>,
    pub domain_zone: Option<String>,
}

#[derive(Debug, Clone)]
enum Bind {
    I64(i64),
    Str(String),
    Bool(bool),
}

fn bind_all<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    binds: &[Bind],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::I64(v) => q.bind(*v),
            Bind::Str(v) => q.bind(v.clone()),
            Bind::Bool(v) => q.bind(*v),
        };
    }
    q
}

fn bind_all_as<'q, T>(
    mut q: sqlx::query::QueryAs<'q, sqlx::Any, T, sqlx::any::AnyArguments<'q>>,
    binds: &[Bind],
) -> sqlx::query::QueryAs<'q, sqlx::Any, T, sqlx::any::AnyArguments<'q>> {
    for b in binds {
        q = match b {
            Bind::I64(v) => q.bind(*v),
            Bind::Str(v) => q.bind(v.clone()),
            Bind::Bool(v) => q.bind(*v),
        };
    }
    q
}

/// Time-ordered (v7): an import appends to the uuid indexes instead of touching a random page
/// of them for every row.
pub(crate) fn new_uuid() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

pub(crate) fn params_json(url: &ResourceUrl) -> String {
    serde_json::to_string(&url.query_params()).unwrap_or_else(|_| "{}".into())
}

/// Adds a resource to the user's catalogue with its `resource_added` event, on the caller's
/// transaction (`Db::write`).
/// `StorageError::Conflict` when the user already has this URL. It is due at once (the next due
/// sweep checks it); then every interval, or with the rounds when it has none.
pub async fn create(
    tx: &mut AnyConnection,
    user_id: i64,
    url: &ResourceUrl,
    check_interval_secs: Option<i64>,
    now: UnixMillis,
) -> Result<Resource> {
    let resource: Resource = sqlx::query_as(&format!(
        "INSERT INTO resources (uuid, user_id, full_url, protocol, domain, domain_zone, url_path, \
                                query_params, created_at, check_interval_secs, next_check_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING {COLUMNS}"
    ))
    .bind(new_uuid())
    .bind(user_id)
    .bind(url.full_url())
    .bind(url.protocol())
    .bind(url.domain())
    .bind(url.domain_zone())
    .bind(url.url_path())
    .bind(params_json(url))
    .bind(now)
    .bind(check_interval_secs)
    .bind(now)
    .fetch_one(&mut *tx)
    .await
    .map_err(StorageError::from_insert)?;
    insert_event(
        tx,
        user_id,
        &resource.uuid,
        &resource.full_url,
        RESOURCE_ADDED,
        &serde_json::json!({"source": "api"}),
        now,
    )
    .await?;
    Ok(resource)
}

/// A filter as SQL: the `WHERE` condition on `resources`, its binds ($1 is the user), and the
/// condition on `resource_counts` that selects the same resources, written over the same binds.
struct Where {
    sql: String,
    binds: Vec<Bind>,
    /// None when the filter names one resource (id or uuid): counted from `resources` instead.
    counts_sql: Option<String>,
}

fn filter_clauses(user_id: i64, f: &Filter) -> Where {
    let mut clauses = vec!["user_id = $1".to_owned()];
    let mut counts = vec!["user_id = $1".to_owned()];
    let mut binds = vec![Bind::I64(user_id)];
    if let Some(a) = f.available {
        binds.push(Bind::Bool(a));
        let at = binds.len();
        clauses.push(format!("last_is_available = ${at}"));
        // A boolean on PostgreSQL, 0/1 on SQLite: the CASE reads both.
        counts.push(format!("availability = CASE WHEN ${at} THEN 1 ELSE 0 END"));
    }
    if let Some(id) = f.id {
        binds.push(Bind::I64(id));
        clauses.push(format!("id = ${}", binds.len()));
    }
    if let Some(u) = &f.uuid {
        binds.push(Bind::Str(u.clone()));
        clauses.push(format!("uuid = ${}", binds.len()));
    }
    if let Some(z) = &f.domain_zone {
        binds.push(Bind::Str(z.clone()));
        let at = binds.len();
        clauses.push(format!("domain_zone = ${at}"));
        counts.push(format!("domain_zone = ${at}"));
    }
    let names_one = f.id.is_some() || f.uuid.is_some();
    Where {
        sql: clauses.join(" AND "),
        binds,
        counts_sql: (!names_one).then(|| counts.join(" AND ")),
    }
}

impl Where {
    /// Scalar subqueries: the number of matching resources, and how many `resource_counts` rows
    /// that took (for compaction; 0 when counted from `resources`).
    fn total_exprs(&self) -> (String, String) {
        match &self.counts_sql {
            Some(c) => (
                format!(
                    "SELECT CAST(COALESCE(SUM(n), 0) AS BIGINT) FROM resource_counts WHERE {c}"
                ),
                format!("SELECT COUNT(*) FROM resource_counts WHERE {c}"),
            ),
            None => (
                format!("SELECT COUNT(*) FROM resources WHERE {}", self.sql),
                "SELECT CAST(0 AS BIGINT)".to_owned(),
            ),
        }
    }
}

/// One page of the user's resources matching `filter`, oldest first.
///
/// One statement: the page by a deferred join (the OFFSET walks an index of ids, and only the
/// page's rows are read from the table), with the total beside every row as a scalar subquery
/// over `resource_counts` (see migration 0007). Only an empty page costs a second statement.
pub async fn list(
    db: &Db,
    user_id: i64,
    filter: &Filter,
    limit: i64,
    offset: i64,
) -> Result<Page<Resource>> {
    let wh = filter_clauses(user_id, filter);
    let (total_sql, rows_sql) = wh.total_exprs();
    let n = wh.binds.len();
    let sql = format!(
        "SELECT {COLUMNS}, ({total_sql}) AS total_items, ({rows_sql}) AS count_rows \
         FROM resources WHERE id IN \
           (SELECT id FROM resources WHERE {} ORDER BY id LIMIT ${} OFFSET ${}) \
         ORDER BY id",
        wh.sql,
        n + 1,
        n + 2
    );
    let rows: Vec<AnyRow> = bind_all(sqlx::query(&sql), &wh.binds)
        .bind(limit)
        .bind(offset)
        .fetch_all(db.pool())
        .await?;
    let (total, count_rows) = match rows.first() {
        Some(row) => (row.try_get("total_items")?, row.try_get("count_rows")?),
        None => {
            let sql = format!("SELECT ({total_sql}), ({rows_sql})");
            bind_all_as::<(i64, i64)>(sqlx::query_as(&sql), &wh.binds)
                .fetch_one(db.pool())
                .await?
        }
    };
    // On PostgreSQL every write appends a delta row; fold them once they pile up. Off the
    // request's path: the total above is already exact.
    if count_rows > COMPACT_AFTER_ROWS && db.backend() == Backend::Postgres {
        let db = db.clone();
        tokio::spawn(async move {
            if let Err(e) = compact_counts(&db, user_id).await {
                tracing::debug!(user_id, error = %e, "resource counts not compacted");
            }
        });
    }
    let items = rows
        .iter()
        .map(Resource::from_row)
        .collect::<std::result::Result<Vec<_>, _>>()?;
    Ok(Page { items, total })
}

/// Delta rows a filter may read before the user's counts are folded (PostgreSQL only: SQLite
/// keeps one row per key).
const COMPACT_AFTER_ROWS: i64 = 64;

/// Folds the counts of every user whose rows have piled up (the cleanup job: a user who never
/// lists their resources never triggers [`compact_counts`] from the list). Returns how many users.
pub async fn compact_all_counts(db: &Db) -> Result<usize> {
    let users: Vec<(i64,)> =
        sqlx::query_as("SELECT user_id FROM resource_counts GROUP BY user_id HAVING COUNT(*) > $1")
            .bind(COMPACT_AFTER_ROWS)
            .fetch_all(db.pool())
            .await?;
    for (user_id,) in &users {
        compact_counts(db, *user_id).await?;
    }
    Ok(users.len())
}

/// Folds a user's `resource_counts` rows into one per key. Safe beside writers and other
/// compactions: the DELETE takes only rows committed before it, whose sum is written back in the
/// same transaction; deltas committed meanwhile stay as they are.
pub async fn compact_counts(db: &Db, user_id: i64) -> Result<()> {
    let mut tx = db.begin().await?;
    let rows: Vec<(String, i64, i64)> = sqlx::query_as(
        "DELETE FROM resource_counts WHERE user_id = $1 \
         RETURNING domain_zone, CAST(availability AS BIGINT), n",
    )
    .bind(user_id)
    .fetch_all(&mut *tx)
    .await?;
    let mut sums: BTreeMap<(String, i64), i64> = BTreeMap::new();
    for (zone, availability, n) in rows {
        *sums.entry((zone, availability)).or_default() += n;
    }
    sums.retain(|_, n| *n != 0);
    for chunk in sums.into_iter().collect::<Vec<_>>().chunks(200) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("($1, ${}, ${}, ${})", i * 3 + 2, i * 3 + 3, i * 3 + 4))
            .collect();
        let sql = format!(
            "INSERT INTO resource_counts (user_id, domain_zone, availability, n) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(&sql).bind(user_id);
        for ((zone, availability), n) in chunk {
            q = q.bind(zone.clone()).bind(*availability as i16).bind(*n);
        }
        q.execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(())
}

pub async fn get(db: &Db, user_id: i64, key: &ResourceKey) -> Result<Option<Resource>> {
    let (col, b) = key.clause();
    let sql = format!("SELECT {COLUMNS} FROM resources WHERE user_id = $1 AND {col} = $2");
    Ok(bind_all_as(sqlx::query_as(&sql), &[Bind::I64(user_id), b])
        .fetch_optional(db.pool())
        .await?)
}

/// What a deletion removed: the resource, and the blob key of its screenshot (whose bytes the
/// caller deletes from the blob store).
#[derive(Debug, Clone)]
pub struct Deleted {
    pub resource: Resource,
    pub screenshot_blob: Option<String>,
}

/// Deletes a resource and writes its `resource_deleted` event (which keeps the URL).
/// None when the user has no such resource. A request-sized write, so through [`Db::write`].
pub async fn delete(
    db: &Db,
    user_id: i64,
    key: &ResourceKey,
    details: &Value,
    now: UnixMillis,
) -> Result<Option<Deleted>> {
    let (key, details) = (key.clone(), details.clone());
    db.write(move |tx| Box::pin(async move { delete_in(tx, user_id, &key, &details, now).await }))
        .await
}

/// [`delete`] on the caller's connection (transaction), e.g. with the check that caused it.
pub async fn delete_in(
    tx: &mut AnyConnection,
    user_id: i64,
    key: &ResourceKey,
    details: &Value,
    now: UnixMillis,
) -> Result<Option<Deleted>> {
    let (col, b) = key.clause();
    let blob: Option<(String,)> = bind_all_as(
        sqlx::query_as(&format!(
            "SELECT s.blob_key FROM screenshots s JOIN resources r ON r.id = s.resource_id \
             WHERE r.user_id = $1 AND r.{col} = $2"
        )),
        &[Bind::I64(user_id), b.clone()],
    )
    .fetch_optional(&mut *tx)
    .await?;
    let sql =
        format!("DELETE FROM resources WHERE user_id = $1 AND {col} = $2 RETURNING {COLUMNS}");
    let gone: Option<Resource> = bind_all_as(sqlx::query_as(&sql), &[Bind::I64(user_id), b])
        .fetch_optional(&mut *tx)
        .await?;
    if let Some(r) = &gone {
        insert_event(
            tx,
            user_id,
            &r.uuid,
            &r.full_url,
            RESOURCE_DELETED,
            details,
            now,
        )
        .await?;
    }
    Ok(gone.map(|resource| Deleted {
        resource,
        screenshot_blob: blob.map(|(k,)| k),
    }))
}

// ---------------------------------------------------------------------------------------------
// Export (GET /user/export): everything of one user, one query per kind

/// All the user's resources in id order, each with whether it has a screenshot.
pub async fn all_of(db: &Db, user_id: i64) -> Result<Vec<(Resource, bool)>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}, EXISTS (SELECT 1 FROM screenshots s WHERE s.resource_id = resources.id) \
         AS has_screenshot FROM resources WHERE user_id = $1 ORDER BY id"
    ))
    .bind(user_id)
    .fetch_all(db.pool())
    .await?;
    rows.iter()
        .map(|row| {
            Ok((
                Resource::from_row(row)?,
                crate::flag(row, "has_screenshot")?,
            ))
        })
        .collect::<std::result::Result<_, sqlx::Error>>()
        .map_err(Into::into)
}

/// A change of a resource's alert settings (see migration 0015); None leaves a field as it is.
/// The values are checked by the caller (the API names the field of a bad one).
#[derive(Debug, Clone, Default)]
pub struct AlertSettings {
    pub alert_after: Option<i64>,
    pub delete_after_failures: Option<Option<i64>>,
    pub remind_every_hours: Option<Option<i64>>,
    /// Some(None): every channel of the owner, those added later included; Some(Some(ids)):
    /// only these (the caller checked they are the owner's).
    pub channels: Option<Option<Vec<i64>>>,
}

impl AlertSettings {
    pub fn is_empty(&self) -> bool {
        self.alert_after.is_none()
            && self.delete_after_failures.is_none()
            && self.remind_every_hours.is_none()
            && self.channels.is_none()
    }
}

/// Applies `settings` to the user's resource `resource_id` on the caller's transaction.
/// Returns false when the user has no such resource.
pub async fn set_alert_settings(
    tx: &mut AnyConnection,
    user_id: i64,
    resource_id: i64,
    settings: &AlertSettings,
) -> Result<bool> {
    // COALESCE keeps what is not given; a flag per nullable column tells "set to null" apart.
    let done = sqlx::query(
        "UPDATE resources SET alert_after = COALESCE($1, alert_after), \
             delete_after_failures = CASE WHEN $2 THEN $3 ELSE delete_after_failures END, \
             remind_every_hours = CASE WHEN $4 THEN $5 ELSE remind_every_hours END, \
             all_channels = CASE WHEN $6 THEN $7 ELSE all_channels END \
         WHERE id = $8 AND user_id = $9",
    )
    .bind(settings.alert_after)
    .bind(settings.delete_after_failures.is_some())
    .bind(settings.delete_after_failures.flatten())
    .bind(settings.remind_every_hours.is_some())
    .bind(settings.remind_every_hours.flatten())
    .bind(settings.channels.is_some())
    .bind(matches!(settings.channels, Some(None)))
    .bind(resource_id)
    .bind(user_id)
    .execute(&mut *tx)
    .await?;
    if done.rows_affected() == 0 {
        return Ok(false);
    }
    if let Some(channels) = &settings.channels {
        sqlx::query("DELETE FROM resource_channels WHERE resource_id = $1")
            .bind(resource_id)
            .execute(&mut *tx)
            .await?;
        let mut ids = channels.clone().unwrap_or_default();
        ids.sort_unstable();
        ids.dedup();
        for chunk in ids.chunks(64) {
            let values: Vec<String> = (0..chunk.len())
                .map(|i| format!("($1, ${})", i + 2))
                .collect();
            let sql = format!(
                "INSERT INTO resource_channels (resource_id, channel_id) VALUES {}",
                values.join(", ")
            );
            let mut q = sqlx::query(&sql).bind(resource_id);
            for id in chunk {
                q = q.bind(*id);
            }
            q.execute(&mut *tx).await?;
        }
    }
    Ok(true)
}
