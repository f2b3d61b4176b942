-- stint_version parses a version as internal/versions does: one to four
-- dot-separated decimal numbers, each at most 999999999 (leading zeros
-- allowed, no sign, no space), missing parts zero. It returns the four
-- numbers, or NULL for anything else. Padded to four, int arrays compare
-- lexicographically, which is the order of versions.
CREATE OR REPLACE FUNCTION stint_version(p text)
 RETURNS integer[]
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE STRICT
AS $function$
    SELECT CASE WHEN p ~ '^0*[0-9]{1,9}(\.0*[0-9]{1,9}){0,3}$' THEN
        string_to_array(p, '.')::integer[]
            || array_fill(0, ARRAY[4 - cardinality(string_to_array(p, '.'))])
    END
$function$;
