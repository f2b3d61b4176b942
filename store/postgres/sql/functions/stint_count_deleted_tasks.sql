-- stint_count_deleted_tasks uncounts the tasks a DELETE removed (see
-- stint_count_inserted_tasks).
CREATE OR REPLACE FUNCTION stint_count_deleted_tasks()
 RETURNS trigger
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
BEGIN
    INSERT INTO stint_task_counts AS c (state, shard, n)
    SELECT t.state, pg_backend_pid(), -count(*) FROM stint_deleted t GROUP BY t.state ORDER BY t.state
    ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $function$;
