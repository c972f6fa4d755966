-- Messages already handed to the relay, by idempotency key, so that a retried job never sends twice.
CREATE TABLE mail_log (
    message_key TEXT    PRIMARY KEY,
    sent_at     INTEGER NOT NULL
);

-- The digest sweep looks users up by time zone and the last day they got a digest for.
CREATE INDEX users_digest_idx ON users (time_zone, last_digest_day);
