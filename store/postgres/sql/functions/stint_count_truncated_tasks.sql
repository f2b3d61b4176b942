-- stint_count_truncated_tasks empties the counts with the tasks: TRUNCATE
-- fires no row or transition trigger.
CREATE OR REPLACE FUNCTION stint_count_truncated_tasks()
 RETURNS trigger
 LANGUAGE plpgsql
AS $function$
BEGIN
    DELETE FROM stint_task_counts;
    RETURN NULL;
END $function$;
