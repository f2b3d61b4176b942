-- stint_cancel_group seals a group and cancels its incomplete tasks as
-- stint_cancel does: running ones become canceling and their workers are
-- notified; waiting ones become canceled and leave their queues; canceling
-- ones stay as they are; final ones are untouched. It publishes each change.
-- It returns -1 when the group does not exist, and otherwise how many of
-- the group's tasks it may have missed: those running when it ends (claimed
-- while it ran) and those it found waiting but could not lock (being
-- claimed). The caller cancels them by calling it again, in a new
-- transaction; 0 means that it missed none.
--
-- Locks are taken in the orders of the other scheduler functions: the
-- group's row first (so cancels of one group run one at a time), then the
-- running tasks' rows in id order (as stint_finish locks them, before it
-- locks resources), then the resources of the waiting tasks in name order,
-- then the waiting tasks' rows (as stint_cancel and stint_promote do), not
-- waiting for any. Tasks claimed after the running ones were read are not
-- locked while the resources are held (stint_finish could hold them and
-- wait for those resources): they are left to the next call.
CREATE OR REPLACE FUNCTION stint_cancel_group(p_id uuid)
 RETURNS integer
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
DECLARE
    ids uuid[];
    workers text[];
    res text[];
    left_running integer;
    left_waiting integer := 0;
    left_scheduled integer;
BEGIN
    UPDATE stint_task_groups SET all_tasks_dispatched = true WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN -1;
    END IF;

    -- Running tasks: canceling, and their workers told.
    SELECT array_agg(l.id ORDER BY l.id) INTO ids FROM (
        SELECT t.id FROM stint_tasks t
        WHERE t.task_group = p_id AND t.task_group IS NOT NULL AND t.state = 'running'
        ORDER BY t.id FOR UPDATE) l;
    IF ids IS NOT NULL THEN
        WITH canceling AS (
            UPDATE stint_tasks t SET state = 'canceling', updated_at = now()
            WHERE t.id = ANY (ids) AND t.state = 'running'
            RETURNING t.id, t.worker
        )
        SELECT array_agg(c.id ORDER BY c.id), array_agg(coalesce(c.worker, '') ORDER BY c.id) INTO ids, workers
        FROM canceling c;
    END IF;
    IF ids IS NOT NULL THEN
        PERFORM pg_notify('stint_cancel', u.worker || ' ' || u.id::text) FROM unnest(workers, ids) AS u(worker, id);
        PERFORM stint_publish_all(ids, 'canceling');
    END IF;

    -- Scheduled tasks: canceled (they are in no queue). A row another
    -- transaction holds is a task becoming due: it is left to the next
    -- call, and counted.
    SELECT array_agg(l.id ORDER BY l.id) INTO ids FROM (
        SELECT t.id FROM stint_tasks t
        WHERE t.task_group = p_id AND t.task_group IS NOT NULL AND t.state = 'scheduled'
        ORDER BY t.id FOR UPDATE SKIP LOCKED) l;
    IF ids IS NOT NULL THEN
        UPDATE stint_tasks t SET state = 'canceled', finished_at = clock_timestamp(), updated_at = now()
        WHERE t.id = ANY (ids);
        PERFORM stint_publish_all(ids, 'canceled');
    END IF;
    SELECT count(*) INTO left_scheduled FROM stint_tasks t
    WHERE t.task_group = p_id AND t.task_group IS NOT NULL AND t.state = 'scheduled';

    -- Waiting tasks: canceled, out of their queues, and what waited behind
    -- them promoted. Their rows are locked without waiting: while this
    -- transaction holds their resources it must not wait for a row that
    -- stint_finish holds (a task claimed and finishing since it was read
    -- waiting), since stint_finish then waits for those resources. A row
    -- held by another transaction is a task being claimed or finished: it
    -- is left to the next call, and counted in what this one returns.
    SELECT array_agg(t.id ORDER BY t.id) INTO ids FROM stint_tasks t
    WHERE t.task_group = p_id AND t.task_group IS NOT NULL AND t.state = 'waiting';
    IF ids IS NOT NULL THEN
        left_waiting := cardinality(ids);
        SELECT coalesce(array_agg(DISTINCT r.name ORDER BY r.name), '{}') INTO res
        FROM stint_tasks t CROSS JOIN LATERAL unnest(t.exclusive_resources || t.shared_resources) AS r(name)
        WHERE t.id = ANY (ids);
        PERFORM stint_lock_resources(res);
        SELECT array_agg(l.id ORDER BY l.id) INTO ids FROM (
            SELECT t.id FROM stint_tasks t WHERE t.id = ANY (ids) AND t.state = 'waiting'
            ORDER BY t.id FOR UPDATE SKIP LOCKED) l;
        IF ids IS NOT NULL THEN
            UPDATE stint_tasks t SET state = 'canceled', finished_at = clock_timestamp(), updated_at = now()
            WHERE t.id = ANY (ids);
            PERFORM stint_release(ids);
            PERFORM stint_publish_all(ids, 'canceled');
            left_waiting := left_waiting - cardinality(ids);
        END IF;
    END IF;

    SELECT count(*) INTO left_running FROM stint_tasks t
    WHERE t.task_group = p_id AND t.task_group IS NOT NULL AND t.state = 'running';
    RETURN left_running + left_waiting + left_scheduled;
END $function$;
