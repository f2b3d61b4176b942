package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// The statements of task groups, deletion and purge. Those that read tasks
// walk an index from a handful of keys (groups_plan_test.go checks them).
const (
	sqlDeleteTask = `DELETE FROM stint_tasks WHERE seq = ?`

	// sqlPurgeCandidates is the oldest finished tasks of one state, through
	// stint_tasks_finished (finished_at < ?2 implies the index's
	// finished_at IS NOT NULL).
	sqlPurgeCandidates = `SELECT seq, finished_at FROM stint_tasks
		WHERE state = ?1 AND finished_at < ?2 ORDER BY finished_at LIMIT ?3`
	sqlPurge = `DELETE FROM stint_tasks WHERE seq IN (SELECT value FROM json_each(?))`

	sqlCreateGroup = `INSERT INTO stint_task_groups (id, description, owner, created_at, all_tasks_dispatched)
		VALUES (?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING`
	sqlSealGroup = `UPDATE stint_task_groups SET all_tasks_dispatched = 1 WHERE id = ?`
	// sqlGroupIncomplete is the scheduled, waiting and running tasks of a
	// group, in dispatch order: what CancelTaskGroup cancels.
	sqlGroupIncomplete = `SELECT seq, id, state FROM stint_tasks
		WHERE task_group = ? AND task_group IS NOT NULL AND state IN ('scheduled', 'waiting', 'running') ORDER BY seq`

	sqlGroup = `SELECT id, description, owner, created_at, all_tasks_dispatched
		FROM stint_task_groups WHERE id = ?`
	// sqlGroupTasks is a group's tasks in dispatch order: the index of
	// groups holds (task_group, seq), so no sort.
	sqlGroupTasks = `SELECT id, state FROM stint_tasks
		WHERE task_group = ? AND task_group IS NOT NULL ORDER BY seq`
	// sqlGroupCounts counts the tasks of the groups in a JSON list, per
	// group and state.
	sqlGroupCounts = `SELECT task_group, state, count(*) FROM stint_tasks
		WHERE task_group IN (SELECT value FROM json_each(?)) AND task_group IS NOT NULL
		GROUP BY task_group, state`
)

// DeleteTask implements store.Store.
func (s *Store) DeleteTask(ctx context.Context, id uuid.UUID) error {
	return s.write(ctx, func(w *wtx) error {
		var (
			seq   int64
			state string
		)
		err := w.queryRow(sqlLookup, id.String()).Scan(&seq, &state)
		if errors.Is(err, sql.ErrNoRows) {
			return store.ErrNotFound
		}
		if err != nil {
			return err
		}
		if !store.State(state).Final() {
			return store.ErrNotFinal
		}
		_, err = w.exec(sqlDeleteTask, seq)
		return err
	})
}

// Purge implements store.Store in one write transaction: for each state
// asked, the Limit oldest tasks of that state, through stint_tasks_finished;
// of those, the Limit oldest are deleted. It reads at most Limit tasks per
// state, however many finished tasks there are, of any state.
func (s *Store) Purge(ctx context.Context, p store.PurgeParams) (int, error) {
	if p.Limit <= 0 {
		return 0, fmt.Errorf("sqlite: purge: limit %d, want more than 0", p.Limit)
	}
	var states []store.State
	for _, st := range p.States {
		if !st.Final() {
			return 0, fmt.Errorf("sqlite: purge: %q is not a final state", st)
		}
		if !slices.Contains(states, st) {
			states = append(states, st)
		}
	}
	if len(states) == 0 {
		return 0, nil
	}
	// Strictly before: a bound with more precision than the column's
	// microseconds is rounded up, as comparing the exact values would.
	before := microsOf(p.FinishedBefore, false)
	deleted := 0
	err := s.write(ctx, func(w *wtx) error {
		deleted = 0
		type candidate struct{ seq, finished int64 }
		var found []candidate
		for _, st := range states {
			rows, err := w.query(sqlPurgeCandidates, string(st), before, p.Limit)
			if err != nil {
				return err
			}
			for rows.Next() {
				var c candidate
				if err := rows.Scan(&c.seq, &c.finished); err != nil {
					rows.Close()
					return err
				}
				found = append(found, c)
			}
			if err := rows.Close(); err != nil {
				return err
			}
			if err := rows.Err(); err != nil {
				return err
			}
		}
		slices.SortFunc(found, func(a, b candidate) int {
			return cmp.Or(cmp.Compare(a.finished, b.finished), cmp.Compare(a.seq, b.seq))
		})
		found = found[:min(len(found), p.Limit)]
		if len(found) == 0 {
			return nil
		}
		seqs := make([]int64, len(found))
		for i, c := range found {
			seqs[i] = c.seq
		}
		list, err := json.Marshal(seqs)
		if err != nil {
			return err
		}
		res, err := w.exec(sqlPurge, string(list))
		if err != nil {
			return err
		}
		n, err := res.RowsAffected()
		deleted = int(n)
		return err
	})
	if err != nil {
		return 0, err
	}
	return deleted, nil
}

// CreateTaskGroup implements store.Store: the group's row and the tasks in
// one write transaction, the tasks inserted as Dispatch inserts them.
func (s *Store) CreateTaskGroup(ctx context.Context, g store.NewTaskGroup, tasks []store.NewTask) (*store.TaskGroup, []*store.Task, error) {
	for _, f := range []struct{ what, s string }{{"description", g.Description}, {"owner", g.Owner}} {
		if err := checkText("task group "+f.what, f.s); err != nil {
			return nil, nil, err
		}
	}
	rows := make([]prepared, len(tasks))
	for i, nt := range tasks {
		if nt.TaskGroup == nil || *nt.TaskGroup != g.ID {
			return nil, nil, fmt.Errorf("sqlite: create task group %s: task %d (%s) is not in the group", g.ID, i, nt.ID)
		}
		p, err := prepareNew(nt)
		if err != nil {
			return nil, nil, err
		}
		rows[i] = p
	}
	var (
		created    int64
		dispatched []*store.Task
	)
	err := s.write(ctx, func(w *wtx) error {
		dispatched = make([]*store.Task, 0, len(rows))
		created = w.now
		// Created open, and sealed after its tasks, which a sealed group
		// would refuse.
		res, err := w.exec(sqlCreateGroup, g.ID.String(), g.Description, g.Owner, w.now, false)
		if err != nil {
			return err
		}
		if n, err := res.RowsAffected(); err != nil {
			return err
		} else if n == 0 {
			return fmt.Errorf("sqlite: task group %s: %w", g.ID, store.ErrExists)
		}
		for _, p := range rows {
			t, err := w.insertTask(p)
			if err != nil {
				return err
			}
			if t.UnblockedAt != nil && !t.Deduplicated {
				w.wake = true
			}
			dispatched = append(dispatched, t)
		}
		if g.AllTasksDispatched {
			return w.seal(g.ID)
		}
		return nil
	})
	if err != nil {
		return nil, nil, err
	}
	// The group as TaskGroup reads it after the commit: its tasks are the
	// ones just inserted, waiting or scheduled (nothing ran between). A
	// task deduplicated (an existing one with its unique key, returned in
	// its place) did not join it.
	group := &store.TaskGroup{
		ID: g.ID, Description: g.Description, Owner: g.Owner, CreatedAt: timeOf(created),
		AllTasksDispatched: g.AllTasksDispatched, Counts: map[store.State]int{}, Tasks: []uuid.UUID{},
	}
	for _, t := range dispatched {
		if t.Deduplicated {
			continue
		}
		group.Tasks = append(group.Tasks, t.ID)
		group.Counts[t.State]++
	}
	return group, dispatched, nil
}

// queryer is a read or write transaction.
type queryer interface {
	QueryRowContext(ctx context.Context, q string, args ...any) *sql.Row
	QueryContext(ctx context.Context, q string, args ...any) (*sql.Rows, error)
}

func scanGroupRow(row scanner) (*store.TaskGroup, error) {
	var (
		g       store.TaskGroup
		id      string
		created int64
	)
	if err := row.Scan(&id, &g.Description, &g.Owner, &created, &g.AllTasksDispatched); err != nil {
		return nil, err
	}
	var err error
	if g.ID, err = uuid.Parse(id); err != nil {
		return nil, fmt.Errorf("task group id %q: %w", id, err)
	}
	g.CreatedAt = timeOf(created)
	g.Counts = map[store.State]int{}
	return &g, nil
}

// readGroup reads a group with its counts and task ids, in one pass over
// its tasks in tx's snapshot.
func readGroup(ctx context.Context, tx queryer, id uuid.UUID) (*store.TaskGroup, error) {
	g, err := scanGroupRow(tx.QueryRowContext(ctx, sqlGroup, id.String()))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	if err != nil {
		return nil, err
	}
	rows, err := tx.QueryContext(ctx, sqlGroupTasks, id.String())
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	g.Tasks = []uuid.UUID{}
	for rows.Next() {
		var taskID, state string
		if err := rows.Scan(&taskID, &state); err != nil {
			return nil, err
		}
		u, err := uuid.Parse(taskID)
		if err != nil {
			return nil, err
		}
		g.Tasks = append(g.Tasks, u)
		g.Counts[store.State(state)]++
	}
	return g, rows.Err()
}

// TaskGroup implements store.Store.
func (s *Store) TaskGroup(ctx context.Context, id uuid.UUID) (*store.TaskGroup, error) {
	var g *store.TaskGroup
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var err error
		g, err = readGroup(ctx, tx, id)
		return err
	})
	return g, err
}

// ListTaskGroups implements store.Store. The page, its groups' counts (one
// GROUP BY over the page's groups, through stint_tasks_group) and the total
// are read in one snapshot; the total comes from a separate count that
// stops after store.CountBound+1 groups, run only when the page does not
// tell it, as in ListTasks.
func (s *Store) ListTaskGroups(ctx context.Context, f store.TaskGroupFilter) ([]*store.TaskGroup, *int, error) {
	if f.Limit < 0 || f.Offset < 0 {
		return nil, nil, fmt.Errorf("sqlite: negative limit or offset (%d, %d)", f.Limit, f.Offset)
	}
	c := groupConditions(f)
	where := c.where()
	query := groupPageQuery(where, f.Limit > 0 || f.Offset > 0)
	args := c.args
	if f.Limit > 0 || f.Offset > 0 {
		limit := -1
		if f.Limit > 0 {
			limit = f.Limit
		}
		args = append(args[:len(args):len(args)], limit, f.Offset)
	}
	var (
		groups []*store.TaskGroup
		total  *int
	)
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		groups = nil
		rows, err := tx.QueryContext(ctx, query, args...)
		if err != nil {
			return err
		}
		defer rows.Close()
		byID := map[string]*store.TaskGroup{}
		var ids []string
		for rows.Next() {
			g, err := scanGroupRow(rows)
			if err != nil {
				return err
			}
			groups = append(groups, g)
			ids = append(ids, g.ID.String())
			byID[g.ID.String()] = g
		}
		if err := rows.Err(); err != nil {
			return err
		}
		rows.Close()
		if len(ids) > 0 {
			list, err := json.Marshal(ids)
			if err != nil {
				return err
			}
			counts, err := tx.QueryContext(ctx, sqlGroupCounts, string(list))
			if err != nil {
				return err
			}
			defer counts.Close()
			for counts.Next() {
				var (
					group, state string
					n            int
				)
				if err := counts.Scan(&group, &state, &n); err != nil {
					return err
				}
				if g := byID[group]; g != nil {
					g.Counts[store.State(state)] = n
				}
			}
			if err := counts.Err(); err != nil {
				return err
			}
		}
		if (f.Limit == 0 || len(groups) < f.Limit) && (len(groups) > 0 || f.Offset == 0) {
			n := f.Offset + len(groups)
			total = &n
			return nil
		}
		total, err = boundedCount(ctx, tx, `SELECT 1 FROM stint_task_groups`+where, c.args)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	return groups, total, nil
}

// groupConditions translates the filters of f.
func groupConditions(f store.TaskGroupFilter) *conditions {
	c := &conditions{}
	if f.Owner != "" {
		c.add("owner = ?", f.Owner)
	}
	if f.AllTasksDispatched != nil {
		c.add("all_tasks_dispatched = ?", *f.AllTasksDispatched)
	}
	return c
}

// groupPageQuery is a page of the group list, newest first, walking
// stint_task_groups_created (or stint_task_groups_owner, for one owner's)
// backwards; paged adds the LIMIT and OFFSET arguments.
func groupPageQuery(where string, paged bool) string {
	q := `SELECT id, description, owner, created_at, all_tasks_dispatched FROM stint_task_groups` + where +
		` ORDER BY created_at DESC, id DESC`
	if paged {
		q += ` LIMIT ? OFFSET ?`
	}
	return q
}

// SealTaskGroup implements store.Store.
func (s *Store) SealTaskGroup(ctx context.Context, id uuid.UUID) (*store.TaskGroup, error) {
	var g *store.TaskGroup
	err := s.write(ctx, func(w *wtx) error {
		if err := w.seal(id); err != nil {
			return err
		}
		var err error
		g, err = readGroup(w.ctx, w.tx, id)
		return err
	})
	return g, err
}

// seal sets a group's AllTasksDispatched, or returns store.ErrNotFound.
func (w *wtx) seal(id uuid.UUID) error {
	res, err := w.exec(sqlSealGroup, id.String())
	if err != nil {
		return err
	}
	n, err := res.RowsAffected()
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrNotFound
	}
	return nil
}

// CancelTaskGroup implements store.Store in one write transaction, which
// nothing else interleaves with: each scheduled or waiting task of the
// group becomes canceled and each running one canceling, as Cancel does,
// and the waiting ones leave their queues in one release, in dispatch
// order.
func (s *Store) CancelTaskGroup(ctx context.Context, id uuid.UUID) (*store.TaskGroup, error) {
	var g *store.TaskGroup
	err := s.write(ctx, func(w *wtx) error {
		if err := w.seal(id); err != nil {
			return err
		}
		type member struct {
			seq   int64
			id    uuid.UUID
			state store.State
		}
		var incomplete []member
		rows, err := w.query(sqlGroupIncomplete, id.String())
		if err != nil {
			return err
		}
		for rows.Next() {
			var (
				m      member
				taskID string
			)
			if err := rows.Scan(&m.seq, &taskID, &m.state); err != nil {
				rows.Close()
				return err
			}
			if m.id, err = uuid.Parse(taskID); err != nil {
				rows.Close()
				return err
			}
			incomplete = append(incomplete, m)
		}
		if err := rows.Close(); err != nil {
			return err
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var release []int64
		for _, m := range incomplete {
			switch m.state {
			case store.StateScheduled, store.StateWaiting:
				if _, err := w.exec(sqlCancelWaiting, w.now, m.seq); err != nil {
					return err
				}
				release = append(release, m.seq)
				w.change(m.id, store.StateCanceled)
			case store.StateRunning:
				if _, err := w.exec(sqlCancelRunning, w.now, m.seq); err != nil {
					return err
				}
				w.change(m.id, store.StateCanceling)
			}
		}
		if err := w.release(release); err != nil {
			return err
		}
		g, err = readGroup(w.ctx, w.tx, id)
		return err
	})
	return g, err
}
