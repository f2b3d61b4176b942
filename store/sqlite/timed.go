package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// Tasks in time: scheduled tasks becoming due, and retries.
//
// A scheduled task holds no queue entry. When it is due, EnqueueDue gives
// it a new seq (the next one, as a dispatch would: its old one is never
// used again) and queues it through the dispatch's own code (enqueue).
// seq is the INTEGER PRIMARY KEY; changing it is safe because nothing
// keys on a scheduled task's seq: it has no queue entries, and children,
// groups and workers refer to tasks by id.

// EnqueueDue implements store.Store, in one write transaction. Whether
// any task is due is read first, without the write lock: workers call it
// at every poll, and nearly always none is.
func (s *Store) EnqueueDue(ctx context.Context, limit int) (store.DueTasks, error) {
	if limit <= 0 {
		return store.DueTasks{}, fmt.Errorf("sqlite: EnqueueDue: limit must be positive, not %d", limit)
	}
	st, err := s.readStmt(ctx, sqlNextDue)
	if err != nil {
		return store.DueTasks{}, err
	}
	var next int64
	err = st.QueryRowContext(ctx).Scan(&next)
	if errors.Is(err, sql.ErrNoRows) {
		return store.DueTasks{NextIn: noneScheduled}, nil
	}
	if err != nil {
		return store.DueTasks{}, err
	}
	if now := nowMicros(); next > now {
		return store.DueTasks{NextIn: time.Duration(next-now) * time.Microsecond}, nil
	}
	var res store.DueTasks
	err = s.write(ctx, func(w *wtx) error {
		res = store.DueTasks{}
		type due struct {
			seq               int64
			id                string
			exclusive, shared []string
		}
		var found []due
		if err := w.scanRows(sqlDue, []any{w.now, limit}, func(rows *sql.Rows) error {
			var (
				d                 due
				exclusive, shared string
			)
			if err := rows.Scan(&d.seq, &d.id, &exclusive, &shared); err != nil {
				return err
			}
			if err := unmarshalColumn(exclusive, &d.exclusive); err != nil {
				return fmt.Errorf("task %s: exclusive_resources: %w", d.id, err)
			}
			if err := unmarshalColumn(shared, &d.shared); err != nil {
				return fmt.Errorf("task %s: shared_resources: %w", d.id, err)
			}
			found = append(found, d)
			return nil
		}); err != nil {
			return err
		}
		for _, d := range found {
			seq := w.s.nextSeq
			w.s.nextSeq++
			blocked, err := w.enqueue(d.id, seq, d.exclusive, d.shared)
			if err != nil {
				return err
			}
			var unblocked sql.NullInt64
			if blocked == 0 {
				unblocked = sql.NullInt64{Int64: w.now, Valid: true}
				w.wake = true
			}
			if _, err := w.exec(sqlMakeDue, seq, blocked, unblocked, w.now, d.seq); err != nil {
				return fmt.Errorf("task %s: %w", d.id, err)
			}
			id, err := uuid.Parse(d.id)
			if err != nil {
				return err
			}
			w.change(id, store.StateWaiting)
		}
		if len(found) > 0 {
			if _, err := w.exec(sqlBumpSequence, w.s.nextSeq-1); err != nil {
				return err
			}
		}
		res.Enqueued = len(found)
		var next int64
		err := w.queryRow(sqlNextDue).Scan(&next)
		switch {
		case errors.Is(err, sql.ErrNoRows):
			res.NextIn = noneScheduled
		case err != nil:
			return err
		default:
			// Tasks still due (past the limit): at once.
			res.NextIn = time.Duration(max(0, next-w.now)) * time.Microsecond
		}
		return nil
	})
	if err != nil {
		return store.DueTasks{}, err
	}
	return res, nil
}

// noneScheduled is DueTasks.NextIn when no task is scheduled.
const noneScheduled = -time.Nanosecond

// runColumns are the columns of a running task that retrying it needs,
// in the order scanRun reads them.
const runColumns = `t.seq, t.id, t.retry, t.attempts, t.started_at, coalesce(t.worker, '')`

// run is a running task as retrying it needs it.
type run struct {
	seq      int64
	id       uuid.UUID
	retry    *store.RetryPolicy // nil: none
	attempts []store.Attempt
	started  sql.NullInt64
	worker   string
}

// scanRun scans runColumns, after the columns of extra.
func scanRun(row scanner, extra ...any) (run, error) {
	var (
		r              run
		id             string
		retry          sql.NullString
		attemptsColumn string
	)
	if err := row.Scan(append(extra, &r.seq, &id, &retry, &attemptsColumn, &r.started, &r.worker)...); err != nil {
		return r, err
	}
	var err error
	if r.id, err = uuid.Parse(id); err != nil {
		return r, fmt.Errorf("task id %q: %w", id, err)
	}
	if retry.Valid {
		r.retry = new(store.RetryPolicy)
		if err := json.Unmarshal([]byte(retry.String), r.retry); err != nil {
			return r, fmt.Errorf("task %s: retry: %w", r.id, err)
		}
	}
	if r.attempts, err = decodeAttempts(attemptsColumn); err != nil {
		return r, fmt.Errorf("task %s: attempts: %w", r.id, err)
	}
	return r, nil
}

// retries reports whether a run of r that ends in state (failed, or
// dropped) is retried rather than ended: its policy allows an attempt
// more after this one, and, for a dropped run, retries dropped runs.
func (r run) retries(state store.State) bool {
	p := r.retry
	if p == nil || len(r.attempts)+1 >= p.MaxAttempts {
		return false
	}
	return state == store.StateFailed || (state == store.StateDropped && p.Dropped)
}

// retry makes a running task scheduled for its next attempt instead of
// ending in state: the run is appended to its attempts, with taskErr
// (also the task's error while it waits), and the attempt is due after the
// policy's delay. It records the change and the due signal; the caller
// releases the task's queue entries, as for a task that ended.
func (w *wtx) retry(r run, state store.State, taskErr *store.TaskError) error {
	n := len(r.attempts) + 1 // the attempts ended, this one included
	attempt := store.Attempt{Number: n, State: state, FinishedAt: timeOf(w.now), Worker: r.worker, Error: taskErr}
	if r.started.Valid {
		attempt.StartedAt = timeOf(r.started.Int64)
	}
	attempts, err := jsonText("attempts", append(r.attempts, attempt))
	if err != nil {
		return fmt.Errorf("task %s: %w", r.id, err)
	}
	var errText any
	if taskErr != nil {
		if errText, err = jsonText("error", taskErr); err != nil {
			return fmt.Errorf("task %s: %w", r.id, err)
		}
	}
	due := w.now + r.retry.Delay(n, rand.Float64()).Microseconds()
	if _, err := w.exec(sqlRetry, due, attempts, errText, w.now, r.seq); err != nil {
		return fmt.Errorf("task %s: retry: %w", r.id, err)
	}
	w.change(r.id, store.StateScheduled)
	w.due = true
	return nil
}
