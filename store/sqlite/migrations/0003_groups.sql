-- Stint schema for SQLite, version 3: task groups, and what purging
-- finished tasks needs (DESIGN §1, §7). The same as the PostgreSQL
-- engine's version 4, in SQLite's terms (see version 1).

-- A group's tasks are the tasks whose task_group is its id (found through
-- stint_tasks_group); there is no foreign key, so that dispatch never reads
-- this table.
CREATE TABLE stint_task_groups (
    id                   TEXT    PRIMARY KEY,
    description          TEXT    NOT NULL DEFAULT '',
    owner                TEXT    NOT NULL DEFAULT '',
    created_at           INTEGER NOT NULL,
    all_tasks_dispatched INTEGER NOT NULL DEFAULT 0
) STRICT, WITHOUT ROWID;
-- The group list, newest first (walked backwards), all groups or one
-- owner's.
CREATE INDEX stint_task_groups_created ON stint_task_groups (created_at, id);
CREATE INDEX stint_task_groups_owner ON stint_task_groups (owner, created_at, id);

-- Purge: the finished tasks of one state, oldest first. finished_at is set
-- exactly when a task reaches a final state, so the index holds final tasks
-- only, and each task enters it once, by the update that makes it final.
CREATE INDEX stint_tasks_finished ON stint_tasks (state, finished_at)
    WHERE finished_at IS NOT NULL;
