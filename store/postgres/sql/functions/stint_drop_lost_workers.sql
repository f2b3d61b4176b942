-- stint_drop_lost_workers declares lost the workers whose last heartbeat
-- is older than p_missing_after, or that registered a session lock that no
-- session holds any more (the error of their tasks says which of the two
-- it was), ends their running tasks dropped (and their canceling ones
-- canceled; a task whose retry policy retries dropped runs is scheduled
-- for its next attempt instead), releases those tasks' queue entries and
-- removes the workers.
-- Tasks still running under a worker that is not in the list at all (it
-- was found lost while one of its claims was in flight, then died before
-- it could register again) are orphans: they end as a lost worker's do,
-- once they have run longer than p_missing_after (a node that has just
-- started may claim before its registration is visible). It returns the
-- workers it declared lost and the tasks it ended.
CREATE OR REPLACE FUNCTION stint_drop_lost_workers(p_missing_after interval, OUT workers text[], OUT tasks uuid[])
 RETURNS record
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
DECLARE
    ts timestamptz := clock_timestamp(); -- one clock for the drops and the retries' delays
    listed text[];   -- lost workers of the list, their rows locked
    names text[];    -- those and the orphans' workers
    reasons text[];  -- why, for each of names
    ended_by text[]; -- the workers of the tasks ended
    changes text[];
BEGIN
    -- The cheap check, every second on every node: a range of the
    -- heartbeat index, the advisory locks of this database (one per live
    -- worker), and the running tasks (as many as the workers' slots),
    -- nearly always without a lost worker.
    WITH held AS (
        SELECT l.objid::bigint::integer AS key FROM pg_locks l
        WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 2
          AND l.classid = 1400140142::bigint::oid
          AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
    )
    SELECT coalesce(array_agg(l.name ORDER BY l.name), '{}'),
           coalesce(array_agg(l.reason ORDER BY l.name), '{}')
    INTO listed, reasons
    FROM (SELECT w.name,
                 CASE WHEN w.last_heartbeat < now() - p_missing_after
                     THEN format('worker %s stopped heartbeating (last heartbeat at %s)', w.name,
                         to_char(w.last_heartbeat AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'))
                     ELSE format('the database session of worker %s ended (the process died or lost its connection)', w.name)
                 END AS reason
          FROM stint_workers w
          WHERE w.last_heartbeat < now() - p_missing_after
             OR (w.session_key IS NOT NULL AND w.session_server_start = pg_postmaster_start_time()
                 AND w.session_key NOT IN (SELECT key FROM held))
          ORDER BY w.name
          FOR UPDATE OF w SKIP LOCKED) l;

    -- Orphans, through stint_tasks_active_worker (version 1).
    SELECT listed || coalesce(array_agg(o.name ORDER BY o.name), '{}'),
           reasons || coalesce(array_agg(format('worker %s is not in the worker list (it was found lost while it claimed the task)', o.name) ORDER BY o.name), '{}')
    INTO names, reasons
    FROM (SELECT DISTINCT t.worker AS name FROM stint_tasks t
          WHERE t.started_at IS NOT NULL AND t.finished_at IS NULL AND t.state IN ('running', 'canceling')
            AND t.started_at < now() - p_missing_after
            AND NOT EXISTS (SELECT 1 FROM stint_workers w WHERE w.name = t.worker)) o;

    workers := '{}';
    tasks := '{}';
    IF cardinality(names) = 0 THEN
        RETURN;
    END IF;

    WITH lost AS (
        SELECT * FROM unnest(names, reasons) AS u(name, reason)
    ), victims AS (
        -- Through stint_tasks_active_worker (version 1). An orphan's tasks
        -- only once they have run longer than p_missing_after.
        SELECT t.id FROM stint_tasks t
        WHERE t.worker = ANY (names) AND t.started_at IS NOT NULL AND t.finished_at IS NULL
          AND t.state IN ('running', 'canceling')
          AND (t.worker = ANY (listed) OR t.started_at < now() - p_missing_after)
        ORDER BY t.id
        FOR UPDATE
    ), judged AS (
        -- A running task whose policy retries dropped runs, with attempts
        -- left, is scheduled for its next attempt instead of ending.
        SELECT t.id, lost.name, stint_retry_due(t.retry, t.attempts, t.state, 'dropped', false) AS again,
            jsonb_build_object(
                'kind', 'worker-lost',
                'description', format('%s; %s', lost.reason,
                    CASE WHEN t.state = 'canceling'
                        THEN 'the task, which was being canceled, was canceled'
                        ELSE 'the task was dropped' END)) AS error
        FROM victims JOIN stint_tasks t ON t.id = victims.id JOIN lost ON lost.name = t.worker
    ), ended AS (
        UPDATE stint_tasks t
        SET state = CASE WHEN j.again THEN 'scheduled' WHEN t.state = 'canceling' THEN 'canceled' ELSE 'dropped' END,
            error = j.error,
            finished_at = CASE WHEN j.again THEN NULL ELSE ts END,
            updated_at = ts,
            attempts = CASE WHEN j.again
                THEN t.attempts || jsonb_build_array(jsonb_build_object(
                    'number', jsonb_array_length(t.attempts) + 1, 'state', 'dropped',
                    'started_at', t.started_at, 'finished_at', ts,
                    'worker', t.worker, 'error', j.error))
                ELSE t.attempts END,
            scheduled_at = CASE WHEN j.again
                THEN ts + stint_retry_delay(t.retry, jsonb_array_length(t.attempts) + 1)
                ELSE t.scheduled_at END,
            started_at = CASE WHEN j.again THEN NULL ELSE t.started_at END,
            worker = CASE WHEN j.again THEN NULL ELSE t.worker END
        FROM judged j
        WHERE t.id = j.id AND t.state IN ('running', 'canceling')
        RETURNING t.id, t.state, j.name AS worker
    )
    SELECT coalesce(array_agg(e.id ORDER BY e.id), '{}'),
           coalesce(array_agg(e.id::text || ' ' || e.state ORDER BY e.id), '{}'),
           coalesce(array_agg(DISTINCT e.worker), '{}')
    INTO tasks, changes, ended_by
    FROM ended e;

    IF cardinality(tasks) > 0 THEN
        PERFORM stint_release(tasks);
        PERFORM stint_publish(changes);
        IF EXISTS (SELECT 1 FROM unnest(changes) AS c WHERE c LIKE '% scheduled') THEN
            PERFORM pg_notify('stint_due', '');
        END IF;
    END IF;
    DELETE FROM stint_workers WHERE name = ANY (listed);
    -- Each listed worker is reported by the one call that locked its row;
    -- an orphan's by the calls that ended its tasks (one, but for a race).
    SELECT coalesce(array_agg(n ORDER BY n), '{}') INTO workers
    FROM unnest(names) AS n
    WHERE n = ANY (listed) OR n = ANY (ended_by);
END $function$;
