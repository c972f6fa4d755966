-- Watch: the resource catalogue, its news feed and ZIP import requests. Times are Unix milliseconds (INTEGER).

CREATE TABLE resources (
    id                    INTEGER PRIMARY KEY AUTOINCREMENT,
    uuid                  TEXT    NOT NULL,
    user_id               INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    full_url              TEXT    NOT NULL,
    protocol              TEXT    NOT NULL,
    domain                TEXT    NOT NULL,
    domain_zone           TEXT    NOT NULL,
    url_path              TEXT    NOT NULL,
    query_params          TEXT    NOT NULL DEFAULT '{}',   -- JSON object: key -> value
    unavailable_count     INTEGER NOT NULL DEFAULT 0,
    last_status_code      INTEGER,
    last_is_available     INTEGER,
    last_checked_at       INTEGER,
    last_response_time_ms INTEGER,
    created_at            INTEGER NOT NULL
);
CREATE UNIQUE INDEX resources_uuid_key ON resources (uuid);
CREATE UNIQUE INDEX resources_user_url_key ON resources (user_id, full_url);
CREATE INDEX resources_user_zone_idx ON resources (user_id, domain_zone, id);
CREATE INDEX resources_user_available_idx ON resources (user_id, last_is_available, id);

-- The news feed. Events outlive their resource (resource_deleted keeps the URL), so no foreign key
-- to resources.
CREATE TABLE events (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id       INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    resource_uuid TEXT    NOT NULL,
    url           TEXT    NOT NULL,
    kind          TEXT    NOT NULL,   -- resource_added | status_changed | photo_added | resource_deleted
    created_at    INTEGER NOT NULL,
    details       TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX events_user_id_idx ON events (user_id, id DESC);
CREATE INDEX events_resource_idx ON events (resource_uuid, id DESC);

-- A ZIP import: created with its job, updated by the job as it goes.
CREATE TABLE processing_requests (
    id          TEXT    PRIMARY KEY,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    status      TEXT    NOT NULL DEFAULT 'pending',   -- pending | in_process | succeeded | failed
    total       INTEGER NOT NULL DEFAULT 0,
    processed   INTEGER NOT NULL DEFAULT 0,
    created     INTEGER NOT NULL DEFAULT 0,
    duplicates  INTEGER NOT NULL DEFAULT 0,
    error_count INTEGER NOT NULL DEFAULT 0,
    error_urls  TEXT    NOT NULL DEFAULT '[]',        -- JSON array of the first bad lines
    failure     TEXT,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX processing_requests_user_idx ON processing_requests (user_id, created_at);

-- The screenshot of a resource (one per resource; a new one replaces it). The image bytes live in
-- the blob store under blob_key.
CREATE TABLE screenshots (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_id  INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    blob_key     TEXT    NOT NULL,
    content_type TEXT    NOT NULL,
    size_bytes   INTEGER NOT NULL,
    source       TEXT    NOT NULL,   -- upload | capture
    created_at   INTEGER NOT NULL
);
CREATE UNIQUE INDEX screenshots_resource_key ON screenshots (resource_id);
