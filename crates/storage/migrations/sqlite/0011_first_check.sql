-- A new resource is checked at once, not at the next round: it is created with next_check_at = its
-- creation time even without an interval of its own, and the due sweep (schedules.monitor_due, and
-- a nudge right after POST /resources) takes it, clearing next_check_at after that first check.
-- So the due index covers every resource with a next_check_at, not only those with an interval.
DROP INDEX resources_next_check_idx;
CREATE INDEX resources_next_check_idx ON resources (next_check_at)
    WHERE next_check_at IS NOT NULL;
