//! Safe retries: `Idempotency-Key` records, one per (user, key).
//!
//! A request with a key [`reserve`]s it in the transaction (on SQLite: the `Db::write` closure)
//! that also creates what it asks for and [`finish`]es it with the response, so the record and the
//! creation commit together or not at all. A concurrent request with the same key waits on the
//! unique key (PostgreSQL) or the single writer (SQLite) and then finds the finished record.
//! Records older than 24 hours count as absent and are deleted by the Cleanup job ([`prune`]).

use crate::{Db, Result};
use pulseboard_domain::UnixMillis;
use sqlx::{AnyConnection, Row};

/// How long a key is remembered.
pub const TTL_MS: i64 = 24 * 3_600_000;

/// What an earlier request with the same key left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Earlier {
    /// Finished with the same fingerprint: its status and response body.
    Replay { status: u16, body: String },
    /// The same key with another request (method, path or body).
    Mismatch,
    /// Reserved but not answered yet.
    InProgress,
}

/// Reserves `key` for `user_id` (None), or says what an earlier request with it left. A record
/// older than [`TTL_MS`] is replaced.
pub async fn reserve(
    conn: &mut AnyConnection,
    user_id: i64,
    key: &str,
    fingerprint: &str,
    now: UnixMillis,
) -> Result<Option<Earlier>> {
    sqlx::query("DELETE FROM idempotency_keys WHERE user_id = $1 AND key = $2 AND created_at < $3")
        .bind(user_id)
        .bind(key)
        .bind(now - TTL_MS)
        .execute(&mut *conn)
        .await?;
    let inserted = sqlx::query(
        "INSERT INTO idempotency_keys (user_id, key, fingerprint, status, body, created_at) \
         VALUES ($1, $2, $3, 0, '', $4) ON CONFLICT (user_id, key) DO NOTHING",
    )
    .bind(user_id)
    .bind(key)
    .bind(fingerprint)
    .bind(now)
    .execute(&mut *conn)
    .await?
    .rows_affected();
    if inserted == 1 {
        return Ok(None);
    }
    let row = sqlx::query(
        "SELECT fingerprint, status, body FROM idempotency_keys WHERE user_id = $1 AND key = $2",
    )
    .bind(user_id)
    .bind(key)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else {
        // Deleted between the two statements (pruned): treat as still being processed.
        return Ok(Some(Earlier::InProgress));
    };
    let stored: String = row.try_get("fingerprint")?;
    let status: i64 = row.try_get("status")?;
    Ok(Some(if stored != fingerprint {
        Earlier::Mismatch
    } else if status == 0 {
        Earlier::InProgress
    } else {
        Earlier::Replay {
            status: u16::try_from(status).unwrap_or(500),
            body: row.try_get("body")?,
        }
    }))
}

/// Stores the response of the request that reserved `key`.
pub async fn finish(
    conn: &mut AnyConnection,
    user_id: i64,
    key: &str,
    status: u16,
    body: &str,
) -> Result<()> {
    sqlx::query(
        "UPDATE idempotency_keys SET status = $3, body = $4 WHERE user_id = $1 AND key = $2",
    )
    .bind(user_id)
    .bind(key)
    .bind(i64::from(status))
    .bind(body)
    .execute(conn)
    .await?;
    Ok(())
}

/// Deletes records created before `before`.
pub async fn prune(db: &Db, before: UnixMillis) -> Result<u64> {
    let r = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < $1")
        .bind(before)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}
