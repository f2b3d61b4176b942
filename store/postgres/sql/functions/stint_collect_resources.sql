-- stint_collect_resources deletes up to p_limit rows of resources that have
-- no queue entry and no capacity, passing over the rows that are locked
-- (their queues are being changed), and returns how many it deleted. A
-- row whose counters changed since the statement's snapshot is checked
-- again on its newest version when it is locked, so a resource that
-- gained an entry meanwhile stays.
CREATE OR REPLACE FUNCTION stint_collect_resources(p_limit integer)
 RETURNS integer
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
DECLARE
    n integer;
BEGIN
    WITH idle AS (
        SELECT r.name FROM stint_resources r
        WHERE r.holders = 0 AND r.waiting = 0 AND r.capacity IS NULL
          AND NOT EXISTS (SELECT 1 FROM stint_task_resources q WHERE q.resource = r.name)
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ), gone AS (
        DELETE FROM stint_resources r USING idle WHERE r.name = idle.name RETURNING 1
    )
    SELECT count(*) INTO n FROM gone;
    RETURN n;
END $function$;
