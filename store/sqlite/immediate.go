package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/stint-dev/stint/internal/versions"
	"github.com/stint-dev/stint/store"
)

const (
	// sqlImmediateClaim claims the task an immediate dispatch has just
	// inserted, if it is runnable, with the same checks as sqlClaim (the
	// caller has checked versions).
	sqlImmediateClaim = `UPDATE stint_tasks AS c
		SET state = 'running', worker = ?1, attempt = attempt + 1, started_at = ?2, updated_at = ?2
		WHERE c.seq = ?3 AND c.state = 'waiting' AND c.unblocked_at IS NOT NULL
		  AND ` + sqlNoEarlierConflict + `
		RETURNING ` + taskColumns

	// sqlSkip ends a waiting task skipped; the caller releases its queue
	// entries.
	sqlSkip = `UPDATE stint_tasks SET state = 'skipped', finished_at = ?1, updated_at = ?1
		WHERE seq = ?2 AND state = 'waiting'`

	sqlWorkerVersions = `SELECT versions FROM stint_workers WHERE name = ?`
)

// DispatchImmediate implements store.Store in one write transaction: the
// task is inserted as Dispatch inserts it, then claimed for p.Worker if it
// is runnable at once, else skipped (and released, as Cancel releases a
// waiting task) unless p.Deferred. Runnable at once also means that
// p.Worker's registered versions satisfy the task's requirement, if it has
// one: a worker that is not registered provides none. A task with a
// unique key that an incomplete task has is not inserted: that task is
// returned, Deduplicated, not claimed. A task scheduled after now is
// refused.
func (s *Store) DispatchImmediate(ctx context.Context, t store.NewTask, p store.ImmediateParams) (*store.Task, error) {
	pr, err := prepareNew(t)
	if err != nil {
		return nil, err
	}
	if err := checkText("worker", p.Worker); err != nil {
		return nil, err
	}
	var task *store.Task
	err = s.write(ctx, func(w *wtx) error {
		dispatched, err := w.insertTask(pr)
		if err != nil {
			return err
		}
		if dispatched.Deduplicated {
			// An incomplete task with its unique key: that one, as it is.
			task = dispatched
			return nil
		}
		if dispatched.State == store.StateScheduled {
			// Refused; the insert is rolled back.
			return fmt.Errorf("sqlite: immediate dispatch of task %s scheduled at %s, after now",
				t.ID, timeOf(pr.scheduled.Int64).Format(time.RFC3339Nano))
		}
		runnable := dispatched.UnblockedAt != nil
		if runnable && len(t.Versions) > 0 {
			if runnable, err = w.workerSatisfies(p.Worker, t.Versions); err != nil {
				return err
			}
		}
		if runnable {
			task, err = scanTask(w.queryRow(sqlImmediateClaim, p.Worker, w.now, dispatched.Seq))
			if err == nil {
				w.change(task.ID, store.StateRunning)
				return nil
			}
			if !errors.Is(err, sql.ErrNoRows) {
				return err
			}
			// The second line of defence refused it: not runnable after all.
		}
		if p.Deferred {
			task = dispatched
			// Runnable for the resources but not inline (versions):
			// workers may take it.
			w.wake = dispatched.UnblockedAt != nil
			return nil
		}
		if _, err := w.exec(sqlSkip, w.now, dispatched.Seq); err != nil {
			return err
		}
		if err := w.release([]int64{dispatched.Seq}); err != nil {
			return err
		}
		w.change(dispatched.ID, store.StateSkipped)
		task, err = scanTaskWithChildren(w.queryRow(sqlTaskBySeq, dispatched.Seq))
		return err
	})
	if err != nil {
		return nil, err
	}
	return task, nil
}

// workerSatisfies reports whether the registered worker named provides
// the versions required.
func (w *wtx) workerSatisfies(worker string, required map[string]string) (bool, error) {
	var text string
	err := w.queryRow(sqlWorkerVersions, worker).Scan(&text)
	if errors.Is(err, sql.ErrNoRows) {
		return versions.Satisfies(required, nil), nil
	}
	if err != nil {
		return false, err
	}
	var provided map[string]string
	if err := unmarshalColumn(text, &provided); err != nil {
		return false, err
	}
	return versions.Satisfies(required, provided), nil
}
