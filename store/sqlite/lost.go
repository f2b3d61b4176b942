package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// The statements of DropLostWorkers. stint_workers holds a row per online
// worker of this one process, so reading it whole costs nothing; the tasks
// of a worker are found through stint_tasks_active.
const (
	sqlAnyLost  = `SELECT EXISTS (SELECT 1 FROM stint_workers WHERE last_heartbeat < ?)`
	sqlLost     = `SELECT name, last_heartbeat FROM stint_workers WHERE last_heartbeat < ? ORDER BY name`
	sqlLostRuns = `SELECT seq, id, state FROM stint_tasks
		WHERE worker = ? AND state IN ('running', 'canceling') ORDER BY seq`
	sqlEndLostRun = `UPDATE stint_tasks SET state = ?1, error = ?2, finished_at = ?3, updated_at = ?3
		WHERE seq = ?4 AND state IN ('running', 'canceling')`
)

// lostError is the error of a task whose worker was declared lost; the same
// text as the PostgreSQL engine's.
func lostError(worker string, heartbeat int64, state store.State) store.TaskError {
	what := "the task was dropped"
	if state == store.StateCanceled {
		what = "the task, which was being canceled, was canceled"
	}
	return store.TaskError{Kind: store.WorkerLostKind,
		Description: fmt.Sprintf("worker %s stopped heartbeating (last heartbeat at %s); %s",
			worker, timeOf(heartbeat).Format("2006-01-02T15:04:05.000Z07:00"), what)}
}

// DropLostWorkers implements store.Store, in one write transaction, as
// Finish and RemoveWorker do: the one writer makes each task end once. The
// clock is this process's, which wrote every heartbeat. Whether any worker
// is lost is read first, without the write lock: nearly always none is.
func (s *Store) DropLostWorkers(ctx context.Context, missingAfter time.Duration) (store.LostWorkers, error) {
	if missingAfter <= 0 {
		return store.LostWorkers{}, fmt.Errorf("sqlite: DropLostWorkers: missingAfter must be positive, not %v", missingAfter)
	}
	st, err := s.readStmt(ctx, sqlAnyLost)
	if err != nil {
		return store.LostWorkers{}, err
	}
	var found bool
	if err := st.QueryRowContext(ctx, nowMicros()-missingAfter.Microseconds()).Scan(&found); err != nil {
		return store.LostWorkers{}, err
	}
	if !found {
		return store.LostWorkers{}, nil
	}
	var lost store.LostWorkers
	err = s.write(ctx, func(w *wtx) error {
		lost = store.LostWorkers{}
		type worker struct {
			name      string
			heartbeat int64
		}
		var workers []worker
		rows, err := w.query(sqlLost, w.now-missingAfter.Microseconds())
		if err != nil {
			return err
		}
		for rows.Next() {
			var wk worker
			if err := rows.Scan(&wk.name, &wk.heartbeat); err != nil {
				rows.Close()
				return err
			}
			workers = append(workers, wk)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		var release []int64
		for _, wk := range workers {
			type run struct {
				seq   int64
				id    string
				state store.State
			}
			var runs []run
			rows, err := w.query(sqlLostRuns, wk.name)
			if err != nil {
				return err
			}
			for rows.Next() {
				var r run
				if err := rows.Scan(&r.seq, &r.id, &r.state); err != nil {
					rows.Close()
					return err
				}
				runs = append(runs, r)
			}
			rows.Close()
			if err := rows.Err(); err != nil {
				return err
			}
			for _, r := range runs {
				end := store.StateDropped
				if r.state == store.StateCanceling {
					end = store.StateCanceled
				}
				taskErr, err := json.Marshal(lostError(wk.name, wk.heartbeat, end))
				if err != nil {
					return err
				}
				if _, err := w.exec(sqlEndLostRun, string(end), string(taskErr), w.now, r.seq); err != nil {
					return err
				}
				id, err := uuid.Parse(r.id)
				if err != nil {
					return err
				}
				lost.Tasks = append(lost.Tasks, id)
				release = append(release, r.seq)
				w.change(id, end)
			}
			if _, err := w.exec(sqlRemoveWorker, wk.name); err != nil {
				return err
			}
			lost.Workers = append(lost.Workers, wk.name)
		}
		slices.Sort(release) // release in dispatch order, as Finish does
		return w.release(release)
	})
	if err != nil {
		return store.LostWorkers{}, err
	}
	slices.SortFunc(lost.Tasks, uuidCompare)
	return lost, nil
}
