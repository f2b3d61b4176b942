package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"runtime"
	"strings"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stint-dev/stint/internal/groupcommit"
	"github.com/stint-dev/stint/store"
)

// wakeChannel is the LISTEN/NOTIFY channel the scheduler signals when tasks
// become runnable.
const wakeChannel = "stint_wake"

// Store is the PostgreSQL implementation of store.Store.
type Store struct {
	pool *pgxpool.Pool
	// droppedChanges counts the task changes that Changes dropped because
	// their reader fell too far behind.
	droppedChanges atomic.Uint64
	// sessions hold the session locks of the workers this process
	// registered (see RegisterWorker).
	sessions sessions
	// signals turns notifications of the wake-up and cancel channels into
	// signals, for Wakeups and Cancels.
	signals *signalListener
	// dispatcher gathers concurrent Dispatch calls into one transaction
	// (group commit; see internal/groupcommit).
	dispatcher *groupcommit.Committer[store.NewTask, *store.Task]
	// reader gathers concurrent Task calls into one statement.
	reader *groupcommit.Committer[uuid.UUID, *store.Task]
	// lastCompaction is when this store last folded the counter rows of
	// gone backends (counts.go), in Unix nanoseconds.
	lastCompaction atomic.Int64
}

// dispatchRunning bounds the dispatch transactions of one Store in flight
// at once: calls that arrive while they run share the next one. One gave
// the most dispatches per second from 8 and 50 callers on the machine of
// docs/benchmarks.md (2 and 4 made smaller batches that queued at commit
// instead), and costs a lone caller nothing.
const dispatchRunning = 1

// readsRunning bounds the statements of gathered Task calls in flight at
// once (see Task).
const readsRunning = 2

var _ store.Store = (*Store)(nil)

// Open connects to the database at dsn (a postgres:// URL or a key=value
// string). The pool holds at most 16 connections, or 4 per CPU if more,
// unless dsn sets pool_max_conns. It does not migrate; call Migrate for that.
func Open(ctx context.Context, dsn string) (*Store, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	// A worker holds one connection for LISTEN and uses others for claims,
	// outcomes, heartbeats and its tasks' writes at once: pgxpool's default
	// (the number of CPUs, at least 4) is too small for that.
	if !strings.Contains(dsn, "pool_max_conns") {
		cfg.MaxConns = int32(max(16, 4*runtime.NumCPU()))
	}
	// A connection that dies silently is found out in seconds (see
	// dial.go).
	configureDialer(&cfg.ConnConfig.Config)
	// Stint's statements are all short; JIT compilation only slows them.
	if _, set := cfg.ConnConfig.RuntimeParams["jit"]; !set {
		cfg.ConnConfig.RuntimeParams["jit"] = "off"
	}
	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("postgres: %w", err)
	}
	st := &Store{pool: pool}
	st.signals = newSignalListener(pool, wakeChannel, cancelChannel, dueChannel)
	st.dispatcher = groupcommit.New(func(ctx context.Context, tasks []store.NewTask) ([]*store.Task, error) {
		return DispatchTx(ctx, pool, tasks)
	}, groupcommit.Config{MaxRunning: dispatchRunning})
	st.reader = groupcommit.New(st.readTasks, groupcommit.Config{MaxRunning: readsRunning})
	return st, nil
}

// Pool returns the connection pool, for callers that dispatch inside their
// own transactions.
func (s *Store) Pool() *pgxpool.Pool { return s.pool }

// closeWait bounds how long Close waits for the connections to close.
const closeWait = 5 * time.Second

// Close ends the database sessions of the workers registered through the
// store (on other nodes, their tasks are then found lost at once) and
// closes the pool. It returns after closeWait at the latest: a connection
// whose peer went silent (a partition, a vanished server) can take pgx
// half a minute to give up, and a process that stops must not wait for
// it; such connections finish closing in the background.
func (s *Store) Close() {
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.dispatcher.Close()
		s.reader.Close()
		s.signals.close()
		s.closeSessions()
		s.pool.Close()
	}()
	select {
	case <-done:
	case <-time.After(closeWait):
	}
}

// taskColumns are the columns of a task, in the order scanTask reads them.
const taskColumns = `id, seq, name, state, args, owner, created_at, updated_at, unblocked_at,
	started_at, finished_at, exclusive_resources, shared_resources, versions, coalesce(worker, ''),
	attempt, parent_task, task_group, result, error, non_fatal_errors, progress_reports, created_resources,
	scheduled_at, retry, attempts, coalesce(unique_key, ''), retry_of`

// childTasksOf is the column of the ids of the children of the tasks of
// relation rel, in dispatch order, for Task.ChildTasks: each a range of
// the index on parent_task.
func childTasksOf(rel string) string {
	return `ARRAY(SELECT c.id FROM stint_tasks c WHERE c.parent_task = ` + rel + `.id ORDER BY c.seq)`
}

// taskColumnsWithChildren are taskColumns and childTasksOf(rel), in the
// order scanTaskWithChildren reads them.
func taskColumnsWithChildren(rel string) string { return taskColumns + `, ` + childTasksOf(rel) }

func scanTask(row pgx.Row) (*store.Task, error) { return scanTaskColumns(row, false) }

func scanTaskWithChildren(row pgx.Row) (*store.Task, error) { return scanTaskColumns(row, true) }

// scanTaskColumns scans taskColumns, and childTasksOf if withChildren.
func scanTaskColumns(row pgx.Row, withChildren bool) (*store.Task, error) {
	var (
		t                                 store.Task
		state                             string
		args, versions, result, taskError []byte
		nonFatal, progress                []byte
		retry, attempts                   []byte
	)
	dest := []any{&t.ID, &t.Seq, &t.Name, &state, &args, &t.Owner, &t.CreatedAt, &t.UpdatedAt,
		&t.UnblockedAt, &t.StartedAt, &t.FinishedAt, &t.ExclusiveResources, &t.SharedResources,
		&versions, &t.Worker, &t.Attempt, &t.ParentTask, &t.TaskGroup, &result, &taskError,
		&nonFatal, &progress, &t.CreatedResources,
		&t.ScheduledAt, &retry, &attempts, &t.UniqueKey, &t.RetryOf}
	if withChildren {
		dest = append(dest, &t.ChildTasks)
	}
	if err := row.Scan(dest...); err != nil {
		return nil, err
	}
	t.State = store.State(state)
	t.Args = json.RawMessage(args)
	if len(result) > 0 {
		t.Result = json.RawMessage(result)
	}
	if len(versions) > 0 {
		if err := json.Unmarshal(versions, &t.Versions); err != nil {
			return nil, fmt.Errorf("task %s: versions: %w", t.ID, err)
		}
	}
	if len(taskError) > 0 {
		t.Error = new(store.TaskError)
		if err := json.Unmarshal(taskError, t.Error); err != nil {
			return nil, fmt.Errorf("task %s: error: %w", t.ID, err)
		}
	}
	if err := json.Unmarshal(nonFatal, &t.NonFatalErrors); err != nil {
		return nil, fmt.Errorf("task %s: non_fatal_errors: %w", t.ID, err)
	}
	if err := json.Unmarshal(progress, &t.ProgressReports); err != nil {
		return nil, fmt.Errorf("task %s: progress_reports: %w", t.ID, err)
	}
	if len(retry) > 0 {
		t.Retry = new(store.RetryPolicy)
		if err := json.Unmarshal(retry, t.Retry); err != nil {
			return nil, fmt.Errorf("task %s: retry: %w", t.ID, err)
		}
	}
	if err := json.Unmarshal(attempts, &t.Attempts); err != nil {
		return nil, fmt.Errorf("task %s: attempts: %w", t.ID, err)
	}
	return &t, nil
}

func collectTasks(rows pgx.Rows) ([]*store.Task, error) { return collectTaskColumns(rows, false) }

// collectTaskColumns scans every row of rows with scanTaskColumns.
func collectTaskColumns(rows pgx.Rows, withChildren bool) ([]*store.Task, error) {
	defer rows.Close()
	var out []*store.Task
	for rows.Next() {
		t, err := scanTaskColumns(rows, withChildren)
		if err != nil {
			return nil, err
		}
		out = append(out, t)
	}
	return out, rows.Err()
}

// Querier is what Dispatch needs of a connection: a pool, a connection or a
// transaction.
type Querier interface {
	Query(ctx context.Context, sql string, args ...any) (pgx.Rows, error)
}

// Dispatch implements store.Store. Calls that arrive while earlier ones
// are in flight are gathered into one transaction (group commit), each
// still answered with its own tasks or its own error, and only after that
// transaction committed; DispatchTx runs in the caller's transaction
// instead and gathers nothing. Calls with unique keys are not gathered
// either: each runs in a transaction of its own, since it may wait for a
// key another transaction holds.
func (s *Store) Dispatch(ctx context.Context, tasks []store.NewTask) ([]*store.Task, error) {
	if anyUniqueKey(tasks) {
		// In a transaction of its own: the dispatch may wait for a key
		// that another transaction holds (a caller's DispatchTx still
		// open), and must not hold up the gathered dispatches meanwhile.
		return DispatchTx(ctx, s.pool, tasks)
	}
	out, err := s.dispatcher.Do(ctx, tasks)
	if errors.Is(err, groupcommit.ErrClosed) {
		return nil, fmt.Errorf("postgres: store is closed")
	}
	return out, err
}

// Claim implements store.Store.
func (s *Store) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Task, error) {
	if p.Limit <= 0 || len(p.Names) == 0 {
		return nil, nil
	}
	provided := []byte("{}")
	if len(p.Versions) > 0 {
		var err error
		if provided, err = json.Marshal(p.Versions); err != nil {
			return nil, err
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT `+taskColumns+` FROM stint_claim($1, $2, $3, $4)`,
		p.Worker, p.Names, p.Limit, provided)
	if err != nil {
		return nil, err
	}
	tasks, err := collectTasks(rows)
	if err != nil {
		return nil, err
	}
	return tasks, nil
}

// Finish implements store.Store.
func (s *Store) Finish(ctx context.Context, outcomes []store.Outcome) ([]uuid.UUID, error) {
	if len(outcomes) == 0 {
		return nil, nil
	}
	n := len(outcomes)
	ids := make([]uuid.UUID, n)
	attempts := make([]int32, n)
	states := make([]string, n)
	results := make([]*string, n)
	errs := make([]*string, n)
	noRetry := make([]bool, n)
	for i, o := range outcomes {
		ids[i], attempts[i], states[i], noRetry[i] = o.ID, int32(o.Attempt), string(o.State), o.NoRetry
		if len(o.Result) > 0 {
			r := string(o.Result)
			results[i] = &r
		}
		if o.Error != nil {
			b, err := json.Marshal(o.Error)
			if err != nil {
				return nil, err
			}
			e := string(b)
			errs[i] = &e
		}
	}
	rows, err := s.pool.Query(ctx, `SELECT * FROM stint_finish($1, $2, $3, $4, $5, $6)`, ids, attempts, states, results, errs, noRetry)
	if err != nil {
		return nil, classify(err)
	}
	done, err := pgx.CollectRows(rows, pgx.RowTo[uuid.UUID])
	return done, classify(err)
}

// classify wraps data exceptions (SQLSTATE class 22: bad JSON, a NUL byte,
// a value out of range) in store.ErrUnstorable, and stint_dispatch's
// refusal of a sealed group (STSLD, schema version 9) in store.ErrSealed.
func classify(err error) error {
	var pgErr *pgconn.PgError
	switch {
	case errors.As(err, &pgErr) && strings.HasPrefix(pgErr.Code, "22"):
		return fmt.Errorf("%w: %s", store.ErrUnstorable, pgErr.Message)
	case errors.As(err, &pgErr) && pgErr.Code == "STSLD":
		return fmt.Errorf("postgres: %s: %w", pgErr.Message, store.ErrSealed)
	}
	return err
}

// Cancel implements store.Store.
func (s *Store) Cancel(ctx context.Context, id uuid.UUID) (*store.Task, error) {
	for attempt := 0; ; attempt++ {
		t, err := scanTaskWithChildren(s.pool.QueryRow(ctx, `SELECT `+taskColumnsWithChildren("stint_cancel")+` FROM stint_cancel($1)`, id))
		var pgErr *pgconn.PgError
		if errors.As(err, &pgErr) && (pgErr.Code == "40001" || pgErr.Code == "40P01") && attempt < 10 {
			continue
		}
		if errors.Is(err, pgx.ErrNoRows) {
			return nil, store.ErrNotFound
		}
		if errors.As(err, &pgErr) && pgErr.Code == "ST409" {
			t, err := s.Task(ctx, id)
			if err != nil {
				return nil, err
			}
			return t, store.ErrFinal
		}
		return t, err
	}
}

// SaveOutputs implements store.Store.
func (s *Store) SaveOutputs(ctx context.Context, id uuid.UUID, attempt int, out store.Outputs) (bool, error) {
	nonFatal, err := json.Marshal(nonNil(out.NonFatalErrors))
	if err != nil {
		return false, err
	}
	progress, err := json.Marshal(nonNil(out.ProgressReports))
	if err != nil {
		return false, err
	}
	created := nonNil(out.CreatedResources)
	// Progress is a change: it is published in the same statement.
	tag, err := s.pool.Exec(ctx, `WITH saved AS (
			UPDATE stint_tasks
			SET non_fatal_errors = $3, progress_reports = $4, created_resources = $5, updated_at = now()
			WHERE id = $1 AND attempt = $2 AND state IN ('running', 'canceling')
			RETURNING id, state)
		SELECT pg_notify('`+changesChannel+`', id::text || ' ' || state) FROM saved`,
		id, attempt, nonFatal, progress, created)
	if err != nil {
		return false, classify(err)
	}
	return tag.RowsAffected() == 1, nil
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

// Task implements store.Store.
//
// Calls that arrive while others are in flight are gathered into one
// statement, as dispatches are into one transaction: a service whose
// clients poll their tasks' status, or an API node under many GET
// /tasks/{id}, then pays one round trip for many reads. A read still
// begins after its call does, so it sees every change committed before.
func (s *Store) Task(ctx context.Context, id uuid.UUID) (*store.Task, error) {
	got, err := s.reader.Do(ctx, []uuid.UUID{id})
	switch {
	case errors.Is(err, groupcommit.ErrClosed):
		return nil, fmt.Errorf("postgres: store is closed")
	case err != nil:
		return nil, err
	case got[0] == nil:
		return nil, store.ErrNotFound
	}
	return got[0], nil
}

// readTasks reads the tasks of ids with their children, one per id in
// order, nil for one that does not exist: the reads of gathered Task calls.
func (s *Store) readTasks(ctx context.Context, ids []uuid.UUID) ([]*store.Task, error) {
	if len(ids) == 1 {
		t, err := scanTaskWithChildren(s.pool.QueryRow(ctx, `SELECT `+taskColumnsWithChildren("stint_tasks")+` FROM stint_tasks WHERE id = $1`, ids[0]))
		if errors.Is(err, pgx.ErrNoRows) {
			return []*store.Task{nil}, nil
		}
		return []*store.Task{t}, err
	}
	// One row per id asked for, in order (a task asked for twice is
	// scanned twice: each caller gets a Task of its own).
	rows, err := s.pool.Query(ctx, `SELECT `+taskColumnsWithChildren("r")+` FROM (
		SELECT t.*, q.i FROM unnest($1::uuid[]) WITH ORDINALITY AS q(asked, i)
		JOIN stint_tasks t ON t.id = q.asked) r
		ORDER BY r.i`, ids)
	if err != nil {
		return nil, err
	}
	tasks, err := collectTaskColumns(rows, true)
	if err != nil {
		return nil, err
	}
	out := make([]*store.Task, len(ids))
	for i := range ids {
		if len(tasks) > 0 && tasks[0].ID == ids[i] {
			out[i], tasks = tasks[0], tasks[1:]
		}
	}
	return out, nil
}

// blockersPerResource bounds the blockers BlockedBy lists for one resource.
const blockersPerResource = 10

// BlockedBy implements store.Store: for each resource on which the task
// waits (its seq is past the queue's frontier), the earliest entries
// before it that conflict with it, or, on a full counted resource, the
// earliest entries before it.
func (s *Store) BlockedBy(ctx context.Context, id uuid.UUID) ([]store.Blocker, error) {
	rows, err := s.pool.Query(ctx, `
		SELECT b.task_id, mine.name, CASE WHEN f.full THEN r.capacity ELSE 0 END, CASE WHEN f.full THEN r.holders ELSE 0 END
		FROM stint_tasks t
		CROSS JOIN LATERAL unnest(t.exclusive_resources || t.shared_resources) AS mine(name)
		JOIN stint_resources r ON r.name = mine.name AND r.frontier < t.seq
		CROSS JOIN LATERAL (
			SELECT r.capacity IS NOT NULL AND NOT (mine.name = ANY (t.exclusive_resources)) AND NOT EXISTS (
				SELECT 1 FROM stint_task_resources x
				WHERE x.resource = mine.name AND x.exclusive AND x.seq < t.seq) AS full) f
		CROSS JOIN LATERAL (
			SELECT q.task_id, q.seq FROM stint_task_resources q
			WHERE q.resource = mine.name AND q.seq < t.seq
			  AND (mine.name = ANY (t.exclusive_resources) OR q.exclusive OR f.full)
			ORDER BY q.seq LIMIT $2) b
		WHERE t.id = $1 AND t.state = 'waiting'
		ORDER BY mine.name, b.seq`, id, blockersPerResource)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.Blocker, error) {
		var b store.Blocker
		err := row.Scan(&b.Task, &b.Resource, &b.Capacity, &b.Holders)
		return b, err
	})
}

// Sweep implements store.Store. It skips resources that are locked at the
// moment (their queues are being changed, so they are not stuck) and runs
// again at the next sweep.
func (s *Store) Sweep(ctx context.Context) (store.SweepResult, error) {
	var res store.SweepResult
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Queue entries whose task is final or gone.
		var staleResources []string
		var staleSeqs []int64
		err := tx.QueryRow(ctx, `SELECT coalesce(array_agg(q.resource), '{}'), coalesce(array_agg(q.seq), '{}'),
				count(DISTINCT q.task_id)
			FROM stint_task_resources q
			LEFT JOIN stint_tasks t ON t.id = q.task_id
			WHERE t.id IS NULL OR t.state NOT IN ('waiting', 'running', 'canceling')`).
			Scan(&staleResources, &staleSeqs, &res.StaleQueues)
		if err != nil {
			return err
		}
		if res.StaleQueues > 0 {
			if _, err := tx.Exec(ctx, `SELECT stint_dequeue($1, $2)`, staleResources, staleSeqs); err != nil {
				return err
			}
		}
		// Queues whose counters or heads may be wrong: recounted from their
		// entries, and what may move promoted.
		rows, err := tx.Query(ctx, `SELECT name FROM stint_resources
			WHERE name IN (SELECT DISTINCT resource FROM stint_task_resources)
			   OR holders <> 0 OR waiting <> 0 OR exclusive_held
			ORDER BY name FOR UPDATE SKIP LOCKED`)
		if err != nil {
			return err
		}
		locked, err := pgx.CollectRows(rows, pgx.RowTo[string])
		if err != nil {
			return err
		}
		if len(locked) > 0 {
			err := tx.QueryRow(ctx, `SELECT recounted, promoted FROM stint_settle($1)`, locked).Scan(&res.Recounted, &res.Unblocked)
			if err != nil {
				return err
			}
		}
		// Tasks whose entries are all ready but that were never unblocked.
		// Rows another transaction holds are being promoted right now: skip
		// them (waiting for them could deadlock with that promotion).
		tag, err := tx.Exec(ctx, `UPDATE stint_tasks t SET unblocked_at = clock_timestamp(), blocked_count = 0, updated_at = now()
			WHERE t.id IN (
				SELECT w.id FROM stint_tasks w
				WHERE w.state = 'waiting' AND w.unblocked_at IS NULL
				  AND stint_granted(w.exclusive_resources || w.shared_resources, w.seq)
				ORDER BY w.id FOR UPDATE SKIP LOCKED)`)
		if err != nil {
			return err
		}
		res.Unblocked += int(tag.RowsAffected())
		if res.Unblocked > 0 {
			_, err = tx.Exec(ctx, `SELECT pg_notify($1, '')`, wakeChannel)
		}
		return err
	})
	return res, err
}

// Wakeups implements store.Store through the store's signal listener.
func (s *Store) Wakeups(ctx context.Context) (<-chan struct{}, error) {
	return s.signals.subscribe(ctx, wakeChannel)
}

// cancelChannel is the channel on which stint_cancel and stint_cancel_group
// notify "<worker> <task id>" for each running task they make canceling.
const cancelChannel = "stint_cancel"

// Cancels implements store.Store through the store's signal listener.
func (s *Store) Cancels(ctx context.Context) (<-chan struct{}, error) {
	return s.signals.subscribe(ctx, cancelChannel)
}
