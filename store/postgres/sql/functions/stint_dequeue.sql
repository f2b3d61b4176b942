-- stint_dequeue removes the queue entries (p_res[k], p_seqs[k]) that exist,
-- counts them out of their queues, and promotes what may move behind them:
-- on queues left without a ready entry, that lost a waiting one (an
-- exclusive entry that held shared ones back may be gone), or, on a
-- resource with a capacity, that lost a holder (it leaves room). It locks the
-- resources in name order first. It returns how many entries it promoted.
CREATE OR REPLACE FUNCTION stint_dequeue(p_res text[], p_seqs bigint[])
 RETURNS integer
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_bitmapscan TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_mergejoin TO 'off'
 SET enable_nestloop TO 'on'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
    touched text[];
    movable text[];
BEGIN
    SELECT array_agg(DISTINCT r ORDER BY r) INTO touched FROM unnest(p_res) AS r;
    IF touched IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM stint_resources WHERE name = ANY (touched) ORDER BY name FOR UPDATE;
    WITH gone AS (
        DELETE FROM stint_task_resources q
        USING unnest(p_res, p_seqs) AS e(res, seq)
        WHERE q.resource = e.res AND q.seq = e.seq
        RETURNING q.resource, q.seq
    ), counts AS (
        SELECT g.resource,
            count(*) FILTER (WHERE g.seq <= r.frontier)::integer AS held,
            count(*) FILTER (WHERE g.seq > r.frontier)::integer AS waited
        FROM gone g JOIN stint_resources r ON r.name = g.resource
        GROUP BY g.resource
    ), counted AS (
        UPDATE stint_resources r
        SET holders = r.holders - c.held, waiting = r.waiting - c.waited,
            exclusive_held = r.exclusive_held AND r.holders > c.held
        FROM counts c
        WHERE r.name = c.resource
        RETURNING r.name, r.holders, r.waiting, r.capacity, c.held, c.waited
    )
    SELECT array_agg(c.name ORDER BY c.name) INTO movable FROM counted c
    WHERE c.waiting > 0 AND (c.holders = 0 OR c.waited > 0 OR (c.held > 0 AND c.capacity IS NOT NULL));
    IF movable IS NULL THEN
        RETURN 0;
    END IF;
    RETURN stint_promote(movable);
END $function$;
