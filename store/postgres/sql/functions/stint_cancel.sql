-- stint_cancel cancels one task and returns it: a scheduled task ends
-- canceled at once (it holds no queue entries), a waiting task too (its queue entries released, what waited behind it
-- promoted), a running one becomes canceling and its worker is told on the
-- stint_cancel channel ("<worker> <id>"); a canceling task is returned as
-- it is (no change published). A final task raises ST409; a task that
-- changed state under the cancel raises serialization_failure, for the
-- caller to retry. It returns nothing when the task does not exist.
CREATE OR REPLACE FUNCTION stint_cancel(p_id uuid)
 RETURNS SETOF stint_tasks
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
DECLARE
    res text[];
    st text;
    worker_name text;
BEGIN
    SELECT exclusive_resources || shared_resources, state INTO res, st FROM stint_tasks WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF st = 'scheduled' THEN
        UPDATE stint_tasks SET state = 'canceled', finished_at = clock_timestamp(), updated_at = now()
        WHERE id = p_id AND state = 'scheduled';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'task % changed state during cancel', p_id USING ERRCODE = 'serialization_failure';
        END IF;
        PERFORM stint_publish_all(ARRAY[p_id], 'canceled');
    ELSIF st = 'waiting' THEN
        PERFORM stint_lock_resources(res);
        UPDATE stint_tasks SET state = 'canceled', finished_at = clock_timestamp(), updated_at = now()
        WHERE id = p_id AND state = 'waiting';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'task % changed state during cancel', p_id USING ERRCODE = 'serialization_failure';
        END IF;
        PERFORM stint_release(ARRAY[p_id]);
        PERFORM stint_publish_all(ARRAY[p_id], 'canceled');
    ELSIF st = 'running' THEN
        UPDATE stint_tasks SET state = 'canceling', updated_at = now()
        WHERE id = p_id AND state = 'running'
        RETURNING worker INTO worker_name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'task % changed state during cancel', p_id USING ERRCODE = 'serialization_failure';
        END IF;
        PERFORM pg_notify('stint_cancel', worker_name || ' ' || p_id::text);
        PERFORM stint_publish_all(ARRAY[p_id], 'canceling');
    ELSIF st <> 'canceling' THEN
        RAISE EXCEPTION 'task % is %', p_id, st USING ERRCODE = 'ST409';
    END IF;
    RETURN QUERY SELECT * FROM stint_tasks WHERE id = p_id;
END $function$;
