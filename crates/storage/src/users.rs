use crate::{flag, Result, StorageError};
use pulseboard_domain::{Email, Role, UnixMillis};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, AnyPool, FromRow, Row};

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

pub async fn by_id(pool: &AnyPool, id: i64) -> Result<Option<User>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE id = $1"))
            .bind(id)
            .fetch_optional(pool)
            .await?,
    )
}

pub async fn by_email(pool: &AnyPool, email: &Email) -> Result<Option<User>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM users WHERE email = $1"))
            .bind(email.as_str())
            .fetch_optional(pool)
            .await?,
    )
}

/// Sets a user's role; false when no such user.
pub async fn set_role(pool: &AnyPool, email: &Email, role: Role, now: UnixMillis) -> Result<bool> {
    let done = sqlx::query("UPDATE users SET role = $1, updated_at = $2 WHERE email = $3")
        .bind(role.as_str())
        .bind(now)
        .bind(email.as_str())
        .execute(pool)
        .await?;
    Ok(done.rows_affected() == 1)
}

/// Records one failed login under `key` ("account:…" or "ip:…").
pub async fn record_login_failure(pool: &AnyPool, key: &str, now: UnixMillis) -> Result<()> {
    sqlx::query("INSERT INTO login_failures (key, at) VALUES ($1, $2)")
        .bind(key)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}

/// Failures under `key` since `since`, and the oldest of them (for Retry-After).
pub async fn login_failures_since(
    pool: &AnyPool,
    key: &str,
    since: UnixMillis,
) -> Result<(i64, Option<UnixMillis>)> {
    let row = sqlx::query(
        "SELECT COUNT(*) AS n, MIN(at) AS oldest FROM login_failures WHERE key = $1 AND at > $2",
    )
    .bind(key)
    .bind(since)
    .fetch_one(pool)
    .await?;
    Ok((row.try_get("n")?, row.try_get("oldest")?))
}

pub async fn clear_login_failures(pool: &AnyPool, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM login_failures WHERE key = $1")
        .bind(key)
        .execute(pool)
        .await?;
    Ok(())
}
