-- Stint schema, version 1: tasks, per-resource queues, workers.

CREATE SEQUENCE stint_task_seq;

CREATE TABLE stint_tasks (
    id                  uuid PRIMARY KEY,
    seq                 bigint      NOT NULL,
    name                text        NOT NULL,
    state               text        NOT NULL,
    args                jsonb       NOT NULL DEFAULT '{}',
    owner               text        NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now(),
    unblocked_at        timestamptz,
    started_at          timestamptz,
    finished_at         timestamptz,
    exclusive_resources text[]      NOT NULL DEFAULT '{}',
    shared_resources    text[]      NOT NULL DEFAULT '{}',
    versions            jsonb       NOT NULL DEFAULT '{}',
    worker              text,
    attempt             integer     NOT NULL DEFAULT 0,
    -- Queue entries of this task that are not ready yet. Promotions on
    -- different resources decrement it concurrently; row locking makes the
    -- last one see zero and unblock the task.
    blocked_count       integer     NOT NULL DEFAULT 0,
    parent_task         uuid,
    task_group          uuid,
    result              jsonb,
    error               jsonb,
    non_fatal_errors    jsonb       NOT NULL DEFAULT '[]',
    progress_reports    jsonb       NOT NULL DEFAULT '[]',
    created_resources   text[]      NOT NULL DEFAULT '{}',
    CONSTRAINT stint_tasks_state_check CHECK (state IN
        ('waiting', 'running', 'canceling', 'completed', 'failed', 'canceled', 'skipped', 'dropped'))
);

-- What workers claim: runnable waiting tasks, oldest first.
CREATE INDEX stint_tasks_claimable ON stint_tasks (seq)
    WHERE state = 'waiting' AND unblocked_at IS NOT NULL;
-- Tasks a worker runs (liveness checks, worker details). The predicate is
-- stated with timestamps on purpose: a predicate on state would tempt the
-- planner to scan every running task for the fenced single-task updates.
CREATE INDEX stint_tasks_active_worker ON stint_tasks (worker)
    WHERE started_at IS NOT NULL AND finished_at IS NULL;
-- Every index on stint_tasks costs each state change a write, so there are
-- few: ids are UUIDv7, so the primary key also orders tasks by creation.

-- One row per resource ever used: dispatch and release lock these rows, in
-- name order, to serialise every change to a resource's queue.
CREATE TABLE stint_resources (
    name text PRIMARY KEY
);

-- The per-resource queues: one entry per incomplete task and resource, in
-- dispatch order. ready: every earlier entry is compatible with this one.
CREATE TABLE stint_task_resources (
    resource  text    NOT NULL,
    seq       bigint  NOT NULL,
    task_id   uuid    NOT NULL,
    exclusive boolean NOT NULL,
    ready     boolean NOT NULL,
    PRIMARY KEY (resource, seq)
) WITH (fillfactor = 70);
-- No index mentions ready, so that promoting an entry is a HOT update.
CREATE INDEX stint_task_resources_task ON stint_task_resources (task_id);
CREATE INDEX stint_task_resources_exclusive ON stint_task_resources (resource, seq) WHERE exclusive;

CREATE TABLE stint_workers (
    name           text        PRIMARY KEY,
    hostname       text        NOT NULL,
    pid            integer     NOT NULL,
    versions       jsonb       NOT NULL DEFAULT '{}',
    concurrency    integer     NOT NULL,
    started_at     timestamptz NOT NULL DEFAULT now(),
    last_heartbeat timestamptz NOT NULL DEFAULT now(),
    missing        boolean     NOT NULL DEFAULT false
);

-- stint_lock_resources locks the rows of the given resources in name order,
-- creating the missing ones. Every transaction that changes a queue calls it
-- first, so changes to one resource's queue are serialised and agree with
-- commit order, and transactions never deadlock on resources.
CREATE FUNCTION stint_lock_resources(p_resources text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    IF cardinality(p_resources) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO stint_resources (name)
        SELECT DISTINCT r FROM unnest(p_resources) AS r ORDER BY 1
        ON CONFLICT DO NOTHING;
    PERFORM 1 FROM stint_resources WHERE name = ANY (p_resources) ORDER BY name FOR UPDATE;
END $$;

-- stint_promote marks ready the queue entries that became compatible with
-- every earlier entry on the given resources, and unblocks the tasks whose
-- entries are now all ready. This is the per-resource rule:
--   the head of a queue is ready;
--   a shared entry is ready when no exclusive entry precedes it.
-- It reads only the heads of the queues and the entries it promotes. The
-- caller holds the resource locks. It returns how many entries it promoted.
CREATE FUNCTION stint_promote(p_resources text[]) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    n integer;
    runnable integer;
    affected uuid[];
BEGIN
    WITH heads AS (
        SELECT r.res,
            CASE WHEN h.exclusive THEN h.seq + 1
                 ELSE coalesce(fe.seq, 9223372036854775807) END AS ready_below
        FROM (SELECT DISTINCT res FROM unnest(p_resources) AS res) r
        CROSS JOIN LATERAL (
            SELECT q.seq, q.exclusive FROM stint_task_resources q
            WHERE q.resource = r.res ORDER BY q.seq LIMIT 1) h
        LEFT JOIN LATERAL (
            SELECT q.seq FROM stint_task_resources q
            WHERE NOT h.exclusive AND q.resource = r.res AND q.exclusive ORDER BY q.seq LIMIT 1) fe ON true
    ), targets AS (
        SELECT w.resource, w.seq FROM heads
        CROSS JOIN LATERAL (
            SELECT q.resource, q.seq FROM stint_task_resources q
            WHERE q.resource = heads.res AND NOT q.ready AND q.seq < heads.ready_below
            ORDER BY q.seq) w
    ), promoted AS (
        UPDATE stint_task_resources q SET ready = true
        FROM targets
        WHERE q.resource = targets.resource AND q.seq = targets.seq
        RETURNING q.task_id
    )
    SELECT count(*), array_agg(task_id) INTO n, affected FROM promoted;
    IF n = 0 THEN
        RETURN 0;
    END IF;
    -- Promotions of one task's entries on different resources may run at
    -- once (they hold different resource locks): the decrement is atomic
    -- under the task's row lock, and the one that reaches zero unblocks it.
    -- Waiting tasks' rows are locked in id order, as everywhere.
    PERFORM 1 FROM stint_tasks WHERE id = ANY (affected) ORDER BY id FOR UPDATE;
    WITH counts AS (
        SELECT task_id, count(*)::integer AS c FROM unnest(affected) AS task_id GROUP BY task_id
    ), unblocked AS (
        UPDATE stint_tasks t
        SET blocked_count = t.blocked_count - counts.c,
            unblocked_at = CASE WHEN t.blocked_count - counts.c = 0 THEN clock_timestamp() END,
            updated_at = now()
        FROM counts
        WHERE t.id = counts.task_id
        RETURNING t.blocked_count
    )
    SELECT count(*) INTO runnable FROM unblocked WHERE blocked_count = 0;
    IF runnable > 0 THEN
        PERFORM pg_notify('stint_wake', '');
    END IF;
    RETURN n;
END $$;

-- stint_release removes the queue entries of tasks that reached a final
-- state and promotes what waited behind them.
CREATE FUNCTION stint_release(p_ids uuid[]) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    touched text[];
BEGIN
    SELECT array_agg(DISTINCT resource ORDER BY resource) INTO touched
    FROM stint_task_resources WHERE task_id = ANY (p_ids);
    IF touched IS NULL THEN
        RETURN;
    END IF;
    PERFORM 1 FROM stint_resources WHERE name = ANY (touched) ORDER BY name FOR UPDATE;
    DELETE FROM stint_task_resources WHERE task_id = ANY (p_ids);
    PERFORM stint_promote(touched);
END $$;

-- stint_dispatch inserts a batch of tasks in array order. Resources come
-- flattened: entry k is resource p_res[k] of task p_res_task[k] (1-based
-- index into p_ids), exclusive when p_res_exclusive[k].
CREATE FUNCTION stint_dispatch(
    p_ids uuid[], p_names text[], p_args text[], p_owners text[], p_versions text[],
    p_parents uuid[], p_groups uuid[],
    p_res_task integer[], p_res text[], p_res_exclusive boolean[])
RETURNS SETOF stint_tasks
LANGUAGE plpgsql AS $$
DECLARE
    seqs bigint[];
    runnable integer;
BEGIN
    PERFORM stint_lock_resources(p_res);
    -- Sequence numbers are taken after the locks, so that on each resource
    -- they agree with commit order.
    SELECT array_agg(v ORDER BY v) INTO seqs
    FROM (SELECT nextval('stint_task_seq') AS v FROM generate_series(1, cardinality(p_ids))) s;

    RETURN QUERY
    WITH entries AS (
        SELECT e.task, e.res, e.excl, seqs[e.task] AS seq,
            count(*) OVER w AS earlier,
            count(*) FILTER (WHERE e.excl) OVER w AS earlier_exclusive
        FROM unnest(p_res_task, p_res, p_res_exclusive) AS e(task, res, excl)
        WINDOW w AS (PARTITION BY e.res ORDER BY e.task ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING)
    ), queued AS (
        -- The per-resource rule: an exclusive entry is ready in an empty
        -- queue, a shared one in a queue without exclusive entries.
        INSERT INTO stint_task_resources (resource, seq, task_id, exclusive, ready)
        SELECT en.res, en.seq, p_ids[en.task], en.excl,
            CASE WHEN en.excl
                THEN en.earlier = 0 AND NOT EXISTS (
                    SELECT 1 FROM stint_task_resources q WHERE q.resource = en.res)
                ELSE en.earlier_exclusive = 0 AND NOT EXISTS (
                    SELECT 1 FROM stint_task_resources q WHERE q.resource = en.res AND q.exclusive)
            END
        FROM entries en
        RETURNING task_id, ready
    ), blocked AS (
        SELECT task_id, count(*) FILTER (WHERE NOT ready)::integer AS c FROM queued GROUP BY task_id
    ), lists AS (
        SELECT e.task,
            coalesce(array_agg(e.res ORDER BY e.res) FILTER (WHERE e.excl), '{}') AS exclusive,
            coalesce(array_agg(e.res ORDER BY e.res) FILTER (WHERE NOT e.excl), '{}') AS shared
        FROM unnest(p_res_task, p_res, p_res_exclusive) AS e(task, res, excl)
        GROUP BY e.task
    )
    INSERT INTO stint_tasks (id, seq, name, state, args, owner, exclusive_resources, shared_resources,
        versions, parent_task, task_group, blocked_count, unblocked_at)
    SELECT p_ids[i], seqs[i], p_names[i], 'waiting', p_args[i]::jsonb, p_owners[i],
        coalesce(l.exclusive, '{}'), coalesce(l.shared, '{}'),
        p_versions[i]::jsonb, p_parents[i], p_groups[i],
        coalesce(b.c, 0), CASE WHEN coalesce(b.c, 0) = 0 THEN clock_timestamp() END
    FROM generate_series(1, cardinality(p_ids)) AS i
    LEFT JOIN blocked b ON b.task_id = p_ids[i]
    LEFT JOIN lists l ON l.task = i
    ORDER BY i
    RETURNING *;

    SELECT count(*) INTO runnable FROM stint_tasks
    WHERE id = ANY (p_ids) AND unblocked_at IS NOT NULL;
    IF runnable > 0 THEN
        PERFORM pg_notify('stint_wake', '');
    END IF;
END $$;

-- stint_claim moves up to p_limit runnable tasks that p_worker can run to
-- running, oldest first, with a new fencing token (attempt) each. As a second
-- line of defence it does not trust the ready flags alone: it checks again,
-- from the queues themselves, that no earlier conflicting entry precedes any
-- of the task's entries (one index probe per resource).
CREATE FUNCTION stint_claim(p_worker text, p_names text[], p_limit integer)
RETURNS SETOF stint_tasks
LANGUAGE sql AS $$
    UPDATE stint_tasks t
    SET state = 'running', worker = p_worker, attempt = t.attempt + 1,
        started_at = clock_timestamp(), updated_at = now()
    FROM (
        SELECT c.id FROM stint_tasks c
        WHERE c.state = 'waiting' AND c.unblocked_at IS NOT NULL AND c.name = ANY (p_names)
          AND NOT EXISTS (
            SELECT 1 FROM stint_task_resources mine
            WHERE mine.task_id = c.id AND EXISTS (
                SELECT 1 FROM stint_task_resources earlier
                WHERE earlier.resource = mine.resource AND earlier.seq < mine.seq
                  AND (mine.exclusive OR earlier.exclusive)))
        ORDER BY c.seq
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED
    ) claimed
    WHERE t.id = claimed.id
    RETURNING t.*;
$$;

-- stint_finish records the outcomes of runs, fenced by attempt, and releases
-- the resources of the tasks it finished. A task that was canceling ends
-- canceled whatever its function returned.
CREATE FUNCTION stint_finish(p_ids uuid[], p_attempts integer[], p_states text[],
    p_results text[], p_errors text[])
RETURNS SETOF uuid
LANGUAGE plpgsql AS $$
DECLARE
    done uuid[] := '{}';
    i integer;
BEGIN
    -- One primary-key update per outcome, in id order (the lock order of
    -- running tasks), each fenced by its attempt.
    FOR i IN SELECT o.i FROM generate_subscripts(p_ids, 1) AS o(i) ORDER BY p_ids[o.i] LOOP
        UPDATE stint_tasks t
        SET state = CASE WHEN t.state = 'canceling' AND p_states[i] <> 'dropped' THEN 'canceled' ELSE p_states[i] END,
            result = p_results[i]::jsonb, error = p_errors[i]::jsonb,
            finished_at = clock_timestamp(), updated_at = now()
        WHERE t.id = p_ids[i] AND t.attempt = p_attempts[i] AND t.state IN ('running', 'canceling');
        IF FOUND THEN
            done := done || p_ids[i];
        END IF;
    END LOOP;
    IF cardinality(done) = 0 THEN
        RETURN;
    END IF;
    PERFORM stint_release(done);
    RETURN QUERY SELECT unnest(done);
END $$;

-- stint_cancel cancels a task. A waiting task becomes canceled and leaves
-- its queues: its resources are locked before its row, as everywhere. A
-- running task becomes canceling and its worker is notified. If a waiting
-- task is claimed meanwhile, it raises serialization_failure: the caller
-- retries in a new transaction. A final task raises SQLSTATE ST409.
CREATE FUNCTION stint_cancel(p_id uuid) RETURNS SETOF stint_tasks
LANGUAGE plpgsql AS $$
DECLARE
    res text[];
    st text;
    worker_name text;
BEGIN
    SELECT exclusive_resources || shared_resources, state INTO res, st FROM stint_tasks WHERE id = p_id;
    IF NOT FOUND THEN
        RETURN;
    END IF;
    IF st = 'waiting' THEN
        PERFORM stint_lock_resources(res);
        UPDATE stint_tasks SET state = 'canceled', finished_at = clock_timestamp(), updated_at = now()
        WHERE id = p_id AND state = 'waiting';
        IF NOT FOUND THEN
            RAISE EXCEPTION 'task % changed state during cancel', p_id USING ERRCODE = 'serialization_failure';
        END IF;
        PERFORM stint_release(ARRAY[p_id]);
    ELSIF st = 'running' THEN
        UPDATE stint_tasks SET state = 'canceling', updated_at = now()
        WHERE id = p_id AND state = 'running'
        RETURNING worker INTO worker_name;
        IF NOT FOUND THEN
            RAISE EXCEPTION 'task % changed state during cancel', p_id USING ERRCODE = 'serialization_failure';
        END IF;
        PERFORM pg_notify('stint_cancel', worker_name || ' ' || p_id::text);
    ELSIF st <> 'canceling' THEN
        RAISE EXCEPTION 'task % is %', p_id, st USING ERRCODE = 'ST409';
    END IF;
    RETURN QUERY SELECT * FROM stint_tasks WHERE id = p_id;
END $$;

-- The queue tables churn faster than autovacuum refreshes their statistics,
-- and plans cached while they were small would scan them whole. Every
-- scheduler query is an index walk from a handful of keys by design, so the
-- scheduler functions plan that way whatever the statistics say.
ALTER FUNCTION stint_lock_resources(text[]) SET enable_seqscan = off;
ALTER FUNCTION stint_promote(text[]) SET enable_seqscan = off;
ALTER FUNCTION stint_promote(text[]) SET enable_hashjoin = off;
ALTER FUNCTION stint_promote(text[]) SET enable_mergejoin = off;
ALTER FUNCTION stint_release(uuid[]) SET enable_seqscan = off;
ALTER FUNCTION stint_release(uuid[]) SET enable_hashjoin = off;
ALTER FUNCTION stint_release(uuid[]) SET enable_mergejoin = off;
ALTER FUNCTION stint_claim(text, text[], integer) SET enable_seqscan = off;
ALTER FUNCTION stint_claim(text, text[], integer) SET enable_hashjoin = off;
ALTER FUNCTION stint_claim(text, text[], integer) SET enable_mergejoin = off;
ALTER FUNCTION stint_finish(uuid[], integer[], text[], text[], text[]) SET enable_seqscan = off;
ALTER FUNCTION stint_finish(uuid[], integer[], text[], text[], text[]) SET enable_hashjoin = off;
ALTER FUNCTION stint_finish(uuid[], integer[], text[], text[], text[]) SET enable_mergejoin = off;

-- No JIT: the statements are short, but over a deep queue their estimated
-- costs pass jit_above_cost, and compiling them would cost more than running
-- them, at every execution.
ALTER FUNCTION stint_lock_resources(text[]) SET jit = off;
ALTER FUNCTION stint_promote(text[]) SET jit = off;
ALTER FUNCTION stint_release(uuid[]) SET jit = off;
ALTER FUNCTION stint_claim(text, text[], integer) SET jit = off;
ALTER FUNCTION stint_finish(uuid[], integer[], text[], text[], text[]) SET jit = off;
ALTER FUNCTION stint_dispatch(uuid[], text[], text[], text[], text[], uuid[], uuid[], integer[], text[], boolean[]) SET jit = off;
ALTER FUNCTION stint_cancel(uuid) SET jit = off;

-- Plan once per connection: these statements run thousands of times a
-- second, and with the settings above their generic plans are the right ones.
ALTER FUNCTION stint_promote(text[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION stint_release(uuid[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION stint_finish(uuid[], integer[], text[], text[], text[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION stint_lock_resources(text[]) SET plan_cache_mode = force_generic_plan;
ALTER FUNCTION stint_claim(text, text[], integer) SET plan_cache_mode = force_generic_plan;
