-- Notification channels: where a user's down/up alerts (and test events) are delivered besides the
-- alert email. `config` is the kind's settings as JSON, secrets included (webhook secret, Telegram
-- bot token, ntfy token): the API never returns them. An email channel to another address than the
-- account's stays unconfirmed (confirmed = 0, nothing delivered) until the link mailed to it is
-- opened. last_delivery_*: the outcome of the latest delivery attempt (ok | retrying | failed).
CREATE TABLE channels (
    id                   INTEGER PRIMARY KEY AUTOINCREMENT,
    user_id              INTEGER NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    kind                 TEXT    NOT NULL,
    name                 TEXT    NOT NULL,
    config               TEXT    NOT NULL,
    enabled              INTEGER NOT NULL DEFAULT 1,
    confirmed            INTEGER NOT NULL DEFAULT 1,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    last_delivery_at     INTEGER,
    last_delivery_status TEXT,
    last_delivery_error  TEXT
);
CREATE INDEX channels_user_idx ON channels (user_id, id);
