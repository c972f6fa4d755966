use crate::{flag, Backend, Db, Result};
use pulseboard_domain::{TaskDescription, TaskPosition, TaskTitle, UnixMillis};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, FromRow, Row};

#[derive(Debug, Clone)]
pub struct Task {
    pub id: i64,
    pub user_id: i64,
    pub title: String,
    pub description: String,
    pub done: bool,
    pub done_at: Option<UnixMillis>,
    pub position: i64,
    pub created_at: UnixMillis,
    pub updated_at: UnixMillis,
}

impl FromRow<'_, AnyRow> for Task {
    fn from_row(row: &AnyRow) -> std::result::Result<Self, sqlx::Error> {
        Ok(Self {
            id: row.try_get("id")?,
            user_id: row.try_get("user_id")?,
            title: row.try_get("title")?,
            description: row.try_get("description")?,
            done: flag(row, "done")?,
            done_at: row.try_get("done_at")?,
            position: row.try_get("position")?,
            created_at: row.try_get("created_at")?,
            updated_at: row.try_get("updated_at")?,
        })
    }
}

const COLUMNS: &str =
    "id, user_id, title, description, done, done_at, position, created_at, updated_at";

/// Gap between positions of new tasks, so that a task can be moved between two others without
/// renumbering the list.
pub const POSITION_STEP: i64 = 1024;

/// The user's tasks in board order, optionally only done or undone ones.
///
/// The rows come back aggregated into one JSON array: sqlx runs each SQLite connection on its
/// own thread and hands every row across with a wake-up, which made a 50-task list cost ~50
/// thread hand-offs (most of `GET /tasks`'s CPU in `perf`). One value per list is one hand-off on
/// either backend; the fields are still plain column values, formatted in Rust as everywhere else.
pub async fn list(db: &Db, user_id: i64, done: Option<bool>) -> Result<Vec<Task>> {
    let (array, agg, cast) = match db.backend() {
        Backend::Sqlite => ("json_array", "json_group_array", ""),
        Backend::Postgres => ("json_build_array", "json_agg", "::text"),
    };
    let filter = if done.is_some() { " AND done = $2" } else { "" };
    let q = format!(
        "SELECT COALESCE({agg}({array}(id, title, description, done, done_at, position, \
                                       created_at, updated_at) ORDER BY position, id){cast}, '[]') \
         FROM tasks WHERE user_id = $1{filter}"
    );
    let mut query = sqlx::query_scalar::<_, String>(&q).bind(user_id);
    if let Some(d) = done {
        query = query.bind(d);
    }
    let json = query.fetch_one(db.pool()).await?;
    let rows: Vec<ListedTask> = serde_json::from_str(&json)
        .map_err(|e| sqlx::Error::Decode(format!("task list: {e}").into()))?;
    Ok(rows
        .into_iter()
        .map(|r| Task {
            id: r.0,
            user_id,
            title: r.1,
            description: r.2,
            done: r.3.into(),
            done_at: r.4,
            position: r.5,
            created_at: r.6,
            updated_at: r.7,
        })
        .collect())
}

/// One task of [`list`]'s array, in its column order.
#[derive(serde::Deserialize)]
struct ListedTask(
    i64,
    String,
    String,
    JsonFlag,
    Option<UnixMillis>,
    i64,
    UnixMillis,
    UnixMillis,
);

/// A boolean column as JSON: `true`/`false` from PostgreSQL, `1`/`0` from SQLite.
struct JsonFlag(bool);

impl From<JsonFlag> for bool {
    fn from(f: JsonFlag) -> bool {
        f.0
    }
}

impl<'de> serde::Deserialize<'de> for JsonFlag {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = JsonFlag;
            fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
                f.write_str("a boolean or 0/1")
            }
            fn visit_bool<E>(self, v: bool) -> std::result::Result<JsonFlag, E> {
                Ok(JsonFlag(v))
            }
            fn visit_u64<E>(self, v: u64) -> std::result::Result<JsonFlag, E> {
                Ok(JsonFlag(v != 0))
            }
            fn visit_i64<E>(self, v: i64) -> std::result::Result<JsonFlag, E> {
                Ok(JsonFlag(v != 0))
            }
        }
        d.deserialize_any(Visitor)
    }
}

pub async fn get(db: &Db, user_id: i64, id: i64) -> Result<Option<Task>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM tasks WHERE id = $1 AND user_id = $2"
    ))
    .bind(id)
    .bind(user_id)
    .fetch_optional(db.pool())
    .await?)
}

/// Adds a task at the end of the user's list (on the caller's transaction: `Db::write`).
pub async fn create(
    conn: &mut AnyConnection,
    user_id: i64,
    title: &TaskTitle,
    description: &TaskDescription,
    now: UnixMillis,
) -> Result<Task> {
    Ok(sqlx::query_as(&format!(
        "INSERT INTO tasks (user_id, title, description, position, created_at, updated_at) \
         VALUES ($1, $2, $3, \
                 (SELECT COALESCE(MAX(position), 0) + {POSITION_STEP} FROM tasks WHERE user_id = $1), \
                 $4, $4) \
         RETURNING {COLUMNS}"
    ))
    .bind(user_id)
    .bind(title.as_str())
    .bind(description.as_str())
    .bind(now)
    .fetch_one(conn)
    .await?)
}

#[derive(Debug, Default)]
pub struct TaskPatch {
    pub title: Option<TaskTitle>,
    pub description: Option<TaskDescription>,
    pub done: Option<bool>,
    pub position: Option<TaskPosition>,
}

/// Applies a patch in one statement. Marking done stamps `done_at` (kept if it was already done);
/// un-marking clears it. None when the task is not the user's.
pub async fn update(
    conn: &mut AnyConnection,
    user_id: i64,
    id: i64,
    patch: TaskPatch,
    now: UnixMillis,
) -> Result<Option<Task>> {
    Ok(sqlx::query_as(&format!(
        "UPDATE tasks SET \
            title = COALESCE($1, title), \
            description = COALESCE($2, description), \
            done_at = CASE WHEN $3 IS NULL THEN done_at \
                           WHEN $3 THEN COALESCE(done_at, $5) \
                           ELSE NULL END, \
            done = COALESCE($3, done), \
            position = COALESCE($4, position), \
            updated_at = $5 \
         WHERE id = $6 AND user_id = $7 \
         RETURNING {COLUMNS}"
    ))
    .bind(patch.title.map(TaskTitle::into_inner))
    .bind(patch.description.map(TaskDescription::into_inner))
    .bind(patch.done)
    .bind(patch.position.map(TaskPosition::get))
    .bind(now)
    .bind(id)
    .bind(user_id)
    .fetch_optional(conn)
    .await?)
}

pub async fn delete(conn: &mut AnyConnection, user_id: i64, id: i64) -> Result<bool> {
    let r = sqlx::query("DELETE FROM tasks WHERE id = $1 AND user_id = $2")
        .bind(id)
        .bind(user_id)
        .execute(conn)
        .await?;
    Ok(r.rows_affected() == 1)
}

/// What the digest of one day says: undone tasks now (count and the first `undone_limit` titles)
/// and the titles of tasks marked done within `[from, to)`.
pub struct DigestData {
    pub undone_count: i64,
    pub undone: Vec<String>,
    pub done: Vec<String>,
}

pub async fn digest_data(
    db: &Db,
    user_id: i64,
    from: UnixMillis,
    to: UnixMillis,
    undone_limit: i64,
) -> Result<DigestData> {
    let (undone_count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM tasks WHERE user_id = $1 AND done = $2")
            .bind(user_id)
            .bind(false)
            .fetch_one(db.pool())
            .await?;
    let undone: Vec<(String,)> = sqlx::query_as(
        "SELECT title FROM tasks WHERE user_id = $1 AND done = $2 ORDER BY position, id LIMIT $3",
    )
    .bind(user_id)
    .bind(false)
    .bind(undone_limit)
    .fetch_all(db.pool())
    .await?;
    let done: Vec<(String,)> = sqlx::query_as(
        "SELECT title FROM tasks WHERE user_id = $1 AND done_at >= $2 AND done_at < $3 ORDER BY done_at, id LIMIT 100",
    )
    .bind(user_id)
    .bind(from)
    .bind(to)
    .fetch_all(db.pool())
    .await?;
    Ok(DigestData {
        undone_count,
        undone: undone.into_iter().map(|(t,)| t).collect(),
        done: done.into_iter().map(|(t,)| t).collect(),
    })
}
