-- stint_release removes the queue entries of tasks that reached a final
-- state (found from the tasks' rows: their resources and seq) and promotes
-- what waited behind them.
CREATE OR REPLACE FUNCTION stint_release(p_ids uuid[])
 RETURNS void
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_mergejoin TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
    res text[];
    seqs bigint[];
BEGIN
    SELECT array_agg(e.name), array_agg(t.seq) INTO res, seqs
    FROM stint_tasks t CROSS JOIN LATERAL unnest(t.exclusive_resources || t.shared_resources) AS e(name)
    WHERE t.id = ANY (p_ids);
    IF res IS NOT NULL THEN
        PERFORM stint_dequeue(res, seqs);
    END IF;
END $function$;
