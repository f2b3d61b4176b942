-- stint_finish records the outcomes of runs (the i-th of each array is one
-- outcome) by one statement, and returns the ids of the tasks it ended. An
-- outcome whose attempt is not the task's current one (a stale fencing
-- token) changes nothing. The rows are locked in id order, the lock order
-- of running tasks: the outcomes, sorted by id, are merge-joined to the
-- rows the primary key finds, in its order. A failed (or dropped) run of a task whose retry
-- policy has attempts left (stint_retry_due) does not end it: the run is
-- appended to its attempts, and the task is scheduled for its next attempt
-- (stint_retry_delay from now), without a worker, signalled on stint_due.
-- The queue entries of the tasks ended or scheduled are released and the
-- changes published.
CREATE OR REPLACE FUNCTION stint_finish(p_ids uuid[], p_attempts integer[], p_states text[], p_results text[], p_errors text[], p_no_retry boolean[])
 RETURNS SETOF uuid
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_nestloop TO 'off'
 SET enable_mergejoin TO 'on'
 SET enable_bitmapscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
    ts timestamptz := clock_timestamp(); -- one clock for the finish and the retry's delay
    done uuid[];
    changes text[];
    res text[];
    seqs bigint[];
BEGIN
    -- The update returns the finished tasks' queue entries too (resources
    -- and seq), which are released without reading the rows again.
    WITH finished AS (
        UPDATE stint_tasks t
        SET state = CASE
                WHEN t.state = 'canceling' AND o.state <> 'dropped' THEN 'canceled'
                WHEN stint_retry_due(t.retry, t.attempts, t.state, o.state, o.no_retry) THEN 'scheduled'
                ELSE o.state END,
            result = CASE WHEN stint_retry_due(t.retry, t.attempts, t.state, o.state, o.no_retry)
                THEN NULL ELSE o.result::jsonb END,
            error = o.error::jsonb,
            finished_at = CASE WHEN stint_retry_due(t.retry, t.attempts, t.state, o.state, o.no_retry)
                THEN NULL ELSE ts END,
            updated_at = ts,
            -- Retried: the run becomes an attempt, and the task has no
            -- worker until its next claim.
            attempts = CASE WHEN stint_retry_due(t.retry, t.attempts, t.state, o.state, o.no_retry)
                THEN t.attempts || jsonb_build_array(jsonb_build_object(
                    'number', jsonb_array_length(t.attempts) + 1, 'state', o.state,
                    'started_at', t.started_at, 'finished_at', ts,
                    'worker', t.worker, 'error', o.error::jsonb))
                ELSE t.attempts END,
            scheduled_at = CASE WHEN stint_retry_due(t.retry, t.attempts, t.state, o.state, o.no_retry)
                THEN ts + stint_retry_delay(t.retry, jsonb_array_length(t.attempts) + 1)
                ELSE t.scheduled_at END,
            started_at = CASE WHEN stint_retry_due(t.retry, t.attempts, t.state, o.state, o.no_retry)
                THEN NULL ELSE t.started_at END,
            worker = CASE WHEN stint_retry_due(t.retry, t.attempts, t.state, o.state, o.no_retry)
                THEN NULL ELSE t.worker END
        FROM (SELECT u.id, u.attempt, u.state, u.result, u.error, u.no_retry
              FROM unnest(p_ids, p_attempts, p_states, p_results, p_errors, p_no_retry)
                  AS u(id, attempt, state, result, error, no_retry)
              ORDER BY u.id) o
        -- The plan is a merge join of the outcomes and the rows they name,
        -- both in id order, whatever the statistics say: each row is read
        -- once by the primary key (t.id = ANY (p_ids)) and locked in id
        -- order. Nested loops are off: where ANALYZE found few running tasks
        -- (a table of mostly finished or scheduled ones) the planner took
        -- the rows as the outer side and read all the outcomes again for
        -- each of them, and through stint_tasks_incomplete (which the state
        -- test would match if written plainly, hence the expression) it
        -- read every running task: a cost that grew with the batch and the
        -- running tasks, a third of the finish's time with 100 running and
        -- 100,000 scheduled.
        WHERE t.id = ANY (p_ids) AND t.id = o.id AND t.attempt = o.attempt
          AND t.state || '' IN ('running', 'canceling')
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
    IF EXISTS (SELECT 1 FROM unnest(changes) AS c WHERE c LIKE '% scheduled') THEN
        PERFORM pg_notify('stint_due', '');
    END IF;
    RETURN QUERY SELECT unnest(done);
END $function$;
