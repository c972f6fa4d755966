//! Watch: the resource catalogue, its news feed (events), ZIP import requests and screenshots.
//!
//! Every change to a resource writes its event in the same transaction, so the feed never shows
//! an addition that rolled back or misses a deletion that happened.

use crate::{Result, StorageError};
use pulseboard_domain::{ResourceUrl, UnixMillis};
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, FromRow, Row};
use std::collections::BTreeMap;

pub const RESOURCE_ADDED: &str = "resource_added";
pub const RESOURCE_DELETED: &str = "resource_deleted";
pub const STATUS_CHANGED: &str = "status_changed";
pub const PHOTO_ADDED: &str = "photo_added";

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
        })
    }
}

const COLUMNS: &str = "id, uuid, user_id, full_url, protocol, domain, domain_zone, url_path, \
                       query_params, unavailable_count, last_status_code, last_is_available, \
                       last_checked_at, last_response_time_ms, created_at, \
                       check_interval_secs, next_check_at";

#[derive(Debug, Clone)]
pub struct Event {
    pub id: i64,
    pub user_id: i64,
    pub resource_uuid: String,
    pub url: String,
    pub kind: String,
    pub created_at: UnixMillis,
    pub details: Value,
    /// False once the resource is deleted (its events stay in the feed).
    pub resource_exists: bool,
}

impl FromRow<'_, AnyRow> for Event {
    fn from_row(row: &AnyRow) -> std::result::Result<Self, sqlx::Error> {
        let details: String = row.try_get("details")?;
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            resource_uuid: row.try_get("resource_uuid")?,
            url: row.try_get("url")?,
            kind: row.try_get("kind")?,
            created_at: row.try_get("created_at")?,
            details: serde_json::from_str(&details).unwrap_or(Value::Null),
            resource_exists: crate::flag(row, "resource_exists")?,
        })
    }
}

/// The event's columns, and whether its resource still exists (the feed links only to those).
const EVENT_COLUMNS: &str = "id, user_id, resource_uuid, url, kind, created_at, details, \
     EXISTS (SELECT 1 FROM resources r WHERE r.uuid = events.resource_uuid) AS resource_exists";

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

/// One page of rows plus the total number of rows matching.
#[derive(Debug, Clone)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub total: i64,
}

/// Time-ordered (v7): an import appends to the uuid indexes instead of touching a random page
/// of them for every row.
fn new_uuid() -> String {
    uuid::Uuid::now_v7().hyphenated().to_string()
}

fn params_json(url: &ResourceUrl) -> String {
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

/// Rows per multi-row INSERT. SQLite looks a `$N` parameter up by walking the statement's list
/// of names, so binding costs grow with the square of the parameters per statement: at 250 rows
/// (2,250 parameters) that lookup was a third of an import's CPU time.
const ROWS_PER_INSERT: usize = 32;

/// Adds many resources at once (an import batch): the ones the user already has are skipped.
/// Returns the (uuid, full_url) of the ones created; each gets its `resource_added` event in the
/// caller's transaction. The URLs should be distinct.
pub async fn insert_batch(
    conn: &mut AnyConnection,
    user_id: i64,
    urls: &[ResourceUrl],
    event_details: &Value,
    now: UnixMillis,
) -> Result<Vec<(String, String)>> {
    let mut created = Vec::with_capacity(urls.len());
    for chunk in urls.chunks(ROWS_PER_INSERT) {
        created.extend(insert_rows(conn, user_id, None, chunk, now).await?);
    }
    let details = event_details.to_string();
    for chunk in created.chunks(ROWS_PER_INSERT * 2) {
        insert_added_events(conn, user_id, chunk, &details, now).await?;
    }
    Ok(created)
}

/// What [`import_batch`] did with the URLs of a batch.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ImportedBatch {
    /// Inserted now, each with its `resource_added` event.
    pub inserted: usize,
    /// Already in the catalogue because an earlier attempt of the same request inserted them.
    pub earlier: usize,
}

impl ImportedBatch {
    /// The URLs this import created, in this attempt or an earlier one.
    pub fn created(&self) -> usize {
        self.inserted + self.earlier
    }
}

/// An import's batch: like [`insert_batch`], and every row it inserts records the processing
/// request (`resources.import_id`). With `resumed` (an earlier attempt of this request may have
/// inserted rows before it died), the URLs that were skipped because they exist are told apart:
/// rows of this request count as `earlier`, the rest are duplicates. That costs one query per
/// insert statement that skipped a URL, and only on a resumed attempt: a first attempt runs the
/// same statements as before.
pub async fn import_batch(
    conn: &mut AnyConnection,
    user_id: i64,
    request_id: &str,
    resumed: bool,
    urls: &[ResourceUrl],
    event_details: &Value,
    now: UnixMillis,
) -> Result<ImportedBatch> {
    let mut created = Vec::with_capacity(urls.len());
    let mut earlier = 0;
    for chunk in urls.chunks(ROWS_PER_INSERT) {
        let rows = insert_rows(conn, user_id, Some(request_id), chunk, now).await?;
        if resumed && rows.len() < chunk.len() {
            let inserted: std::collections::HashSet<&str> =
                rows.iter().map(|(_, url)| url.as_str()).collect();
            let skipped: Vec<&str> = chunk
                .iter()
                .map(ResourceUrl::full_url)
                .filter(|url| !inserted.contains(url))
                .collect();
            earlier += count_imported_by(conn, user_id, request_id, &skipped).await?;
        }
        created.extend(rows);
    }
    let details = event_details.to_string();
    for chunk in created.chunks(ROWS_PER_INSERT * 2) {
        insert_added_events(conn, user_id, chunk, &details, now).await?;
    }
    Ok(ImportedBatch {
        inserted: created.len(),
        earlier,
    })
}

/// How many of these URLs of the user were created by the import `request_id`.
async fn count_imported_by(
    conn: &mut AnyConnection,
    user_id: i64,
    request_id: &str,
    urls: &[&str],
) -> Result<usize> {
    if urls.is_empty() {
        return Ok(0);
    }
    let list: Vec<String> = (0..urls.len()).map(|i| format!("${}", i + 3)).collect();
    let sql = format!(
        "SELECT COUNT(*) FROM resources WHERE user_id = $1 AND import_id = $2 AND full_url IN ({})",
        list.join(", ")
    );
    let mut q = sqlx::query_scalar::<_, i64>(&sql)
        .bind(user_id)
        .bind(request_id);
    for url in urls {
        q = q.bind(*url);
    }
    Ok(q.fetch_one(&mut *conn).await? as usize)
}

async fn insert_rows(
    conn: &mut AnyConnection,
    user_id: i64,
    import_id: Option<&str>,
    urls: &[ResourceUrl],
    now: UnixMillis,
) -> Result<Vec<(String, String)>> {
    // user_id, created_at and import_id are shared: $1, $2 and $3. Each row is due for its first
    // check at once (next_check_at = created_at): the next due sweep takes it.
    let values: Vec<String> = (0..urls.len())
        .map(|i| {
            let b = 4 + i * 7;
            format!(
                "(${}, $1, ${}, ${}, ${}, ${}, ${}, ${}, $2, $3, $2)",
                b,
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO resources (uuid, user_id, full_url, protocol, domain, domain_zone, url_path, \
                                query_params, created_at, import_id, next_check_at) \
         VALUES {} ON CONFLICT (user_id, full_url) DO NOTHING RETURNING uuid, full_url",
        values.join(", ")
    );
    let mut q = sqlx::query_as::<_, (String, String)>(&sql)
        .bind(user_id)
        .bind(now)
        .bind(import_id);
    for url in urls {
        q = q
            .bind(new_uuid())
            .bind(url.full_url().to_owned())
            .bind(url.protocol().to_owned())
            .bind(url.domain().to_owned())
            .bind(url.domain_zone().to_owned())
            .bind(url.url_path().to_owned())
            .bind(params_json(url));
    }
    Ok(q.fetch_all(&mut *conn).await?)
}

async fn insert_added_events(
    conn: &mut AnyConnection,
    user_id: i64,
    created: &[(String, String)],
    details: &str,
    now: UnixMillis,
) -> Result<()> {
    if created.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = (0..created.len())
        .map(|i| {
            format!(
                "($1, ${}, ${}, '{RESOURCE_ADDED}', $2, $3)",
                i * 2 + 4,
                i * 2 + 5
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO events (user_id, resource_uuid, url, kind, created_at, details) VALUES {}",
        values.join(", ")
    );
    let mut q = sqlx::query(&sql).bind(user_id).bind(now).bind(details);
    for (uuid, url) in created {
        q = q.bind(uuid.clone()).bind(url.clone());
    }
    q.execute(&mut *conn).await?;
    Ok(())
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
    pool: &AnyPool,
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
        .fetch_all(pool)
        .await?;
    let (total, count_rows) = match rows.first() {
        Some(row) => (row.try_get("total_items")?, row.try_get("count_rows")?),
        None => {
            let sql = format!("SELECT ({total_sql}), ({rows_sql})");
            bind_all_as::<(i64, i64)>(sqlx::query_as(&sql), &wh.binds)
                .fetch_one(pool)
                .await?
        }
    };
    // On PostgreSQL every write appends a delta row; fold them once they pile up. Off the
    // request's path: the total above is already exact.
    if count_rows > COMPACT_AFTER_ROWS && is_postgres(pool) {
        let pool = pool.clone();
        tokio::spawn(async move {
            if let Err(e) = compact_counts(&pool, user_id).await {
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

fn is_postgres(pool: &AnyPool) -> bool {
    pool.connect_options()
        .database_url
        .scheme()
        .starts_with("postgres")
}

/// Folds the counts of every user whose rows have piled up (the cleanup job: a user who never
/// lists their resources never triggers [`compact_counts`] from the list). Returns how many users.
pub async fn compact_all_counts(pool: &AnyPool) -> Result<usize> {
    let users: Vec<(i64,)> =
        sqlx::query_as("SELECT user_id FROM resource_counts GROUP BY user_id HAVING COUNT(*) > $1")
            .bind(COMPACT_AFTER_ROWS)
            .fetch_all(pool)
            .await?;
    for (user_id,) in &users {
        compact_counts(pool, *user_id).await?;
    }
    Ok(users.len())
}

/// Folds a user's `resource_counts` rows into one per key. Safe beside writers and other
/// compactions: the DELETE takes only rows committed before it, whose sum is written back in the
/// same transaction; deltas committed meanwhile stay as they are.
pub async fn compact_counts(pool: &AnyPool, user_id: i64) -> Result<()> {
    let mut tx = pool.begin().await?;
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

pub async fn get(pool: &AnyPool, user_id: i64, key: &ResourceKey) -> Result<Option<Resource>> {
    let (col, b) = key.clause();
    let sql = format!("SELECT {COLUMNS} FROM resources WHERE user_id = $1 AND {col} = $2");
    Ok(bind_all_as(sqlx::query_as(&sql), &[Bind::I64(user_id), b])
        .fetch_optional(pool)
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
/// None when the user has no such resource.
pub async fn delete(
    pool: &AnyPool,
    user_id: i64,
    key: &ResourceKey,
    details: &Value,
    now: UnixMillis,
) -> Result<Option<Deleted>> {
    let mut tx = pool.begin().await?;
    let gone = delete_in(&mut tx, user_id, key, details, now).await?;
    tx.commit().await?;
    Ok(gone)
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

/// Writes one event on the given connection (the transaction of the change it reports).
pub async fn insert_event(
    conn: &mut AnyConnection,
    user_id: i64,
    resource_uuid: &str,
    url: &str,
    kind: &str,
    details: &Value,
    now: UnixMillis,
) -> Result<i64> {
    let (id,): (i64,) = sqlx::query_as(
        "INSERT INTO events (user_id, resource_uuid, url, kind, created_at, details) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(user_id)
    .bind(resource_uuid)
    .bind(url)
    .bind(kind)
    .bind(now)
    .bind(details.to_string())
    .fetch_one(conn)
    .await?;
    Ok(id)
}

/// The user's events, newest first.
pub async fn feed(pool: &AnyPool, user_id: i64, limit: i64, offset: i64) -> Result<Page<Event>> {
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(pool)
        .await?;
    let items = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE user_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(user_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(pool)
    .await?;
    Ok(Page { items, total })
}

/// The latest events of one resource, newest first.
pub async fn events_of(
    pool: &AnyPool,
    user_id: i64,
    resource_uuid: &str,
    limit: i64,
) -> Result<Vec<Event>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE user_id = $1 AND resource_uuid = $2 \
         ORDER BY id DESC LIMIT $3"
    ))
    .bind(user_id)
    .bind(resource_uuid)
    .bind(limit)
    .fetch_all(pool)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Import requests

pub const STATUS_PENDING: &str = "pending";
pub const STATUS_IN_PROCESS: &str = "in_process";
pub const STATUS_SUCCEEDED: &str = "succeeded";
pub const STATUS_FAILED: &str = "failed";

#[derive(Debug, Clone)]
pub struct ProcessingRequest {
    pub id: String,
    pub user_id: i64,
    pub status: String,
    pub total: i64,
    pub processed: i64,
    pub created: i64,
    pub duplicates: i64,
    pub error_count: i64,
    pub error_urls: Vec<String>,
    pub failure: Option<String>,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

impl ProcessingRequest {
    pub fn is_finished(&self) -> bool {
        self.status == STATUS_SUCCEEDED || self.status == STATUS_FAILED
    }
}

impl FromRow<'_, AnyRow> for ProcessingRequest {
    fn from_row(row: &AnyRow) -> std::result::Result<Self, sqlx::Error> {
        let errors: String = row.try_get("error_urls")?;
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            status: row.try_get("status")?,
            total: row.try_get("total")?,
            processed: row.try_get("processed")?,
            created: row.try_get("created")?,
            duplicates: row.try_get("duplicates")?,
            error_count: row.try_get("error_count")?,
            error_urls: serde_json::from_str(&errors).unwrap_or_default(),
            failure: row.try_get("failure")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

const REQUEST_COLUMNS: &str = "id, user_id, status, total, processed, created, duplicates, \
                               error_count, error_urls, failure, created_at, updated_at";

/// Creates a pending import request on the given connection (with its job, in one transaction).
pub async fn create_request(
    conn: &mut AnyConnection,
    id: &str,
    user_id: i64,
    now: UnixMillis,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO processing_requests (id, user_id, status, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $4)",
    )
    .bind(id)
    .bind(user_id)
    .bind(STATUS_PENDING)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The user's imports still to finish: pending or in process, with their job (idempotency key
/// `job_key_prefix` + request id) queued or running. A request whose job is dead or gone will
/// never finish, so it does not count (reading it fails it: [`fail_request_without_job`]).
pub async fn imports_in_flight(pool: &AnyPool, user_id: i64, job_key_prefix: &str) -> Result<i64> {
    Ok(sqlx::query_scalar(
        "SELECT COUNT(*) FROM processing_requests p \
         WHERE p.user_id = $1 AND p.status IN ($2, $3) AND EXISTS \
           (SELECT 1 FROM jobs j WHERE j.idempotency_key = $4 || p.id \
              AND j.status IN ('queued', 'running'))",
    )
    .bind(user_id)
    .bind(STATUS_PENDING)
    .bind(STATUS_IN_PROCESS)
    .bind(job_key_prefix)
    .fetch_one(pool)
    .await?)
}

/// A request of this user (None for another user's).
pub async fn request_of(
    pool: &AnyPool,
    user_id: i64,
    id: &str,
) -> Result<Option<ProcessingRequest>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM processing_requests WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(pool)
    .await?)
}

pub async fn request(pool: &AnyPool, id: &str) -> Result<Option<ProcessingRequest>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {REQUEST_COLUMNS} FROM processing_requests WHERE id = $1"
    ))
    .bind(id)
    .fetch_optional(pool)
    .await?)
}

/// Counters of an import so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Progress {
    pub total: i64,
    pub processed: i64,
    pub created: i64,
    pub duplicates: i64,
    pub error_count: i64,
    pub error_urls: Vec<String>,
}

/// Starts (or restarts, after a crashed attempt) processing: status in_process, counters reset.
pub async fn start_request(pool: &AnyPool, id: &str, total: i64, now: UnixMillis) -> Result<()> {
    sqlx::query(
        "UPDATE processing_requests SET status = $1, total = $2, processed = 0, created = 0, \
         duplicates = 0, error_count = 0, error_urls = '[]', failure = NULL, updated_at = $3 \
         WHERE id = $4",
    )
    .bind(STATUS_IN_PROCESS)
    .bind(total)
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Records progress (in the transaction of the batch it counts).
pub async fn update_progress(
    conn: &mut AnyConnection,
    id: &str,
    p: &Progress,
    now: UnixMillis,
) -> Result<()> {
    sqlx::query(
        "UPDATE processing_requests SET total = $1, processed = $2, created = $3, duplicates = $4, \
         error_count = $5, error_urls = $6, updated_at = $7 WHERE id = $8",
    )
    .bind(p.total)
    .bind(p.processed)
    .bind(p.created)
    .bind(p.duplicates)
    .bind(p.error_count)
    .bind(serde_json::to_string(&p.error_urls).unwrap_or_else(|_| "[]".into()))
    .bind(now)
    .bind(id)
    .execute(conn)
    .await?;
    Ok(())
}

/// Ends a request: succeeded, or failed with a reason.
pub async fn finish_request(
    pool: &AnyPool,
    id: &str,
    failure: Option<&str>,
    now: UnixMillis,
) -> Result<()> {
    let status = if failure.is_some() {
        STATUS_FAILED
    } else {
        STATUS_SUCCEEDED
    };
    sqlx::query(
        "UPDATE processing_requests SET status = $1, failure = $2, updated_at = $3 WHERE id = $4",
    )
    .bind(status)
    .bind(failure)
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Ends an unfinished request as `failed` when its import job (idempotency key `job_key`) can no
/// longer run: dead-lettered (out of attempts, timed out or panicked every time, a crashed worker)
/// or discarded by an admin. The reason is the dead job's last error. True if it changed the row.
/// (The import handler marks its own final failure; this catches the ends it cannot see.)
pub async fn fail_request_without_job(
    pool: &AnyPool,
    id: &str,
    job_key: &str,
    now: UnixMillis,
) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE processing_requests SET status = $1, updated_at = $2, failure = \
           'The import stopped after repeated errors: ' || COALESCE( \
             (SELECT last_error FROM jobs WHERE idempotency_key = $3 AND status = 'dead'), \
             'its job was removed') \
         WHERE id = $4 AND status IN ($5, $6) AND NOT EXISTS \
           (SELECT 1 FROM jobs WHERE idempotency_key = $3 AND status IN ('queued', 'running', 'done'))",
    )
    .bind(STATUS_FAILED)
    .bind(now)
    .bind(job_key)
    .bind(id)
    .bind(STATUS_PENDING)
    .bind(STATUS_IN_PROCESS)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() > 0)
}

// ---------------------------------------------------------------------------------------------
// Screenshots

#[derive(Debug, Clone, FromRow)]
pub struct Screenshot {
    pub id: i64,
    pub resource_id: i64,
    pub blob_key: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub source: String,
    pub created_at: i64,
}

const SCREENSHOT_COLUMNS: &str =
    "id, resource_id, blob_key, content_type, size_bytes, source, created_at";

/// Stores the screenshot of a resource (replacing the previous one) and writes a `photo_added`
/// event. Returns the replaced screenshot's blob key, so that the caller can delete its bytes.
pub async fn set_screenshot(
    pool: &AnyPool,
    resource: &Resource,
    blob_key: &str,
    content_type: &str,
    size_bytes: i64,
    source: &str,
    now: UnixMillis,
) -> Result<(Screenshot, Option<String>)> {
    let mut tx = pool.begin().await?;
    let old: Option<(String,)> =
        sqlx::query_as("DELETE FROM screenshots WHERE resource_id = $1 RETURNING blob_key")
            .bind(resource.id)
            .fetch_optional(&mut *tx)
            .await?;
    let shot: Screenshot = sqlx::query_as(&format!(
        "INSERT INTO screenshots (resource_id, blob_key, content_type, size_bytes, source, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SCREENSHOT_COLUMNS}"
    ))
    .bind(resource.id)
    .bind(blob_key)
    .bind(content_type)
    .bind(size_bytes)
    .bind(source)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    insert_event(
        &mut tx,
        resource.user_id,
        &resource.uuid,
        &resource.full_url,
        PHOTO_ADDED,
        &serde_json::json!({"source": source, "content_type": content_type, "size_bytes": size_bytes}),
        now,
    )
    .await?;
    tx.commit().await?;
    Ok((shot, old.map(|(k,)| k)))
}

pub async fn screenshot_of(pool: &AnyPool, resource_id: i64) -> Result<Option<Screenshot>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SCREENSHOT_COLUMNS} FROM screenshots WHERE resource_id = $1"
    ))
    .bind(resource_id)
    .fetch_optional(pool)
    .await?)
}

// ---------------------------------------------------------------------------------------------
// Export (GET /user/export): everything of one user, one query per kind

/// All the user's resources in id order, each with whether it has a screenshot.
pub async fn all_of(pool: &AnyPool, user_id: i64) -> Result<Vec<(Resource, bool)>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS}, EXISTS (SELECT 1 FROM screenshots s WHERE s.resource_id = resources.id) \
         AS has_screenshot FROM resources WHERE user_id = $1 ORDER BY id"
    ))
    .bind(user_id)
    .fetch_all(pool)
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

/// All the user's events, oldest first.
pub async fn all_events(pool: &AnyPool, user_id: i64) -> Result<Vec<Event>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE user_id = $1 ORDER BY id"
    ))
    .bind(user_id)
    .fetch_all(pool)
    .await?)
}
