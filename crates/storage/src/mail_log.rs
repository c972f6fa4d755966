//! Which messages were sent, by idempotency key: recorded before the relay is asked (`sending`)
//! and after it accepted the message (`sent`).

use crate::{Db, Result};
use pulseboard_domain::UnixMillis;

/// What the log knew of a message when a send began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Earlier {
    /// Never tried: recorded as `sending` now.
    None,
    /// An earlier attempt began and never recorded its end (a crash, a timeout or a relay error
    /// mid-send): it may have been delivered.
    Sending,
    /// Sent already.
    Sent,
}

/// Records that message `key` is about to be handed to the relay, unless it already was; returns
/// what an earlier attempt left.
pub async fn begin(db: &Db, key: &str, message_id: &str, now: UnixMillis) -> Result<Earlier> {
    let inserted = sqlx::query(
        "INSERT INTO mail_log (message_key, sent_at, state, message_id) VALUES ($1, $2, 'sending', $3) \
         ON CONFLICT (message_key) DO NOTHING",
    )
    .bind(key)
    .bind(now)
    .bind(message_id)
    .execute(db.pool())
    .await?;
    if inserted.rows_affected() == 1 {
        return Ok(Earlier::None);
    }
    let (state,): (String,) = sqlx::query_as("SELECT state FROM mail_log WHERE message_key = $1")
        .bind(key)
        .fetch_one(db.pool())
        .await?;
    Ok(if state == "sent" {
        Earlier::Sent
    } else {
        Earlier::Sending
    })
}

/// Records that the relay accepted message `key`.
pub async fn mark_sent(db: &Db, key: &str, now: UnixMillis) -> Result<()> {
    sqlx::query("UPDATE mail_log SET state = 'sent', sent_at = $2 WHERE message_key = $1")
        .bind(key)
        .bind(now)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Forgets an attempt the relay refused for good (nothing was delivered), so that a retry by an
/// admin sends it as new.
pub async fn abandon(db: &Db, key: &str) -> Result<()> {
    sqlx::query("DELETE FROM mail_log WHERE message_key = $1 AND state = 'sending'")
        .bind(key)
        .execute(db.pool())
        .await?;
    Ok(())
}

/// Whether message `key` was sent (tests, support).
pub async fn already_sent(db: &Db, key: &str) -> Result<bool> {
    let row: Option<(i64,)> =
        sqlx::query_as("SELECT sent_at FROM mail_log WHERE message_key = $1 AND state = 'sent'")
            .bind(key)
            .fetch_optional(db.pool())
            .await?;
    Ok(row.is_some())
}
