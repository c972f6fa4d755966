//! Notification channels (migration 0014): per user, each with its kind, settings (JSON, secrets
//! included: callers decide what to show) and the outcome of its latest delivery.

use crate::{flag, Db, Result};
use pulseboard_domain::UnixMillis;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};

#[derive(Debug, Clone)]
pub struct Channel {
    pub id: i64,
    pub user_id: i64,
    pub kind: String,
    pub name: String,
    /// The stored settings (JSON), secrets included.
    pub config: String,
    pub enabled: bool,
    /// False for an email channel to another address until its link is opened.
    pub confirmed: bool,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
    pub last_delivery_at: Option<UnixMillis>,
    /// `ok`, `retrying` or `failed`.
    pub last_delivery_status: Option<String>,
    pub last_delivery_error: Option<String>,
}

impl FromRow<'_, AnyRow> for Channel {
    fn from_row(row: &AnyRow) -> std::result::Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            kind: row.try_get("kind")?,
            name: row.try_get("name")?,
            config: row.try_get("config")?,
            enabled: flag(row, "enabled")?,
            confirmed: flag(row, "confirmed")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
            last_delivery_at: row.try_get("last_delivery_at")?,
            last_delivery_status: row.try_get("last_delivery_status")?,
            last_delivery_error: row.try_get("last_delivery_error")?,
        })
    }
}

const COLUMNS: &str = "id, user_id, kind, name, config, enabled, confirmed, created_at, \
                       updated_at, last_delivery_at, last_delivery_status, last_delivery_error";

/// A user has few channels (a handful): the list is not paged.
pub async fn list(db: &Db, user_id: i64) -> Result<Vec<Channel>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM channels WHERE user_id = $1 ORDER BY id"
    ))
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}

/// One channel of `user_id` (None for another user's: the caller answers 404).
pub async fn get(db: &Db, user_id: i64, id: i64) -> Result<Option<Channel>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM channels WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

/// A channel whoever owns it (deliveries, the confirmation link).
pub async fn by_id(db: &Db, id: i64) -> Result<Option<Channel>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM channels WHERE id = $1"))
            .bind(id)
            .fetch_optional(db.pool())
            .await?,
    )
}

pub struct NewChannel {
    pub user_id: i64,
    pub kind: String,
    pub name: String,
    pub config: String,
    pub enabled: bool,
    pub confirmed: bool,
}

/// Inserts a channel (in the caller's transaction, so that its confirmation mail is enqueued with
/// it).
pub async fn create(conn: &mut AnyConnection, c: NewChannel, now: UnixMillis) -> Result<Channel> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO channels (user_id, kind, name, config, enabled, confirmed, created_at, \
                               updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $7) RETURNING {COLUMNS}"
    ))
    .bind(c.user_id)
    .bind(c.kind)
    .bind(c.name)
    .bind(c.config)
    .bind(c.enabled)
    .bind(c.confirmed)
    .bind(now)
    .fetch_one(conn)
    .await?)
}

/// A change to a channel; None leaves a column as it is.
#[derive(Default)]
pub struct ChannelPatch {
    pub kind: Option<String>,
    pub name: Option<String>,
    pub config: Option<String>,
    pub enabled: Option<bool>,
    pub confirmed: Option<bool>,
}

/// Applies `patch` to a channel of `user_id`; None if there is no such channel.
pub async fn update(
    conn: &mut AnyConnection,
    user_id: i64,
    id: i64,
    p: ChannelPatch,
    now: UnixMillis,
) -> Result<Option<Channel>> {
    Ok(sqlx::query_as(&format!(
        "UPDATE channels SET kind = COALESCE($1, kind), name = COALESCE($2, name), \
                config = COALESCE($3, config), enabled = COALESCE($4, enabled), \
                confirmed = COALESCE($5, confirmed), updated_at = $6 \
         WHERE id = $7 AND user_id = $8 RETURNING {COLUMNS}"
    ))
    .bind(p.kind)
    .bind(p.name)
    .bind(p.config)
    .bind(p.enabled)
    .bind(p.confirmed)
    .bind(now)
    .bind(id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?)
}

/// Deletes a channel of `user_id`; false if there was none. Deliveries still queued for it find
/// nothing and end.
pub async fn delete(conn: &mut AnyConnection, user_id: i64, id: i64) -> Result<bool> {
    let done = sqlx::query("DELETE FROM channels WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Confirms an email channel, if its settings are still `config` (the address the link was
/// signed for: a link to an address since replaced confirms nothing). True if it did.
pub async fn confirm(db: &Db, id: i64, config: &str, now: UnixMillis) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE channels SET confirmed = $1, updated_at = $2 WHERE id = $3 AND config = $4",
    )
    .bind(true)
    .bind(now)
    .bind(id)
    .bind(config)
    .execute(db.pool())
    .await?;
    Ok(done.rows_affected() == 1)
}

/// The channels an alert about `resource_id` goes to: the deliverable ones of `user_id`, all of
/// them or only those the resource lists (migration 0015). Read before a deletion in the same
/// transaction, so that the down alert of a resource the failure policy deletes still goes out.
pub async fn deliverable_for(
    conn: &mut AnyConnection,
    user_id: i64,
    resource_id: i64,
) -> Result<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT c.id FROM channels c WHERE c.user_id = $1 AND c.enabled = $2 AND c.confirmed = $2 \
           AND (EXISTS (SELECT 1 FROM resources r WHERE r.id = $3 AND r.all_channels = $2) \
                OR c.id IN (SELECT channel_id FROM resource_channels WHERE resource_id = $3)) \
         ORDER BY c.id",
    )
    .bind(user_id)
    .bind(true)
    .bind(resource_id)
    .fetch_all(conn)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Of `ids`, those that are channels of `user_id` (to refuse another user's id in a resource's
/// channel list).
pub async fn owned(db: &Db, user_id: i64, ids: &[i64]) -> Result<Vec<i64>> {
    let mut out = Vec::with_capacity(ids.len());
    for chunk in ids.chunks(64) {
        let sql = format!(
            "SELECT id FROM channels WHERE user_id = $1 AND id IN ({})",
            crate::placeholders(2, chunk.len())
        );
        let mut q = sqlx::query_as::<_, (i64,)>(&sql).bind(user_id);
        for id in chunk {
            q = q.bind(*id);
        }
        out.extend(q.fetch_all(db.pool()).await?.into_iter().map(|(id,)| id));
    }
    Ok(out)
}

/// The channel lists of the given resources (those that list channels; a resource following all
/// of them has none here), in one query for a page of resources.
pub async fn of_resources(
    db: &Db,
    resource_ids: &[i64],
) -> Result<std::collections::HashMap<i64, Vec<i64>>> {
    let mut out: std::collections::HashMap<i64, Vec<i64>> = Default::default();
    for chunk in resource_ids.chunks(64) {
        let sql = format!(
            "SELECT resource_id, channel_id FROM resource_channels WHERE resource_id IN ({}) \
             ORDER BY resource_id, channel_id",
            crate::placeholders(1, chunk.len())
        );
        let mut q = sqlx::query_as::<_, (i64, i64)>(&sql);
        for id in chunk {
            q = q.bind(*id);
        }
        for (r, c) in q.fetch_all(db.pool()).await? {
            out.entry(r).or_default().push(c);
        }
    }
    Ok(out)
}

/// Records the outcome of a delivery attempt (`ok`, `retrying` or `failed`, with the error).
pub async fn record_delivery(
    db: &Db,
    id: i64,
    at: UnixMillis,
    status: &str,
    error: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "UPDATE channels SET last_delivery_at = $1, last_delivery_status = $2, \
                last_delivery_error = $3 WHERE id = $4",
    )
    .bind(at)
    .bind(status)
    .bind(error)
    .bind(id)
    .execute(db.pool())
    .await?;
    Ok(())
}
