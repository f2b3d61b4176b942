-- Stint schema, version 8: counted queues. Each resource's row, which
-- every change to its queue locks anyway, now also counts its queue:
--
--   frontier        the seq of the last entry made ready: the entries of
--                   the queue with seq <= frontier are ready (they form a
--                   prefix of the queue, by the per-resource rule), the
--                   others wait;
--   holders         how many ready entries the queue holds;
--   exclusive_held  the ready entry is an exclusive one (then it is alone);
--   waiting         how many entries wait.
--
-- With them, dispatch judges a new entry from the row it locks instead of
-- probing the queue, a completion that leaves other holders in place looks
-- at no queue at all, and readiness is one comparison with the frontier
-- instead of a flag written on every entry. Version 7 spent most of a
-- completion's time in those probes (docs/benchmarks.md, 2026-11-29).
--
-- The counters are also the second line of defence of DESIGN §3: the check
-- below makes PostgreSQL refuse any write that would record an exclusive
-- holder beside another holder, whatever the order of the entries, and a
-- task is only claimed when its seq is within the frontier of each of its
-- resources.

ALTER TABLE stint_resources
    ADD COLUMN frontier bigint NOT NULL DEFAULT 0,
    ADD COLUMN holders integer NOT NULL DEFAULT 0,
    ADD COLUMN exclusive_held boolean NOT NULL DEFAULT false,
    ADD COLUMN waiting integer NOT NULL DEFAULT 0;
-- Room on each page for the new versions of its rows: the counters change
-- at every dispatch and completion, and no index names them, so each
-- change is a HOT update on the same page.
ALTER TABLE stint_resources SET (fillfactor = 50);

UPDATE stint_resources r
SET frontier = c.frontier, holders = c.holders, exclusive_held = c.exclusive_held, waiting = c.waiting
FROM (
    SELECT q.resource,
        coalesce(max(q.seq) FILTER (WHERE q.ready), 0) AS frontier,
        count(*) FILTER (WHERE q.ready)::integer AS holders,
        coalesce(bool_or(q.exclusive) FILTER (WHERE q.ready), false) AS exclusive_held,
        count(*) FILTER (WHERE NOT q.ready)::integer AS waiting
    FROM stint_task_resources q
    GROUP BY q.resource) c
WHERE r.name = c.resource;

ALTER TABLE stint_resources ADD CONSTRAINT stint_resources_counts_check
    CHECK (holders >= 0 AND waiting >= 0 AND (NOT exclusive_held OR holders = 1));

-- The rows that dispatch and completion lock are now updated too, so a
-- transaction that waited for one of them must check it again once the
-- other commits (PostgreSQL's EvalPlanQual), and a bitmap scan makes each
-- check cost as much as the whole scan: one dispatch of 1,000 tasks beside
-- running completions spent some 300 ms locking. The locks are taken by
-- index scans, whose checks are cheap.
ALTER FUNCTION stint_lock_resources(text[]) SET enable_bitmapscan = off;

-- Entries are found by (resource, seq): a task's come from its row (its
-- resources and its seq). The index by task and the ready flag go: each
-- cost every entry a write.
DROP INDEX stint_task_resources_task;
ALTER TABLE stint_task_resources DROP COLUMN ready;

-- stint_promote makes ready the entries that the per-resource rule allows
-- on the given resources, whose rows the caller has locked and whose
-- counters are up to date, and unblocks the tasks whose entries are then
-- all ready. The rule, on a queue's first waiting entry (its head):
--   an exclusive head becomes ready when no entry is ready, alone;
--   a shared head becomes ready unless an exclusive entry is, and with it
--   the shared entries up to the next exclusive one.
-- It reads the head of each queue that may move and the entries it makes
-- ready. It returns how many entries it made ready.
CREATE OR REPLACE FUNCTION stint_promote(p_resources text[]) RETURNS integer
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    n integer;
    runnable integer;
    affected uuid[];
BEGIN
    WITH heads AS (
        SELECT r.name, r.frontier, r.holders, h.seq AS head_seq, h.exclusive AS head_exclusive
        FROM stint_resources r
        CROSS JOIN LATERAL (
            SELECT q.seq, q.exclusive FROM stint_task_resources q
            WHERE q.resource = r.name AND q.seq > r.frontier ORDER BY q.seq LIMIT 1) h
        WHERE r.name = ANY (p_resources) AND r.waiting > 0 AND (r.holders = 0 OR NOT r.exclusive_held)
    ), bounds AS (
        -- Entries after the frontier and below "below" become ready.
        SELECT hd.name, hd.frontier, hd.head_exclusive AND hd.holders = 0 AS takes_exclusive,
            CASE
                WHEN hd.head_exclusive AND hd.holders = 0 THEN hd.head_seq + 1
                WHEN hd.head_exclusive THEN hd.head_seq
                ELSE coalesce((
                    SELECT x.seq FROM stint_task_resources x
                    WHERE x.resource = hd.name AND x.exclusive AND x.seq > hd.head_seq
                    ORDER BY x.seq LIMIT 1), 9223372036854775807)
            END AS below
        FROM heads hd
    ), moved AS (
        SELECT b.name, q.seq, q.task_id FROM bounds b
        CROSS JOIN LATERAL (
            SELECT q.seq, q.task_id FROM stint_task_resources q
            WHERE q.resource = b.name AND q.seq > b.frontier AND q.seq < b.below) q
    ), counted AS (
        UPDATE stint_resources r
        SET holders = r.holders + m.n, waiting = r.waiting - m.n, frontier = m.last,
            exclusive_held = r.exclusive_held OR b.takes_exclusive
        FROM (SELECT mv.name, count(*)::integer AS n, max(mv.seq) AS last FROM moved mv GROUP BY mv.name) m
        JOIN bounds b ON b.name = m.name
        WHERE r.name = m.name
    )
    SELECT count(*), array_agg(mv.task_id) INTO n, affected FROM moved mv;
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

-- stint_dequeue removes the queue entries (p_res[k], p_seqs[k]) that exist,
-- counts them out of their queues, and promotes what may move behind them:
-- on queues left without a ready entry, or that lost a waiting one (an
-- exclusive entry that held shared ones back may be gone). It locks the
-- resources in name order first. It returns how many entries it promoted.
CREATE FUNCTION stint_dequeue(p_res text[], p_seqs bigint[]) RETURNS integer
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_bitmapscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    touched text[];
    movable text[];
BEGIN
    SELECT array_agg(DISTINCT r ORDER BY r) INTO touched FROM unnest(p_res) AS r;
    IF touched IS NULL THEN
        RETURN 0;
    END IF;
    PERFORM 1 FROM stint_resources WHERE name = ANY (touched) ORDER BY name FOR UPDATE;
    WITH gone AS (
        DELETE FROM stint_task_resources q
        USING unnest(p_res, p_seqs) AS e(res, seq)
        WHERE q.resource = e.res AND q.seq = e.seq
        RETURNING q.resource, q.seq
    ), counts AS (
        SELECT g.resource,
            count(*) FILTER (WHERE g.seq <= r.frontier)::integer AS held,
            count(*) FILTER (WHERE g.seq > r.frontier)::integer AS waited
        FROM gone g JOIN stint_resources r ON r.name = g.resource
        GROUP BY g.resource
    ), counted AS (
        UPDATE stint_resources r
        SET holders = r.holders - c.held, waiting = r.waiting - c.waited,
            exclusive_held = r.exclusive_held AND r.holders > c.held
        FROM counts c
        WHERE r.name = c.resource
        RETURNING r.name, r.holders, r.waiting, c.waited
    )
    SELECT array_agg(c.name ORDER BY c.name) INTO movable FROM counted c
    WHERE c.waiting > 0 AND (c.holders = 0 OR c.waited > 0);
    IF movable IS NULL THEN
        RETURN 0;
    END IF;
    RETURN stint_promote(movable);
END $$;

-- stint_release removes the queue entries of tasks that reached a final
-- state (found from the tasks' rows: their resources and seq) and promotes
-- what waited behind them.
CREATE OR REPLACE FUNCTION stint_release(p_ids uuid[]) RETURNS void
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    res text[];
    seqs bigint[];
BEGIN
    SELECT array_agg(e.name), array_agg(t.seq) INTO res, seqs
    FROM stint_tasks t CROSS JOIN LATERAL unnest(t.exclusive_resources || t.shared_resources) AS e(name)
    WHERE t.id = ANY (p_ids);
    IF res IS NOT NULL THEN
        PERFORM stint_dequeue(res, seqs);
    END IF;
END $$;

-- stint_settle recounts the queues of the given resources, whose rows the
-- caller has locked, from their entries and frontiers, and promotes what
-- may move. The sweep calls it: it returns how many queues it recounted
-- (their counters were wrong) and how many entries it promoted, and both
-- are bug signals.
CREATE FUNCTION stint_settle(p_resources text[], OUT recounted integer, OUT promoted integer)
LANGUAGE plpgsql
SET jit = off
AS $$
BEGIN
    WITH actual AS (
        SELECT r.name,
            count(q.seq) FILTER (WHERE q.seq <= r.frontier)::integer AS holders,
            count(q.seq) FILTER (WHERE q.seq > r.frontier)::integer AS waiting,
            coalesce(bool_or(q.exclusive) FILTER (WHERE q.seq <= r.frontier), false) AS exclusive_held
        FROM stint_resources r LEFT JOIN stint_task_resources q ON q.resource = r.name
        WHERE r.name = ANY (p_resources)
        GROUP BY r.name
    ), fixed AS (
        UPDATE stint_resources r
        SET holders = a.holders, waiting = a.waiting, exclusive_held = a.exclusive_held
        FROM actual a
        WHERE r.name = a.name
          AND (r.holders, r.waiting, r.exclusive_held) IS DISTINCT FROM (a.holders, a.waiting, a.exclusive_held)
        RETURNING 1
    )
    SELECT count(*) INTO recounted FROM fixed;
    promoted := stint_promote(p_resources);
END $$;

-- stint_dispatch: as in version 2, judging each new entry from its queue's
-- counters. A batch may hold several entries of one queue; in seq order,
-- an entry is ready when no entry of the queue waits and either the queue
-- has no ready entry and it comes first in the batch, or no exclusive
-- entry is ready and neither it nor an entry before it in the batch is
-- exclusive.
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
END $$;

-- stint_granted reports whether every queue entry of the task with seq
-- p_seq on p_resources is ready: within its queue's frontier. Claims call
-- it as their second line of defence (one probe of a resource row each);
-- stint_claim writes the same test out.
CREATE FUNCTION stint_granted(p_resources text[], p_seq bigint) RETURNS boolean
LANGUAGE sql STABLE
AS $$
    SELECT NOT EXISTS (
        SELECT 1 FROM stint_resources r
        WHERE r.name = ANY (p_resources) AND r.frontier < p_seq);
$$;

-- stint_claim: as in version 5, with the second line of defence on the
-- counted queues.
CREATE OR REPLACE FUNCTION stint_claim(p_worker text, p_names text[], p_limit integer, p_versions jsonb)
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
              AND (c.versions = '{}'::jsonb OR stint_versions_ok(c.versions, p_versions))
              -- stint_granted, written out: PostgreSQL does not inline a
              -- function with a subquery, and a call per candidate cost
              -- some 6 µs.
              AND NOT EXISTS (
                  SELECT 1 FROM stint_resources r
                  WHERE r.name = ANY (c.exclusive_resources || c.shared_resources)
                    AND r.frontier < c.seq)
            ORDER BY c.seq
            LIMIT p_limit
            FOR UPDATE SKIP LOCKED
        ) picked
        WHERE t.id = picked.id
        RETURNING t.*
    ), published AS (
        SELECT stint_publish_all(array_agg(claimed.id), 'running') FROM claimed
    )
    SELECT claimed.* FROM claimed CROSS JOIN published ORDER BY claimed.seq;
END $$;

-- stint_dispatch_immediate: as in version 5, with the second line of
-- defence on the counted queues.
CREATE OR REPLACE FUNCTION stint_dispatch_immediate(
    p_ids uuid[], p_names text[], p_args text[], p_owners text[], p_versions text[],
    p_parents uuid[], p_groups uuid[],
    p_res_task integer[], p_res text[], p_res_exclusive boolean[],
    p_worker text, p_deferred boolean)
RETURNS SETOF stint_tasks
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
    t stint_tasks;
BEGIN
    IF cardinality(p_ids) <> 1 THEN
        RAISE EXCEPTION 'stint_dispatch_immediate takes one task, not %', cardinality(p_ids);
    END IF;
    SELECT * INTO t FROM stint_dispatch(p_ids, p_names, p_args, p_owners, p_versions,
        p_parents, p_groups, p_res_task, p_res, p_res_exclusive);
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
END $$;

-- stint_finish: as in version 2, with the outcomes recorded by one
-- statement instead of one statement each (a statement in PL/pgSQL costs
-- some 20 µs here, more than the row it updates). The rows are still
-- locked in id order, the lock order of running tasks: the outcomes are
-- joined in id order to the primary key, one row at a time.
CREATE OR REPLACE FUNCTION stint_finish(p_ids uuid[], p_attempts integer[], p_states text[],
    p_results text[], p_errors text[])
RETURNS SETOF uuid
LANGUAGE plpgsql
SET enable_seqscan = off
SET enable_hashjoin = off
SET enable_mergejoin = off
SET enable_bitmapscan = off
SET jit = off
SET plan_cache_mode = force_generic_plan
AS $$
DECLARE
    done uuid[];
    changes text[];
    res text[];
    seqs bigint[];
BEGIN
    -- The update returns the finished tasks' queue entries too (resources
    -- and seq), which are released without reading the rows again.
    WITH finished AS (
        UPDATE stint_tasks t
        SET state = CASE WHEN t.state = 'canceling' AND o.state <> 'dropped' THEN 'canceled' ELSE o.state END,
            result = o.result::jsonb, error = o.error::jsonb,
            finished_at = clock_timestamp(), updated_at = now()
        FROM (SELECT u.id, u.attempt, u.state, u.result, u.error
              FROM unnest(p_ids, p_attempts, p_states, p_results, p_errors) AS u(id, attempt, state, result, error)
              ORDER BY u.id) o
        WHERE t.id = o.id AND t.attempt = o.attempt AND t.state IN ('running', 'canceling')
        RETURNING t.id, t.state, t.seq, t.exclusive_resources || t.shared_resources AS resources
    ), tasks AS (
        SELECT array_agg(f.id ORDER BY f.id) AS done,
            array_agg(f.id::text || ' ' || f.state ORDER BY f.id) AS changes
        FROM finished f
    ), entries AS (
        SELECT array_agg(e.name) AS res, array_agg(f.seq) AS seqs
        FROM finished f CROSS JOIN LATERAL unnest(f.resources) AS e(name)
    )
    SELECT tasks.done, tasks.changes, entries.res, entries.seqs INTO done, changes, res, seqs
    FROM tasks, entries;
    IF done IS NULL THEN
        RETURN;
    END IF;
    IF res IS NOT NULL THEN
        PERFORM stint_dequeue(res, seqs);
    END IF;
    PERFORM stint_publish(changes);
    RETURN QUERY SELECT unnest(done);
END $$;
