-- stint_count_inserted_tasks, stint_count_updated_tasks and
-- stint_count_deleted_tasks keep stint_task_counts (the tasks per state,
-- one row per state and backend) as statement-level triggers with
-- transition tables: one upsert per statement, whatever the number of rows
-- it changes (a batch of claims or completions is one statement), and none
-- when no state changed (progress, unblocking). The rows are upserted in
-- state order.
CREATE OR REPLACE FUNCTION stint_count_inserted_tasks()
 RETURNS trigger
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
BEGIN
    INSERT INTO stint_task_counts AS c (state, shard, n)
    SELECT t.state, pg_backend_pid(), count(*) FROM stint_inserted t GROUP BY t.state ORDER BY t.state
    ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $function$;
