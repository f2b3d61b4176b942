-- stint_granted reports whether every queue entry of the task with seq
-- p_seq on p_resources is ready: within its queue's frontier. Claims call
-- it as their second line of defence (one probe of a resource row each);
-- stint_claim writes the same test out.
CREATE OR REPLACE FUNCTION stint_granted(p_resources text[], p_seq bigint)
 RETURNS boolean
 LANGUAGE sql
 STABLE
AS $function$
    SELECT NOT EXISTS (
        SELECT 1 FROM stint_resources r
        WHERE r.name = ANY (p_resources) AND r.frontier < p_seq);
$function$;
