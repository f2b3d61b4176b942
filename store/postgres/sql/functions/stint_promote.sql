-- stint_promote makes ready the entries that the per-resource rule allows
-- on the given resources, whose rows the caller has locked and whose
-- counters are up to date, and unblocks the tasks whose entries are then
-- all ready. The rule, on a queue's first waiting entry (its head):
--   an exclusive head becomes ready when no entry is ready, alone;
--   a shared head becomes ready unless an exclusive entry is, and with it
--   the shared entries up to the next exclusive one;
--   on a resource with a capacity, no more than the capacity less the
--   holders become ready.
-- It reads the head of each queue that may move and the entries it makes
-- ready. It returns how many entries it made ready.
CREATE OR REPLACE FUNCTION stint_promote(p_resources text[])
 RETURNS integer
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET enable_hashjoin TO 'off'
 SET enable_mergejoin TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
    n integer;
    runnable integer;
    affected uuid[];
BEGIN
    WITH heads AS (
        SELECT r.name, r.frontier, r.holders, r.capacity, h.seq AS head_seq, h.exclusive AS head_exclusive
        FROM stint_resources r
        CROSS JOIN LATERAL (
            SELECT q.seq, q.exclusive FROM stint_task_resources q
            WHERE q.resource = r.name AND q.seq > r.frontier ORDER BY q.seq LIMIT 1) h
        WHERE r.name = ANY (p_resources) AND r.waiting > 0
          AND (r.holders = 0 OR (NOT r.exclusive_held AND (r.capacity IS NULL OR r.holders < r.capacity)))
    ), bounds AS (
        -- Entries after the frontier and below "below" become ready, at
        -- most "room" of them (no bound when null).
        SELECT hd.name, hd.frontier, hd.head_exclusive AND hd.holders = 0 AS takes_exclusive,
            hd.capacity - hd.holders AS room,
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
            WHERE q.resource = b.name AND q.seq > b.frontier AND q.seq < b.below
            ORDER BY q.seq LIMIT b.room) q
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
END $function$;
