-- Scheduling: per-resource check intervals (issue #7) and the digest sweep's index (issue #5).
--
-- check_interval_secs NULL: the resource is checked by every availability round
-- (schedules.monitor). Otherwise it has its own cadence: next_check_at is when it is due, and the
-- frequent `monitor_due` sweep (and every round) enqueues it once that time has passed, moving
-- next_check_at one interval on. next_check_at is NULL for resources without an interval.
ALTER TABLE resources ADD COLUMN check_interval_secs BIGINT;
ALTER TABLE resources ADD COLUMN next_check_at BIGINT;
CREATE INDEX resources_next_check_idx ON resources (next_check_at)
    WHERE check_interval_secs IS NOT NULL;

-- The digest sweep pages through a time zone's users in id order (storage::users::due_for_digest):
-- with this index each page is a range read, not a sort of every user in the time zone.
CREATE INDEX users_digest_sweep_idx ON users (time_zone, id);
