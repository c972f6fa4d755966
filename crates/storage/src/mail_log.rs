//! Which messages were sent, by idempotency key.

use crate::Result;
use pulseboard_domain::UnixMillis;
use sqlx::AnyPool;

pub async fn already_sent(pool: &AnyPool, key: &str) -> Result<bool> {
    let row: Option<(i64,)> = sqlx::query_as("SELECT sent_at FROM mail_log WHERE message_key = $1")
        .bind(key)
        .fetch_optional(pool)
        .await?;
    Ok(row.is_some())
}

pub async fn record_sent(pool: &AnyPool, key: &str, now: UnixMillis) -> Result<()> {
    sqlx::query("INSERT INTO mail_log (message_key, sent_at) VALUES ($1, $2) ON CONFLICT (message_key) DO NOTHING")
        .bind(key)
        .bind(now)
        .execute(pool)
        .await?;
    Ok(())
}
