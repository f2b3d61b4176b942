-- Stint schema for SQLite, version 5: tasks in time, as the PostgreSQL
-- engine's: scheduled tasks (state 'scheduled', scheduled_at), retries
-- (the policy and the earlier attempts) and unique keys.
--
-- The state's CHECK must accept 'scheduled', and SQLite cannot alter a
-- CHECK: stint_tasks is rebuilt (a new table, the rows copied, the old one
-- dropped, the new one renamed), and every index and trigger that versions
-- 1 to 4 made on it is made again, as they made it. The connections run
-- with foreign_keys off and nothing references stint_tasks.

CREATE TABLE stint_tasks_new (
    -- Dispatch order. AUTOINCREMENT: a number is never used twice, even
    -- after the newest task is deleted. A scheduled task takes a new one
    -- when it becomes due (it queues behind every task dispatched before).
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN
        ('scheduled', 'waiting', 'running', 'canceling', 'completed', 'failed', 'canceled', 'skipped', 'dropped')),
    args                TEXT    NOT NULL DEFAULT '{}',
    owner               TEXT    NOT NULL DEFAULT '',
    created_at          INTEGER NOT NULL,
    updated_at          INTEGER NOT NULL,
    unblocked_at        INTEGER,
    started_at          INTEGER,
    finished_at         INTEGER,
    exclusive_resources TEXT    NOT NULL DEFAULT '[]',
    shared_resources    TEXT    NOT NULL DEFAULT '[]',
    versions            TEXT    NOT NULL DEFAULT '{}',
    worker              TEXT,
    attempt             INTEGER NOT NULL DEFAULT 0,
    -- Queue entries of this task that are not ready yet; the promotion
    -- that brings it to zero unblocks the task.
    blocked_count       INTEGER NOT NULL DEFAULT 0,
    parent_task         TEXT,
    task_group          TEXT,
    result              TEXT,
    error               TEXT,
    non_fatal_errors    TEXT    NOT NULL DEFAULT '[]',
    progress_reports    TEXT    NOT NULL DEFAULT '[]',
    created_resources   TEXT    NOT NULL DEFAULT '[]',
    -- When the task was asked to run (null: at once) or, while it waits
    -- for its next attempt, when that attempt is due.
    scheduled_at        INTEGER,
    -- The retry policy: the JSON of store.RetryPolicy (durations in
    -- nanoseconds), null for none.
    retry               TEXT,
    -- The earlier runs of a retried task, oldest first: a JSON array of
    -- store.Attempt.
    attempts            TEXT    NOT NULL DEFAULT '[]',
    unique_key          TEXT,
    retry_of            TEXT
) STRICT;

INSERT INTO stint_tasks_new (seq, id, name, state, args, owner, created_at, updated_at, unblocked_at,
        started_at, finished_at, exclusive_resources, shared_resources, versions, worker, attempt,
        blocked_count, parent_task, task_group, result, error, non_fatal_errors, progress_reports,
        created_resources)
SELECT seq, id, name, state, args, owner, created_at, updated_at, unblocked_at,
        started_at, finished_at, exclusive_resources, shared_resources, versions, worker, attempt,
        blocked_count, parent_task, task_group, result, error, non_fatal_errors, progress_reports,
        created_resources
FROM stint_tasks ORDER BY seq;

-- The sequence goes on from where the old table's was, which may be past
-- its newest task (deleted); the copy set the new table's to the newest
-- task's only. Renaming the table renames its row of sqlite_sequence.
UPDATE sqlite_sequence SET seq = (SELECT o.seq FROM sqlite_sequence o WHERE o.name = 'stint_tasks')
WHERE name = 'stint_tasks_new' AND seq < (SELECT o.seq FROM sqlite_sequence o WHERE o.name = 'stint_tasks');
INSERT INTO sqlite_sequence (name, seq)
SELECT 'stint_tasks_new', o.seq FROM sqlite_sequence o
WHERE o.name = 'stint_tasks' AND NOT EXISTS (SELECT 1 FROM sqlite_sequence n WHERE n.name = 'stint_tasks_new');

DROP TABLE stint_tasks;
ALTER TABLE stint_tasks_new RENAME TO stint_tasks;

-- The indexes of version 1.
CREATE INDEX stint_tasks_claimable ON stint_tasks (seq)
    WHERE state = 'waiting' AND unblocked_at IS NOT NULL;
CREATE INDEX stint_tasks_active ON stint_tasks (worker, seq)
    WHERE state IN ('running', 'canceling');
CREATE INDEX stint_tasks_created ON stint_tasks (created_at);
CREATE INDEX stint_tasks_parent ON stint_tasks (parent_task) WHERE parent_task IS NOT NULL;
CREATE INDEX stint_tasks_group ON stint_tasks (task_group) WHERE task_group IS NOT NULL;
-- Of version 3.
CREATE INDEX stint_tasks_finished ON stint_tasks (state, finished_at)
    WHERE finished_at IS NOT NULL;
-- Of version 4.
CREATE INDEX stint_tasks_state_created ON stint_tasks (state, created_at);

-- The triggers of version 4, which counts tasks per state.
CREATE TRIGGER stint_tasks_count_insert AFTER INSERT ON stint_tasks BEGIN
    UPDATE stint_task_counts SET n = n + 1 WHERE state = new.state;
END;
CREATE TRIGGER stint_tasks_count_delete AFTER DELETE ON stint_tasks BEGIN
    UPDATE stint_task_counts SET n = n - 1 WHERE state = old.state;
END;
CREATE TRIGGER stint_tasks_count_update AFTER UPDATE OF state ON stint_tasks
WHEN old.state IS NOT new.state BEGIN
    UPDATE stint_task_counts SET n = n - 1 WHERE state = old.state;
    UPDATE stint_task_counts SET n = n + 1 WHERE state = new.state;
END;
-- The new state's row (no task is scheduled yet).
INSERT INTO stint_task_counts (state, n) VALUES ('scheduled', 0);

-- What EnqueueDue reads: the scheduled tasks by due time, then dispatch
-- order; and the first of them, for the time until the next one is due.
CREATE INDEX stint_tasks_due ON stint_tasks (scheduled_at, seq) WHERE state = 'scheduled';

-- Unique keys: at most one incomplete task per owner, name and key. The
-- dispatch looks the key up through it, in the write transaction (one
-- process writes, so nothing comes between the lookup and the insert);
-- once the task is final, it leaves the index and the key is free.
CREATE UNIQUE INDEX stint_tasks_unique_key ON stint_tasks (owner, name, unique_key)
    WHERE unique_key IS NOT NULL AND state IN ('scheduled', 'waiting', 'running', 'canceling');
