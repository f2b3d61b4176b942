package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// DropLostWorkers implements store.Store with stint_drop_lost_workers
// (migration 0006), in one transaction: lost workers are those whose last
// heartbeat is older than missingAfter by the database's clock.
func (s *Store) DropLostWorkers(ctx context.Context, missingAfter time.Duration) (store.LostWorkers, error) {
	if missingAfter <= 0 {
		return store.LostWorkers{}, fmt.Errorf("postgres: DropLostWorkers: missingAfter must be positive, not %v", missingAfter)
	}
	var (
		workers []string
		tasks   []uuid.UUID
	)
	err := s.pool.QueryRow(ctx, `SELECT workers, tasks FROM stint_drop_lost_workers($1)`, missingAfter).
		Scan(&workers, &tasks)
	if err != nil {
		return store.LostWorkers{}, err
	}
	lost := store.LostWorkers{}
	if len(workers) > 0 {
		lost.Workers = workers
	}
	if len(tasks) > 0 {
		lost.Tasks = tasks
	}
	return lost, nil
}
