package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/store"
)

// orderBy maps each ordering to its ORDER BY clause. Ties are broken by
// dispatch order (seq), in the ordering's direction; tasks that have not
// started or finished sort last in both directions.
var orderBy = map[store.Ordering]string{
	"":                       "created_at, seq",
	store.OrderCreated:       "created_at, seq",
	store.OrderCreatedDesc:   "created_at DESC, seq DESC",
	store.OrderStarted:       "started_at ASC NULLS LAST, seq",
	store.OrderStartedDesc:   "started_at DESC NULLS LAST, seq DESC",
	store.OrderFinished:      "finished_at ASC NULLS LAST, seq",
	store.OrderFinishedDesc:  "finished_at DESC NULLS LAST, seq DESC",
	store.OrderScheduled:     "scheduled_at ASC NULLS LAST, seq",
	store.OrderScheduledDesc: "scheduled_at DESC NULLS LAST, seq DESC",
}

// conditions accumulates the WHERE clause of a task list and its arguments.
// Values only ever travel as arguments: a condition names them as "$?",
// which add numbers.
type conditions struct {
	terms []string
	args  []any
}

// add appends a condition on one value; every "$?" in cond stands for it.
func (c *conditions) add(cond string, v any) {
	c.args = append(c.args, v)
	c.terms = append(c.terms, strings.ReplaceAll(cond, "$?", "$"+strconv.Itoa(len(c.args))))
}

// where returns the WHERE clause, empty when nothing filters.
func (c *conditions) where() string {
	if len(c.terms) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(c.terms, " AND ")
}

// addStates adds the condition on states. Known states are written into
// the statement rather than passed as an argument: the planner then
// proves the predicate of the partial index stint_tasks_incomplete in
// every plan, the generic plans of prepared statements included, and one
// state is an equality, for which that index returns the tasks in the
// default order (state = ANY of an array would be sorted). They are
// sorted, so that one set of states is one statement.
func (c *conditions) addStates(states []store.State) {
	known := make([]string, 0, len(states))
	for _, st := range states {
		if !st.Valid() {
			list := make([]string, len(states))
			for i, s := range states {
				list[i] = string(s)
			}
			c.add("state = ANY ($?)", list)
			return
		}
		known = append(known, "'"+string(st)+"'") // a known state: lowercase letters only
	}
	slices.Sort(known)
	known = slices.Compact(known)
	if len(known) == 1 {
		c.terms = append(c.terms, "state = "+known[0])
		return
	}
	c.terms = append(c.terms, "state IN ("+strings.Join(known, ", ")+")")
}

// taskConditions translates the filters of f, each term once.
func taskConditions(f store.TaskFilter) (*conditions, error) {
	c := &conditions{}
	for _, term := range f.Terms() {
		switch v := term.Value; term.Field {
		case store.FilterIDs:
			c.add("id = ANY ($?)", v)
		case store.FilterStates:
			c.addStates(v.([]store.State))
		case store.FilterName:
			c.add("name = $?", v)
		case store.FilterNameContains:
			// strpos, not LIKE: % and _ are literal.
			c.add("strpos(name, $?) > 0", v)
		case store.FilterWorker:
			c.add("worker = $?", v)
		case store.FilterOwner:
			c.add("owner = $?", v)
		// The redundant IS NOT NULL lets the planner match the partial
		// indexes whatever it can prove about the parameter.
		case store.FilterParentTask:
			c.add("parent_task = $? AND parent_task IS NOT NULL", v)
		case store.FilterTaskGroup:
			c.add("task_group = $? AND task_group IS NOT NULL", v)
		case store.FilterExclusiveResource:
			c.add("exclusive_resources @> $?::text[]", []string{v.(string)})
		case store.FilterSharedResource:
			c.add("shared_resources @> $?::text[]", []string{v.(string)})
		case store.FilterReservedResource:
			c.add("(exclusive_resources @> $?::text[] OR shared_resources @> $?::text[])", []string{v.(string)})
		case store.FilterCreatedResource:
			c.add("created_resources @> $?::text[]", []string{v.(string)})
		case store.FilterCreatedGTE:
			c.add("created_at >= $?", v)
		case store.FilterCreatedLTE:
			c.add("created_at <= $?", v)
		case store.FilterStartedGTE:
			c.add("started_at >= $?", v)
		case store.FilterStartedLTE:
			c.add("started_at <= $?", v)
		case store.FilterFinishedGTE:
			c.add("finished_at >= $?", v)
		case store.FilterFinishedLTE:
			c.add("finished_at <= $?", v)
		case store.FilterScheduledGTE:
			c.add("scheduled_at >= $?", v)
		case store.FilterScheduledLTE:
			c.add("scheduled_at <= $?", v)
		default:
			return nil, fmt.Errorf("postgres: no translation of filter field %d", term.Field)
		}
	}
	return c, nil
}

// ListTasks implements store.Store.
//
// The total, when the page does not tell it (a page shorter than the limit
// ends the set), comes from the maintained counts for a filter by state
// alone, and otherwise from a separate count that stops after
// store.CountBound+1 rows, with the same filters. count(*) OVER () in the
// page query would make PostgreSQL keep every selected row, with its JSON,
// in a window buffer before sorting them all, where the page query alone
// reads Offset+Limit rows of an index (or keeps them in a bounded top-N
// sort) and the count reads no JSON at all; it also reports no total for a
// page past the end. The page and the count are two statements, so the
// total may be off by the tasks dispatched or changed between them.
func (s *Store) ListTasks(ctx context.Context, f store.TaskFilter) ([]*store.Task, *int, error) {
	query, args, c, err := listQuery(f)
	if err != nil {
		return nil, nil, err
	}
	// A page of a filter by state alone reads the maintained counts in the
	// same round trip, for the total of a full page.
	batch := &pgx.Batch{}
	batch.Queue(query, args...)
	withCounts := f.Limit > 0 && f.OnlyStates()
	if withCounts {
		batch.Queue(countsQuery)
	}
	br := s.pool.SendBatch(ctx, batch)
	defer br.Close()
	rows, err := br.Query()
	if err != nil {
		return nil, nil, err
	}
	tasks, err := collectTaskColumns(rows, true)
	if err != nil {
		return nil, nil, err
	}
	var counts map[store.State]int
	if withCounts {
		if rows, err = br.Query(); err != nil {
			return nil, nil, err
		}
		if counts, err = s.scanCounts(ctx, rows); err != nil {
			return nil, nil, err
		}
	}
	if err := br.Close(); err != nil {
		return nil, nil, err
	}
	if (f.Limit == 0 || len(tasks) < f.Limit) && (len(tasks) > 0 || f.Offset == 0) {
		total := f.Offset + len(tasks)
		return tasks, &total, nil
	}
	if f.OnlyStates() {
		if counts == nil {
			if counts, err = s.CountByState(ctx); err != nil {
				return nil, nil, err
			}
		}
		total := countOfStates(counts, f.States)
		return tasks, &total, nil
	}
	total, err := s.boundedCount(ctx, `SELECT 1 FROM stint_tasks`+c.where(), c.args)
	if err != nil {
		return nil, nil, err
	}
	return tasks, total, nil
}

// ListTasksTx reads the tasks f selects through q, which may be the
// caller's own transaction: it sees what that transaction dispatched
// (DispatchTx) before it commits. It returns the page alone, without a
// total; their children's ids are filled as ListTasks fills them.
func ListTasksTx(ctx context.Context, q Querier, f store.TaskFilter) ([]*store.Task, error) {
	query, args, _, err := listQuery(f)
	if err != nil {
		return nil, err
	}
	rows, err := q.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	return collectTaskColumns(rows, true)
}

// listQuery returns the page query of f and its arguments, and the
// conditions of its filters alone.
func listQuery(f store.TaskFilter) (string, []any, *conditions, error) {
	order, ok := orderBy[f.Ordering]
	if !ok {
		return "", nil, nil, fmt.Errorf("postgres: unknown ordering %q", f.Ordering)
	}
	if f.Limit < 0 || f.Offset < 0 {
		return "", nil, nil, fmt.Errorf("postgres: negative limit or offset (%d, %d)", f.Limit, f.Offset)
	}
	c, err := taskConditions(f)
	if err != nil {
		return "", nil, nil, err
	}
	args := slices.Clone(c.args)
	query := `SELECT ` + taskColumnsWithChildren("stint_tasks") + ` FROM stint_tasks` + c.where() + ` ORDER BY ` + order
	// The first page of a list without parameters (unfiltered, or by
	// state, whose values are written out: what the web UI and `task list`
	// poll) has its limit written out too: a statement without
	// parameters is planned once per connection (its plan is the index's
	// order), where a parameter makes PostgreSQL plan every call, which
	// costs more than running the page. Other pages keep parameters: a
	// literal offset would make a prepared statement per page, and with
	// filters each call must be planned for its values (a generic plan that
	// knew the limit but not the filter might follow the index of the
	// order through the whole table for a filter that matches a few rows).
	if len(args) == 0 && f.Offset == 0 && f.Limit > 0 {
		return query + ` LIMIT ` + strconv.Itoa(f.Limit), args, c, nil
	}
	if f.Limit > 0 {
		args = append(args, f.Limit)
		query += ` LIMIT $` + strconv.Itoa(len(args))
	}
	if f.Offset > 0 {
		args = append(args, f.Offset)
		query += ` OFFSET $` + strconv.Itoa(len(args))
	}
	return query, args, c, nil
}

// boundedCount counts the rows of query, up to store.CountBound: nil when
// there are more.
func (s *Store) boundedCount(ctx context.Context, query string, args []any) (*int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT count(*) FROM (`+query+` LIMIT `+strconv.Itoa(store.CountBound+1)+`) counted`, args...).Scan(&n)
	if err != nil || n > store.CountBound {
		return nil, err
	}
	return &n, nil
}

// workerQuery selects workers with their current tasks: those running or
// canceling on them, in dispatch order, found through the index of active
// tasks by worker.
const workerQuery = `SELECT w.name, w.hostname, w.pid, w.versions, w.concurrency, w.started_at,
	w.last_heartbeat, w.missing,
	coalesce((SELECT array_agg(t.id ORDER BY t.seq) FROM stint_tasks t
		WHERE t.worker = w.name AND t.started_at IS NOT NULL AND t.finished_at IS NULL
		  AND t.state IN ('running', 'canceling')), '{}')
	FROM stint_workers w`

func scanWorker(row pgx.Row) (store.WorkerInfo, error) {
	var w store.WorkerInfo
	var versions []byte
	if err := row.Scan(&w.Name, &w.Hostname, &w.PID, &versions, &w.Concurrency, &w.StartedAt,
		&w.LastHeartbeat, &w.Missing, &w.CurrentTasks); err != nil {
		return w, err
	}
	if err := json.Unmarshal(versions, &w.Versions); err != nil {
		return w, fmt.Errorf("worker %s: versions: %w", w.Name, err)
	}
	return w, nil
}

// Workers implements store.Store.
func (s *Store) Workers(ctx context.Context) ([]store.WorkerInfo, error) {
	rows, err := s.pool.Query(ctx, workerQuery+` ORDER BY w.name`)
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, func(row pgx.CollectableRow) (store.WorkerInfo, error) { return scanWorker(row) })
}

// Worker implements store.Store.
func (s *Store) Worker(ctx context.Context, name string) (*store.WorkerInfo, error) {
	w, err := scanWorker(s.pool.QueryRow(ctx, workerQuery+` WHERE w.name = $1`, name))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	return &w, nil
}
