-- stint_publish publishes change lines, "<id> <state>" each, 100 per
-- notification. Payloads are joined with array_to_string rather than
-- aggregated by a query over the rows: publishing must cost the scheduler
-- functions next to nothing.
CREATE OR REPLACE FUNCTION stint_publish(p_lines text[])
 RETURNS void
 LANGUAGE plpgsql
AS $function$
BEGIN
    FOR i IN 1 .. coalesce(cardinality(p_lines), 0) BY 100 LOOP
        PERFORM pg_notify('stint_changes', array_to_string(p_lines[i:i + 99], E'\n'));
    END LOOP;
END $function$;
