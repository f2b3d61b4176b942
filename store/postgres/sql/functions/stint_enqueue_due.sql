-- stint_enqueue_due makes waiting up to p_limit scheduled tasks whose time
-- has come by the database's clock, the earliest due first, skipping rows
-- another call holds: each takes a new seq after the resource locks (it
-- queues behind every task dispatched before it became due) and enters its
-- queues through stint_enqueue, as a dispatch does. Workers are woken when
-- one is runnable; the changes are published. It returns how many it
-- enqueued and how long until the next scheduled task is due (NULL when
-- none is scheduled), from the first entry of stint_tasks_due.
CREATE OR REPLACE FUNCTION stint_enqueue_due(p_limit integer, OUT enqueued integer, OUT next_in interval)
 RETURNS record
 LANGUAGE plpgsql
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
AS $function$
DECLARE
    ids uuid[];
    res_task integer[];
    res text[];
    excl boolean[];
    seqs bigint[];
    blocked integer[];
    ts timestamptz := clock_timestamp();
BEGIN
    enqueued := 0;
    SELECT array_agg(d.id ORDER BY d.scheduled_at, d.seq) INTO ids FROM (
        SELECT t.id, t.scheduled_at, t.seq FROM stint_tasks t
        WHERE t.state = 'scheduled' AND t.scheduled_at <= ts
        ORDER BY t.scheduled_at, t.seq
        LIMIT p_limit
        FOR UPDATE SKIP LOCKED) d;
    IF ids IS NOT NULL THEN
        SELECT coalesce(array_agg(e.i ORDER BY e.i, e.res), '{}'), coalesce(array_agg(e.res ORDER BY e.i, e.res), '{}'),
            coalesce(array_agg(e.excl ORDER BY e.i, e.res), '{}')
        INTO res_task, res, excl
        FROM (SELECT u.i::integer AS i, r.res, r.excl
              FROM unnest(ids) WITH ORDINALITY AS u(id, i)
              JOIN stint_tasks t ON t.id = u.id
              CROSS JOIN LATERAL (
                  SELECT x, true FROM unnest(t.exclusive_resources) AS x
                  UNION ALL
                  SELECT x, false FROM unnest(t.shared_resources) AS x) AS r(res, excl)) e;
        PERFORM stint_lock_resources(res);
        SELECT array_agg(v ORDER BY v) INTO seqs
        FROM (SELECT nextval('stint_task_seq') AS v FROM generate_series(1, cardinality(ids))) s;
        blocked := stint_enqueue(ids, seqs, res_task, res, excl);
        UPDATE stint_tasks t
        SET state = 'waiting', seq = seqs[u.i], blocked_count = blocked[u.i],
            unblocked_at = CASE WHEN blocked[u.i] = 0 THEN clock_timestamp() END, updated_at = clock_timestamp()
        FROM unnest(ids) WITH ORDINALITY AS u(id, i)
        WHERE t.id = u.id;
        IF 0 = ANY (blocked) THEN
            PERFORM pg_notify('stint_wake', '');
        END IF;
        PERFORM stint_publish_all(ids, 'waiting');
        enqueued := cardinality(ids);
    END IF;
    SELECT min(t.scheduled_at) - clock_timestamp() INTO next_in
    FROM stint_tasks t WHERE t.state = 'scheduled';
END $function$;
