-- Stint schema for SQLite, version 4: what the HTTP API reads at load, as
-- the PostgreSQL engine's version 11. GET /status, /metrics and GET /tasks
-- counted stint_tasks on every request, and a list by state walked the
-- whole index of creation times.

-- Lists by state in the default order (created_at, then seq, the rowid
-- that every index ends with): the first rows of one state's part of the
-- index, instead of a walk of stint_tasks_created that reads the whole
-- table for a state with few tasks (waiting, running). Several states are
-- read from it state by state.
CREATE INDEX stint_tasks_state_created ON stint_tasks (state, created_at);

-- The tasks per state, maintained by the triggers below in the write that
-- changes them (one process writes, so one row per state is enough). A row
-- for every state from the start: the triggers only update, and no
-- conflict clause of a statement on stint_tasks (which would override the
-- triggers' own) can change what they do. A migration that adds a state
-- adds its row.
CREATE TABLE stint_task_counts (
    state TEXT    PRIMARY KEY,
    n     INTEGER NOT NULL
) STRICT, WITHOUT ROWID;

INSERT INTO stint_task_counts (state, n)
SELECT s.value, (SELECT count(*) FROM stint_tasks t WHERE t.state = s.value)
FROM json_each('["waiting", "running", "canceling", "completed", "failed", "canceled", "skipped", "dropped"]') s;

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
