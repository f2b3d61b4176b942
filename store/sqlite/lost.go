package sqlite

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/stint-dev/stint/store"
)

// The statements of DropLostWorkers. stint_workers holds a row per online
// worker of this one process, so reading it whole costs nothing; the tasks
// of a worker are found through stint_tasks_active.
//
// Orphans are the workers of running tasks that are not in the list at all
// (found lost while one of their claims was in flight, then gone before
// they registered again): their tasks end as a lost worker's do, once they
// have run longer than missingAfter.
const (
	sqlAnyLost = `SELECT EXISTS (SELECT 1 FROM stint_workers WHERE last_heartbeat < ?1)
		OR EXISTS (` + sqlOrphanRuns + `)`
	sqlOrphanRuns = `SELECT 1 FROM stint_tasks t WHERE t.state IN ('running', 'canceling') AND t.started_at < ?1
		AND NOT EXISTS (SELECT 1 FROM stint_workers w WHERE w.name = t.worker)`
	sqlOrphans = `SELECT DISTINCT t.worker, 0 FROM stint_tasks t WHERE t.state IN ('running', 'canceling')
		AND t.started_at < ?1 AND NOT EXISTS (SELECT 1 FROM stint_workers w WHERE w.name = t.worker)
		ORDER BY t.worker`
	sqlLost     = `SELECT name, last_heartbeat FROM stint_workers WHERE last_heartbeat < ? ORDER BY name`
	sqlLostRuns = `SELECT t.state, ` + runColumns + ` FROM stint_tasks t
		WHERE t.worker = ?1 AND t.state IN ('running', 'canceling') AND t.started_at < ?2 ORDER BY t.seq`
	sqlEndLostRun = `UPDATE stint_tasks SET state = ?1, error = ?2, finished_at = ?3, updated_at = ?3
		WHERE seq = ?4 AND state IN ('running', 'canceling')`
)

// lostError is the error of a task whose worker was declared lost (an
// orphan's when orphan); the same text as the PostgreSQL engine's.
func lostError(worker string, heartbeat int64, orphan bool, state store.State) store.TaskError {
	what := "the task was dropped"
	if state == store.StateCanceled {
		what = "the task, which was being canceled, was canceled"
	}
	why := fmt.Sprintf("worker %s stopped heartbeating (last heartbeat at %s)",
		worker, timeOf(heartbeat).Format("2006-01-02T15:04:05.000Z07:00"))
	if orphan {
		why = fmt.Sprintf("worker %s is not in the worker list (it was found lost while it claimed the task)", worker)
	}
	return store.TaskError{Kind: store.WorkerLostKind, Description: why + "; " + what}
}

// DropLostWorkers implements store.Store, in one write transaction, as
// Finish and RemoveWorker do: the one writer makes each task end once (or,
// for a running task whose policy retries dropped runs, be retried once). The
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
			orphan    bool
		}
		var workers []worker
		cutoff := w.now - missingAfter.Microseconds()
		for _, q := range []string{sqlLost, sqlOrphans} {
			rows, err := w.query(q, cutoff)
			if err != nil {
				return err
			}
			for rows.Next() {
				wk := worker{orphan: q == sqlOrphans}
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
		}
		var release []int64
		for _, wk := range workers {
			type lostRun struct {
				run
				state store.State
			}
			var runs []lostRun
			// A listed worker's runs, all; an orphan's, those that ran
			// longer than missingAfter.
			startedBefore := int64(math.MaxInt64)
			if wk.orphan {
				startedBefore = cutoff
			}
			rows, err := w.query(sqlLostRuns, wk.name, startedBefore)
			if err != nil {
				return err
			}
			for rows.Next() {
				var r lostRun
				if r.run, err = scanRun(rows, &r.state); err != nil {
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
				lostErr := lostError(wk.name, wk.heartbeat, wk.orphan, end)
				lost.Tasks = append(lost.Tasks, r.id)
				release = append(release, r.seq)
				if r.state == store.StateRunning && r.retries(store.StateDropped) {
					// Retried as Finish retries a failed run, the run
					// recorded dropped with the error it would have ended
					// with.
					if err := w.retry(r.run, store.StateDropped, &lostErr); err != nil {
						return err
					}
					continue
				}
				taskErr, err := json.Marshal(lostErr)
				if err != nil {
					return err
				}
				if _, err := w.exec(sqlEndLostRun, string(end), string(taskErr), w.now, r.seq); err != nil {
					return err
				}
				w.change(r.id, end)
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
