-- Stint schema, version 5: the versions workers provide, checked at claim
-- (DESIGN §1), and immediate dispatch (DESIGN §3).
--
-- Nothing here depends on version 4: it only adds functions and replaces
-- stint_claim, which version 4 does not change, so it applies on top of
-- version 3 or 4 alike.

-- stint_version parses a version as internal/versions does: one to four
-- dot-separated decimal numbers, each at most 999999999 (leading zeros
-- allowed, no sign, no space), missing parts zero. It returns the four
-- numbers, or NULL for anything else. Padded to four, int arrays compare
-- lexicographically, which is the order of versions.
CREATE FUNCTION stint_version(p text) RETURNS integer[]
LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
AS $$
    SELECT CASE WHEN p ~ '^0*[0-9]{1,9}(\.0*[0-9]{1,9}){0,3}$' THEN
        string_to_array(p, '.')::integer[]
            || array_fill(0, ARRAY[4 - cardinality(string_to_array(p, '.'))])
    END
$$;

-- stint_versions_ok reports whether the component versions provided (a
-- jsonb object, name to version) meet every minimum in required: the rule
-- of internal/versions.Satisfies, which the conformance suite checks this
-- against. A component missing from provided, or a version of either side
-- that does not parse, fails the requirement. An empty requirement is met
-- by anything, even NULL.
CREATE FUNCTION stint_versions_ok(required jsonb, provided jsonb) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$
    SELECT NOT EXISTS (
        SELECT 1 FROM jsonb_each_text(required) AS r(name, min)
        WHERE NOT coalesce(stint_version(provided ->> r.name) >= stint_version(r.min), false))
$$;

-- stint_claim with the versions the claiming worker provides: as in
-- version 2, and a task is claimed only by a worker that satisfies its
-- requirement. A task it does not satisfy is passed over, so it does not
-- hold up the tasks behind it in claim order. Tasks without a requirement
-- ('{}', nearly all) are told apart by the equality test, which comes
-- first in the OR and costs nothing; only the others call
-- stint_versions_ok. Settings as in version 2, for the same reasons.
CREATE FUNCTION stint_claim(p_worker text, p_names text[], p_limit integer, p_versions jsonb)
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
        SELECT stint_publish_all(array_agg(claimed.id), 'running') FROM claimed
    )
    SELECT claimed.* FROM claimed CROSS JOIN published ORDER BY claimed.seq;
END $$;

-- The claim of version 2, kept for the nodes of an older Stint that still
-- call it while a cluster is upgraded: it now checks requirements against
-- the versions the worker registered, so that no node runs a task on a
-- worker that does not satisfy it.
CREATE OR REPLACE FUNCTION stint_claim(p_worker text, p_names text[], p_limit integer)
RETURNS SETOF stint_tasks
LANGUAGE sql
SET jit = off
AS $$
    SELECT * FROM stint_claim(p_worker, p_names, p_limit,
        coalesce((SELECT w.versions FROM stint_workers w WHERE w.name = p_worker), '{}'::jsonb));
$$;

-- stint_dispatch_immediate dispatches one task as stint_dispatch does (its
-- arguments are stint_dispatch's, for one task) and, in the same
-- transaction, still holding the task's resource locks:
--   - when the task is runnable at once (its queue entries are all ready,
--     no earlier conflicting entry precedes any of them, and p_worker's
--     registered versions satisfy its requirement) claims it for p_worker,
--     to be run inline by the caller and finished with stint_finish;
--   - otherwise, unless p_deferred, ends it skipped and releases its
--     queue entries as stint_cancel does for a waiting task, so nothing
--     dispatched behind it waits for it;
--   - otherwise leaves it waiting for a worker.
-- It returns the task as it is then. The resource locks make concurrent
-- immediate dispatches on conflicting resources take turns: the second
-- finds the first's entry in the queue and is not runnable.
CREATE FUNCTION stint_dispatch_immediate(
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
       AND NOT EXISTS (
            SELECT 1 FROM stint_task_resources mine
            WHERE mine.task_id = t.id AND EXISTS (
                SELECT 1 FROM stint_task_resources earlier
                WHERE earlier.resource = mine.resource AND earlier.seq < mine.seq
                  AND (mine.exclusive OR earlier.exclusive))) THEN
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
