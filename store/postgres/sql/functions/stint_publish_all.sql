-- stint_publish_all publishes that the tasks p_ids changed and are all now
-- in the state p_state.
CREATE OR REPLACE FUNCTION stint_publish_all(p_ids uuid[], p_state text)
 RETURNS void
 LANGUAGE plpgsql
AS $function$
DECLARE
    sep text := ' ' || p_state || E'\n';
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_ids), 0) BY 100 LOOP
        PERFORM pg_notify('stint_changes', array_to_string(p_ids[i:i + 99], sep) || ' ' || p_state);
    END LOOP;
END $function$;
