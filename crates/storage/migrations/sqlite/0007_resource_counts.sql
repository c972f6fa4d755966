-- Totals for `GET /resources` without counting rows (issue #6): COUNT(*) over a user's 100k
-- resources cost milliseconds per request. Triggers keep one row per (user, zone, availability)
-- exact in the same transaction as every change; SQLite has one writer at a time, so the upsert
-- on the key never waits on another transaction. The list sums the rows its filter selects.
--
-- availability: 1 available, 0 unavailable, -1 not checked yet (last_is_available NULL).
CREATE TABLE resource_counts (
    user_id      INTEGER NOT NULL,
    domain_zone  TEXT    NOT NULL,
    availability INTEGER NOT NULL,
    n            INTEGER NOT NULL,
    PRIMARY KEY (user_id, domain_zone, availability)
) WITHOUT ROWID;

INSERT INTO resource_counts (user_id, domain_zone, availability, n)
SELECT user_id, domain_zone, COALESCE(last_is_available, -1), COUNT(*)
FROM resources GROUP BY user_id, domain_zone, COALESCE(last_is_available, -1);

CREATE TRIGGER resource_counts_insert AFTER INSERT ON resources
BEGIN
    INSERT INTO resource_counts (user_id, domain_zone, availability, n)
    VALUES (NEW.user_id, NEW.domain_zone, COALESCE(NEW.last_is_available, -1), 1)
    ON CONFLICT (user_id, domain_zone, availability) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER resource_counts_delete AFTER DELETE ON resources
BEGIN
    UPDATE resource_counts SET n = n - 1
    WHERE user_id = OLD.user_id AND domain_zone = OLD.domain_zone
      AND availability = COALESCE(OLD.last_is_available, -1);
END;

CREATE TRIGGER resource_counts_update
AFTER UPDATE OF user_id, domain_zone, last_is_available ON resources
WHEN OLD.user_id IS NOT NEW.user_id OR OLD.domain_zone IS NOT NEW.domain_zone
  OR OLD.last_is_available IS NOT NEW.last_is_available
BEGIN
    UPDATE resource_counts SET n = n - 1
    WHERE user_id = OLD.user_id AND domain_zone = OLD.domain_zone
      AND availability = COALESCE(OLD.last_is_available, -1);
    INSERT INTO resource_counts (user_id, domain_zone, availability, n)
    VALUES (NEW.user_id, NEW.domain_zone, COALESCE(NEW.last_is_available, -1), 1)
    ON CONFLICT (user_id, domain_zone, availability) DO UPDATE SET n = n + 1;
END;

-- Both filters at once (`domain_zone=org&availability=true`), in id order: a page is a range of
-- this index, and the deferred join in storage::resources::list reads only the rows it returns.
CREATE INDEX resources_user_zone_available_idx
    ON resources (user_id, domain_zone, last_is_available, id);
