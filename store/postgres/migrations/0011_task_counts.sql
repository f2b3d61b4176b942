-- Stint schema, version 11: what the HTTP API reads at load. GET /status,
-- /metrics and GET /tasks counted stint_tasks on every request (a scan of
-- the whole table: some 250 ms with 1,000,000 tasks on the machine of
-- docs/benchmarks.md), and the task list sorted the whole table for each
-- page, its default order (created_at, seq) having no index.

-- The tasks per state, maintained by the triggers below. One row per state
-- and shard; a state's count is the sum of its rows. The shard of a write
-- is the PostgreSQL backend (pg_backend_pid()) whose transaction makes it,
-- so that two transactions in progress never update the same row: a row
-- updated by a dispatch stays locked until that dispatch commits, and one
-- row per state would serialise every dispatch, claim and completion of
-- every node on it. A backend runs one transaction at a time, so no write
-- ever waits for another's counter row (and none can deadlock on them).
-- Shard 0 (no backend has pid 0) holds what stint_compact_task_counts
-- folded in from the others.
CREATE TABLE stint_task_counts (
    state text    NOT NULL,
    shard integer NOT NULL,
    n     bigint  NOT NULL,
    PRIMARY KEY (state, shard)
) WITH (fillfactor = 50);
-- Room for the new versions of each row on its page: no index names n, so
-- every change is a HOT update.

-- The triggers are statement-level, with transition tables: one upsert per
-- statement, whatever the number of rows it changes (a batch of claims or
-- completions is one statement), and none when no state changed (progress,
-- unblocking). The rows are upserted in state order.
CREATE FUNCTION stint_count_inserted_tasks() RETURNS trigger
LANGUAGE plpgsql
SET jit = off
AS $$
BEGIN
    INSERT INTO stint_task_counts AS c (state, shard, n)
    SELECT t.state, pg_backend_pid(), count(*) FROM stint_inserted t GROUP BY t.state ORDER BY t.state
    ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION stint_count_deleted_tasks() RETURNS trigger
LANGUAGE plpgsql
SET jit = off
AS $$
BEGIN
    INSERT INTO stint_task_counts AS c (state, shard, n)
    SELECT t.state, pg_backend_pid(), -count(*) FROM stint_deleted t GROUP BY t.state ORDER BY t.state
    ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

CREATE FUNCTION stint_count_updated_tasks() RETURNS trigger
LANGUAGE plpgsql
SET jit = off
AS $$
BEGIN
    INSERT INTO stint_task_counts AS c (state, shard, n)
    SELECT d.state, pg_backend_pid(), sum(d.n)::bigint
    FROM (SELECT o.state, -count(*) AS n FROM stint_old o GROUP BY o.state
          UNION ALL
          SELECT w.state, count(*) FROM stint_new w GROUP BY w.state) d
    GROUP BY d.state
    HAVING sum(d.n) <> 0
    ORDER BY d.state
    ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n;
    RETURN NULL;
END $$;

-- The triggers first: CREATE TRIGGER locks stint_tasks against writes
-- until this migration commits, so the counts taken below are exact and
-- every write after them is counted.
CREATE TRIGGER stint_tasks_count_insert AFTER INSERT ON stint_tasks
    REFERENCING NEW TABLE AS stint_inserted
    FOR EACH STATEMENT EXECUTE FUNCTION stint_count_inserted_tasks();
CREATE TRIGGER stint_tasks_count_delete AFTER DELETE ON stint_tasks
    REFERENCING OLD TABLE AS stint_deleted
    FOR EACH STATEMENT EXECUTE FUNCTION stint_count_deleted_tasks();
CREATE TRIGGER stint_tasks_count_update AFTER UPDATE ON stint_tasks
    REFERENCING OLD TABLE AS stint_old NEW TABLE AS stint_new
    FOR EACH STATEMENT EXECUTE FUNCTION stint_count_updated_tasks();
-- TRUNCATE fires no row or transition trigger: it empties the counts too.
CREATE FUNCTION stint_count_truncated_tasks() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM stint_task_counts;
    RETURN NULL;
END $$;
CREATE TRIGGER stint_tasks_count_truncate AFTER TRUNCATE ON stint_tasks
    FOR EACH STATEMENT EXECUTE FUNCTION stint_count_truncated_tasks();

INSERT INTO stint_task_counts (state, shard, n)
SELECT state, 0, count(*) FROM stint_tasks GROUP BY state;

-- stint_compact_task_counts folds the rows of the backends that have gone
-- into shard 0, so that the table keeps about one row per state and live
-- backend (backends come and go with connection pools). It waits for
-- nothing: rows that a transaction in progress holds (a new backend that
-- was given a gone one's pid) are left for a later call, and a call while
-- another one runs does nothing. It returns how many rows it folded.
CREATE FUNCTION stint_compact_task_counts() RETURNS integer
LANGUAGE plpgsql
SET jit = off
AS $$
DECLARE
    folded integer;
BEGIN
    IF NOT pg_try_advisory_xact_lock(1461125122) THEN -- 0x5717_0002, beside the migrations' 0x5717_0001
        RETURN 0;
    END IF;
    WITH gone AS (
        DELETE FROM stint_task_counts c
        WHERE (c.state, c.shard) IN (
            SELECT k.state, k.shard FROM stint_task_counts k
            WHERE k.shard <> 0 AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = k.shard)
            FOR UPDATE OF k SKIP LOCKED)
        RETURNING c.state, c.n
    ), folded_in AS (
        INSERT INTO stint_task_counts AS c (state, shard, n)
        SELECT g.state, 0, sum(g.n)::bigint FROM gone g GROUP BY g.state ORDER BY g.state
        ON CONFLICT (state, shard) DO UPDATE SET n = c.n + excluded.n
    )
    SELECT count(*) INTO folded FROM gone;
    RETURN folded;
END $$;

-- The task list's default order, in both directions (a backward scan for
-- -created_at): a page is the first rows of this index instead of a sort
-- of every task. Filters on columns without an index of their own walk it
-- until the page is full.
CREATE INDEX stint_tasks_created ON stint_tasks (created_at, seq);
-- Lists of the incomplete tasks of one state, in the default order: the
-- tasks a user or the web UI follows (waiting, running) are few among
-- many final ones, and walking stint_tasks_created for them would read
-- the table. Partial, so that final tasks never enter it. Final states
-- are most of the table, so their lists walk stint_tasks_created (or
-- stint_tasks_finished for a rare one) and stop soon.
CREATE INDEX stint_tasks_incomplete ON stint_tasks (state, created_at, seq)
    WHERE state IN ('waiting', 'running', 'canceling');
