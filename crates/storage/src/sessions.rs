//! Refresh tokens. Only their SHA-256 is stored; a login is a family of tokens, each rotated into
//! the next on use.

use crate::Result;
use pulseboard_domain::UnixMillis;
use sqlx::{AnyPool, FromRow};

#[derive(Debug, Clone, FromRow)]
pub struct RefreshToken {
    pub id: i64,
    pub user_id: i64,
    pub family: String,
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

pub async fn insert(
    pool: &AnyPool,
    user_id: i64,
    family: &str,
    token_hash: &str,
    now: UnixMillis,
    expires_at: UnixMillis,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO refresh_tokens (user_id, family, token_hash, created_at, expires_at) \
         VALUES ($1, $2, $3, $4, $5)",
    )
    .bind(user_id)
    .bind(family)
    .bind(token_hash)
    .bind(now)
    .bind(expires_at)
    .execute(pool)
    .await?;
    Ok(())
}

pub async fn by_hash(pool: &AnyPool, token_hash: &str) -> Result<Option<RefreshToken>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, family, expires_at, rotated_at, revoked_at FROM refresh_tokens \
         WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(pool)
    .await?)
}

/// Marks a token rotated. False when another request rotated or revoked it first, so that exactly
/// one of two racing refreshes wins the rotation.
pub async fn mark_rotated(pool: &AnyPool, id: i64, now: UnixMillis) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE refresh_tokens SET rotated_at = $1 \
         WHERE id = $2 AND rotated_at IS NULL AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(pool)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Revokes every token of a login.
pub async fn revoke_family(pool: &AnyPool, family: &str, now: UnixMillis) -> Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(family)
    .execute(pool)
    .await?;
    Ok(())
}

/// Whether a login (family) is still alive: not revoked as a whole.
pub async fn family_active(pool: &AnyPool, family: &str) -> Result<bool> {
    let revoked: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM refresh_tokens WHERE family = $1 AND revoked_at IS NOT NULL LIMIT 1",
    )
    .bind(family)
    .fetch_optional(pool)
    .await?;
    Ok(revoked.is_none())
}

/// The user's current role, if the login (family) is still alive and the user still exists. The
/// role is read here rather than trusted from the access token, so that a demotion holds at once.
pub async fn login_role(
    pool: &AnyPool,
    family: &str,
    user_id: i64,
) -> Result<Option<pulseboard_domain::Role>> {
    let role: Option<(String,)> = sqlx::query_as(
        "SELECT role FROM users WHERE id = $1 AND NOT EXISTS \
         (SELECT 1 FROM refresh_tokens WHERE family = $2 AND revoked_at IS NOT NULL)",
    )
    .bind(user_id)
    .bind(family)
    .fetch_optional(pool)
    .await?;
    Ok(role.map(|(r,)| pulseboard_domain::Role::from_db(&r)))
}

/// Revokes every login of a user (password change, account deletion).
pub async fn revoke_user(pool: &AnyPool, user_id: i64, now: UnixMillis) -> Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .execute(pool)
    .await?;
    Ok(())
}

/// Deletes tokens that expired before `before`.
pub async fn prune_expired(pool: &AnyPool, before: UnixMillis) -> Result<u64> {
    let r = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
        .bind(before)
        .execute(pool)
        .await?;
    Ok(r.rows_affected())
}
