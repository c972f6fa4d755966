//! Group commit for SQLite.
//!
//! With `synchronous = FULL` every SQLite commit waits for an fsync (about 1.5 ms on our VM), and
//! writers take turns on one lock, so one transaction per request caps small writes near 650/s
//! whatever the CPU. [`Writer`] runs concurrent writes on one connection inside one transaction,
//! each in its own savepoint (an error undoes only that write), and commits them together: one
//! fsync for the whole group, and every caller hears back only after the commit that made its
//! write durable. PostgreSQL groups commits itself, so there each write is its own transaction.

use crate::{Result, StorageError};
use futures_core::future::BoxFuture;
use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool, Connection};
use std::panic::AssertUnwindSafe;
use tokio::sync::{mpsc, oneshot};

/// A write: runs on the shared transaction, says whether it succeeded (else its savepoint is
/// rolled back) and hands back how to answer its caller once the commit's outcome is known.
type Op = Box<dyn for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Done> + Send>;
type Done = (bool, Answer);

/// Writes one group may hold: bounds how long the first of them waits for the commit.
const MAX_GROUP: usize = 256;

#[derive(Clone, Debug)]
pub struct Writer {
    ops: mpsc::Sender<Op>,
}

impl Writer {
    pub(crate) fn start(pool: AnyPool) -> Self {
        let (ops, rx) = mpsc::channel(4 * MAX_GROUP);
        tokio::spawn(run(pool, rx));
        Self { ops }
    }

    /// Runs `f` in the next group and returns its result once the group has committed.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(&'c mut AnyConnection) -> BoxFuture<'c, Result<T>> + Send + 'static,
    {
        let (reply, answer) = oneshot::channel::<Result<T>>();
        let op: Op = Box::new(move |conn| {
            Box::pin(async move {
                let result = f(conn).await;
                let ok = result.is_ok();
                let done = Box::new(move |commit_error: Option<&str>| {
                    let _ = reply.send(match (result, commit_error) {
                        (Ok(_), Some(e)) => Err(StorageError::Unavailable(e.to_owned())),
                        (result, _) => result,
                    });
                });
                (ok, done as Answer)
            })
        });
        let stopped = || StorageError::Unavailable("the database write did not complete".into());
        self.ops.send(op).await.map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

async fn run(pool: AnyPool, mut rx: mpsc::Receiver<Op>) {
    while let Some(first) = rx.recv().await {
        let mut group = vec![first];
        while group.len() < MAX_GROUP {
            match rx.try_recv() {
                Ok(op) => group.push(op),
                Err(_) => break,
            }
        }
        // Writes that never run answer their callers by dropping their reply channel.
        let mut conn = match pool.acquire().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, dropped = group.len(), "no connection for a write group");
                continue;
            }
        };
        if let Err(e) = commit_group(&mut conn, group).await {
            // The connection may be left inside a transaction: never hand it back to the pool.
            tracing::warn!(error = %e, "group commit failed");
            let _ = conn.detach().close().await;
        }
    }
}

async fn commit_group(
    conn: &mut PoolConnection<Any>,
    group: Vec<Op>,
) -> std::result::Result<(), String> {
    // IMMEDIATE takes the write lock now: a deferred transaction whose first write came after a
    // read would fail outright if another connection committed in between.
    let mut tx = Connection::begin_with(&mut **conn, "BEGIN IMMEDIATE")
        .await
        .map_err(|e| format!("cannot begin a transaction: {e}"))?;
    let mut answers = Vec::with_capacity(group.len());
    for op in group {
        let mut savepoint = match Connection::begin(&mut *tx).await {
            Ok(sp) => sp,
            Err(e) => {
                let msg = format!("cannot open a savepoint: {e}");
                answer_all(answers, &msg);
                return Err(msg);
            }
        };
        let ran = futures_util::FutureExt::catch_unwind(AssertUnwindSafe(op(&mut savepoint))).await;
        let (ok, done) = match ran {
            Ok(done) => done,
            Err(_) => {
                // A panicking write answers nobody (its caller sees the writer error); undo it.
                let _ = savepoint.rollback().await;
                continue;
            }
        };
        let closed = if ok {
            savepoint.commit().await
        } else {
            savepoint.rollback().await
        };
        if let Err(e) = closed {
            let msg = format!("savepoint failed: {e}");
            done(Some(&msg));
            answer_all(answers, &msg);
            return Err(msg);
        }
        answers.push(done);
    }
    let outcome = tx.commit().await.map_err(|e| format!("commit failed: {e}"));
    for done in answers {
        done(outcome.as_ref().err().map(String::as_str));
    }
    outcome
}

type Answer = Box<dyn FnOnce(Option<&str>) + Send>;

fn answer_all(answers: Vec<Answer>, error: &str) {
    for done in answers {
        done(Some(error));
    }
}

#[cfg(test)]
mod tests {
    use crate::{ConnectOptions, Db, StorageError};
    use std::time::Duration;

    async fn db() -> (Db, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("pb-writer-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let url = format!("sqlite://{}/w.db?mode=rwc", dir.display());
        let opts = ConnectOptions {
            max_connections: 4,
            busy_timeout: Duration::from_secs(5),
            connect_timeout: Duration::from_secs(5),
        };
        let db = Db::connect(&url, &opts).await.unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER PRIMARY KEY)")
            .execute(db.pool())
            .await
            .unwrap();
        (db, dir)
    }

    fn insert(db: &Db, v: i64) -> impl std::future::Future<Output = crate::Result<i64>> + '_ {
        db.write(move |tx| {
            Box::pin(async move {
                sqlx::query("INSERT INTO t (v) VALUES ($1)")
                    .bind(v)
                    .execute(&mut *tx)
                    .await
                    .map_err(StorageError::from_insert)?;
                Ok(v)
            })
        })
    }

    /// Many concurrent writes, some failing: each caller gets its own outcome, a failure undoes
    /// only its own write, and a panicking write neither stops the writer nor leaks its rows.
    #[tokio::test]
    async fn writes_in_a_group_succeed_and_fail_alone() {
        let (db, dir) = db().await;
        let mut outcomes = vec![];
        let results = futures_util::future::join_all((0..200).map(|i| {
            // Every tenth write repeats the one before it: a unique violation.
            let v = if i % 10 == 9 { i - 1 } else { i };
            insert(&db, v)
        }))
        .await;
        for r in results {
            outcomes.push(r.is_ok());
            if let Err(e) = r {
                assert!(matches!(e, StorageError::Conflict), "{e}");
            }
        }
        assert_eq!(outcomes.iter().filter(|ok| **ok).count(), 180);
        let panicked = db
            .write(|tx| {
                Box::pin(async move {
                    sqlx::query("INSERT INTO t (v) VALUES (1000)")
                        .execute(&mut *tx)
                        .await?;
                    panic!("a bug in a write");
                    #[allow(unreachable_code)]
                    Ok(())
                })
            })
            .await;
        assert!(panicked.is_err());
        assert_eq!(insert(&db, 1001).await.unwrap(), 1001);
        let (rows, max): (i64, i64) = sqlx::query_as("SELECT COUNT(*), MAX(v) FROM t")
            .fetch_one(db.pool())
            .await
            .unwrap();
        assert_eq!((rows, max), (181, 1001));
        db.close().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}
