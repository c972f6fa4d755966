//! Personal API tokens. Only a token's SHA-256 is stored (the secret is shown once, at creation);
//! scopes are kept as one space-separated string, parsed by the web layer. Revoking deletes the
//! row: a revoked token is indistinguishable from one that never existed.

use crate::{Db, Result};
use pulseboard_domain::{Role, UnixMillis};
use sqlx::{AnyConnection, FromRow, Row};

#[derive(Debug, Clone, FromRow)]
pub struct ApiToken {
    pub id: i64,
    pub user_id: i64,
    pub name: String,
    pub scopes: String,
    pub created_at: UnixMillis,
    pub expires_at: Option<UnixMillis>,
    pub last_used_at: Option<UnixMillis>,
}

const COLUMNS: &str = "id, user_id, name, scopes, created_at, expires_at, last_used_at";

/// A presented token, found by its hash, with its owner's current role (read with it, so that a
/// demotion takes effect at the next request).
#[derive(Debug, Clone)]
pub struct Presented {
    pub token: ApiToken,
    pub role: Role,
}

pub async fn insert(
    db: &Db,
    user_id: i64,
    name: &str,
    scopes: &str,
    token_hash: &str,
    now: UnixMillis,
    expires_at: Option<UnixMillis>,
) -> Result<ApiToken> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO api_tokens (user_id, name, scopes, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {COLUMNS}"
    ))
    .bind(user_id)
    .bind(name)
    .bind(scopes)
    .bind(token_hash)
    .bind(now)
    .bind(expires_at)
    .fetch_one(db.pool())
    .await?)
}

/// The user's tokens, newest first.
pub async fn list(db: &Db, user_id: i64) -> Result<Vec<ApiToken>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM api_tokens WHERE user_id = $1 ORDER BY id DESC"
    ))
    .bind(user_id)
    .fetch_all(db.pool())
    .await?)
}

pub async fn count(db: &Db, user_id: i64) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT COUNT(*) FROM api_tokens WHERE user_id = $1")
            .bind(user_id)
            .fetch_one(db.pool())
            .await?,
    )
}

/// Revokes (deletes) one of the user's tokens; false when the user has no such token.
pub async fn delete(db: &Db, user_id: i64, id: i64) -> Result<bool> {
    let r = sqlx::query("DELETE FROM api_tokens WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected() == 1)
}

/// Revokes every token of a user, in the caller's transaction (account deletion; the foreign key
/// would cascade too, but the deletion should not depend on it).
pub async fn delete_all(conn: &mut AnyConnection, user_id: i64) -> Result<u64> {
    let r = sqlx::query("DELETE FROM api_tokens WHERE user_id = $1")
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(r.rows_affected())
}

/// The token with this hash and its owner's role; expiry is the caller's to judge.
pub async fn by_hash(db: &Db, token_hash: &str) -> Result<Option<Presented>> {
    let row = sqlx::query(
        "SELECT t.id, t.user_id, t.name, t.scopes, t.created_at, t.expires_at, t.last_used_at, \
                u.role \
         FROM api_tokens t JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(db.pool())
    .await?;
    let Some(row) = row else {
        return Ok(None);
    };
    let role: String = row.try_get("role")?;
    Ok(Some(Presented {
        token: ApiToken::from_row(&row)?,
        role: Role::from_db(&role),
    }))
}

/// Records a use of the token, unless one was recorded within `min_gap_ms`: concurrent requests
/// with one token write at most one of them, and a busy token one row a minute, not one per request.
pub async fn touch(db: &Db, id: i64, now: UnixMillis, min_gap_ms: i64) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE api_tokens SET last_used_at = $1 \
         WHERE id = $2 AND (last_used_at IS NULL OR last_used_at <= $3)",
    )
    .bind(now)
    .bind(id)
    .bind(now - min_gap_ms)
    .execute(db.pool())
    .await?;
    Ok(r.rows_affected() == 1)
}
