-- Stint schema, version 12: stint_dispatch plans its statements once.
-- The general statement of stint_dispatch (tasks with resources or a
-- group: the resource queues' judgement, one query of common table
-- expressions over the array arguments) got a custom plan on every call,
-- whose planning cost more than its execution for a dispatch of one task:
-- one caller dispatching one task with 1 exclusive and 1 shared resource
-- made 581 dispatches/s with custom plans and 1,048/s with a generic plan
-- (docs/benchmarks.md, 2026-12-06); batches of 1,000 were not slower. The
-- generic plan is the one that suits every size: index lookups per entry.
ALTER FUNCTION stint_dispatch(uuid[], text[], text[], text[], text[], uuid[], uuid[], integer[], text[], boolean[])
    SET plan_cache_mode = force_generic_plan;
