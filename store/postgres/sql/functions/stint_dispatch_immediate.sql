-- stint_dispatch_immediate dispatches one task (stint_dispatch's
-- arguments) and, when it is runnable at once for the worker p_worker
-- (unblocked, versions satisfied, every queue entry granted), claims it in
-- the same transaction for an inline run. Otherwise a deferred task is
-- left waiting for any worker, and another ends skipped, its queue entries
-- released.
CREATE OR REPLACE FUNCTION stint_dispatch_immediate(p_ids uuid[], p_names text[], p_args text[], p_owners text[], p_versions text[], p_parents uuid[], p_groups uuid[], p_res_task integer[], p_res text[], p_res_exclusive boolean[], p_scheduled timestamptz[], p_retries text[], p_unique_keys text[], p_retry_of uuid[], p_worker text, p_deferred boolean)
 RETURNS SETOF stint_tasks
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
DECLARE
    t stint_tasks;
BEGIN
    IF cardinality(p_ids) <> 1 THEN
        RAISE EXCEPTION 'stint_dispatch_immediate takes one task, not %', cardinality(p_ids);
    END IF;
    SELECT * INTO t FROM stint_dispatch(p_ids, p_names, p_args, p_owners, p_versions,
        p_parents, p_groups, p_res_task, p_res, p_res_exclusive, p_scheduled, p_retries, p_unique_keys, p_retry_of);
    IF t.state = 'scheduled' THEN
        RAISE EXCEPTION 'an immediate task cannot be scheduled' USING ERRCODE = '22023';
    END IF;
    IF t.unblocked_at IS NOT NULL
       AND (t.versions = '{}'::jsonb OR stint_versions_ok(t.versions,
            (SELECT w.versions FROM stint_workers w WHERE w.name = p_worker)))
       AND stint_granted(t.exclusive_resources || t.shared_resources, t.seq) THEN
        UPDATE stint_tasks
        SET state = 'running', worker = p_worker, attempt = attempt + 1,
            started_at = clock_timestamp(), updated_at = now()
        WHERE id = t.id
        RETURNING * INTO t;
        PERFORM stint_publish_all(ARRAY[t.id], 'running');
    ELSIF NOT p_deferred THEN
        UPDATE stint_tasks SET state = 'skipped', finished_at = clock_timestamp(), updated_at = now()
        WHERE id = t.id
        RETURNING * INTO t;
        PERFORM stint_release(ARRAY[t.id]);
        PERFORM stint_publish_all(ARRAY[t.id], 'skipped');
    END IF;
    RETURN NEXT t;
END $function$;
