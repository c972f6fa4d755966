//! Storage: one interface over SQLite (the embedded default) and PostgreSQL.
//!
//! Every query is written once, in the SQL both engines share, and runs through sqlx's `Any` driver.
//! Only the DDL differs, so there is one migration folder per dialect. Times are bound as integer
//! milliseconds, flags read with [`flag`] (SQLite returns integers, PostgreSQL booleans).

pub mod blobs;
pub mod channels;
pub mod checks;
pub mod feed;
pub mod idempotency;
pub mod imports;
pub mod jobs;
pub mod mail_log;
pub mod page;
pub mod processing;
pub mod resources;
pub mod screenshots;
pub mod sessions;
pub mod tasks;
pub mod throttle;
pub mod tokens;
pub mod users;
pub mod writer;

use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::time::Duration;

pub use sqlx::Any;
pub use sqlx::AnyConnection as Conn;
pub type Tx<'a> = sqlx::Transaction<'a, Any>;
pub type PoolConn = sqlx::pool::PoolConnection<Any>;

static SQLITE_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/sqlite");
static POSTGRES_MIGRATIONS: sqlx::migrate::Migrator = sqlx::migrate!("migrations/postgres");

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    Sqlite,
    Postgres,
}

impl Backend {
    pub fn name(self) -> &'static str {
        match self {
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    #[error("{0}")]
    Unavailable(String),
    #[error("already exists")]
    Conflict,
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
}

impl StorageError {
    /// An error of reaching the database rather than of the query (a restart, a full pool, a full
    /// disk), which a retry a little later gets past, unlike a bug in a statement.
    pub fn is_outage(&self) -> bool {
        let StorageError::Database(e) = self else {
            return matches!(self, StorageError::Unavailable(_));
        };
        match e {
            sqlx::Error::Io(_)
            | sqlx::Error::PoolTimedOut
            | sqlx::Error::PoolClosed
            | sqlx::Error::WorkerCrashed => true,
            // SQLite: disk full (13), I/O error (10); PostgreSQL: the server shutting down or
            // starting (57P0x), the connection lost (08xxx).
            sqlx::Error::Database(db) => matches!(
                db.code().as_deref(),
                Some("13" | "10" | "57P01" | "57P02" | "57P03" | "08006" | "08003" | "08001")
            ),
            _ => false,
        }
    }

    /// Maps a unique-constraint violation to `Conflict`, anything else to `Database`.
    pub fn from_insert(e: sqlx::Error) -> Self {
        match &e {
            sqlx::Error::Database(db) if db.is_unique_violation() => StorageError::Conflict,
            _ => StorageError::Database(e),
        }
    }
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

#[derive(Debug, Clone)]
pub struct ConnectOptions {
    pub max_connections: u32,
    pub busy_timeout: Duration,
    pub connect_timeout: Duration,
}

/// The database: a pool plus which engine is behind it.
#[derive(Clone, Debug)]
pub struct Db {
    pool: AnyPool,
    backend: Backend,
    /// Group commit for small writes on SQLite (see [`writer`]); None on PostgreSQL.
    writer: Option<writer::Writer>,
}

impl Db {
    pub async fn connect(url: &str, opts: &ConnectOptions) -> Result<Self> {
        sqlx::any::install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else {
            return Err(StorageError::Unavailable(format!(
                "unsupported database URL scheme in {url:?}: use sqlite:// or postgres://"
            )));
        };
        // WAL lets readers run beside the writer; synchronous=FULL makes every commit durable
        // across power loss, which the job queue relies on. ('static: the hook outlives this call.)
        let pragmas: &'static str = Box::leak(
            format!(
                "PRAGMA busy_timeout = {}; PRAGMA journal_mode = WAL; \
                 PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON;",
                opts.busy_timeout.as_millis()
            )
            .into_boxed_str(),
        );
        let pool = AnyPoolOptions::new()
            .max_connections(opts.max_connections)
            .acquire_timeout(opts.connect_timeout)
            .after_connect(move |conn, _meta| match backend {
                Backend::Sqlite => sqlite_pragmas(conn, pragmas),
                Backend::Postgres => Box::pin(async { Ok(()) }),
            })
            .connect(url)
            .await
            .map_err(|e| StorageError::Unavailable(describe_connect_error(url, &e)))?;
        let writer = (backend == Backend::Sqlite).then(|| writer::Writer::start(pool.clone()));
        Ok(Self {
            pool,
            backend,
            writer,
        })
    }

    /// Runs a small write (`f` on a transaction) and returns once it is committed. On SQLite,
    /// concurrent writes share one commit (see [`writer`]); an error undoes only this write.
    pub async fn write<T, F>(&self, f: F) -> Result<T>
    where
        T: Send + 'static,
        F: for<'c> FnOnce(
                &'c mut sqlx::AnyConnection,
            ) -> futures_core::future::BoxFuture<'c, Result<T>>
            + Send
            + 'static,
    {
        match &self.writer {
            Some(w) => w.write(f).await,
            None => {
                let mut tx = self.pool.begin().await?;
                let value = f(&mut tx).await?;
                tx.commit().await?;
                Ok(value)
            }
        }
    }

    pub fn backend(&self) -> Backend {
        self.backend
    }

    // Not public: a caller outside storage would bypass the group commit on SQLite; it uses
    // a storage function, `Db::write`/`begin`, or `Db::acquire` for test fakes.
    pub(crate) fn pool(&self) -> &AnyPool {
        &self.pool
    }

    pub async fn begin(&self) -> Result<Tx<'static>> {
        Ok(self.pool.begin().await?)
    }

    /// A connection outside any transaction, for what no storage function does: tests faking a
    /// state (backdating a row) and the benchmark's seeding. Its writes never join the group
    /// commit, so request paths use [`Db::write`] or [`Db::begin`] instead.
    pub async fn acquire(&self) -> Result<PoolConn> {
        Ok(self.pool.acquire().await?)
    }

    pub async fn migrate(&self) -> Result<()> {
        let migrator = match self.backend {
            Backend::Sqlite => &SQLITE_MIGRATIONS,
            Backend::Postgres => &POSTGRES_MIGRATIONS,
        };
        migrator
            .run(&self.pool)
            .await
            .map_err(|e| StorageError::Unavailable(format!("migration failed: {e}")))
    }

    /// Readiness: a round trip to the database.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

fn sqlite_pragmas<'c>(
    conn: &'c mut sqlx::AnyConnection,
    pragmas: &'static str,
) -> futures_core::future::BoxFuture<'c, Result<(), sqlx::Error>> {
    Box::pin(async move {
        use sqlx::Executor;
        conn.execute(pragmas).await?;
        Ok(())
    })
}

fn describe_connect_error(url: &str, e: &sqlx::Error) -> String {
    let shown = match url.split_once('@') {
        Some((head, tail)) => match head.rsplit_once(':') {
            Some((user, _)) if user.contains("://") && !user.ends_with('/') => {
                format!("{user}:***@{tail}")
            }
            _ => url.to_owned(),
        },
        None => url.to_owned(),
    };
    format!("cannot open database {shown}: {e}")
}

/// `$first, $first+1, …` for `n` bound values: lists of ids or names in `IN (…)`.
pub fn placeholders(first: usize, n: usize) -> String {
    (first..first + n)
        .map(|i| format!("${i}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Reads a boolean column: PostgreSQL stores BOOLEAN, SQLite an integer 0/1.
pub fn flag(row: &AnyRow, column: &str) -> std::result::Result<bool, sqlx::Error> {
    match row.try_get::<bool, _>(column) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<i64, _>(column)? != 0),
    }
}

/// Reads a nullable boolean column (see [`flag`]).
pub fn optional_flag(row: &AnyRow, column: &str) -> std::result::Result<Option<bool>, sqlx::Error> {
    match row.try_get::<Option<bool>, _>(column) {
        Ok(b) => Ok(b),
        Err(_) => Ok(row.try_get::<Option<i64>, _>(column)?.map(|v| v != 0)),
    }
}

// ---------------------------------------------------------------------------------------------
// Backups (`pulseboard backup` / `pulseboard restore`)

/// The tables a backup's manifest counts, and that a restore checks for data before it replaces a
/// database.
pub const BACKUP_COUNTED_TABLES: [&str; 3] = ["users", "tasks", "resources"];

impl Db {
    /// SQLite only: writes a consistent copy of the whole database to `dest` (`VACUUM INTO`). It
    /// runs in one read transaction, so the other connections (and processes) keep writing
    /// meanwhile; `dest` must not exist yet.
    pub async fn vacuum_into(&self, dest: &std::path::Path) -> Result<()> {
        if self.backend != Backend::Sqlite {
            return Err(StorageError::Unavailable(
                "VACUUM INTO is for SQLite only".into(),
            ));
        }
        let dest = dest.to_str().ok_or_else(|| {
            StorageError::Unavailable(format!("not a UTF-8 path: {}", dest.display()))
        })?;
        sqlx::query("VACUUM INTO $1")
            .bind(dest)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Rows in each of `tables` (0 for a table that does not exist yet: an unmigrated database).
    /// The names are the caller's constants, never user input.
    pub async fn count_rows(&self, tables: &[&str]) -> Result<Vec<i64>> {
        let exists = match self.backend {
            Backend::Sqlite => {
                "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1"
            }
            Backend::Postgres => {
                "SELECT COUNT(*) FROM information_schema.tables \
                 WHERE table_schema = current_schema() AND table_name = $1"
            }
        };
        let mut counts = Vec::with_capacity(tables.len());
        for table in tables {
            check_table_name(table)?;
            let found: i64 = sqlx::query_scalar(exists)
                .bind(*table)
                .fetch_one(&self.pool)
                .await?;
            counts.push(if found == 0 {
                0
            } else {
                sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                    .fetch_one(&self.pool)
                    .await?
            });
        }
        Ok(counts)
    }
}

/// Checks a SQLite file on its own (a backup copy: opened read-only, without the pool's pragmas,
/// so it is left exactly as it is): `PRAGMA quick_check` must pass; returns the rows in each of
/// `tables` (0 for a missing table).
pub async fn sqlite_file_counts(path: &std::path::Path, tables: &[&str]) -> Result<Vec<i64>> {
    use sqlx::Connection;
    let opts = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(path)
        .read_only(true);
    let mut conn = sqlx::SqliteConnection::connect_with(&opts)
        .await
        .map_err(|e| {
            StorageError::Unavailable(format!("cannot open {} as SQLite: {e}", path.display()))
        })?;
    let check: String = sqlx::query_scalar("PRAGMA quick_check")
        .fetch_one(&mut conn)
        .await
        .map_err(|e| {
            StorageError::Unavailable(format!(
                "{} is not a readable SQLite database: {e}",
                path.display()
            ))
        })?;
    if check != "ok" {
        return Err(StorageError::Unavailable(format!(
            "{} is damaged (quick_check: {check})",
            path.display()
        )));
    }
    let mut counts = Vec::with_capacity(tables.len());
    for table in tables {
        check_table_name(table)?;
        let found: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1",
        )
        .bind(*table)
        .fetch_one(&mut conn)
        .await?;
        counts.push(if found == 0 {
            0
        } else {
            sqlx::query_scalar(&format!("SELECT COUNT(*) FROM {table}"))
                .fetch_one(&mut conn)
                .await?
        });
    }
    conn.close().await?;
    Ok(counts)
}

fn check_table_name(table: &str) -> Result<()> {
    if table.is_empty() || !table.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
        return Err(StorageError::Unavailable(format!(
            "invalid table name {table:?}"
        )));
    }
    Ok(())
}
