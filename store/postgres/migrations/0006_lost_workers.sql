-- Stint schema, version 6: lost workers (DESIGN §5). A worker whose last
-- heartbeat is too old is lost: its running tasks end dropped, its
-- canceling ones canceled, their resources are freed, and it leaves the
-- worker list. Any node may find it; exactly one ends each task.

-- The lost workers are found by a range of last_heartbeat. The table holds
-- a row per online worker, so this costs little: heartbeats are no longer
-- HOT updates, one index entry each.
CREATE INDEX stint_workers_heartbeat ON stint_workers (last_heartbeat);

-- stint_drop_lost_workers ends the tasks of the workers whose last
-- heartbeat is older than p_missing_after (by this database's clock) and
-- removes those workers. It returns the workers it removed, by name, and
-- the tasks it ended, in id order; both empty when no worker is lost.
--
-- Locks, in the orders of the other scheduler functions: the lost workers'
-- rows first, skipping those another caller holds (so concurrent callers
-- share the work, and a worker heartbeating right now is left alone); then
-- their tasks' rows in id order, as stint_finish locks running tasks, then
-- their resources in name order (stint_release). A task that its worker
-- finishes meanwhile is seen final once its lock is granted and left as it
-- is. A heartbeat of a removed worker updates nothing: the worker is told
-- (store.ErrNotFound) and registers again.
CREATE FUNCTION stint_drop_lost_workers(p_missing_after interval,
    OUT workers text[], OUT tasks uuid[])
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
    changes text[];
BEGIN
    -- The cheap check, every heartbeat of every worker: a range of the
    -- index above, nearly always empty.
    SELECT coalesce(array_agg(l.name ORDER BY l.name), '{}') INTO workers
    FROM (SELECT w.name FROM stint_workers w
          WHERE w.last_heartbeat < now() - p_missing_after
          ORDER BY w.name
          FOR UPDATE SKIP LOCKED) l;
    tasks := '{}';
    IF cardinality(workers) = 0 THEN
        RETURN;
    END IF;

    WITH victims AS (
        -- Through stint_tasks_active_worker (version 1).
        SELECT t.id FROM stint_tasks t
        WHERE t.worker = ANY (workers) AND t.started_at IS NOT NULL AND t.finished_at IS NULL
          AND t.state IN ('running', 'canceling')
        ORDER BY t.id
        FOR UPDATE
    ), ended AS (
        UPDATE stint_tasks t
        SET state = CASE WHEN t.state = 'canceling' THEN 'canceled' ELSE 'dropped' END,
            error = jsonb_build_object(
                'kind', 'worker-lost',
                'description', format('worker %s stopped heartbeating (last heartbeat at %s); %s',
                    t.worker,
                    to_char(w.last_heartbeat AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                    CASE WHEN t.state = 'canceling'
                        THEN 'the task, which was being canceled, was canceled'
                        ELSE 'the task was dropped' END)),
            finished_at = clock_timestamp(), updated_at = now()
        FROM victims, stint_workers w
        WHERE t.id = victims.id AND w.name = t.worker
          AND t.state IN ('running', 'canceling')
        RETURNING t.id, t.state
    )
    SELECT coalesce(array_agg(e.id ORDER BY e.id), '{}'),
           coalesce(array_agg(e.id::text || ' ' || e.state ORDER BY e.id), '{}')
    INTO tasks, changes
    FROM ended e;

    IF cardinality(tasks) > 0 THEN
        PERFORM stint_release(tasks);
        PERFORM stint_publish(changes);
    END IF;
    DELETE FROM stint_workers WHERE name = ANY (workers);
END $$;
