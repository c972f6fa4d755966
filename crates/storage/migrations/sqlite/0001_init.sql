-- Accounts, sessions, tasks and the job queue. Times are Unix milliseconds (INTEGER) on every backend.

CREATE TABLE users (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    email           TEXT    NOT NULL,
    password_hash   TEXT    NOT NULL,
    role            TEXT    NOT NULL DEFAULT 'user',
    locale          TEXT    NOT NULL DEFAULT 'en',
    time_zone       TEXT    NOT NULL DEFAULT 'UTC',
    digest_enabled  INTEGER NOT NULL DEFAULT 1,
    alerts_enabled  INTEGER NOT NULL DEFAULT 0,
    last_digest_day TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL
);
-- Emails are stored normalised (trimmed, lower-case): a plain unique index is case-insensitive.
CREATE UNIQUE INDEX users_email_key ON users (email);

-- One row per refresh token; a login is a family of tokens rotated one into the next.
CREATE TABLE refresh_tokens (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    family      TEXT    NOT NULL,
    token_hash  TEXT    NOT NULL,
    created_at  INTEGER NOT NULL,
    expires_at  INTEGER NOT NULL,
    rotated_at  INTEGER,
    revoked_at  INTEGER
);
CREATE UNIQUE INDEX refresh_tokens_hash_key ON refresh_tokens (token_hash);
CREATE INDEX refresh_tokens_family_idx ON refresh_tokens (family);
CREATE INDEX refresh_tokens_user_idx ON refresh_tokens (user_id);

-- Failed logins, counted per key ("account:<email>" or "ip:<addr>") within a window.
CREATE TABLE login_failures (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    key     TEXT    NOT NULL,
    at      INTEGER NOT NULL
);
CREATE INDEX login_failures_key_at_idx ON login_failures (key, at);

CREATE TABLE tasks (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id     INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    title       TEXT    NOT NULL,
    description TEXT    NOT NULL DEFAULT '',
    done        INTEGER NOT NULL DEFAULT 0,
    done_at     INTEGER,
    position    INTEGER NOT NULL,
    created_at  INTEGER NOT NULL,
    updated_at  INTEGER NOT NULL
);
CREATE INDEX tasks_user_done_position_idx ON tasks (user_id, done, position, id);
CREATE INDEX tasks_user_done_at_idx ON tasks (user_id, done_at);

-- The embedded job queue. A job is claimed by setting locked_until (a lease); a worker that dies
-- leaves the lease to expire and the job is claimed again.
CREATE TABLE jobs (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    queue           TEXT    NOT NULL,
    kind            TEXT    NOT NULL,
    payload         TEXT    NOT NULL,
    status          TEXT    NOT NULL DEFAULT 'queued',   -- queued | running | done | dead
    attempts        INTEGER NOT NULL DEFAULT 0,
    max_attempts    INTEGER NOT NULL,
    run_at          INTEGER NOT NULL,
    locked_until    INTEGER,
    locked_by       TEXT,
    last_error      TEXT,
    idempotency_key TEXT,
    created_at      INTEGER NOT NULL,
    updated_at      INTEGER NOT NULL,
    finished_at     INTEGER
);
CREATE UNIQUE INDEX jobs_idempotency_key ON jobs (idempotency_key);
CREATE INDEX jobs_claim_idx ON jobs (queue, status, run_at);
CREATE INDEX jobs_status_finished_idx ON jobs (status, finished_at);

-- Last occurrence fired per schedule, so that a restarted scheduler fires a missed one once.
CREATE TABLE schedule_runs (
    name            TEXT    PRIMARY KEY,
    last_occurrence INTEGER NOT NULL
);
