//! Watch: the bulk inserts of ZIP imports (and of the benchmark's seeding). Rows go in a few dozen
//! per statement, each new one with its `resource_added` event in the caller's transaction, and an
//! import's rows record their processing request (see [`crate::processing`]).

use crate::feed::insert_added_events;
use crate::resources::{new_uuid, params_json};
use crate::Result;
use pulseboard_domain::{ResourceUrl, UnixMillis};
use serde_json::Value;
use sqlx::AnyConnection;

/// Rows per multi-row INSERT. SQLite looks a `$N` parameter up by walking the statement's list
/// of names, so binding costs grow with the square of the parameters per statement: at 250 rows
/// (2,250 parameters) that lookup was a third of an import's CPU time.
const ROWS_PER_INSERT: usize = 32;

/// Adds many resources at once (an import batch): the ones the user already has are skipped.
/// Returns the (uuid, full_url) of the ones created; each gets its `resource_added` event in the
/// caller's transaction. The URLs should be distinct.
pub async fn insert_batch(
    conn: &mut AnyConnection,
    user_id: i64,
    urls: &[ResourceUrl],
    event_details: &Value,
    now: UnixMillis,
) -> Result<Vec<(String, String)>> {
    let mut created = Vec::with_capacity(urls.len());
    for chunk in urls.chunks(ROWS_PER_INSERT) {
        created.extend(insert_rows(conn, user_id, None, chunk, now).await?);
    }
    let details = event_details.to_string();
    for chunk in created.chunks(ROWS_PER_INSERT * 2) {
        insert_added_events(conn, user_id, chunk, &details, now).await?;
    }
    Ok(created)
}

/// An import's batch: like [`insert_batch`], and every row it inserts records the processing
/// request (`resources.import_id`, which says where a resource came from). Returns how many it
/// created; the URLs it skipped are in the catalogue already, so they are duplicates: the import
/// commits its position with each batch (`processing::update_progress`, same transaction), so a
/// resumed attempt never meets a row that an earlier attempt of the same request inserted.
pub async fn import_batch(
    conn: &mut AnyConnection,
    user_id: i64,
    request_id: &str,
    urls: &[ResourceUrl],
    event_details: &Value,
    now: UnixMillis,
) -> Result<usize> {
    let mut created = Vec::with_capacity(urls.len());
    for chunk in urls.chunks(ROWS_PER_INSERT) {
        created.extend(insert_rows(conn, user_id, Some(request_id), chunk, now).await?);
    }
    let details = event_details.to_string();
    for chunk in created.chunks(ROWS_PER_INSERT * 2) {
        insert_added_events(conn, user_id, chunk, &details, now).await?;
    }
    Ok(created.len())
}

async fn insert_rows(
    conn: &mut AnyConnection,
    user_id: i64,
    import_id: Option<&str>,
    urls: &[ResourceUrl],
    now: UnixMillis,
) -> Result<Vec<(String, String)>> {
    // user_id, created_at and import_id are shared: $1, $2 and $3. Each row is due for its first
    // check at once (next_check_at = created_at): the next due sweep takes it.
    let values: Vec<String> = (0..urls.len())
        .map(|i| {
            let b = 4 + i * 7;
            format!(
                "(${}, $1, ${}, ${}, ${}, ${}, ${}, ${}, $2, $3, $2)",
                b,
                b + 1,
                b + 2,
                b + 3,
                b + 4,
                b + 5,
                b + 6
            )
        })
        .collect();
    let sql = format!(
        "INSERT INTO resources (uuid, user_id, full_url, protocol, domain, domain_zone, url_path, \
                                query_params, created_at, import_id, next_check_at) \
         VALUES {} ON CONFLICT (user_id, full_url) DO NOTHING RETURNING uuid, full_url",
        values.join(", ")
    );
    let mut q = sqlx::query_as::<_, (String, String)>(&sql)
        .bind(user_id)
        .bind(now)
        .bind(import_id);
    for url in urls {
        q = q
            .bind(new_uuid())
            .bind(url.full_url().to_owned())
            .bind(url.protocol().to_owned())
            .bind(url.domain().to_owned())
            .bind(url.domain_zone().to_owned())
            .bind(url.url_path().to_owned())
            .bind(params_json(url));
    }
    Ok(q.fetch_all(&mut *conn).await?)
}
