-- Totals for `GET /resources` without counting rows (issue #6): COUNT(*) over a user's 100k
-- resources cost milliseconds per request. Statement triggers append signed deltas per
-- (user, zone, availability) in the same transaction as every change; the list sums the rows its
-- filter selects. Appending, rather than updating one row per key, means concurrent writers
-- (two workers recording checks for one user) never wait on, or deadlock over, a counter row.
-- storage::resources::compact_counts folds a user's deltas back into one row per key.
--
-- availability: 1 available, 0 unavailable, -1 not checked yet (last_is_available NULL).
CREATE TABLE resource_counts (
    user_id      BIGINT   NOT NULL,
    domain_zone  TEXT     NOT NULL,
    availability SMALLINT NOT NULL,
    n            BIGINT   NOT NULL
);
CREATE INDEX resource_counts_key_idx ON resource_counts (user_id, domain_zone, availability);

CREATE FUNCTION resource_availability(v BOOLEAN) RETURNS SMALLINT
LANGUAGE sql IMMUTABLE AS $$ SELECT CASE WHEN v IS NULL THEN -1 WHEN v THEN 1 ELSE 0 END::SMALLINT $$;

INSERT INTO resource_counts (user_id, domain_zone, availability, n)
SELECT user_id, domain_zone, resource_availability(last_is_available), COUNT(*)
FROM resources GROUP BY 1, 2, 3;

CREATE FUNCTION resource_counts_inserted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO resource_counts (user_id, domain_zone, availability, n)
    SELECT user_id, domain_zone, resource_availability(last_is_available), COUNT(*)
    FROM new_rows GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE FUNCTION resource_counts_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO resource_counts (user_id, domain_zone, availability, n)
    SELECT user_id, domain_zone, resource_availability(last_is_available), -COUNT(*)
    FROM old_rows GROUP BY 1, 2, 3;
    RETURN NULL;
END $$;

CREATE FUNCTION resource_counts_updated() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO resource_counts (user_id, domain_zone, availability, n)
    SELECT user_id, domain_zone, availability, SUM(d) FROM (
        SELECT user_id, domain_zone, resource_availability(last_is_available) AS availability,
               1 AS d FROM new_rows
        UNION ALL
        SELECT user_id, domain_zone, resource_availability(last_is_available), -1 FROM old_rows
    ) changes
    GROUP BY 1, 2, 3 HAVING SUM(d) <> 0;
    RETURN NULL;
END $$;

CREATE TRIGGER resource_counts_insert AFTER INSERT ON resources
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resource_counts_inserted();
CREATE TRIGGER resource_counts_delete AFTER DELETE ON resources
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resource_counts_deleted();
CREATE TRIGGER resource_counts_update AFTER UPDATE ON resources
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION resource_counts_updated();

-- Both filters at once (`domain_zone=org&availability=true`), in id order: a page is a range of
-- this index, and the deferred join in storage::resources::list reads only the rows it returns.
CREATE INDEX resources_user_zone_available_idx
    ON resources (user_id, domain_zone, last_is_available, id);
