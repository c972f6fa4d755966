//! Watch: the news feed. Every change to a resource (added, deleted, a flip of availability, a new
//! screenshot) writes one event in the transaction of that change; the feed reads them back, and
//! keeps them after the resource is gone.

use crate::page::Page;
use crate::{Db, Result};
use pulseboard_domain::UnixMillis;
use serde_json::Value;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};

pub const RESOURCE_ADDED: &str = "resource_added";
pub const RESOURCE_DELETED: &str = "resource_deleted";
pub const STATUS_CHANGED: &str = "status_changed";
pub const PHOTO_ADDED: &str = "photo_added";

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
pub async fn feed(db: &Db, user_id: i64, limit: i64, offset: i64) -> Result<Page<Event>> {
    let (total,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM events WHERE user_id = $1")
        .bind(user_id)
        .fetch_one(db.pool())
        .await?;
    let items = sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE user_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3"
    ))
    .bind(user_id)
    .bind(limit)
    .bind(offset)
    .fetch_all(db.pool())
    .await?;
    Ok(Page { items, total })
}

/// The latest events of one resource, newest first.
pub async fn events_of(
    db: &Db,
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
    .fetch_all(db.pool())
    .await?)
}

/// One `resource_added` event per created `(uuid, full_url)`, in one statement (an import's batch).
pub(crate) async fn insert_added_events(
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

/// All the user's events, oldest first.
pub async fn all_events(db: &Db, user_id: i64) -> Result<Vec<Event>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE user_id = $1 ORDER BY id"
    ))
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}
