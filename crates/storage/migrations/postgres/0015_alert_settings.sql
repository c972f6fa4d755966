-- Per-resource alert settings. alert_after: consecutive failed checks before the down alert (one per
-- outage). delete_after_failures: failed checks in a row that delete the resource; NULL follows
-- monitor.max_retries, 0 never deletes. remind_every_hours: while down and alerted, a reminder
-- every N hours (NULL: none). down_alerted / last_alert_at: whether this outage's down alert went
-- out (so the recovery alert is sent only after one) and when the latest alert or reminder did.
-- all_channels: alerts go to every channel of the owner, including channels added later; when
-- false, only to those listed in resource_channels.
ALTER TABLE resources ADD COLUMN alert_after BIGINT NOT NULL DEFAULT 1;
ALTER TABLE resources ADD COLUMN delete_after_failures BIGINT;
ALTER TABLE resources ADD COLUMN remind_every_hours BIGINT;
ALTER TABLE resources ADD COLUMN all_channels BOOLEAN NOT NULL DEFAULT TRUE;
ALTER TABLE resources ADD COLUMN down_alerted BOOLEAN NOT NULL DEFAULT FALSE;
ALTER TABLE resources ADD COLUMN last_alert_at BIGINT;
-- Until now every flip to down was alerted: a resource down today had its alert, so its recovery
-- is alerted too.
UPDATE resources SET down_alerted = TRUE WHERE last_is_available = FALSE;

CREATE TABLE resource_channels (
    resource_id BIGINT NOT NULL REFERENCES resources (id) ON DELETE CASCADE,
    channel_id  BIGINT NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
    PRIMARY KEY (resource_id, channel_id)
);
CREATE INDEX resource_channels_channel_idx ON resource_channels (channel_id);
