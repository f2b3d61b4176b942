-- Stint schema, version 14: tasks in time. A task may be scheduled (its
-- time has not come, or it waits for its next attempt), retried by a
-- policy, and deduplicated by a unique key.

-- The new state. NOT VALID, then validated: adding a checked constraint
-- would scan the whole table under an exclusive lock; validating takes a
-- lock that lets dispatches and claims go on.
ALTER TABLE stint_tasks DROP CONSTRAINT stint_tasks_state_check;
ALTER TABLE stint_tasks ADD CONSTRAINT stint_tasks_state_check CHECK (state IN
    ('scheduled', 'waiting', 'running', 'canceling', 'completed', 'failed', 'canceled', 'skipped', 'dropped')) NOT VALID;
ALTER TABLE stint_tasks VALIDATE CONSTRAINT stint_tasks_state_check;

-- scheduled_at: the time asked at dispatch or, while a retried task waits,
-- the time of its next attempt. retry: the policy (store.RetryPolicy's
-- JSON, durations in nanoseconds), NULL for none. attempts: the earlier
-- runs of a retried task. Columns with constant defaults: no rewrite.
ALTER TABLE stint_tasks
    ADD COLUMN scheduled_at timestamptz,
    ADD COLUMN retry        jsonb,
    ADD COLUMN attempts     jsonb NOT NULL DEFAULT '[]',
    ADD COLUMN unique_key   text,
    ADD COLUMN retry_of     uuid;

-- The scheduled tasks by due time: what EnqueueDue takes, and the nearest
-- due time (its first entry). Only scheduled tasks are in it, so 100,000
-- tasks scheduled ahead cost dispatches and claims of other tasks nothing.
CREATE INDEX stint_tasks_due ON stint_tasks (scheduled_at) WHERE state = 'scheduled';

-- At most one incomplete task per owner, name and unique key. A task
-- leaves the index when it is final, which frees its key.
CREATE UNIQUE INDEX stint_tasks_unique_key ON stint_tasks (owner, name, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'waiting', 'running', 'canceling');

-- The signatures of version 13, replaced by ones that take the new fields.
-- (stint_claim, stint_cancel, stint_cancel_group and
-- stint_drop_lost_workers change their bodies with this version too.)
DROP FUNCTION stint_dispatch(uuid[], text[], text[], text[], text[], uuid[], uuid[], integer[], text[], boolean[]);
DROP FUNCTION stint_dispatch_immediate(uuid[], text[], text[], text[], text[], uuid[], uuid[], integer[], text[], boolean[], text, boolean);
DROP FUNCTION stint_finish(uuid[], integer[], text[], text[], text[]);
