-- stint_dispatch inserts tasks (the i-th of each array is task i; p_res_task,
-- p_res and p_res_exclusive list the resource entries, by task index) and
-- returns them in order. A task whose p_scheduled time is after the
-- database's now is inserted scheduled, out of every queue (EnqueueDue
-- queues it when it is due), and signalled on stint_due; the others wait.
-- p_scheduled, p_retries, p_unique_keys and p_retry_of may be NULL arrays
-- (no task sets them). Unique keys are checked before, by
-- stint_unique_tasks. Tasks without resources or a group take one plain
-- insert. Otherwise the groups are checked (a sealed group takes only
-- children of its own incomplete tasks: STSLD), the resources locked in
-- name order, sequence numbers taken after the locks (so that on each
-- resource they agree with commit order), and each queue entry judged
-- against its queue's counters (stint_enqueue). Workers are woken when a
-- task is runnable, and the new tasks are published as waiting.
--
-- plan_cache_mode: the general statement got a custom plan on every call,
-- whose planning cost more than its execution for a dispatch of one task
-- (581 against 1,048 dispatches/s for one caller with 1 exclusive and 1
-- shared resource, docs/benchmarks.md, 2026-12-06); the generic plan
-- (index lookups per entry) suits every size.
CREATE OR REPLACE FUNCTION stint_dispatch(p_ids uuid[], p_names text[], p_args text[], p_owners text[], p_versions text[], p_parents uuid[], p_groups uuid[], p_res_task integer[], p_res text[], p_res_exclusive boolean[], p_scheduled timestamptz[], p_retries text[], p_unique_keys text[], p_retry_of uuid[])
 RETURNS SETOF stint_tasks
 LANGUAGE plpgsql
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
    seqs bigint[];
    blocked integer[];
    runnable integer;
    sealed uuid;
    now_ts timestamptz := clock_timestamp();
    later boolean[];   -- per task: scheduled, not queued now
    any_later boolean := false;
    q_task integer[] := p_res_task;
    q_res text[] := p_res;
    q_excl boolean[] := p_res_exclusive;
BEGIN
    IF p_scheduled IS NOT NULL THEN
        SELECT array_agg(coalesce(p_scheduled[i] > now_ts, false) ORDER BY i), bool_or(coalesce(p_scheduled[i] > now_ts, false))
        INTO later, any_later
        FROM generate_series(1, cardinality(p_ids)) AS i;
    END IF;
    -- The common case, a task (or a batch) with no resources and no group:
    -- nothing to lock, nothing to judge, one insert. The general statement
    -- below is planned afresh on every call (a custom plan over its arrays),
    -- which alone costs more than the insert of one task.
    IF cardinality(p_res) = 0 AND cardinality(array_remove(p_groups, NULL)) = 0 THEN
        RETURN QUERY
        INSERT INTO stint_tasks (id, seq, name, state, args, owner, versions, parent_task, unblocked_at,
            scheduled_at, retry, unique_key, retry_of)
        SELECT u.id, nextval('stint_task_seq'), u.name,
            CASE WHEN coalesce(later[u.i], false) THEN 'scheduled' ELSE 'waiting' END,
            u.args::jsonb, u.owner, u.versions::jsonb, u.parent,
            CASE WHEN NOT coalesce(later[u.i], false) THEN clock_timestamp() END,
            p_scheduled[u.i], p_retries[u.i]::jsonb, p_unique_keys[u.i], p_retry_of[u.i]
        FROM unnest(p_ids, p_names, p_args, p_owners, p_versions, p_parents)
            WITH ORDINALITY AS u(id, name, args, owner, versions, parent, i)
        ORDER BY u.i
        RETURNING *;
        IF any_later THEN
            PERFORM stint_publish(array_agg(p_ids[i]::text || CASE WHEN later[i] THEN ' scheduled' ELSE ' waiting' END))
            FROM generate_series(1, cardinality(p_ids)) AS i;
            PERFORM pg_notify('stint_due', '');
            IF NOT (true = ALL (later)) THEN
                PERFORM pg_notify('stint_wake', '');
            END IF;
        ELSE
            PERFORM pg_notify('stint_wake', '');
            PERFORM stint_publish_all(p_ids, 'waiting');
        END IF;
        RETURN;
    END IF;
    -- The groups named, locked FOR SHARE in id order before the resources
    -- (the order of stint_cancel_group: group, then resources): a seal
    -- (an UPDATE of the row) waits until this dispatch commits, and this
    -- dispatch, if it waited for a seal, reads the group sealed, in the
    -- next statement's snapshot. A task may join a sealed group only as a
    -- child of an incomplete task of that group.
    IF cardinality(array_remove(p_groups, NULL)) > 0 THEN
        PERFORM 1 FROM stint_task_groups g WHERE g.id = ANY (p_groups) ORDER BY g.id FOR SHARE;
        SELECT g.id INTO sealed
        FROM generate_series(1, cardinality(p_ids)) AS i
        JOIN stint_task_groups g ON g.id = p_groups[i]
        WHERE g.all_tasks_dispatched AND NOT EXISTS (
            SELECT 1 FROM stint_tasks p
            WHERE p.id = p_parents[i] AND p.task_group = g.id AND p.state IN ('running', 'canceling'))
        LIMIT 1;
        IF sealed IS NOT NULL THEN
            RAISE EXCEPTION 'task group % has all_tasks_dispatched set', sealed USING ERRCODE = 'STSLD';
        END IF;
    END IF;

    -- Scheduled tasks are queued later: their entries are left out now.
    IF any_later THEN
        SELECT coalesce(array_agg(e.task ORDER BY e.o), '{}'), coalesce(array_agg(e.res ORDER BY e.o), '{}'),
            coalesce(array_agg(e.excl ORDER BY e.o), '{}')
        INTO q_task, q_res, q_excl
        FROM unnest(p_res_task, p_res, p_res_exclusive) WITH ORDINALITY AS e(task, res, excl, o)
        WHERE NOT later[e.task];
    END IF;
    PERFORM stint_lock_resources(q_res);
    -- Sequence numbers are taken after the locks, so that on each resource
    -- they agree with commit order.
    SELECT array_agg(v ORDER BY v) INTO seqs
    FROM (SELECT nextval('stint_task_seq') AS v FROM generate_series(1, cardinality(p_ids))) s;
    blocked := stint_enqueue(p_ids, seqs, q_task, q_res, q_excl);

    RETURN QUERY
    WITH lists AS (
        SELECT e.task,
            coalesce(array_agg(e.res ORDER BY e.res) FILTER (WHERE e.excl), '{}') AS exclusive,
            coalesce(array_agg(e.res ORDER BY e.res) FILTER (WHERE NOT e.excl), '{}') AS shared
        FROM unnest(p_res_task, p_res, p_res_exclusive) AS e(task, res, excl)
        GROUP BY e.task
    )
    INSERT INTO stint_tasks (id, seq, name, state, args, owner, exclusive_resources, shared_resources,
        versions, parent_task, task_group, blocked_count, unblocked_at, scheduled_at, retry, unique_key, retry_of)
    SELECT p_ids[i], seqs[i], p_names[i],
        CASE WHEN coalesce(later[i], false) THEN 'scheduled' ELSE 'waiting' END,
        p_args[i]::jsonb, p_owners[i],
        coalesce(l.exclusive, '{}'), coalesce(l.shared, '{}'),
        p_versions[i]::jsonb, p_parents[i], p_groups[i],
        blocked[i], CASE WHEN blocked[i] = 0 AND NOT coalesce(later[i], false) THEN clock_timestamp() END,
        p_scheduled[i], p_retries[i]::jsonb, p_unique_keys[i], p_retry_of[i]
    FROM generate_series(1, cardinality(p_ids)) AS i
    LEFT JOIN lists l ON l.task = i
    ORDER BY i
    RETURNING *;

    SELECT count(*) INTO runnable FROM stint_tasks
    WHERE id = ANY (p_ids) AND unblocked_at IS NOT NULL;
    IF runnable > 0 THEN
        PERFORM pg_notify('stint_wake', '');
    END IF;
    IF any_later THEN
        PERFORM stint_publish(array_agg(p_ids[i]::text || CASE WHEN later[i] THEN ' scheduled' ELSE ' waiting' END))
        FROM generate_series(1, cardinality(p_ids)) AS i;
        PERFORM pg_notify('stint_due', '');
    ELSE
        PERFORM stint_publish_all(p_ids, 'waiting');
    END IF;
END $function$;
