//! Refresh tokens. Only their SHA-256 is stored; a login is a family of tokens, each rotated into
//! the next on use.

use crate::{Db, Result};
use pulseboard_domain::UnixMillis;
use sqlx::{AnyConnection, FromRow};

#[derive(Debug, Clone, FromRow)]
pub struct RefreshToken {
    pub id: i64,
    pub user_id: i64,
    pub family: String,
    pub expires_at: i64,
    pub rotated_at: Option<i64>,
    pub revoked_at: Option<i64>,
}

/// Stores a new login's first refresh token (a request-sized write: grouped on SQLite).
pub async fn insert(
    db: &Db,
    user_id: i64,
    family: &str,
    token_hash: &str,
    now: UnixMillis,
    expires_at: UnixMillis,
) -> Result<()> {
    let (family, token_hash) = (family.to_owned(), token_hash.to_owned());
    db.write(move |conn| {
        Box::pin(async move {
            sqlx::query(
                "INSERT INTO refresh_tokens (user_id, family, token_hash, created_at, expires_at) \
                 VALUES ($1, $2, $3, $4, $5)",
            )
            .bind(user_id)
            .bind(family)
            .bind(token_hash)
            .bind(now)
            .bind(expires_at)
            .execute(conn)
            .await?;
            Ok(())
        })
    })
    .await
}

pub async fn by_hash(db: &Db, token_hash: &str) -> Result<Option<RefreshToken>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, family, expires_at, rotated_at, revoked_at FROM refresh_tokens \
         WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(db.pool())
    .await?)
}

/// Revokes every token of a login.
pub async fn revoke_family(db: &Db, family: &str, now: UnixMillis) -> Result<()> {
    let family = family.to_owned();
    db.write(move |conn| Box::pin(revoke_family_in(conn, family, now)))
        .await
}

async fn revoke_family_in(conn: &mut AnyConnection, family: String, now: UnixMillis) -> Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE family = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(family)
    .execute(conn)
    .await?;
    Ok(())
}

/// Whether a login (family) is still alive: not revoked as a whole.
pub async fn family_active(db: &Db, family: &str) -> Result<bool> {
    let revoked: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM refresh_tokens WHERE family = $1 AND revoked_at IS NOT NULL LIMIT 1",
    )
    .bind(family)
    .fetch_optional(db.pool())
    .await?;
    Ok(revoked.is_none())
}

/// The user's current role, if the login (family) is still alive and the user still exists. The
/// role is read here rather than trusted from the access token, so that a demotion holds at once.
pub async fn login_role(
    db: &Db,
    family: &str,
    user_id: i64,
) -> Result<Option<pulseboard_domain::Role>> {
    let role: Option<(String,)> = sqlx::query_as(
        "SELECT role FROM users WHERE id = $1 AND NOT EXISTS \
         (SELECT 1 FROM refresh_tokens WHERE family = $2 AND revoked_at IS NOT NULL)",
    )
    .bind(user_id)
    .bind(family)
    .fetch_optional(db.pool())
    .await?;
    Ok(role.map(|(r,)| pulseboard_domain::Role::from_db(&r)))
}

/// Revokes every login of a user (password change, account deletion).
pub async fn revoke_user(db: &Db, user_id: i64, now: UnixMillis) -> Result<()> {
    sqlx::query(
        "UPDATE refresh_tokens SET revoked_at = $1 WHERE user_id = $2 AND revoked_at IS NULL",
    )
    .bind(now)
    .bind(user_id)
    .execute(db.pool())
    .await?;
    Ok(())
}

/// Deletes tokens that expired before `before`.
pub async fn prune_expired(db: &Db, before: UnixMillis) -> Result<u64> {
    let r = sqlx::query("DELETE FROM refresh_tokens WHERE expires_at < $1")
        .bind(before)
        .execute(db.pool())
        .await?;
    Ok(r.rows_affected())
}

/// What [`refresh`] did with a presented refresh token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refreshed {
    /// Unknown, expired or revoked token, or its user is gone.
    Invalid,
    /// The token was rotated: the new token is stored in the same family.
    Rotated {
        user_id: i64,
        family: String,
        role: pulseboard_domain::Role,
    },
    /// Already rotated within the grace window (another tab refreshed at the same moment): the
    /// caller may issue an access token, but no new refresh token.
    Concurrent {
        user_id: i64,
        family: String,
        role: pulseboard_domain::Role,
    },
    /// Already rotated longer ago than the grace window: a replayed token, so its whole family
    /// has been revoked.
    Reused { user_id: i64, family: String },
}

/// The new refresh token a rotation stores, and the rules it follows.
#[derive(Debug, Clone)]
pub struct Rotation {
    pub new_hash: String,
    pub now: UnixMillis,
    pub expires_at: UnixMillis,
    /// How long after a rotation the old token still counts as a concurrent refresh.
    pub grace_ms: i64,
}

/// Exchanges the token whose hash is `presented_hash` for the one in `rotation`: look-up, rotation,
/// the new token's insert (or the family's revocation) are one write, so a failure part-way
/// leaves neither a rotated token without a successor nor a successor beside a live token.
pub async fn refresh(db: &Db, presented_hash: String, rotation: Rotation) -> Result<Refreshed> {
    db.write(move |conn| Box::pin(refresh_in(conn, presented_hash, rotation)))
        .await
}

async fn refresh_in(
    conn: &mut AnyConnection,
    presented_hash: String,
    r: Rotation,
) -> Result<Refreshed> {
    let Some(token) = by_hash_in(conn, &presented_hash).await? else {
        return Ok(Refreshed::Invalid);
    };
    if token.revoked_at.is_some() || token.expires_at <= r.now {
        return Ok(Refreshed::Invalid);
    }
    let role: Option<(String,)> = sqlx::query_as("SELECT role FROM users WHERE id = $1")
        .bind(token.user_id)
        .fetch_optional(&mut *conn)
        .await?;
    let Some((role,)) = role else {
        return Ok(Refreshed::Invalid);
    };
    let role = pulseboard_domain::Role::from_db(&role);
    // The conditional update decides between two racing refreshes: on PostgreSQL the loser waits
    // for the winner's row lock and then matches nothing; on SQLite writes are serialized.
    let rotated = sqlx::query(
        "UPDATE refresh_tokens SET rotated_at = $1 \
         WHERE id = $2 AND rotated_at IS NULL AND revoked_at IS NULL",
    )
    .bind(r.now)
    .bind(token.id)
    .execute(&mut *conn)
    .await?
    .rows_affected()
        == 1;
    if rotated {
        sqlx::query(
            "INSERT INTO refresh_tokens (user_id, family, token_hash, created_at, expires_at) \
             VALUES ($1, $2, $3, $4, $5)",
        )
        .bind(token.user_id)
        .bind(&token.family)
        .bind(&r.new_hash)
        .bind(r.now)
        .bind(r.expires_at)
        .execute(&mut *conn)
        .await?;
        return Ok(Refreshed::Rotated {
            user_id: token.user_id,
            family: token.family,
            role,
        });
    }
    // Lost the race or replayed: read the rotation time the winner committed (a new statement
    // sees it on PostgreSQL; the first read may predate it).
    let rotated_at = by_hash_in(conn, &presented_hash)
        .await?
        .and_then(|t| t.rotated_at)
        .unwrap_or(r.now);
    if r.now - rotated_at > r.grace_ms {
        revoke_family_in(conn, token.family.clone(), r.now).await?;
        return Ok(Refreshed::Reused {
            user_id: token.user_id,
            family: token.family,
        });
    }
    Ok(Refreshed::Concurrent {
        user_id: token.user_id,
        family: token.family,
        role,
    })
}

async fn by_hash_in(conn: &mut AnyConnection, token_hash: &str) -> Result<Option<RefreshToken>> {
    Ok(sqlx::query_as(
        "SELECT id, user_id, family, expires_at, rotated_at, revoked_at FROM refresh_tokens \
         WHERE token_hash = $1",
    )
    .bind(token_hash)
    .fetch_optional(conn)
    .await?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ConnectOptions;
    use std::time::Duration;

    const DAY: i64 = 86_400_000;

    async fn db_with_login() -> (Db, std::path::PathBuf) {
        let dir =
            std::env::temp_dir().join(format!("pb-sessions-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/s.db?mode=rwc", dir.display());
        let opts = ConnectOptions {
            max_connections: 4,
            busy_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        };
        let db = Db::connect(&url, &opts).await.unwrap();
        db.migrate().await.unwrap();
        let email = pulseboard_domain::Email::parse("s@example.com").unwrap();
        let mut tx = db.begin().await.unwrap();
        let user = crate::users::create(&mut tx, &email, "hash", 0)
            .await
            .unwrap();
        tx.commit().await.unwrap();
        insert(&db, user.id, "fam", "h0", 0, DAY).await.unwrap();
        (db, dir)
    }

    fn rotation(new_hash: &str, now: UnixMillis) -> Rotation {
        Rotation {
            new_hash: new_hash.into(),
            now,
            expires_at: now + DAY,
            grace_ms: 1_000,
        }
    }

    /// One rotation wins; a replay within the grace window is a concurrent tab, a later one
    /// revokes the whole family, after which even the newest token is refused.
    #[tokio::test]
    async fn refresh_rotates_once_and_a_late_replay_revokes_the_family() {
        let (db, dir) = db_with_login().await;
        let first = refresh(&db, "h0".into(), rotation("h1", 10)).await.unwrap();
        assert!(matches!(first, Refreshed::Rotated { ref family, .. } if family == "fam"));
        let again = refresh(&db, "h0".into(), rotation("h2", 500))
            .await
            .unwrap();
        assert!(matches!(again, Refreshed::Concurrent { .. }), "{again:?}");
        assert!(
            by_hash(&db, "h2").await.unwrap().is_none(),
            "no token for the 2nd tab"
        );
        let late = refresh(&db, "h0".into(), rotation("h3", 5_000))
            .await
            .unwrap();
        assert!(matches!(late, Refreshed::Reused { ref family, .. } if family == "fam"));
        assert!(!family_active(&db, "fam").await.unwrap());
        let newest = refresh(&db, "h1".into(), rotation("h4", 5_001))
            .await
            .unwrap();
        assert_eq!(newest, Refreshed::Invalid);
        let unknown = refresh(&db, "nope".into(), rotation("h5", 5_002))
            .await
            .unwrap();
        assert_eq!(unknown, Refreshed::Invalid);
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    /// An expired token is refused and stores no successor.
    #[tokio::test]
    async fn an_expired_token_does_not_refresh() {
        let (db, dir) = db_with_login().await;
        let r = refresh(&db, "h0".into(), rotation("h1", DAY))
            .await
            .unwrap();
        assert_eq!(r, Refreshed::Invalid);
        assert!(by_hash(&db, "h1").await.unwrap().is_none());
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
