package postgres

import (
	"context"
	"errors"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/store"
)

// DispatchImmediate implements store.Store in one statement, so in one
// transaction that holds the task's resource locks from its dispatch to its
// claim (or skip): see stint_dispatch_immediate. Whether the task is
// runnable at once also depends on p.Worker's registered versions when the
// task requires some: a worker that is not registered provides none. A
// task with a unique key takes a transaction: the key is locked first, and
// a task that has it is returned, Deduplicated, instead.
func (s *Store) DispatchImmediate(ctx context.Context, t store.NewTask, p store.ImmediateParams) (*store.Task, error) {
	if t.UniqueKey == "" {
		return dispatchImmediate(ctx, s.pool, t, p)
	}
	var task *store.Task
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		var id uuid.UUID
		err := tx.QueryRow(ctx, `SELECT id FROM stint_unique_tasks($1, $2, $3)`,
			[]string{t.Owner}, []string{t.Name}, []string{t.UniqueKey}).Scan(&id)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			task, err = dispatchImmediate(ctx, tx, t, p)
			return err
		case err != nil:
			return err
		}
		task, err = scanTask(tx.QueryRow(ctx, `SELECT `+taskColumns+` FROM stint_tasks WHERE id = $1`, id))
		if err == nil {
			task.Deduplicated = true
		}
		return err
	})
	return task, err
}

func dispatchImmediate(ctx context.Context, q Querier, t store.NewTask, p store.ImmediateParams) (*store.Task, error) {
	_, args, err := dispatchArgs([]store.NewTask{t})
	if err != nil {
		return nil, err
	}
	args = append(args, p.Worker, p.Deferred)
	rows, err := q.Query(ctx, `SELECT `+taskColumns+` FROM stint_dispatch_immediate(
		$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`, args...)
	if err != nil {
		return nil, classify(err)
	}
	tasks, err := collectTasks(rows)
	if err != nil {
		return nil, classify(err)
	}
	if len(tasks) != 1 {
		return nil, errors.New("postgres: stint_dispatch_immediate returned no task")
	}
	return tasks[0], nil
}
