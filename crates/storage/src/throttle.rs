//! Login throttling: attempts counted per key in a fixed window.
//!
//! An attempt is *reserved* before the password is checked, in one upsert per key that also
//! returns the new count, so that a hundred guesses sent at once are counted as a hundred before
//! any of them reaches Argon2 (on PostgreSQL the upsert's row lock orders them; SQLite has one
//! writer). A failed attempt keeps its reservation; a successful one gives it back.

use crate::{Db, Result};
use pulseboard_domain::UnixMillis;
use sqlx::Row;

/// One counter an attempt must fit under.
#[derive(Debug, Clone)]
pub struct Limit {
    pub key: String,
    pub max: u32,
}

/// Reserves one attempt under each limit, in order, in one transaction. When a limit is full the
/// reservations already made by this call are given back, the later limits are not touched (so a
/// flood refused by a narrow limit does not fill a wider one), and the time at which the full
/// window ends is returned.
pub async fn reserve(
    db: &Db,
    limits: Vec<Limit>,
    now: UnixMillis,
    window_ms: i64,
) -> Result<Result<(), UnixMillis>> {
    db.write(move |conn| {
        Box::pin(async move {
            for (i, limit) in limits.iter().enumerate() {
                let row = sqlx::query(
                    "INSERT INTO login_throttle (key, window_start, attempts) VALUES ($1, $2, 1) \
                     ON CONFLICT (key) DO UPDATE SET \
                       attempts = CASE WHEN login_throttle.window_start <= $3 THEN 1 \
                                       ELSE login_throttle.attempts + 1 END, \
                       window_start = CASE WHEN login_throttle.window_start <= $3 THEN $2 \
                                           ELSE login_throttle.window_start END \
                     RETURNING attempts, window_start",
                )
                .bind(&limit.key)
                .bind(now)
                .bind(now - window_ms)
                .fetch_one(&mut *conn)
                .await?;
                let attempts: i64 = row
                    .try_get::<i64, _>("attempts")
                    .or_else(|_| row.try_get::<i32, _>("attempts").map(i64::from))?;
                let window_start: i64 = row.try_get("window_start")?;
                if attempts > limit.max as i64 {
                    for earlier in limits[..=i].iter() {
                        release_one(&mut *conn, &earlier.key).await?;
                    }
                    return Ok(Err(window_start + window_ms));
                }
            }
            Ok(Ok(()))
        })
    })
    .await
}

async fn release_one(conn: &mut sqlx::AnyConnection, key: &str) -> Result<()> {
    sqlx::query(
        "UPDATE login_throttle SET attempts = attempts - 1 WHERE key = $1 AND attempts > 0",
    )
    .bind(key)
    .execute(conn)
    .await?;
    Ok(())
}

/// Settles a login that did not fail: gives back one reserved attempt under each of `give_back`
/// (a login that succeeded, or one never checked because the server was too busy), and forgets
/// `forget`'s attempts altogether (the account and address of a successful login).
pub async fn give_back(db: &Db, give_back: Vec<String>, forget: Option<String>) -> Result<()> {
    db.write(move |conn| {
        Box::pin(async move {
            for key in &give_back {
                release_one(&mut *conn, key).await?;
            }
            if let Some(key) = &forget {
                sqlx::query("DELETE FROM login_throttle WHERE key = $1")
                    .bind(key)
                    .execute(&mut *conn)
                    .await?;
            }
            Ok(())
        })
    })
    .await
}

/// Deletes counters whose window ended before `before`.
pub async fn prune(db: &Db, before: UnixMillis) -> Result<u64> {
    let r = sqlx::query("DELETE FROM login_throttle WHERE window_start < $1")
        .bind(before)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}
