-- Watch: availability checks. Times are Unix milliseconds (INTEGER).

-- Every check of a resource (raw history; see docs in storage/src/checks.rs).
CREATE TABLE checks (
    id               INTEGER PRIMARY KEY AUTOINCREMENT,
    resource_id      INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    checked_at       INTEGER NOT NULL,
    status_code      INTEGER,              -- NULL when no response arrived
    error_kind       TEXT,                 -- dns | connect | tls | timeout | too_many_redirects | blocked | other
    response_time_ms INTEGER NOT NULL,
    is_available     INTEGER NOT NULL,     -- final status 200-399
    final_url        TEXT
);
CREATE INDEX checks_resource_time_idx ON checks (resource_id, checked_at);

-- The monitoring round (its scheduled time) that last claimed the resource: a round checks a
-- resource at most once, however many workers and duplicated batches take part.
ALTER TABLE resources ADD COLUMN check_round INTEGER;

-- Checks older than monitor.check_retention_days, rolled up per resource and hour (UTC), so the
-- history keeps uptime without growing with every check; dropped after monitor.aggregate_retention_days.
CREATE TABLE check_hourly (
    resource_id      INTEGER NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    hour_start       INTEGER NOT NULL,
    checks           INTEGER NOT NULL,
    available        INTEGER NOT NULL,
    response_ms_sum  INTEGER NOT NULL,
    PRIMARY KEY (resource_id, hour_start)
);
CREATE INDEX checks_time_idx ON checks (checked_at);
