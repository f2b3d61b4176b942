package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"sort"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/groupcommit"
	"github.com/stint-dev/stint/store"
)

// The scheduler's statements. One process writes, one transaction at a
// time, so none of them locks anything: the order of the queues is the
// order of the transactions, which is commit order. Every one is an index
// walk from a handful of keys; where SQLite's planner, which has no
// statistics, might walk a whole queue instead, INDEXED BY names the
// partial index meant (plan_test.go checks every plan).
const (
	// sqlEnqueue appends a task's entry to a resource's queue. This is
	// the rule at dispatch: an exclusive entry is ready in an empty queue,
	// a shared one in a queue without exclusive entries and, on a resource
	// with a capacity, without waiting entries and with fewer entries (all
	// ready, then) than the capacity.
	sqlEnqueue = `INSERT INTO stint_task_resources (resource, seq, exclusive, ready)
		VALUES (?1, ?2, ?3, CASE WHEN ?3
			THEN NOT EXISTS (SELECT 1 FROM stint_task_resources WHERE resource = ?1)
			ELSE NOT EXISTS (SELECT 1 FROM stint_task_resources INDEXED BY stint_task_resources_exclusive
					WHERE resource = ?1 AND exclusive)
				AND coalesce((SELECT CASE
					WHEN EXISTS (SELECT 1 FROM stint_task_resources INDEXED BY stint_task_resources_waiting
						WHERE resource = ?1 AND NOT ready) THEN 0
					ELSE (SELECT count(*) FROM stint_task_resources WHERE resource = ?1) < c.capacity END
				FROM stint_resources c WHERE c.name = ?1), 1) END)
		RETURNING ready`

	// sqlGroupSealed holds when the group ?1 is sealed and ?2 (a parent
	// task's id, or null) is not an incomplete task of it: a task naming
	// the group is then refused (store.ErrSealed). No row: no such group.
	sqlGroupSealed = `SELECT g.all_tasks_dispatched AND NOT EXISTS (
			SELECT 1 FROM stint_tasks p WHERE p.id = ?2 AND p.task_group = g.id AND p.state IN ('running', 'canceling'))
		FROM stint_task_groups g WHERE g.id = ?1`

	sqlInsertTask = `INSERT INTO stint_tasks (seq, id, name, state, args, owner, created_at, updated_at,
			unblocked_at, exclusive_resources, shared_resources, versions, blocked_count, parent_task, task_group,
			scheduled_at, retry, unique_key, retry_of)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`

	// sqlUniqueTask is the incomplete task of an owner (?1) and name (?2)
	// with the unique key ?3, through the unique partial index that
	// enforces the key.
	sqlUniqueTask = `SELECT ` + taskColumns + ` FROM stint_tasks
		WHERE owner = ?1 AND name = ?2 AND unique_key = ?3 AND unique_key IS NOT NULL
		  AND state IN ('scheduled', 'waiting', 'running', 'canceling')`

	// sqlDue is the scheduled tasks due at ?1, oldest due first, at most
	// ?2, through stint_tasks_due.
	sqlDue = `SELECT seq, id, exclusive_resources, shared_resources FROM stint_tasks INDEXED BY stint_tasks_due
		WHERE state = 'scheduled' AND scheduled_at <= ?1 ORDER BY scheduled_at, seq LIMIT ?2`
	// sqlNextDue is the time the first scheduled task is due.
	sqlNextDue = `SELECT scheduled_at FROM stint_tasks INDEXED BY stint_tasks_due
		WHERE state = 'scheduled' ORDER BY scheduled_at, seq LIMIT 1`
	// sqlMakeDue makes a scheduled task waiting under its new seq ?1,
	// with the blocked count and unblocked time its new queue entries
	// gave it, as a dispatch sets them.
	sqlMakeDue = `UPDATE stint_tasks SET seq = ?1, state = 'waiting', blocked_count = ?2, unblocked_at = ?3, updated_at = ?4
		WHERE seq = ?5 AND state = 'scheduled'`
	// sqlBumpSequence keeps sqlite_sequence at the highest seq given, which
	// SQLite moves on inserts only: a seq that sqlMakeDue gave is never
	// given again, even once its task is deleted.
	sqlBumpSequence = `UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'stint_tasks' AND seq < ?1`

	// sqlRetryCandidates is the running tasks with a retry policy among
	// those of ?1, a JSON array of [id, attempt] (the failed and dropped
	// outcomes of a Finish): the runs Finish may retry rather than end.
	sqlRetryCandidates = `SELECT ` + runColumns + ` FROM json_each(?1) JOIN stint_tasks AS t ON t.id = json_each.value ->> 0
		WHERE t.attempt = json_each.value ->> 1 AND +t.state = 'running' AND t.retry IS NOT NULL`
	// sqlRetry turns a running task into a scheduled one, due at ?1, its
	// ended run appended to its attempts (?2) and its error (?3) kept;
	// the caller releases its queue entries. unblocked_at stays what the
	// run had (as on PostgreSQL): EnqueueDue sets it again.
	sqlRetry = `UPDATE stint_tasks SET state = 'scheduled', scheduled_at = ?1, attempts = ?2, error = ?3, result = NULL,
			started_at = NULL, worker = NULL, updated_at = ?4
		WHERE seq = ?5 AND state = 'running'`

	// sqlPromote is the per-resource rule after a queue lost entries: the
	// head of the queue is ready; when it is shared, so is every entry
	// before the first exclusive one, up to the seq ?2 (the bound of a
	// resource with a capacity: sqlPromoteBound). It marks ready the
	// entries that were not and returns their tasks. It reads the head,
	// the first exclusive entry and the entries it promotes, through the
	// partial indexes.
	sqlPromote = `UPDATE stint_task_resources INDEXED BY stint_task_resources_waiting SET ready = 1
		WHERE resource = ?1 AND NOT ready AND seq <= ?2 AND seq < (
			SELECT CASE WHEN h.exclusive THEN h.seq + 1
				ELSE coalesce((SELECT x.seq FROM stint_task_resources x INDEXED BY stint_task_resources_exclusive
					WHERE x.resource = ?1 AND x.exclusive ORDER BY x.seq LIMIT 1), 9223372036854775807) END
			FROM (SELECT q.seq, q.exclusive FROM stint_task_resources q
				WHERE q.resource = ?1 ORDER BY q.seq LIMIT 1) h)
		RETURNING seq`

	// sqlCapacityRoom is, for the resource ?1, its capacity and how many
	// entries it holds: those before its first waiting entry (the ready
	// entries are a prefix of the queue). No row: no capacity.
	sqlCapacityRoom = `SELECT c.capacity, (SELECT count(*) FROM stint_task_resources q
			WHERE q.resource = ?1 AND q.seq < coalesce((SELECT w.seq FROM stint_task_resources w
				INDEXED BY stint_task_resources_waiting WHERE w.resource = ?1 AND NOT w.ready
				ORDER BY w.seq LIMIT 1), 9223372036854775807))
		FROM stint_resources c WHERE c.name = ?1`
	// sqlPromoteBound is the seq of the waiting entry of the resource ?1
	// at offset ?2 (room - 1): the last that a promotion may make ready.
	sqlPromoteBound = `SELECT coalesce((SELECT w.seq FROM stint_task_resources w INDEXED BY stint_task_resources_waiting
			WHERE w.resource = ?1 AND NOT w.ready ORDER BY w.seq LIMIT 1 OFFSET ?2), 9223372036854775807)`

	// sqlUnblock counts promoted entries off a task; the one that brings
	// its count to zero unblocks it.
	sqlUnblock = `UPDATE stint_tasks SET blocked_count = blocked_count - ?1,
			unblocked_at = CASE WHEN blocked_count - ?1 <= 0 THEN coalesce(unblocked_at, ?2) END,
			updated_at = ?2
		WHERE seq = ?3
		RETURNING blocked_count`

	// sqlDequeue removes a task's entries and returns their resources, each
	// with whether its removal may make later entries ready: only when the
	// entry was exclusive, the head of its queue, or a holder of a
	// resource with a capacity (it leaves room). (Removing a shared entry
	// behind the head of an unbounded queue changes neither the head nor
	// the exclusive entries before any other, so no entry's readiness.)
	sqlDequeue = `DELETE FROM stint_task_resources WHERE seq = ?1
		RETURNING resource, exclusive OR NOT EXISTS (SELECT 1 FROM stint_task_resources e
			WHERE e.resource = stint_task_resources.resource AND e.seq < ?1)
			OR (ready AND EXISTS (SELECT 1 FROM stint_resources c WHERE c.name = stint_task_resources.resource))`

	// sqlNoEarlierConflict holds for a task c when no earlier entry
	// conflicts with any of its queue entries, checked from the queues
	// themselves: the second line of defence of the claims, which do not
	// trust the ready flags alone.
	sqlNoEarlierConflict = `NOT EXISTS (
				SELECT 1 FROM stint_task_resources mine
				WHERE mine.seq = c.seq AND (
					(mine.exclusive AND EXISTS (SELECT 1 FROM stint_task_resources e
						WHERE e.resource = mine.resource AND e.seq < mine.seq))
					OR EXISTS (SELECT 1 FROM stint_task_resources e INDEXED BY stint_task_resources_exclusive
						WHERE e.resource = mine.resource AND e.seq < mine.seq AND e.exclusive)))`

	// sqlClaim moves runnable tasks to running, oldest first, with a new
	// fencing token each, passing over the tasks whose requirement the
	// worker's versions (?5, a JSON object) do not satisfy. Tasks without
	// a requirement ('{}', nearly all) are told apart by the comparison,
	// which comes first in the OR, which SQLite evaluates in order: only
	// the others call stint_versions_ok (versions.go).
	sqlClaim = `UPDATE stint_tasks
		SET state = 'running', worker = ?1, attempt = attempt + 1, started_at = ?2, updated_at = ?2,
			error = NULL, result = NULL
		WHERE seq IN (
			SELECT c.seq FROM stint_tasks c INDEXED BY stint_tasks_claimable
			WHERE c.state = 'waiting' AND c.unblocked_at IS NOT NULL
			  AND c.name IN (SELECT value FROM json_each(?3))
			  AND (c.versions = '{}' OR stint_versions_ok(c.versions, ?5))
			  AND ` + sqlNoEarlierConflict + `
			ORDER BY c.seq
			LIMIT ?4)
		RETURNING ` + taskColumns

	// sqlFinish records a batch of outcomes, fenced by attempt: ?1 is a
	// JSON array of [id, attempt, state, result, error], the result and
	// the error as JSON texts or null. A task that was canceling ends
	// canceled whatever its function returned. The unary + keeps the
	// state out of the choice of index: a task is found by its id, not in
	// stint_tasks_state_created.
	sqlFinish = `UPDATE stint_tasks AS t
		SET state = CASE WHEN t.state = 'canceling' AND o.state <> 'dropped' THEN 'canceled' ELSE o.state END,
			result = o.result, error = o.error, finished_at = ?2, updated_at = ?2
		FROM (SELECT value ->> 0 AS id, value ->> 1 AS attempt, value ->> 2 AS state,
				value ->> 3 AS result, value ->> 4 AS error
			FROM json_each(?1)) AS o
		WHERE t.id = o.id AND t.attempt = o.attempt AND +t.state IN ('running', 'canceling')
		RETURNING id, seq, state, exclusive_resources <> '[]' OR shared_resources <> '[]'`

	sqlLookup    = `SELECT seq, state FROM stint_tasks WHERE id = ?`
	sqlTaskBySeq = `SELECT ` + taskColumnsWithChildren + ` FROM stint_tasks WHERE seq = ?`
	// sqlCancelWaiting cancels a scheduled or waiting task; the caller
	// releases its queue entries (a scheduled task has none).
	sqlCancelWaiting = `UPDATE stint_tasks SET state = 'canceled', finished_at = ?1, updated_at = ?1
		WHERE seq = ?2 AND state IN ('scheduled', 'waiting')`
	sqlCancelRunning = `UPDATE stint_tasks SET state = 'canceling', updated_at = ?1
		WHERE seq = ?2 AND state = 'running'`

	sqlSaveOutputs = `UPDATE stint_tasks
		SET non_fatal_errors = ?1, progress_reports = ?2, created_resources = ?3, updated_at = ?4
		WHERE id = ?5 AND attempt = ?6 AND state IN ('running', 'canceling')
		RETURNING state`

	sqlRegisterWorker = `INSERT INTO stint_workers (name, hostname, pid, versions, concurrency, started_at, last_heartbeat, missing)
		VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, 0)
		ON CONFLICT (name) DO UPDATE SET hostname = excluded.hostname, pid = excluded.pid,
			versions = excluded.versions, concurrency = excluded.concurrency,
			started_at = excluded.started_at, last_heartbeat = excluded.last_heartbeat, missing = 0`
	sqlHeartbeat    = `UPDATE stint_workers SET last_heartbeat = ?1, missing = 0 WHERE name = ?2`
	sqlTaskStates   = `SELECT id, state FROM stint_tasks WHERE id IN (SELECT value FROM json_each(?1))`
	sqlRemoveWorker = `DELETE FROM stint_workers WHERE name = ?`
	// sqlUnknownHeld finds the tasks held under worker ?1 that are not
	// among the ids of ?2 (a JSON array), through the index of active
	// tasks.
	sqlUnknownHeld = `SELECT id, attempt, state FROM stint_tasks
		WHERE worker = ?1 AND state IN ('running', 'canceling')
		  AND id NOT IN (SELECT value FROM json_each(?2))
		ORDER BY seq`
)

// writeStatements are prepared once, at Open, on the write connection.
var writeStatements = []string{
	sqlEnqueue, sqlInsertTask, sqlPromote, sqlUnblock, sqlDequeue, sqlClaim, sqlFinish,
	sqlLookup, sqlTaskBySeq, sqlCancelWaiting, sqlCancelRunning, sqlSaveOutputs,
	sqlRegisterWorker, sqlHeartbeat, sqlTaskStates, sqlRemoveWorker, sqlUnknownHeld,
	sqlImmediateClaim, sqlSkip, sqlWorkerVersions, sqlGroupSealed,
	sqlUniqueTask, sqlDue, sqlNextDue, sqlMakeDue, sqlBumpSequence, sqlRetryCandidates, sqlRetry,
	sqlCapacityRoom, sqlPromoteBound,
}

// Dispatch implements store.Store. The tasks are inserted in order, in one
// transaction, each queued behind every earlier incomplete task on its
// resources. Calls that arrive while a write is in flight are gathered
// into the next transaction (group commit), each still answered with its
// own tasks or its own error, and only after that transaction committed.
func (s *Store) Dispatch(ctx context.Context, tasks []store.NewTask) ([]*store.Task, error) {
	if len(tasks) == 0 {
		return nil, nil
	}
	rows := make([]prepared, len(tasks))
	for i, nt := range tasks {
		p, err := prepareNew(nt)
		if err != nil {
			return nil, err
		}
		rows[i] = p
	}
	out, err := s.dispatcher.Do(ctx, rows)
	if errors.Is(err, groupcommit.ErrClosed) {
		return nil, errClosed
	}
	return out, err
}

// dispatchBatch inserts the tasks of one or more Dispatch calls in one write
// transaction.
func (s *Store) dispatchBatch(ctx context.Context, rows []prepared) ([]*store.Task, error) {
	out := make([]*store.Task, len(rows))
	err := s.write(ctx, func(w *wtx) error {
		for i, p := range rows {
			t, err := w.insertTask(p)
			if err != nil {
				return err
			}
			if t.UnblockedAt != nil && !t.Deduplicated {
				w.wake = true
			}
			out[i] = t
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// insertTask inserts one task and records the change: waiting, queued
// behind every earlier incomplete task on its resources, or scheduled,
// outside every queue, when its ScheduledAt is after now. A task with a
// unique key that an incomplete task of its owner and name has is not
// inserted: that task is returned, Deduplicated. It returns the task as
// stored; the caller wakes workers if it was inserted runnable.
func (w *wtx) insertTask(p prepared) (*store.Task, error) {
	if p.uniqueKey != nil {
		// In the write transaction, which is the only writer: no task with
		// the key can commit between this lookup and the insert. The key
		// is looked up before the group's seal: a task that is not
		// inserted joins no group.
		t, err := scanTask(w.queryRow(sqlUniqueTask, p.nt.Owner, p.nt.Name, p.uniqueKey))
		if err == nil {
			t.Deduplicated = true
			return t, nil
		}
		if !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("task %s: unique key: %w", p.id, err)
		}
	}
	if p.nt.TaskGroup != nil {
		// In the write transaction: no seal can commit between this check
		// and the insert.
		var sealed bool
		err := w.queryRow(sqlGroupSealed, p.nt.TaskGroup.String(), uuidArg(p.nt.ParentTask)).Scan(&sealed)
		switch {
		case err == nil && sealed:
			return nil, fmt.Errorf("task %s: task group %s: %w", p.id, p.nt.TaskGroup, store.ErrSealed)
		case err != nil && !errors.Is(err, sql.ErrNoRows):
			return nil, fmt.Errorf("task %s: task group %s: %w", p.id, p.nt.TaskGroup, err)
		}
	}
	seq := w.s.nextSeq
	w.s.nextSeq++
	state := store.StateWaiting
	blocked := 0
	var unblocked sql.NullInt64
	if p.scheduled.Valid && p.scheduled.Int64 > w.now {
		// Scheduled: no queue entries until it is due (EnqueueDue).
		state = store.StateScheduled
		w.due = true
	} else {
		var err error
		if blocked, err = w.enqueue(p.id, seq, p.exclusive, p.shared); err != nil {
			return nil, err
		}
		if blocked == 0 {
			unblocked = sql.NullInt64{Int64: w.now, Valid: true}
		}
	}
	if _, err := w.exec(sqlInsertTask, seq, p.id, p.nt.Name, string(state), p.args, p.nt.Owner, w.now, w.now,
		unblocked, p.exclJSON, p.sharedJSON, p.versions, blocked,
		uuidArg(p.nt.ParentTask), uuidArg(p.nt.TaskGroup),
		p.scheduled, p.retry, p.uniqueKey, uuidArg(p.nt.RetryOf)); err != nil {
		return nil, fmt.Errorf("task %s: %w", p.id, err)
	}
	versions := map[string]string{}
	for k, v := range p.nt.Versions {
		versions[k] = v
	}
	var retry *store.RetryPolicy
	if p.nt.Retry != nil {
		r := *p.nt.Retry
		retry = &r
	}
	w.change(p.nt.ID, state)
	return &store.Task{
		ID: p.nt.ID, Seq: seq, Name: p.nt.Name, State: state,
		Args: json.RawMessage(p.args), Owner: p.nt.Owner,
		CreatedAt: timeOf(w.now), UpdatedAt: timeOf(w.now), UnblockedAt: nullTime(unblocked),
		ExclusiveResources: p.exclusive, SharedResources: p.shared, Versions: versions,
		ParentTask: cloneUUID(p.nt.ParentTask), TaskGroup: cloneUUID(p.nt.TaskGroup),
		ScheduledAt: nullTime(p.scheduled), Retry: retry, Attempts: []store.Attempt{},
		UniqueKey: p.nt.UniqueKey, RetryOf: cloneUUID(p.nt.RetryOf),
		Outputs: store.Outputs{NonFatalErrors: []store.TaskError{}, ProgressReports: []store.ProgressReport{},
			CreatedResources: []string{}},
	}, nil
}

// enqueue appends the entries of the task seq (id, for errors) to the
// queues of its resources, each judged by the rule at dispatch
// (sqlEnqueue), and returns how many are not ready. Dispatch and
// EnqueueDue both queue tasks through it, so the rule is in one place.
func (w *wtx) enqueue(id string, seq int64, exclusive, shared []string) (int, error) {
	blocked := 0
	for _, list := range []struct {
		res       []string
		exclusive int
	}{{exclusive, 1}, {shared, 0}} {
		for _, r := range list.res {
			var ready bool
			if err := w.queryRow(sqlEnqueue, r, seq, list.exclusive).Scan(&ready); err != nil {
				return 0, fmt.Errorf("task %s: queue on %q: %w", id, r, err)
			}
			if !ready {
				blocked++
			}
		}
	}
	return blocked, nil
}

func cloneUUID(id *uuid.UUID) *uuid.UUID {
	if id == nil {
		return nil
	}
	c := *id
	return &c
}

// promote applies the per-resource rule to the queues of resources, after
// they lost entries, and unblocks the tasks whose entries are now all
// ready. It returns how many entries it promoted.
func (w *wtx) promote(resources []string) (int, error) {
	if len(resources) == 0 {
		return 0, nil
	}
	counts := map[int64]int{}
	var order []int64
	for _, r := range resources {
		bound, err := w.promoteBound(r)
		if err != nil {
			return 0, err
		}
		if bound < 0 {
			continue // full
		}
		rows, err := w.query(sqlPromote, r, bound)
		if err != nil {
			return 0, err
		}
		for rows.Next() {
			var seq int64
			if err := rows.Scan(&seq); err != nil {
				rows.Close()
				return 0, err
			}
			if counts[seq] == 0 {
				order = append(order, seq)
			}
			counts[seq]++
		}
		if err := rows.Close(); err != nil {
			return 0, err
		}
		if err := rows.Err(); err != nil {
			return 0, err
		}
	}
	promoted := 0
	for _, seq := range order {
		promoted += counts[seq]
		var left int
		err := w.queryRow(sqlUnblock, counts[seq], w.now, seq).Scan(&left)
		if errors.Is(err, sql.ErrNoRows) {
			continue // an entry without its task: the sweep removes it
		}
		if err != nil {
			return 0, err
		}
		if left <= 0 {
			w.wake = true
		}
	}
	return promoted, nil
}

// promoteBound is the highest seq a promotion on resource r may make
// ready: no bound (math.MaxInt64) without a capacity, -1 when the holders
// fill it, else the seq of the last waiting entry that fits.
func (w *wtx) promoteBound(r string) (int64, error) {
	var capacity, holders int64
	err := w.queryRow(sqlCapacityRoom, r).Scan(&capacity, &holders)
	if errors.Is(err, sql.ErrNoRows) {
		return math.MaxInt64, nil
	}
	if err != nil {
		return 0, err
	}
	if holders >= capacity {
		return -1, nil
	}
	var bound int64
	err = w.queryRow(sqlPromoteBound, r, capacity-holders-1).Scan(&bound)
	return bound, err
}

// release removes the queue entries of tasks that reached a final state and
// promotes what waited behind them.
func (w *wtx) release(seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	touched := map[string]bool{}
	for _, seq := range seqs {
		rows, err := w.query(sqlDequeue, seq)
		if err != nil {
			return err
		}
		for rows.Next() {
			var r string
			var mayPromote bool
			if err := rows.Scan(&r, &mayPromote); err != nil {
				rows.Close()
				return err
			}
			if mayPromote {
				touched[r] = true
			}
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
	}
	resources := make([]string, 0, len(touched))
	for r := range touched {
		resources = append(resources, r)
	}
	sort.Strings(resources)
	_, err := w.promote(resources)
	return err
}

// Claim implements store.Store.
func (s *Store) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Task, error) {
	if p.Limit <= 0 || len(p.Names) == 0 {
		return nil, nil
	}
	if err := checkText("worker", p.Worker); err != nil {
		return nil, err
	}
	names, err := json.Marshal(p.Names)
	if err != nil {
		return nil, err
	}
	provided := "{}"
	if len(p.Versions) > 0 {
		if provided, err = jsonText("versions", p.Versions); err != nil {
			return nil, err
		}
	}
	var tasks []*store.Task
	err = s.write(ctx, func(w *wtx) error {
		tasks = tasks[:0]
		rows, err := w.query(sqlClaim, p.Worker, w.now, string(names), p.Limit, provided)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTask(rows)
			if err != nil {
				return err
			}
			tasks = append(tasks, t)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		slices.SortFunc(tasks, func(a, b *store.Task) int { return cmp.Compare(a.Seq, b.Seq) })
		for _, t := range tasks {
			w.change(t.ID, store.StateRunning)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return tasks, nil
}

// Finish implements store.Store. The outcomes are recorded in one
// statement, after the runs that are retried rather than ended (failed or
// dropped ones whose policy has attempts left) were made scheduled, and
// the ids recorded, retried ones among them, are returned in id order.
func (s *Store) Finish(ctx context.Context, outcomes []store.Outcome) ([]uuid.UUID, error) {
	if len(outcomes) == 0 {
		return nil, nil
	}
	// One outcome per task, the first one given: a second outcome of the
	// same run would find the task no longer running anyway.
	seen := make(map[uuid.UUID]bool, len(outcomes))
	batch := make([][5]any, 0, len(outcomes))
	// The failed and dropped outcomes that may be retried, by id, and
	// their [id, attempt] for sqlRetryCandidates.
	retryable := map[uuid.UUID]store.Outcome{}
	var candidates [][2]any
	for _, o := range outcomes {
		if !o.State.Final() {
			return nil, fmt.Errorf("sqlite: outcome of task %s: %q is not a final state", o.ID, o.State)
		}
		if seen[o.ID] {
			continue
		}
		seen[o.ID] = true
		var result, taskErr any
		if len(o.Result) > 0 {
			r, err := normalizeJSON(o.Result)
			if err != nil {
				return nil, fmt.Errorf("task %s: result: %w", o.ID, err)
			}
			result = string(r)
		}
		if o.Error != nil {
			e, err := jsonText("error", o.Error)
			if err != nil {
				return nil, fmt.Errorf("task %s: %w", o.ID, err)
			}
			taskErr = e
		}
		batch = append(batch, [5]any{o.ID.String(), o.Attempt, string(o.State), result, taskErr})
		if (o.State == store.StateFailed || o.State == store.StateDropped) && !o.NoRetry {
			retryable[o.ID] = o
			candidates = append(candidates, [2]any{o.ID.String(), o.Attempt})
		}
	}
	arg, err := json.Marshal(batch)
	if err != nil {
		return nil, err
	}
	retryArg, err := json.Marshal(candidates)
	if err != nil {
		return nil, err
	}
	type finished struct {
		id  uuid.UUID
		seq int64
	}
	var done []finished
	err = s.write(ctx, func(w *wtx) error {
		done = done[:0]
		var release []int64
		if len(candidates) > 0 {
			// Runs retried rather than ended. They are scheduled before
			// sqlFinish runs, which then passes them over (it ends running
			// and canceling tasks only).
			var runs []run
			if err := w.scanRows(sqlRetryCandidates, []any{string(retryArg)}, func(rows *sql.Rows) error {
				r, err := scanRun(rows)
				runs = append(runs, r)
				return err
			}); err != nil {
				return err
			}
			for _, r := range runs {
				o := retryable[r.id]
				if !r.retries(o.State) {
					continue
				}
				if err := w.retry(r, o.State, o.Error); err != nil {
					return err
				}
				done = append(done, finished{r.id, r.seq})
				release = append(release, r.seq)
			}
		}
		rows, err := w.query(sqlFinish, string(arg), w.now)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var (
				id     string
				seq    int64
				state  string
				queued bool
			)
			if err := rows.Scan(&id, &seq, &state, &queued); err != nil {
				return err
			}
			u, err := uuid.Parse(id)
			if err != nil {
				return err
			}
			done = append(done, finished{u, seq})
			w.change(u, store.State(state))
			if queued {
				release = append(release, seq)
			}
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		slices.Sort(release) // release in dispatch order, as the outcomes came in no order
		return w.release(release)
	})
	if err != nil {
		return nil, err
	}
	// In id order, as the PostgreSQL engine returns them.
	slices.SortFunc(done, func(a, b finished) int { return uuidCompare(a.id, b.id) })
	ids := make([]uuid.UUID, len(done))
	for i, d := range done {
		ids[i] = d.id
	}
	return ids, nil
}

// Cancel implements store.Store.
func (s *Store) Cancel(ctx context.Context, id uuid.UUID) (*store.Task, error) {
	var (
		task  *store.Task
		final bool
	)
	err := s.write(ctx, func(w *wtx) error {
		var (
			seq   int64
			state string
		)
		err := w.queryRow(sqlLookup, id.String()).Scan(&seq, &state)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		switch store.State(state) {
		case store.StateScheduled, store.StateWaiting:
			if _, err := w.exec(sqlCancelWaiting, w.now, seq); err != nil {
				return err
			}
			if err := w.release([]int64{seq}); err != nil {
				return err
			}
			w.change(id, store.StateCanceled)
		case store.StateRunning:
			if _, err := w.exec(sqlCancelRunning, w.now, seq); err != nil {
				return err
			}
			w.change(id, store.StateCanceling)
		case store.StateCanceling:
		default:
			final = true
		}
		task, err = scanTaskWithChildren(w.queryRow(sqlTaskBySeq, seq))
		return err
	})
	if err != nil {
		return nil, err
	}
	if final {
		return task, store.ErrFinal
	}
	return task, nil
}

// SaveOutputs implements store.Store.
func (s *Store) SaveOutputs(ctx context.Context, id uuid.UUID, attempt int, out store.Outputs) (bool, error) {
	nonFatal, err := jsonText("non_fatal_errors", nonNil(out.NonFatalErrors))
	if err != nil {
		return false, err
	}
	progress, err := jsonText("progress_reports", nonNil(out.ProgressReports))
	if err != nil {
		return false, err
	}
	created, err := stringList("created resource", out.CreatedResources)
	if err != nil {
		return false, err
	}
	saved := false
	err = s.write(ctx, func(w *wtx) error {
		var state string
		err := w.queryRow(sqlSaveOutputs, nonFatal, progress, created, w.now, id.String(), attempt).Scan(&state)
		if errors.Is(err, sql.ErrNoRows) {
			return nil
		}
		if err != nil {
			return err
		}
		saved = true
		// Progress is a change.
		w.change(id, store.State(state))
		return nil
	})
	return saved, err
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// RegisterWorker implements store.Store.
func (s *Store) RegisterWorker(ctx context.Context, wi store.WorkerInfo) error {
	versions := "{}"
	if len(wi.Versions) > 0 {
		var err error
		if versions, err = jsonText("versions", wi.Versions); err != nil {
			return err
		}
	}
	for _, f := range []struct{ what, s string }{{"worker name", wi.Name}, {"hostname", wi.Hostname}} {
		if err := checkText(f.what, f.s); err != nil {
			return err
		}
	}
	return s.write(ctx, func(w *wtx) error {
		_, err := w.exec(sqlRegisterWorker, wi.Name, wi.Hostname, wi.PID, versions, wi.Concurrency, w.now)
		return err
	})
}

// Heartbeat implements store.Store.
func (s *Store) Heartbeat(ctx context.Context, worker string, running []uuid.UUID) (store.HeartbeatReply, error) {
	ids := make([]string, len(running))
	for i, id := range running {
		ids[i] = id.String()
	}
	idList, err := json.Marshal(ids)
	if err != nil {
		return store.HeartbeatReply{}, err
	}
	var reply store.HeartbeatReply
	err = s.write(ctx, func(w *wtx) error {
		reply = store.HeartbeatReply{States: make(map[uuid.UUID]store.State, len(running))}
		res, err := w.exec(sqlHeartbeat, w.now, worker)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return store.ErrNotFound
		}
		if len(running) > 0 {
			if err := w.scanRows(sqlTaskStates, []any{string(idList)}, func(rows *sql.Rows) error {
				var id, st string
				if err := rows.Scan(&id, &st); err != nil {
					return err
				}
				u, err := uuid.Parse(id)
				reply.States[u] = store.State(st)
				return err
			}); err != nil {
				return err
			}
		}
		return w.scanRows(sqlUnknownHeld, []any{worker, string(idList)}, func(rows *sql.Rows) error {
			var h store.HeldTask
			var id, st string
			if err := rows.Scan(&id, &h.Attempt, &st); err != nil {
				return err
			}
			u, err := uuid.Parse(id)
			h.ID, h.State = u, store.State(st)
			reply.Unknown = append(reply.Unknown, h)
			return err
		})
	})
	if err != nil {
		return store.HeartbeatReply{}, err
	}
	return reply, nil
}

// scanRows runs a query and calls scan for each of its rows.
func (w *wtx) scanRows(query string, args []any, scan func(*sql.Rows) error) error {
	rows, err := w.query(query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return err
		}
	}
	return rows.Err()
}

// RemoveWorker implements store.Store.
func (s *Store) RemoveWorker(ctx context.Context, name string) error {
	return s.write(ctx, func(w *wtx) error {
		_, err := w.exec(sqlRemoveWorker, name)
		return err
	})
}

// Sweep implements store.Store: it removes queue entries of final or
// missing tasks, promotes entries that should be ready, and unblocks
// waiting tasks whose entries are all ready. It reads every queue, so it
// is for a periodic safety net, not for every write.
func (s *Store) Sweep(ctx context.Context) (store.SweepResult, error) {
	var res store.SweepResult
	err := s.write(ctx, func(w *wtx) error {
		res = store.SweepResult{}
		stale, err := collect[int64](w, `SELECT DISTINCT q.seq FROM stint_task_resources q
			LEFT JOIN stint_tasks t ON t.seq = q.seq
			WHERE t.seq IS NULL OR t.state NOT IN ('waiting', 'running', 'canceling')`)
		if err != nil {
			return err
		}
		if err := w.release(stale); err != nil {
			return err
		}
		res.StaleQueues = len(stale)
		waiting, err := collect[string](w, `SELECT DISTINCT resource FROM stint_task_resources WHERE NOT ready ORDER BY resource`)
		if err != nil {
			return err
		}
		if res.Unblocked, err = w.promote(waiting); err != nil {
			return err
		}
		r, err := w.tx.ExecContext(w.ctx, `UPDATE stint_tasks SET unblocked_at = ?1, blocked_count = 0, updated_at = ?1
			WHERE state = 'waiting' AND unblocked_at IS NULL
			  AND NOT EXISTS (SELECT 1 FROM stint_task_resources q WHERE q.seq = stint_tasks.seq AND NOT q.ready)`, w.now)
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		if err != nil {
			return err
		}
		res.Unblocked += int(n)
		if res.Unblocked > 0 {
			w.wake = true
		}
		return nil
	})
	return res, err
}

// collect runs a query of one column in the transaction and returns its
// values.
func collect[T any](w *wtx, q string, args ...any) ([]T, error) {
	rows, err := w.tx.QueryContext(w.ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []T
	for rows.Next() {
		var v T
		if err := rows.Scan(&v); err != nil {
			return nil, err
		}
		out = append(out, v)
	}
	return out, rows.Err()
}

// recoverErrors are the errors recovery records.
var (
	errDroppedAtOpen = store.TaskError{Kind: store.StoppedWhileRunningKind,
		Description: "the Stint process stopped while the task ran (found running when the SQLite store was opened)"}
	errCanceledAtOpen = store.TaskError{Kind: store.StoppedWhileCancelingKind,
		Description: "the Stint process stopped while the task was being canceled (found canceling when the SQLite store was opened)"}
)

// recover ends the tasks a previous process left running or canceling,
// frees their resources and removes the workers it had registered. A
// running task whose policy retries dropped runs, with attempts left, is
// retried instead, its run recorded dropped.
func (s *Store) recover(ctx context.Context) error {
	var res RecoveryResult
	err := s.write(ctx, func(w *wtx) error {
		res = RecoveryResult{}
		type found struct {
			run
			state store.State
		}
		var left []found
		if err := w.scanRows(`SELECT t.state, `+runColumns+` FROM stint_tasks t
			WHERE t.state IN ('running', 'canceling') ORDER BY t.seq`, nil, func(rows *sql.Rows) error {
			var f found
			var err error
			f.run, err = scanRun(rows, &f.state)
			left = append(left, f)
			return err
		}); err != nil {
			return err
		}
		var seqs []int64
		for _, f := range left {
			seqs = append(seqs, f.seq)
			if f.state == store.StateRunning && f.retries(store.StateDropped) {
				taskErr := errDroppedAtOpen
				if err := w.retry(f.run, store.StateDropped, &taskErr); err != nil {
					return err
				}
				res.Retried++
				continue
			}
			state, taskErr := store.StateDropped, errDroppedAtOpen
			if f.state == store.StateCanceling {
				state, taskErr = store.StateCanceled, errCanceledAtOpen
				res.Canceled++
			} else {
				res.Dropped++
			}
			text, err := json.Marshal(taskErr)
			if err != nil {
				return err
			}
			if _, err := w.tx.ExecContext(w.ctx, `UPDATE stint_tasks SET state = ?1, error = ?2, finished_at = ?3, updated_at = ?3
				WHERE seq = ?4`, string(state), string(text), w.now, f.seq); err != nil {
				return err
			}
		}
		if err := w.release(seqs); err != nil {
			return err
		}
		r, err := w.tx.ExecContext(w.ctx, `DELETE FROM stint_workers`)
		if err != nil {
			return err
		}
		n, err := r.RowsAffected()
		res.Workers = int(n)
		return err
	})
	if err != nil {
		return fmt.Errorf("sqlite: recover %s: %w", s.path, err)
	}
	s.recovered = res
	return nil
}
