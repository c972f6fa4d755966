use crate::{flag, Db, Result, StorageError};
use pulseboard_domain::{Email, Role, UnixMillis};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};

#[derive(Debug, Clone)]
pub struct User {
    pub id: i64,
    pub email: Email,
    pub password_hash: String,
    pub role: Role,
    pub locale: String,
    pub time_zone: String,
    pub digest_enabled: bool,
    pub alerts_enabled: bool,
    pub created_at: UnixMillis,
}

impl FromRow<'_, AnyRow> for User {
    fn from_row(row: &AnyRow) -> std::result::Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            email: Email::from_trusted(row.try_get("email")?),
            password_hash: row.try_get("password_hash")?,
            role: Role::from_db(&row.try_get::<String, _>("role")?),
            locale: row.try_get("locale")?,
            time_zone: row.try_get("time_zone")?,
            digest_enabled: flag(row, "digest_enabled")?,
            alerts_enabled: flag(row, "alerts_enabled")?,
            created_at: row.try_get("created_at")?,
        })
    }
}

const COLUMNS: &str = "id, email, password_hash, role, locale, time_zone, digest_enabled, \
                       alerts_enabled, created_at";

/// Inserts a user; `Conflict` when the email is taken.
pub async fn create(
    conn: &mut AnyConnection,
    email: &Email,
    password_hash: &str,
    now: UnixMillis,
) -> Result<User> {
    sqlx::query_as(&format!(
        "INSERT INTO users (email, password_hash, created_at, updated_at) VALUES ($1, $2, $3, $3) \
         RETURNING {COLUMNS}"
    ))
    .bind(email.as_str())
    .bind(password_hash)
    .bind(now)
    .fetch_one(conn)
    .await
    .map_err(StorageError::from_insert)
}

pub async fn by_id(db: &Db, id: i64) -> Result<Option<User>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(db.pool())
            .await?,
    )
}

pub async fn by_email(db: &Db, email: &Email) -> Result<Option<User>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE email = $1"))
            .bind(email.as_str())
            .fetch_optional(db.pool())
            .await?,
    )
}

/// Sets a user's role; false when no such user.
pub async fn set_role(db: &Db, email: &Email, role: Role, now: UnixMillis) -> Result<bool> {
    let done = sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE email = $3")
        .bind(role.as_str())
        .bind(now)
        .bind(email.as_str())
        .execute(db.pool())
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Settings a user may change about themselves. None leaves a setting as it is.
#[derive(Debug, Default)]
pub struct Settings {
    pub time_zone: Option<String>,
    pub locale: Option<String>,
    pub digest_enabled: Option<bool>,
    pub alerts_enabled: Option<bool>,
}

/// Changes a user's settings (a request-sized write: grouped on SQLite); None when no such user.
pub async fn update_settings(
    db: &Db,
    id: i64,
    s: Settings,
    now: UnixMillis,
) -> Result<Option<User>> {
    db.write(move |conn| {
        Box::pin(async move {
            Ok(sqlx::query_as(&format!(
                "UPDATE users SET time_zone = COALESCE($1, time_zone), locale = COALESCE($2, locale), \
                 digest_enabled = COALESCE($3, digest_enabled), \
                 alerts_enabled = COALESCE($4, alerts_enabled), \
                 updated_at = $5 WHERE id = $6 RETURNING {COLUMNS}"
            ))
            .bind(s.time_zone)
            .bind(s.locale)
            .bind(s.digest_enabled)
            .bind(s.alerts_enabled)
            .bind(now)
            .bind(id)
            .fetch_optional(conn)
            .await?)
        })
    })
    .await
}

/// Time zones of users who get the digest.
pub async fn digest_time_zones(db: &Db) -> Result<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT time_zone FROM users WHERE digest_enabled = $1")
            .bind(true)
            .fetch_all(db.pool())
            .await?;
    Ok(rows.into_iter().map(|(tz,)| tz).collect())
}

/// Users in `time_zone` whose digest for `day` (YYYY-MM-DD) is not yet out, in id order after
/// `after_id`.
pub async fn due_for_digest(
    db: &Db,
    time_zone: &str,
    day: &str,
    after_id: i64,
    limit: i64,
) -> Result<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT id FROM users WHERE time_zone = $1 AND digest_enabled = $2 \
         AND (last_digest_day IS NULL OR last_digest_day < $3) AND id > $4 ORDER BY id LIMIT $5",
    )
    .bind(time_zone)
    .bind(true)
    .bind(day)
    .bind(after_id)
    .bind(limit)
    .fetch_all(db.pool())
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// Claims the digest for `day` of these users: records the day for those whose digest for it is
/// not yet taken care of, and returns them (sorted). A racing sweep's claim of the same users
/// returns none of them (PostgreSQL re-checks the condition after waiting for the row lock).
pub async fn claim_digest_day(
    conn: &mut sqlx::AnyConnection,
    ids: &[i64],
    day: &str,
) -> Result<Vec<i64>> {
    if ids.is_empty() {
        return Ok(vec![]);
    }
    let placeholders = crate::placeholders(2, ids.len());
    let sql = format!(
        "UPDATE users SET last_digest_day = $1 WHERE id IN ({}) \
         AND (last_digest_day IS NULL OR last_digest_day < $1) RETURNING id",
        placeholders
    );
    let mut q = sqlx::query_as::<_, (i64,)>(&sql).bind(day);
    for id in ids {
        q = q.bind(*id);
    }
    let mut claimed: Vec<i64> = q
        .fetch_all(conn)
        .await?
        .into_iter()
        .map(|(id,)| id)
        .collect();
    claimed.sort_unstable();
    Ok(claimed)
}

/// What deleting an account leaves to clean up outside the database, after the commit.
#[derive(Debug, Default)]
pub struct DeletedAccount {
    /// Blob keys of the user's screenshots.
    pub blob_keys: Vec<String>,
    /// The user's processing request (ZIP import) ids: their uploads may still be on disk.
    pub request_ids: Vec<String>,
    /// The user's logins (refresh token families), to forget in a process's cache.
    pub families: Vec<String>,
}

/// Deletes a user and everything of theirs, in the caller's transaction; None when no such user.
///
/// Tasks, events, processing requests and refresh tokens go with the user (ON DELETE CASCADE);
/// resources are deleted explicitly first (with them screenshots, checks and hourly rollups), so
/// that the counter triggers run, then the user's `resource_counts` rows. Rows keyed by text
/// rather than a foreign key are deleted here too: `mail_log` (welcome:ID, digest:ID:DAY,
/// alert:UUID:AT of any resource the user ever had, the mail of their notification channels) and
/// the `login_throttle` keys of the email.
pub async fn delete_account(conn: &mut AnyConnection, id: i64) -> Result<Option<DeletedAccount>> {
    let email: Option<(String,)> = sqlx::query_as("SELECT email FROM users WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((email,)) = email else {
        return Ok(None);
    };
    let blob_keys: Vec<(String,)> = sqlx::query_as(
        "SELECT s.blob_key FROM screenshots s JOIN resources r ON r.id = s.resource_id \
         WHERE r.user_id = $1",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?;
    let request_ids: Vec<(String,)> =
        sqlx::query_as("SELECT id FROM processing_requests WHERE user_id = $1")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    let families: Vec<(String,)> =
        sqlx::query_as("SELECT DISTINCT family FROM refresh_tokens WHERE user_id = $1")
            .bind(id)
            .fetch_all(&mut *conn)
            .await?;
    // Alerts are keyed by resource uuid; every resource the user ever had has an event.
    sqlx::query(
        "DELETE FROM mail_log WHERE message_key = $1 OR substr(message_key, 1, length($2)) = $2 \
         OR (substr(message_key, 1, 6) = 'alert:' AND substr(message_key, 7, 36) IN \
             (SELECT resource_uuid FROM events WHERE user_id = $3 \
              UNION SELECT uuid FROM resources WHERE user_id = $3))",
    )
    .bind(format!("welcome:{id}"))
    .bind(format!("digest:{id}:"))
    .bind(id)
    .execute(&mut *conn)
    .await?;
    // Mail to notification channels is keyed by channel: `<event key>:channel:ID` (alerts and
    // tests) and `channel-confirm:ID:…` (the confirmation of an address).
    sqlx::query(
        "DELETE FROM mail_log WHERE EXISTS (SELECT 1 FROM channels c WHERE c.user_id = $1 AND \
         (mail_log.message_key LIKE '%:channel:' || CAST(c.id AS TEXT) \
          OR substr(mail_log.message_key, 1, length('channel-confirm:' || CAST(c.id AS TEXT) || ':')) \
             = 'channel-confirm:' || CAST(c.id AS TEXT) || ':'))",
    )
    .bind(id)
    .execute(&mut *conn)
    .await?;
    sqlx::query("DELETE FROM login_throttle WHERE key = $1 OR substr(key, 1, length($2)) = $2")
        .bind(format!("account:{email}"))
        .bind(format!("pair:{email}|"))
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM resources WHERE user_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM resource_counts WHERE user_id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("DELETE FROM users WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    let firsts = |rows: Vec<(String,)>| rows.into_iter().map(|(v,)| v).collect();
    Ok(Some(DeletedAccount {
        blob_keys: firsts(blob_keys),
        request_ids: firsts(request_ids),
        families: firsts(families),
    }))
}
