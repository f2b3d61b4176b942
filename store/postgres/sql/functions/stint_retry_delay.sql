-- stint_retry_delay is the delay before the next attempt of a task with the
-- retry policy p_retry after p_ended attempts ended: the initial delay
-- times the multiplier to the power p_ended - 1, at most the maximum delay,
-- less a random part of up to the jitter of it. It is
-- store.RetryPolicy.Delay, which the embedded engine uses.
CREATE OR REPLACE FUNCTION stint_retry_delay(p_retry jsonb, p_ended integer)
 RETURNS interval
 LANGUAGE sql
 VOLATILE
AS $function$
    SELECT make_interval(secs => least(
            (p_retry->>'initial_delay_ns')::float8 * power((p_retry->>'multiplier')::float8, p_ended - 1),
            (p_retry->>'max_delay_ns')::float8)
        * (1 - coalesce((p_retry->>'jitter')::float8, 0) * random()) / 1e9)
$function$;
