-- Stint schema, version 2: list filters and change notifications.

-- Filters of the task list on columns that never change after insert.
-- Partial, so that tasks without a parent or group cost nothing: every
-- index on stint_tasks that a row appears in costs each of its (non-HOT)
-- state changes a write. The filters on columns that change with the state
-- (state, worker, started_at, finished_at) have no index on purpose.
CREATE INDEX IF NOT EXISTS stint_tasks_parent ON stint_tasks (parent_task)
    WHERE parent_task IS NOT NULL;
CREATE INDEX IF NOT EXISTS stint_tasks_group ON stint_tasks (task_group)
    WHERE task_group IS NOT NULL;

-- Change notifications. Every statement that changes the state or the
-- progress of tasks publishes, in its own transaction, on the channel
-- stint_changes: one line "<id> <state>" per task, newline-separated, at
-- most 100 lines (about 4.7 kB) per notification, well under PostgreSQL's
-- 8000-byte payload limit.

-- stint_publish publishes change lines, "<id> <state>" each, 100 per
-- notification. Payloads are joined with array_to_string rather than
-- aggregated by a query over the rows: publishing must cost the scheduler
-- functions next to nothing.
CREATE OR REPLACE FUNCTION stint_publish(p_lines text[]) RETURNS void
LANGUAGE plpgsql AS $$
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_lines), 0) BY 100 LOOP
        PERFORM pg_notify('stint_changes', array_to_string(p_lines[i:i + 99], E'\n'));
    END LOOP;
END $$;

-- stint_publish_all publishes that the tasks p_ids changed and are all now
-- in the state p_state.
CREATE OR REPLACE FUNCTION stint_publish_all(p_ids uuid[], p_state text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    sep text := ' ' || p_state || E'\n';
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_ids), 0) BY 100 LOOP
        PERFORM pg_notify('stint_changes', array_to_string(p_ids[i:i + 99], sep) || ' ' || p_state);
    END LOOP;
END $$;

-- The functions of version 1 that change states, now publishing. CREATE OR
-- REPLACE resets a function's settings to the SET clauses it names, so each
-- one restates the settings version 1 gave it.

-- stint_dispatch: as in version 1, and publishes the new tasks as waiting.
CREATE OR REPLACE FUNCTION stint_dispatch(
    p_ids uuid[], p_names text[], p_args text[], p_owners text[], p_versions text[],
    p_parents uuid[], p_groups uuid[],
    p_res_task integer[], p_res text[], p_res_exclusive boolean[])
RETURNS SETOF stint_tasks
LANGUAGE plpgsql
SET jit = off
AS $$
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
    PERFORM stint_publish_all(p_ids, 'waiting');
END $$;

-- stint_claim: as in version 1, and publishes the claimed tasks as running.
-- It returns them oldest first.
--
-- It is now PL/pgSQL rather than SQL, so that it is planned once per
-- connection (PostgreSQL plans the statement of a SQL function again at
-- every call, and this one grew). A plan made once must not depend on the
-- statistics of the moment: made while the tables were small, it would
-- bitmap-scan every claimable task and sort them at every claim. So besides
-- the settings of version 1 it rules out bitmap scans, sorts and
-- materialized inner loops, which leaves the one plan meant: walk
-- stint_tasks_claimable in seq order, probe each task's queue entries by
-- index, stop at p_limit.
CREATE OR REPLACE FUNCTION stint_claim(p_worker text, p_names text[], p_limit integer)
RETURNS SETOF stint_tasks
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET enable_bitmapscan = off
SET enable_sort = off
SET enable_material = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
BEGIN
    RETURN QUERY
    WITH claimed AS (
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
        ) picked
        WHERE t.id = picked.id
        RETURNING t.*
    ), published AS (
        -- One row, whatever was claimed: the join below reads it, so it
        -- runs exactly once.
        SELECT stint_publish_all(array_agg(claimed.id), 'running') FROM claimed
    )
    SELECT claimed.* FROM claimed CROSS JOIN published ORDER BY claimed.seq;
END $$;

-- stint_finish: as in version 1, and publishes the finished tasks in the
-- states they ended in.
CREATE OR REPLACE FUNCTION stint_finish(p_ids uuid[], p_attempts integer[], p_states text[],
    p_results text[], p_errors text[])
RETURNS SETOF uuid
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    done uuid[] := '{}';
    changes text[] := '{}';
    st text;
    i integer;
BEGIN
    -- One primary-key update per outcome, in id order (the lock order of
    -- running tasks), each fenced by its attempt.
    FOR i IN SELECT o.i FROM generate_subscripts(p_ids, 1) AS o(i) ORDER BY p_ids[o.i] LOOP
        UPDATE stint_tasks t
        SET state = CASE WHEN t.state = 'canceling' AND p_states[i] <> 'dropped' THEN 'canceled' ELSE p_states[i] END,
            result = p_results[i]::jsonb, error = p_errors[i]::jsonb,
            finished_at = clock_timestamp(), updated_at = now()
        WHERE t.id = p_ids[i] AND t.attempt = p_attempts[i] AND t.state IN ('running', 'canceling')
        RETURNING t.state INTO st;
        IF FOUND THEN
            done := done || p_ids[i];
            changes := changes || (p_ids[i]::text || ' ' || st);
        END IF;
    END LOOP;
    IF cardinality(done) = 0 THEN
        RETURN;
    END IF;
    PERFORM stint_release(done);
    PERFORM stint_publish(changes);
    RETURN QUERY SELECT unnest(done);
END $$;

-- stint_cancel: as in version 1, and publishes the task's new state (a
-- canceling task, returned as it is, is not a change).
CREATE OR REPLACE FUNCTION stint_cancel(p_id uuid) RETURNS SETOF stint_tasks
LANGUAGE plpgsql
SET jit = off
AS $$
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
END $$;
