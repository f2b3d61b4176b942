-- stint_versions_ok reports whether the component versions provided (a
-- jsonb object, name to version) meet every minimum in required: the rule
-- of internal/versions.Satisfies, which the conformance suite checks this
-- against. A component missing from provided, or a version of either side
-- that does not parse, fails the requirement. An empty requirement is met
-- by anything, even NULL.
CREATE OR REPLACE FUNCTION stint_versions_ok(required jsonb, provided jsonb)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE PARALLEL SAFE
AS $function$
    SELECT NOT EXISTS (
        SELECT 1 FROM jsonb_each_text(required) AS r(name, min)
        WHERE NOT coalesce(stint_version(provided ->> r.name) >= stint_version(r.min), false))
$function$;
