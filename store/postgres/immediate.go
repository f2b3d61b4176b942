package postgres

import (
	"context"
	"errors"

	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/store"
)

// DispatchImmediate implements store.Store in one statement, so in one
// transaction that holds the task's resource locks from its dispatch to its
// claim (or skip): see stint_dispatch_immediate. Whether the task is
// runnable at once also depends on p.Worker's registered versions when the
// task requires some: a worker that is not registered provides none.
func (s *Store) DispatchImmediate(ctx context.Context, t store.NewTask, p store.ImmediateParams) (*store.Task, error) {
	_, args, err := dispatchArgs([]store.NewTask{t})
	if err != nil {
		return nil, err
	}
	args = append(args, p.Worker, p.Deferred)
	task, err := scanTask(s.pool.QueryRow(ctx, `SELECT `+taskColumns+` FROM stint_dispatch_immediate(
		$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`, args...))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, errors.New("postgres: stint_dispatch_immediate returned no task")
	}
	if err != nil {
		return nil, classify(err)
	}
	return task, nil
}
