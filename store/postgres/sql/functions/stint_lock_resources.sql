-- stint_lock_resources locks the rows of the given resources in name order,
-- creating the missing ones, in one statement: ON CONFLICT DO UPDATE locks
-- each row that exists (its WHERE false changes none), so that no row can
-- be collected (stint_collect_resources) between finding it and locking
-- it. Every transaction that changes a queue calls it
-- first, so changes to one resource's queue are serialised and agree with
-- commit order, and transactions never deadlock on resources.
CREATE OR REPLACE FUNCTION stint_lock_resources(p_resources text[])
 RETURNS void
 LANGUAGE plpgsql
 SET enable_seqscan TO 'off'
 SET jit TO 'off'
 SET plan_cache_mode TO 'force_generic_plan'
 SET enable_bitmapscan TO 'off'
AS $function$
BEGIN
    IF cardinality(p_resources) = 0 THEN
        RETURN;
    END IF;
    INSERT INTO stint_resources (name)
        SELECT DISTINCT r FROM unnest(p_resources) AS r ORDER BY 1
        ON CONFLICT (name) DO UPDATE SET name = excluded.name WHERE false;
END $function$;
