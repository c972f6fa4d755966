-- Safe retries (`Idempotency-Key` on POST /tasks and POST /resources): one row per (user, key),
-- reserved in the transaction that creates the task or resource and holding its stored response,
-- so a crash never leaves a creation without its record. status 0: reserved, not answered yet.
-- The Cleanup job deletes rows older than 24 hours.
CREATE TABLE idempotency_keys (
    user_id     BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    key         TEXT   NOT NULL,
    fingerprint TEXT   NOT NULL,
    status      BIGINT NOT NULL,
    body        TEXT   NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (user_id, key)
);
CREATE INDEX idempotency_keys_created_idx ON idempotency_keys (created_at);
