-- Personal API tokens (`Authorization: Bearer pb_…`). Only the SHA-256 of a token is stored: the
-- secret is shown once, when it is created. scopes is a space-separated list (tasks:read …).
-- Revoking deletes the row, so a revoked token is simply unknown. last_used_at is written at most
-- once a minute per token, not on every request.
CREATE TABLE api_tokens (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id      INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    name         TEXT    NOT NULL,
    scopes       TEXT    NOT NULL,
    token_hash   TEXT    NOT NULL,
    created_at   INTEGER NOT NULL,
    expires_at   INTEGER,
    last_used_at INTEGER
);
CREATE UNIQUE INDEX api_tokens_hash_key ON api_tokens (token_hash);
CREATE INDEX api_tokens_user_idx ON api_tokens (user_id, id);
