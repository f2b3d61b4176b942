-- stint_retry_due says whether a run that ended p_outcome (failed or
-- dropped) makes the task scheduled again rather than final: the task was
-- running (a canceling task is never retried), its policy p_retry has
-- attempts left after the p_attempts it recorded and this one, the outcome
-- did not refuse a retry (p_no_retry), and a dropped run is retried only
-- where the policy says so.
CREATE OR REPLACE FUNCTION stint_retry_due(p_retry jsonb, p_attempts jsonb, p_state text, p_outcome text, p_no_retry boolean)
 RETURNS boolean
 LANGUAGE sql
 IMMUTABLE
AS $function$
    SELECT p_retry IS NOT NULL AND p_state = 'running' AND NOT coalesce(p_no_retry, false)
        AND (p_outcome = 'failed' OR (p_outcome = 'dropped' AND coalesce((p_retry->>'dropped')::boolean, false)))
        AND jsonb_array_length(p_attempts) + 1 < (p_retry->>'max_attempts')::integer
$function$;
