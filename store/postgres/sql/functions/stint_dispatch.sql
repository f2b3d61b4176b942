-- stint_dispatch inserts tasks (the i-th of each array is task i; p_res_task,
-- p_res and p_res_exclusive list the resource entries, by task index) and
-- returns them in order. Tasks without resources or a group take one plain
-- insert. Otherwise the groups are checked (a sealed group takes only
-- children of its own incomplete tasks: STSLD), the resources locked in
-- name order, sequence numbers taken after the locks (so that on each
-- resource they agree with commit order), and each queue entry judged
-- against its queue's counters in one statement. Workers are woken when a
-- task is runnable, and the new tasks are published as waiting.
--
-- plan_cache_mode: the general statement got a custom plan on every call,
-- whose planning cost more than its execution for a dispatch of one task
-- (581 against 1,048 dispatches/s for one caller with 1 exclusive and 1
-- shared resource, docs/benchmarks.md, 2026-12-06); the generic plan
-- (index lookups per entry) suits every size.
CREATE OR REPLACE FUNCTION stint_dispatch(p_ids uuid[], p_names text[], p_args text[], p_owners text[], p_versions text[], p_parents uuid[], p_groups uuid[], p_res_task integer[], p_res text[], p_res_exclusive boolean[])
 RETURNS SETOF stint_tasks
 LANGUAGE plpgsql
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
    seqs bigint[];
    runnable integer;
    sealed uuid;
BEGIN
    -- The common case, a task (or a batch) with no resources and no group:
    -- nothing to lock, nothing to judge, one insert. The general statement
    -- below is planned afresh on every call (a custom plan over its arrays),
    -- which alone costs more than the insert of one task.
    IF cardinality(p_res) = 0 AND cardinality(array_remove(p_groups, NULL)) = 0 THEN
        RETURN QUERY
        INSERT INTO stint_tasks (id, seq, name, state, args, owner, versions, parent_task, unblocked_at)
        SELECT u.id, nextval('stint_task_seq'), u.name, 'waiting', u.args::jsonb, u.owner,
            u.versions::jsonb, u.parent, clock_timestamp()
        FROM unnest(p_ids, p_names, p_args, p_owners, p_versions, p_parents)
            WITH ORDINALITY AS u(id, name, args, owner, versions, parent, i)
        ORDER BY u.i
        RETURNING *;
        PERFORM pg_notify('stint_wake', '');
        PERFORM stint_publish_all(p_ids, 'waiting');
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

    PERFORM stint_lock_resources(p_res);
    -- Sequence numbers are taken after the locks, so that on each resource
    -- they agree with commit order.
    SELECT array_agg(v ORDER BY v) INTO seqs
    FROM (SELECT nextval('stint_task_seq') AS v FROM generate_series(1, cardinality(p_ids))) s;

    RETURN QUERY
    WITH entries AS (
        SELECT e.task, e.res, e.excl, seqs[e.task] AS seq,
            row_number() OVER w AS pos,
            count(*) FILTER (WHERE e.excl) OVER w AS exclusive_so_far
        FROM unnest(p_res_task, p_res, p_res_exclusive) AS e(task, res, excl)
        WINDOW w AS (PARTITION BY e.res ORDER BY e.task ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW)
    ), judged AS (
        SELECT en.task, en.res, en.excl, en.seq,
            r.waiting = 0 AND ((r.holders = 0 AND en.pos = 1)
                OR (NOT r.exclusive_held AND en.exclusive_so_far = 0)) AS ready
        FROM entries en JOIN stint_resources r ON r.name = en.res
    ), queued AS (
        INSERT INTO stint_task_resources (resource, seq, task_id, exclusive)
        SELECT j.res, j.seq, p_ids[j.task], j.excl FROM judged j
    ), counted AS (
        UPDATE stint_resources r
        SET holders = r.holders + c.ready, waiting = r.waiting + c.waiting,
            exclusive_held = r.exclusive_held OR c.exclusive_ready,
            frontier = greatest(r.frontier, c.last_ready)
        FROM (SELECT j.res,
                  count(*) FILTER (WHERE j.ready)::integer AS ready,
                  count(*) FILTER (WHERE NOT j.ready)::integer AS waiting,
                  coalesce(bool_or(j.excl) FILTER (WHERE j.ready), false) AS exclusive_ready,
                  coalesce(max(j.seq) FILTER (WHERE j.ready), 0) AS last_ready
              FROM judged j GROUP BY j.res) c
        WHERE r.name = c.res
    ), blocked AS (
        SELECT j.task, count(*) FILTER (WHERE NOT j.ready)::integer AS c FROM judged j GROUP BY j.task
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
    LEFT JOIN blocked b ON b.task = i
    LEFT JOIN lists l ON l.task = i
    ORDER BY i
    RETURNING *;

    SELECT count(*) INTO runnable FROM stint_tasks
    WHERE id = ANY (p_ids) AND unblocked_at IS NOT NULL;
    IF runnable > 0 THEN
        PERFORM pg_notify('stint_wake', '');
    END IF;
    PERFORM stint_publish_all(p_ids, 'waiting');
END $function$;
