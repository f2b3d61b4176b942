-- stint_count_updated_tasks counts the states an UPDATE of stint_tasks left
-- against the ones it found (see stint_count_inserted_tasks).
CREATE OR REPLACE FUNCTION stint_count_updated_tasks()
 RETURNS trigger
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
BEGIN
    INSERT INTO stint_task_counts AS c (state, shard, n)
    SELECT d.state, pg_backend_pid(), sum(d.n)::bigint
    FROM (SELECT o.state, -count(*) AS n FROM stint_old o GROUP BY o.state
          UNION ALL
          SELECT w.state, count(*) FROM stint_new w GROUP BY w.state) d
    GROUP BY d.state
    HAVING sum(d.n) <> 0
    ORDER BY d.state
    ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $function$;
