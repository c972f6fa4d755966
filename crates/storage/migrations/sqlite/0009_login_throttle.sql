-- Login attempts per key ("pair:<email>|<addr>", "ip:<addr>", "account:<email>") in a fixed window.
-- One row per key, so that an attempt is reserved by one upsert that also tells the count: parallel
-- guesses are counted before any password is checked (the row lock orders them on PostgreSQL).
CREATE TABLE login_throttle (
    key          TEXT    PRIMARY KEY,
    window_start BIGINT  NOT NULL,
    attempts     INTEGER NOT NULL
);
CREATE INDEX login_throttle_window_idx ON login_throttle (window_start);

DROP TABLE login_failures;
