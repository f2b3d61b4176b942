package sqlite

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// The reads run on the read pool, each in a transaction of its own when it
// takes several statements, so that what they return is one snapshot: the
// last commit when they started.

// readTx runs fn in a read transaction.
func (s *Store) readTx(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.rdb.BeginTx(ctx, &sql.TxOptions{ReadOnly: true})
	if err != nil {
		return err
	}
	defer tx.Rollback() //nolint:errcheck // read-only
	return fn(tx)
}

// Task implements store.Store.
func (s *Store) Task(ctx context.Context, id uuid.UUID) (*store.Task, error) {
	st, err := s.readStmt(ctx, `SELECT `+taskColumnsWithChildren+` FROM stint_tasks WHERE id = ?`)
	if err != nil {
		return nil, err
	}
	t, err := scanTaskWithChildren(st.QueryRowContext(ctx, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return t, err
}

// CountByState implements store.Store: it reads the counts that the
// triggers of schema 4 maintain, one row per state.
func (s *Store) CountByState(ctx context.Context) (map[store.State]int, error) {
	rows, err := s.rdb.QueryContext(ctx, `SELECT state, n FROM stint_task_counts WHERE n <> 0`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	counts := map[store.State]int{}
	for rows.Next() {
		var st string
		var n int
		if err := rows.Scan(&st, &n); err != nil {
			return nil, err
		}
		counts[store.State(st)] = n
	}
	return counts, rows.Err()
}

// orderBy maps each ordering to its ORDER BY clause. Ties are broken by
// dispatch order (seq), in the ordering's direction; tasks that have not
// started, finished or been scheduled sort last in both directions.
var orderBy = map[store.Ordering]string{
	"":                      "created_at, seq",
	store.OrderCreated:      "created_at, seq",
	store.OrderCreatedDesc:  "created_at DESC, seq DESC",
	store.OrderStarted:      "started_at ASC NULLS LAST, seq",
	store.OrderStartedDesc:  "started_at DESC NULLS LAST, seq DESC",
	store.OrderFinished:     "finished_at ASC NULLS LAST, seq",
	store.OrderFinishedDesc: "finished_at DESC NULLS LAST, seq DESC",
	// Tasks that were not scheduled (scheduled_at null) last.
	store.OrderScheduled:     "scheduled_at ASC NULLS LAST, seq",
	store.OrderScheduledDesc: "scheduled_at DESC NULLS LAST, seq DESC",
}

// conditions accumulates the WHERE clause of a task list and its arguments.
// Values only ever travel as arguments.
type conditions struct {
	terms []string
	args  []any
}

// add appends a condition; its "?"s stand for args, in order.
func (c *conditions) add(cond string, args ...any) {
	c.terms = append(c.terms, cond)
	c.args = append(c.args, args...)
}

func (c *conditions) where() string {
	if len(c.terms) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c.terms, " AND ")
}

// taskConditions translates the filters of f, each term once.
func taskConditions(f store.TaskFilter) (*conditions, error) {
	c := &conditions{}
	member := func(column string) string {
		return "EXISTS (SELECT 1 FROM json_each(" + column + ") WHERE value = ?)"
	}
	for _, term := range f.Terms() {
		switch v := term.Value; term.Field {
		case store.FilterIDs:
			ids := v.([]uuid.UUID)
			texts := make([]string, len(ids))
			for i, id := range ids {
				texts[i] = id.String()
			}
			list, err := json.Marshal(texts)
			if err != nil {
				return nil, err
			}
			c.add("id IN (SELECT value FROM json_each(?))", string(list))
		case store.FilterStates:
			states := v.([]store.State)
			if len(states) == 1 {
				// An equality, for which stint_tasks_state_created returns
				// the tasks in the default order.
				c.add("state = ?", string(states[0]))
				break
			}
			texts := make([]string, len(states))
			for i, s := range states {
				texts[i] = string(s)
			}
			list, err := json.Marshal(texts)
			if err != nil {
				return nil, err
			}
			c.add("state IN (SELECT value FROM json_each(?))", string(list))
		case store.FilterName:
			c.add("name = ?", v)
		case store.FilterNameContains:
			// instr, not LIKE: % and _ are literal, and the match is
			// case-sensitive.
			c.add("instr(name, ?) > 0", v)
		case store.FilterWorker:
			c.add("worker = ?", v)
		case store.FilterOwner:
			c.add("owner = ?", v)
		// The redundant IS NOT NULL lets SQLite use the partial indexes.
		case store.FilterParentTask:
			c.add("parent_task = ? AND parent_task IS NOT NULL", v.(uuid.UUID).String())
		case store.FilterTaskGroup:
			c.add("task_group = ? AND task_group IS NOT NULL", v.(uuid.UUID).String())
		case store.FilterExclusiveResource:
			c.add(member("exclusive_resources"), v)
		case store.FilterSharedResource:
			c.add(member("shared_resources"), v)
		case store.FilterReservedResource:
			c.add("("+member("exclusive_resources")+" OR "+member("shared_resources")+")", v, v)
		case store.FilterCreatedResource:
			c.add(member("created_resources"), v)
		case store.FilterCreatedGTE:
			c.add("created_at >= ?", microsOf(v.(time.Time), false))
		case store.FilterCreatedLTE:
			c.add("created_at <= ?", microsOf(v.(time.Time), true))
		case store.FilterStartedGTE:
			c.add("started_at >= ?", microsOf(v.(time.Time), false))
		case store.FilterStartedLTE:
			c.add("started_at <= ?", microsOf(v.(time.Time), true))
		case store.FilterFinishedGTE:
			c.add("finished_at >= ?", microsOf(v.(time.Time), false))
		case store.FilterFinishedLTE:
			c.add("finished_at <= ?", microsOf(v.(time.Time), true))
		case store.FilterScheduledGTE:
			c.add("scheduled_at >= ?", microsOf(v.(time.Time), false))
		case store.FilterScheduledLTE:
			c.add("scheduled_at <= ?", microsOf(v.(time.Time), true))
		default:
			return nil, fmt.Errorf("sqlite: no translation of filter field %d", term.Field)
		}
	}
	return c, nil
}

// ListTasks implements store.Store. The page and the total are read in one
// snapshot. The total, when the page does not tell it (a page shorter than
// the limit ends the set), comes from the maintained counts for a filter
// by state alone, and otherwise from a count that stops after
// store.CountBound+1 rows.
func (s *Store) ListTasks(ctx context.Context, f store.TaskFilter) ([]*store.Task, *int, error) {
	order, ok := orderBy[f.Ordering]
	if !ok {
		return nil, nil, fmt.Errorf("sqlite: unknown ordering %q", f.Ordering)
	}
	if f.Limit < 0 || f.Offset < 0 {
		return nil, nil, fmt.Errorf("sqlite: negative limit or offset (%d, %d)", f.Limit, f.Offset)
	}
	c, err := taskConditions(f)
	if err != nil {
		return nil, nil, err
	}
	where := c.where()
	query := `SELECT ` + taskColumnsWithChildren + ` FROM stint_tasks` + where + ` ORDER BY ` + order
	args := c.args
	if f.Limit > 0 || f.Offset > 0 {
		limit := -1
		if f.Limit > 0 {
			limit = f.Limit
		}
		query += ` LIMIT ? OFFSET ?`
		args = append(args[:len(args):len(args)], limit, f.Offset)
	}
	var (
		tasks []*store.Task
		total *int
	)
	err = s.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			t, err := scanTaskWithChildren(rows)
			if err != nil {
				return err
			}
			tasks = append(tasks, t)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		if (f.Limit == 0 || len(tasks) < f.Limit) && (len(tasks) > 0 || f.Offset == 0) {
			n := f.Offset + len(tasks)
			total = &n
			return nil
		}
		if f.OnlyStates() {
			total, err = countOfStates(ctx, tx, f.States)
			return err
		}
		total, err = boundedCount(ctx, tx, `SELECT 1 FROM stint_tasks`+where, c.args)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return tasks, total, nil
}

// countOfStates is how many tasks are in the given states (all states
// when none is given), from the maintained counts.
func countOfStates(ctx context.Context, tx *sql.Tx, states []store.State) (*int, error) {
	q, args := `SELECT coalesce(sum(n), 0) FROM stint_task_counts`, []any(nil)
	if len(states) > 0 {
		list := make([]string, len(states))
		for i, s := range states {
			list[i] = string(s)
		}
		b, err := json.Marshal(list)
		if err != nil {
			return nil, err
		}
		q += ` WHERE state IN (SELECT value FROM json_each(?))`
		args = append(args, string(b))
	}
	var n int
	if err := tx.QueryRowContext(ctx, q, args...).Scan(&n); err != nil {
		return nil, err
	}
	return &n, nil
}

// boundedCount counts the rows of query, up to store.CountBound: nil when
// there are more.
func boundedCount(ctx context.Context, tx *sql.Tx, query string, args []any) (*int, error) {
	var n int
	err := tx.QueryRowContext(ctx, `SELECT count(*) FROM (`+query+` LIMIT `+strconv.Itoa(store.CountBound+1)+`)`, args...).Scan(&n)
	if err != nil || n > store.CountBound {
		return nil, err
	}
	return &n, nil
}

// blockersPerResource bounds the blockers BlockedBy lists for one resource.
const blockersPerResource = 10

// BlockedBy implements store.Store.
func (s *Store) BlockedBy(ctx context.Context, id uuid.UUID) ([]store.Blocker, error) {
	var out []store.Blocker
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		type entry struct {
			resource  string
			seq       int64
			exclusive bool
		}
		rows, err := tx.QueryContext(ctx, `SELECT q.resource, q.seq, q.exclusive
			FROM stint_tasks t JOIN stint_task_resources q ON q.seq = t.seq
			WHERE t.id = ? AND NOT q.ready ORDER BY q.resource`, id.String())
		if err != nil {
			return err
		}
		var waiting []entry
		for rows.Next() {
			var e entry
			if err := rows.Scan(&e.resource, &e.seq, &e.exclusive); err != nil {
				rows.Close()
				return err
			}
			waiting = append(waiting, e)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, e := range waiting {
			// An exclusive entry waits for every earlier entry, a shared one
			// for the earlier exclusive ones, or, on a full counted
			// resource without them, for every earlier entry.
			q := `SELECT t.id FROM stint_task_resources b INDEXED BY stint_task_resources_exclusive
				JOIN stint_tasks t ON t.seq = b.seq
				WHERE b.resource = ? AND b.seq < ? AND b.exclusive ORDER BY b.seq LIMIT ?`
			every := `SELECT t.id FROM stint_task_resources b JOIN stint_tasks t ON t.seq = b.seq
				WHERE b.resource = ? AND b.seq < ? ORDER BY b.seq LIMIT ?`
			var full struct{ capacity, holders int }
			if e.exclusive {
				q = every
			} else {
				err := tx.QueryRowContext(ctx, `SELECT c.capacity, (SELECT count(*) FROM stint_task_resources q
						WHERE q.resource = ?1 AND q.ready)
					FROM stint_resources c WHERE c.name = ?1 AND NOT EXISTS (
						SELECT 1 FROM stint_task_resources x INDEXED BY stint_task_resources_exclusive
						WHERE x.resource = ?1 AND x.exclusive AND x.seq < ?2)`, e.resource, e.seq).
					Scan(&full.capacity, &full.holders)
				switch {
				case err == nil:
					q = every
				case !errors.Is(err, sql.ErrNoRows):
					return err
				}
			}
			ids, err := queryIDs(ctx, tx, q, e.resource, e.seq, blockersPerResource)
			if err != nil {
				return err
			}
			for _, b := range ids {
				out = append(out, store.Blocker{Task: b, Resource: e.resource, Capacity: full.capacity, Holders: full.holders})
			}
		}
		return nil
	})
	return out, err
}

func queryIDs(ctx context.Context, tx *sql.Tx, q string, args ...any) ([]uuid.UUID, error) {
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []uuid.UUID
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return nil, err
		}
		id, err := uuid.Parse(s)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

const workerColumns = `name, hostname, pid, versions, concurrency, started_at, last_heartbeat, missing`

func scanWorker(row scanner) (store.WorkerInfo, error) {
	var (
		w                  store.WorkerInfo
		versions           string
		started, heartbeat int64
	)
	if err := row.Scan(&w.Name, &w.Hostname, &w.PID, &versions, &w.Concurrency, &started, &heartbeat, &w.Missing); err != nil {
		return w, err
	}
	w.StartedAt, w.LastHeartbeat = timeOf(started), timeOf(heartbeat)
	if err := unmarshalColumn(versions, &w.Versions); err != nil {
		return w, fmt.Errorf("worker %s: versions: %w", w.Name, err)
	}
	w.CurrentTasks = []uuid.UUID{}
	return w, nil
}

// currentTasks fills the current tasks of workers: those running or
// canceling on them, in dispatch order, read through the partial index of
// active tasks. With one worker, only its tasks are read.
func currentTasks(ctx context.Context, tx *sql.Tx, workers []store.WorkerInfo) error {
	if len(workers) == 0 {
		return nil
	}
	q := `SELECT worker, id FROM stint_tasks WHERE state IN ('running', 'canceling') ORDER BY seq`
	var args []any
	if len(workers) == 1 {
		q = `SELECT worker, id FROM stint_tasks WHERE worker = ? AND state IN ('running', 'canceling') ORDER BY seq`
		args = append(args, workers[0].Name)
	}
	index := make(map[string]int, len(workers))
	for i, w := range workers {
		index[w.Name] = i
	}
	rows, err := tx.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var worker sql.NullString
		var id string
		if err := rows.Scan(&worker, &id); err != nil {
			return err
		}
		i, ok := index[worker.String]
		if !ok || !worker.Valid {
			continue
		}
		u, err := uuid.Parse(id)
		if err != nil {
			return err
		}
		workers[i].CurrentTasks = append(workers[i].CurrentTasks, u)
	}
	return rows.Err()
}

// Workers implements store.Store.
func (s *Store) Workers(ctx context.Context) ([]store.WorkerInfo, error) {
	var out []store.WorkerInfo
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `SELECT `+workerColumns+` FROM stint_workers ORDER BY name`)
		if err != nil {
			return err
		}
		for rows.Next() {
			w, err := scanWorker(rows)
			if err != nil {
				rows.Close()
				return err
			}
			out = append(out, w)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return currentTasks(ctx, tx, out)
	})
	return out, err
}

// Worker implements store.Store.
func (s *Store) Worker(ctx context.Context, name string) (*store.WorkerInfo, error) {
	var out *store.WorkerInfo
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		w, err := scanWorker(tx.QueryRowContext(ctx, `SELECT `+workerColumns+` FROM stint_workers WHERE name = ?`, name))
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		list := []store.WorkerInfo{w}
		if err := currentTasks(ctx, tx, list); err != nil {
			return err
		}
		out = &list[0]
		return nil
	})
	return out, err
}

// microsOf is t in the microseconds the columns hold. A bound with more
// precision is rounded inwards, as comparing the exact values would: a
// lower bound up, an upper bound down.
func microsOf(t time.Time, upper bool) int64 {
	us := t.UnixMicro()
	if !upper && t.Sub(time.UnixMicro(us)) > 0 {
		us++
	}
	return us
}
