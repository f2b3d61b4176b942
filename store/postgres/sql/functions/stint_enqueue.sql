-- stint_enqueue appends queue entries for tasks (the i-th of p_ids and
-- p_seqs is task i; p_res_task, p_res and p_res_exclusive list the
-- entries, by task index) to the queues of resources the caller has locked
-- in name order (stint_lock_resources), with seqs taken after the locks.
-- Each entry is judged against its queue's counters: it is ready when
-- nothing waits on the resource and either nothing holds it and it is the
-- first of the batch there, or no exclusive entry holds it, none comes
-- before it in the batch, and (on a resource with a capacity) the holders
-- and the entries of the batch before it leave it room. It returns, for each task, how many of its
-- entries are not ready (its blocked_count). Dispatch and EnqueueDue both
-- queue through it: the rule at entry is in one place.
CREATE OR REPLACE FUNCTION stint_enqueue(p_ids uuid[], p_seqs bigint[], p_res_task integer[], p_res text[], p_res_exclusive boolean[])
 RETURNS integer[]
 LANGUAGE plpgsql
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
    blocked integer[];
BEGIN
    WITH entries AS (
        SELECT e.task, e.res, e.excl, p_seqs[e.task] AS seq,
            row_number() OVER w AS pos,
            count(*) FILTER (WHERE e.excl) OVER w AS exclusive_so_far
        FROM unnest(p_res_task, p_res, p_res_exclusive) AS e(task, res, excl)
        WINDOW w AS (PARTITION BY e.res ORDER BY e.task ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ), judged AS (
        SELECT en.task, en.res, en.excl, en.seq,
            r.waiting = 0 AND ((r.holders = 0 AND en.pos = 1)
                OR (NOT r.exclusive_held AND en.exclusive_so_far = 0
                    AND (r.capacity IS NULL OR r.holders + en.pos <= r.capacity))) AS ready
        FROM entries en JOIN stint_resources r ON r.name = en.res
    ), queued AS (
        INSERT INTO stint_task_resources (resource, seq, task_id, exclusive)
        SELECT j.res, j.seq, p_ids[j.task], j.excl FROM judged j
    ), counted AS (
        UPDATE stint_resources r
        SET holders = r.holders + c.ready, waiting = r.waiting + c.waiting,
            exclusive_held = r.exclusive_held OR c.exclusive_ready,
            frontier = greatest(r.frontier, c.last_ready)
        FROM (SELECT j.res,
                  count(*) FILTER (WHERE j.ready)::integer AS ready,
                  count(*) FILTER (WHERE NOT j.ready)::integer AS waiting,
                  coalesce(bool_or(j.excl) FILTER (WHERE j.ready), false) AS exclusive_ready,
                  coalesce(max(j.seq) FILTER (WHERE j.ready), 0) AS last_ready
              FROM judged j GROUP BY j.res) c
        WHERE r.name = c.res
    ), blocked AS (
        SELECT j.task, count(*) FILTER (WHERE NOT j.ready)::integer AS c FROM judged j GROUP BY j.task
    )
    SELECT array_agg(coalesce(b.c, 0) ORDER BY i) INTO blocked
    FROM generate_series(1, cardinality(p_ids)) AS i
    LEFT JOIN blocked b ON b.task = i;
    RETURN blocked;
END $function$;
