package postgres

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/store"
)

// DispatchTx dispatches tasks through q, which may be the caller's own
// transaction: the tasks then exist if and only if that transaction commits.
// Like stint.Client.Dispatch it checks no role (stint.AdminOnly is the
// HTTP API's rule): the tasks are the application's own business. A task
// into a sealed group fails it with store.ErrSealed.
//
// A task with a UniqueKey that an incomplete task of the same owner and
// name has is not created: that task is returned in its place, with
// Deduplicated set. The keys are locked until q's transaction ends, so
// that concurrent dispatches of one key, from any number of processes,
// create one task; when q is a pool or a connection, DispatchTx opens a
// transaction of its own for that (a savepoint, when q is a pgx.Tx).
func DispatchTx(ctx context.Context, q Querier, tasks []store.NewTask) ([]*store.Task, error) {
	if len(tasks) == 0 {
		return nil, nil
	}
	if !anyUniqueKey(tasks) {
		return dispatchNew(ctx, q, tasks)
	}
	b, ok := q.(interface {
		Begin(ctx context.Context) (pgx.Tx, error)
	})
	if !ok {
		// A Querier that cannot begin: its statements share whatever
		// transaction it is in, and the unique index stops a duplicate
		// that slips through between two of them.
		return dispatchUnique(ctx, q, tasks)
	}
	var out []*store.Task
	err := pgx.BeginFunc(ctx, b, func(tx pgx.Tx) error {
		var err error
		out, err = dispatchUnique(ctx, tx, tasks)
		return err
	})
	return out, err
}

func anyUniqueKey(tasks []store.NewTask) bool {
	for _, t := range tasks {
		if t.UniqueKey != "" {
			return true
		}
	}
	return false
}

// dispatchNew dispatches tasks, none of which is a duplicate, in one
// statement.
func dispatchNew(ctx context.Context, q Querier, tasks []store.NewTask) ([]*store.Task, error) {
	ids, args, err := dispatchArgs(tasks)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, `SELECT `+taskColumns+` FROM stint_dispatch($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)`, args...)
	if err != nil {
		return nil, classify(err)
	}
	got, err := collectTasks(rows)
	if err != nil {
		return nil, classify(err)
	}
	return inOrder(ids, got), nil
}

// dispatchUnique locks the tasks' unique keys (stint_unique_tasks), leaves
// out the tasks whose key an incomplete task has (or an earlier task of
// the batch), dispatches the others, and returns every position's task:
// the new one, or the one it duplicates.
func dispatchUnique(ctx context.Context, q Querier, tasks []store.NewTask) ([]*store.Task, error) {
	n := len(tasks)
	owners, names, keys := make([]string, n), make([]string, n), make([]*string, n)
	for i, t := range tasks {
		owners[i], names[i] = t.Owner, t.Name
		if t.UniqueKey != "" {
			k := t.UniqueKey
			keys[i] = &k
		}
	}
	rows, err := q.Query(ctx, `SELECT i, id FROM stint_unique_tasks($1, $2, $3)`, owners, names, keys)
	if err != nil {
		return nil, classify(err)
	}
	existing := make(map[int]uuid.UUID)
	var i int32
	var id uuid.UUID
	if _, err := pgx.ForEachRow(rows, []any{&i, &id}, func() error {
		existing[int(i)-1] = id
		return nil
	}); err != nil {
		return nil, classify(err)
	}
	type key struct{ owner, name, key string }
	first := make(map[key]int) // the batch's first task of each key
	dup := make([]*uuid.UUID, n)
	var fresh []store.NewTask
	for i, t := range tasks {
		if t.UniqueKey == "" {
			fresh = append(fresh, t)
			continue
		}
		if id, ok := existing[i]; ok {
			dup[i] = &id
			continue
		}
		k := key{t.Owner, t.Name, t.UniqueKey}
		if j, ok := first[k]; ok {
			id := tasks[j].ID
			dup[i] = &id
			continue
		}
		first[k] = i
		fresh = append(fresh, t)
	}
	created, err := dispatchNew(ctx, q, fresh)
	if err != nil {
		return nil, err
	}
	byID := make(map[uuid.UUID]*store.Task, n)
	for _, t := range created {
		byID[t.ID] = t
	}
	var others []uuid.UUID
	for _, id := range existing {
		others = append(others, id)
	}
	if len(others) > 0 {
		rows, err := q.Query(ctx, `SELECT `+taskColumns+` FROM stint_tasks WHERE id = ANY ($1)`, others)
		if err != nil {
			return nil, err
		}
		read, err := collectTasks(rows)
		if err != nil {
			return nil, err
		}
		for _, t := range read {
			byID[t.ID] = t
		}
	}
	out := make([]*store.Task, n)
	for i, t := range tasks {
		id := t.ID
		if dup[i] != nil {
			id = *dup[i]
		}
		got, ok := byID[id]
		if !ok {
			return nil, fmt.Errorf("postgres: dispatch: task %s is missing (ended and purged since it was found?)", id)
		}
		if dup[i] != nil {
			c := *got
			c.Deduplicated = true
			got = &c
		}
		out[i] = got
	}
	return out, nil
}

// dispatchArgs encodes tasks as the fourteen array arguments of
// stint_dispatch (and of stint_dispatch_immediate, which begins with the
// same fourteen), and returns their ids. The last four are NULL when no
// task sets them.
func dispatchArgs(tasks []store.NewTask) ([]uuid.UUID, []any, error) {
	n := len(tasks)
	ids := make([]uuid.UUID, n)
	names := make([]string, n)
	args := make([]string, n)
	owners := make([]string, n)
	versions := make([]string, n)
	parents := make([]*uuid.UUID, n)
	groups := make([]*uuid.UUID, n)
	var (
		scheduled []*time.Time
		retries   []*string
		keys      []*string
		retryOf   []*uuid.UUID
	)
	var resTask []int32
	var res []string
	var resExclusive []bool
	for i, t := range tasks {
		ids[i], names[i], owners[i], parents[i], groups[i] = t.ID, t.Name, t.Owner, t.ParentTask, t.TaskGroup
		args[i] = string(t.Args)
		if len(t.Args) == 0 {
			args[i] = "{}"
		}
		v, err := json.Marshal(t.Versions)
		if err != nil {
			return nil, nil, err
		}
		versions[i] = string(v)
		if t.Versions == nil {
			versions[i] = "{}"
		}
		if t.ScheduledAt != nil {
			if scheduled == nil {
				scheduled = make([]*time.Time, n)
			}
			scheduled[i] = t.ScheduledAt
		}
		if t.Retry != nil {
			if retries == nil {
				retries = make([]*string, n)
			}
			b, err := json.Marshal(t.Retry)
			if err != nil {
				return nil, nil, err
			}
			r := string(b)
			retries[i] = &r
		}
		if t.UniqueKey != "" {
			if keys == nil {
				keys = make([]*string, n)
			}
			k := t.UniqueKey
			keys[i] = &k
		}
		if t.RetryOf != nil {
			if retryOf == nil {
				retryOf = make([]*uuid.UUID, n)
			}
			retryOf[i] = t.RetryOf
		}
		for _, r := range t.ExclusiveResources {
			resTask, res, resExclusive = append(resTask, int32(i+1)), append(res, r), append(resExclusive, true)
		}
		for _, r := range t.SharedResources {
			resTask, res, resExclusive = append(resTask, int32(i+1)), append(res, r), append(resExclusive, false)
		}
	}
	if res == nil {
		res, resTask, resExclusive = []string{}, []int32{}, []bool{}
	}
	return ids, []any{ids, names, args, owners, versions, parents, groups, resTask, res, resExclusive,
		scheduled, retries, keys, retryOf}, nil
}

// inOrder returns tasks in the order of ids.
func inOrder(ids []uuid.UUID, tasks []*store.Task) []*store.Task {
	byID := make(map[uuid.UUID]*store.Task, len(tasks))
	for _, t := range tasks {
		byID[t.ID] = t
	}
	out := make([]*store.Task, 0, len(ids))
	for _, id := range ids {
		if t, ok := byID[id]; ok {
			out = append(out, t)
		}
	}
	return out
}

// EnqueueDue implements store.Store in one statement (stint_enqueue_due).
func (s *Store) EnqueueDue(ctx context.Context, limit int) (store.DueTasks, error) {
	var (
		n    int32
		next *time.Duration
	)
	if err := s.pool.QueryRow(ctx, `SELECT enqueued, next_in FROM stint_enqueue_due($1)`, limit).Scan(&n, &next); err != nil {
		return store.DueTasks{}, err
	}
	due := store.DueTasks{Enqueued: int(n), NextIn: -1}
	if next != nil {
		due.NextIn = max(*next, 0)
	}
	return due, nil
}

// dueChannel is the channel on which stint_dispatch, stint_finish and
// stint_drop_lost_workers signal that they scheduled a task.
const dueChannel = "stint_due"

// DueSignals implements store.Store: a signal for each notification on
// dueChannel, through the store's one listening connection.
func (s *Store) DueSignals(ctx context.Context) (<-chan struct{}, error) {
	return s.signals.subscribe(ctx, dueChannel)
}
