-- Stint schema, version 7: a dead worker is found at once through its
-- database session (DESIGN §5). Each worker holds, on a connection of its
-- own for as long as it runs, a session-level advisory lock whose key its
-- row records. When the process dies, PostgreSQL ends its session and
-- releases the lock; the next lost-worker check, on any node, sees the
-- worker's row without its lock and ends its tasks, without waiting for
-- the missing timeout. A silent worker whose session stays open (stopped,
-- paused, cut off by a partition that leaves the connection up) is still
-- found by its heartbeat, as in version 6.

-- Keys of the workers' session locks: pg_advisory_lock(1400140142, key),
-- the first number being 'Stin' in ASCII, so that the locks of Stint are
-- told apart from the application's. The sequence wraps around after 2^31
-- registrations; a key is only reused long after its worker is gone.
CREATE SEQUENCE stint_worker_session_seq AS integer CYCLE;

-- session_key: the key of the lock the worker's session holds; NULL for a
-- worker registered without a session (an older binary): only its
-- heartbeat tells whether it lives. session_server_start: when the server
-- that the session was opened on started (pg_postmaster_start_time()). A
-- restart of the server ends every session, but not the workers: until a
-- worker has opened a new session (at its next heartbeat), the missing
-- lock says nothing, and only its heartbeat counts, as it does after a
-- failover to a standby.
ALTER TABLE stint_workers ADD COLUMN session_key integer,
    ADD COLUMN session_server_start timestamptz;

-- stint_drop_lost_workers: as in version 6, and a worker is also lost when
-- it registered a session lock that no session holds any more. The error
-- of its tasks says which of the two it was. And tasks still running under
-- a worker that is not in the list at all (it was found lost while one of
-- its claims was in flight, then died before it could register again) are
-- orphans: they end as a lost worker's do, once they have run longer than
-- p_missing_after (a node that has just started may claim before its
-- registration is visible).
CREATE OR REPLACE FUNCTION stint_drop_lost_workers(p_missing_after interval,
    OUT workers text[], OUT tasks uuid[])
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
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
    ), ended AS (
        UPDATE stint_tasks t
        SET state = CASE WHEN t.state = 'canceling' THEN 'canceled' ELSE 'dropped' END,
            error = jsonb_build_object(
                'kind', 'worker-lost',
                'description', format('%s; %s', lost.reason,
                    CASE WHEN t.state = 'canceling'
                        THEN 'the task, which was being canceled, was canceled'
                        ELSE 'the task was dropped' END)),
            finished_at = clock_timestamp(), updated_at = now()
        FROM victims, lost
        WHERE t.id = victims.id AND lost.name = t.worker
          AND t.state IN ('running', 'canceling')
        RETURNING t.id, t.state, t.worker
    )
    SELECT coalesce(array_agg(e.id ORDER BY e.id), '{}'),
           coalesce(array_agg(e.id::text || ' ' || e.state ORDER BY e.id), '{}'),
           coalesce(array_agg(DISTINCT e.worker), '{}')
    INTO tasks, changes, ended_by
    FROM ended e;

    IF cardinality(tasks) > 0 THEN
        PERFORM stint_release(tasks);
        PERFORM stint_publish(changes);
    END IF;
    DELETE FROM stint_workers WHERE name = ANY (listed);
    -- Each listed worker is reported by the one call that locked its row;
    -- an orphan's by the calls that ended its tasks (one, but for a race).
    SELECT coalesce(array_agg(n ORDER BY n), '{}') INTO workers
    FROM unnest(names) AS n
    WHERE n = ANY (listed) OR n = ANY (ended_by);
END $$;
