-- stint_compact_task_counts folds the rows of the backends that have gone
-- into shard 0, so that the table keeps about one row per state and live
-- backend (backends come and go with connection pools). It waits for
-- nothing: rows that a transaction in progress holds (a new backend that
-- was given a gone one's pid) are left for a later call, and a call while
-- another one runs does nothing. It returns how many rows it folded.
CREATE OR REPLACE FUNCTION stint_compact_task_counts()
 RETURNS integer
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
DECLARE
    folded integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1461125122) THEN -- 0x5717_0002, beside the migrations' 0x5717_0001
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM stint_task_counts c
        WHERE (c.state, c.shard) IN (
            SELECT k.state, k.shard FROM stint_task_counts k
            WHERE k.shard <> 0 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = k.shard)
            FOR UPDATE OF k SKIP LOCKED)
        RETURNING c.state, c.n
    ), folded_in AS (
        INSERT INTO stint_task_counts AS c (state, shard, n)
        SELECT g.state, 0, sum(g.n)::bigint FROM gone g GROUP BY g.state ORDER BY g.state
        ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n
    )
    SELECT count(*) INTO folded FROM gone;
    RETURN folded;
END $function$;
