-- Stint schema, version 15: no schema change. stint_finish finds the rows
-- of its outcomes by a merge join on the primary key (nested loops off),
-- so that its plan no longer depends on how many running tasks ANALYZE
-- found; stint_dequeue, which it calls, keeps nested loops on.
SELECT 1;
