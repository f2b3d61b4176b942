-- stint_set_capacity sets the capacity of a resource (null: none), creating
-- its row, and promotes what the new capacity lets start: raising it starts
-- the next waiting tasks at once, lowering it starts nothing until enough
-- holders have left. It returns how many entries it promoted.
CREATE OR REPLACE FUNCTION stint_set_capacity(p_name text, p_capacity integer)
 RETURNS integer
 LANGUAGE plpgsql
 SET jit TO 'off'
AS $function$
BEGIN
    PERFORM stint_lock_resources(ARRAY[p_name]);
    UPDATE stint_resources SET capacity = p_capacity WHERE name = p_name;
    RETURN stint_promote(ARRAY[p_name]);
END $function$;
