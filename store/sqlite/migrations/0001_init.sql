-- Stint schema for SQLite, version 1: tasks, per-resource queues, workers.
--
-- The same tables as the PostgreSQL engine's, in SQLite's terms: times are
-- INTEGER microseconds since the Unix epoch (UTC), JSON values and lists of
-- strings are TEXT holding JSON, booleans are INTEGER 0 or 1. There are no
-- stored functions: the scheduler's statements are in Go (schedule.go),
-- and one process writes at a time, so nothing here locks.

CREATE TABLE stint_tasks (
    -- Dispatch order. AUTOINCREMENT: a number is never used twice, even
    -- after the newest task is deleted.
    seq                 INTEGER PRIMARY KEY AUTOINCREMENT,
    id                  TEXT    NOT NULL UNIQUE,
    name                TEXT    NOT NULL,
    state               TEXT    NOT NULL CHECK (state IN
        ('waiting', 'running', 'canceling', 'completed', 'failed', 'canceled', 'skipped', 'dropped')),
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
    created_resources   TEXT    NOT NULL DEFAULT '[]'
) STRICT;

-- What workers claim: runnable waiting tasks, oldest first.
CREATE INDEX stint_tasks_claimable ON stint_tasks (seq)
    WHERE state = 'waiting' AND unblocked_at IS NOT NULL;
-- The tasks each worker runs (worker details, recovery at open).
CREATE INDEX stint_tasks_active ON stint_tasks (worker, seq)
    WHERE state IN ('running', 'canceling');
-- The default order of the task list; created_at never changes, so this
-- index costs one write per dispatch and nothing after.
CREATE INDEX stint_tasks_created ON stint_tasks (created_at);
-- List filters on columns that never change after insert.
CREATE INDEX stint_tasks_parent ON stint_tasks (parent_task) WHERE parent_task IS NOT NULL;
CREATE INDEX stint_tasks_group ON stint_tasks (task_group) WHERE task_group IS NOT NULL;

-- The per-resource queues: one entry per incomplete task and resource, in
-- dispatch order (seq is the task's). ready: every earlier entry is
-- compatible with this one (both shared).
CREATE TABLE stint_task_resources (
    resource  TEXT    NOT NULL,
    seq       INTEGER NOT NULL,
    exclusive INTEGER NOT NULL,
    ready     INTEGER NOT NULL,
    PRIMARY KEY (resource, seq)
) STRICT, WITHOUT ROWID;
-- The entries of one task, to release them.
CREATE INDEX stint_task_resources_task ON stint_task_resources (seq);
-- The first exclusive entry of a queue: how far shared entries are ready.
CREATE INDEX stint_task_resources_exclusive ON stint_task_resources (resource, seq) WHERE exclusive;
-- The entries a promotion may make ready, without walking the ready ones.
CREATE INDEX stint_task_resources_waiting ON stint_task_resources (resource, seq) WHERE NOT ready;

CREATE TABLE stint_workers (
    name           TEXT    PRIMARY KEY,
    hostname       TEXT    NOT NULL,
    pid            INTEGER NOT NULL,
    versions       TEXT    NOT NULL DEFAULT '{}',
    concurrency    INTEGER NOT NULL,
    started_at     INTEGER NOT NULL,
    last_heartbeat INTEGER NOT NULL,
    missing        INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
