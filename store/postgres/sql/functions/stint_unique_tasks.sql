-- stint_unique_tasks locks the unique keys of a dispatch, for the rest of
-- the transaction (advisory locks, taken in one order: no deadlock), and
-- returns, for each position i whose key an incomplete task of the same
-- owner and name already has, that task's id. A second dispatch of a key
-- waits for the first to commit or roll back, then finds its task: the
-- unique index stint_tasks_unique_key is the backstop, never reached by
-- dispatchers that take these locks. Positions without a key are skipped.
CREATE OR REPLACE FUNCTION stint_unique_tasks(p_owners text[], p_names text[], p_keys text[])
 RETURNS TABLE(i integer, id uuid)
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
BEGIN
    PERFORM pg_advisory_xact_lock(1400140143, k.h)
    FROM (SELECT DISTINCT hashtext(u.owner || E'\x1f' || u.name || E'\x1f' || u.key) AS h
          FROM unnest(p_owners, p_names, p_keys) AS u(owner, name, key)
          WHERE u.key IS NOT NULL
          ORDER BY 1) k;
    RETURN QUERY
    SELECT u.i::integer, t.id
    FROM unnest(p_owners, p_names, p_keys) WITH ORDINALITY AS u(owner, name, key, i)
    JOIN stint_tasks t ON t.owner = u.owner AND t.name = u.name AND t.unique_key = u.key
        AND t.state IN ('scheduled', 'waiting', 'running', 'canceling')
    WHERE u.key IS NOT NULL;
END $function$;
