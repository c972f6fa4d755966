//! Watch: the screenshot row of a resource (at most one; the image itself is a blob, see
//! [`crate::blobs::store_screenshot`], the one way a screenshot is stored).

use crate::feed::{insert_event, PHOTO_ADDED};
use crate::resources::Resource;
use crate::{Db, Result};
use pulseboard_domain::UnixMillis;
use sqlx::{AnyConnection, FromRow};

#[derive(Debug, Clone, FromRow)]
pub struct Screenshot {
    pub id: i64,
    pub resource_id: i64,
    pub blob_key: String,
    pub content_type: String,
    pub size_bytes: i64,
    pub source: String,
    pub created_at: i64,
}

const SCREENSHOT_COLUMNS: &str =
    "id, resource_id, blob_key, content_type, size_bytes, source, created_at";

/// Stores the screenshot of a resource (replacing the previous one) and writes a `photo_added`
/// event. Returns the replaced screenshot's blob key, so that the caller can delete its bytes.
/// An upload is a request-sized write, so this goes through [`Db::write`].
pub async fn set_screenshot(
    db: &Db,
    resource: &Resource,
    blob_key: &str,
    content_type: &str,
    size_bytes: i64,
    source: &str,
    now: UnixMillis,
) -> Result<(Screenshot, Option<String>)> {
    let row = NewScreenshot {
        resource_id: resource.id,
        user_id: resource.user_id,
        resource_uuid: resource.uuid.clone(),
        url: resource.full_url.clone(),
        blob_key: blob_key.to_owned(),
        content_type: content_type.to_owned(),
        size_bytes,
        source: source.to_owned(),
        now,
    };
    db.write(move |tx| Box::pin(async move { replace(tx, &row).await }))
        .await
}

/// What [`set_screenshot`] writes, owned: [`Db::write`] may run it on another task.
struct NewScreenshot {
    resource_id: i64,
    user_id: i64,
    resource_uuid: String,
    url: String,
    blob_key: String,
    content_type: String,
    size_bytes: i64,
    source: String,
    now: UnixMillis,
}

async fn replace(
    tx: &mut AnyConnection,
    s: &NewScreenshot,
) -> Result<(Screenshot, Option<String>)> {
    let old: Option<(String,)> =
        sqlx::query_as("DELETE FROM screenshots WHERE resource_id = $1 RETURNING blob_key")
            .bind(s.resource_id)
            .fetch_optional(&mut *tx)
            .await?;
    let shot: Screenshot = sqlx::query_as(&format!(
        "INSERT INTO screenshots (resource_id, blob_key, content_type, size_bytes, source, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING {SCREENSHOT_COLUMNS}"
    ))
    .bind(s.resource_id)
    .bind(&s.blob_key)
    .bind(&s.content_type)
    .bind(s.size_bytes)
    .bind(&s.source)
    .bind(s.now)
    .fetch_one(&mut *tx)
    .await?;
    insert_event(
        tx,
        s.user_id,
        &s.resource_uuid,
        &s.url,
        PHOTO_ADDED,
        &serde_json::json!({
            "source": s.source,
            "content_type": s.content_type,
            "size_bytes": s.size_bytes,
        }),
        s.now,
    )
    .await?;
    Ok((shot, old.map(|(k,)| k)))
}

pub async fn screenshot_of(db: &Db, resource_id: i64) -> Result<Option<Screenshot>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {SCREENSHOT_COLUMNS} FROM screenshots WHERE resource_id = $1"
    ))
    .bind(resource_id)
    .fetch_optional(db.pool())
    .await?)
}
