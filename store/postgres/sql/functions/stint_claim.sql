-- stint_claim gives the worker p_worker up to p_limit waiting tasks it can
-- run (one of p_names, versions satisfied by p_versions), in queue order,
-- skipping rows other claims hold: each becomes running with the next
-- attempt (its fencing token), without the error and result of an earlier
-- attempt, and the change is published. A task is
-- claimable when it is unblocked and, as the second line of defence, every
-- queue entry of it is within its resource's frontier. The plan settings
-- keep it on the indexes: the planner's estimates over the array arguments
-- are no guide.
CREATE OR REPLACE FUNCTION stint_claim(p_worker text, p_names text[], p_limit integer, p_versions jsonb)
 RETURNS SETOF stint_tasks
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_mergejoin TO 'off'
 SET enable_bitmapscan TO 'off'
 SET enable_sort TO 'off'
 SET enable_material TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
BEGIN
    RETURN QUERY
    WITH claimed AS (
        UPDATE stint_tasks t
        SET state = 'running', worker = p_worker, attempt = t.attempt + 1,
            started_at = clock_timestamp(), updated_at = now(), error = NULL, result = NULL
        FROM (
            SELECT c.id FROM stint_tasks c
            WHERE c.state = 'waiting' AND c.unblocked_at IS NOT NULL AND c.name = ANY (p_names)
              AND (c.versions = '{}'::jsonb OR stint_versions_ok(c.versions, p_versions))
              -- stint_granted, written out: PostgreSQL does not inline a
              -- function with a subquery, and a call per candidate cost
              -- some 6 µs.
              AND NOT EXISTS (
                  SELECT 1 FROM stint_resources r
                  WHERE r.name = ANY (c.exclusive_resources || c.shared_resources)
                    AND r.frontier < c.seq)
            ORDER BY c.seq
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        ) picked
        WHERE t.id = picked.id
        RETURNING t.*
    ), published AS (
        SELECT stint_publish_all(array_agg(claimed.id), 'running') FROM claimed
    )
    SELECT claimed.* FROM claimed CROSS JOIN published ORDER BY claimed.seq;
END $function$;
