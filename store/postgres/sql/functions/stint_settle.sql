-- stint_settle recounts the queues of the given resources, whose rows the
-- caller has locked, from their entries and frontiers, and promotes what
-- may move. The sweep calls it: it returns how many queues it recounted
-- (their counters were wrong) and how many entries it promoted, and both
-- are bug signals.
CREATE OR REPLACE FUNCTION stint_settle(p_resources text[], OUT recounted integer, OUT promoted integer)
 RETURNS record
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
BEGIN
    WITH actual AS (
        SELECT r.name,
            count(q.seq) FILTER (WHERE q.seq <= r.frontier)::integer AS holders,
            count(q.seq) FILTER (WHERE q.seq > r.frontier)::integer AS waiting,
            coalesce(bool_or(q.exclusive) FILTER (WHERE q.seq <= r.frontier), false) AS exclusive_held
        FROM stint_resources r LEFT JOIN stint_task_resources q ON q.resource = r.name
        WHERE r.name = ANY (p_resources)
        GROUP BY r.name
    ), fixed AS (
        UPDATE stint_resources r
        SET holders = a.holders, waiting = a.waiting, exclusive_held = a.exclusive_held
        FROM actual a
        WHERE r.name = a.name
          AND (r.holders, r.waiting, r.exclusive_held) IS DISTINCT FROM (a.holders, a.waiting, a.exclusive_held)
        RETURNING 1
    )
    SELECT count(*) INTO recounted FROM fixed;
    promoted := stint_promote(p_resources);
END $function$;
