package postgres

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/store"
)

// finalStates are the final states, as the SQL statements name them.
var finalStates = func() []string {
	var out []string
	for _, s := range store.States {
		if s.Final() {
			out = append(out, string(s))
		}
	}
	return out
}()

// DeleteTask implements store.Store. One statement: the delete and, when it
// deleted nothing, the state that tells why, read in the same snapshot. A
// task that the snapshot shows final but that the delete did not find was
// deleted meanwhile by someone else: it is not found.
func (s *Store) DeleteTask(ctx context.Context, id uuid.UUID) error {
	var (
		deleted bool
		state   *string
	)
	err := s.pool.QueryRow(ctx, `WITH deleted AS (
			DELETE FROM stint_tasks WHERE id = $1 AND state = ANY ($2) RETURNING id)
		SELECT EXISTS (SELECT 1 FROM deleted), (SELECT state FROM stint_tasks WHERE id = $1)`,
		id, finalStates).Scan(&deleted, &state)
	switch {
	case err != nil:
		return err
	case deleted:
		return nil
	case state == nil || store.State(*state).Final():
		return store.ErrNotFound
	}
	return store.ErrNotFinal
}

// purgeStates checks the states of p and returns them without duplicates.
func purgeStates(p store.PurgeParams) ([]string, error) {
	if p.Limit <= 0 {
		return nil, fmt.Errorf("postgres: purge: limit %d, want more than 0", p.Limit)
	}
	var states []string
	seen := map[store.State]bool{}
	for _, st := range p.States {
		if !st.Final() {
			return nil, fmt.Errorf("postgres: purge: %q is not a final state", st)
		}
		if !seen[st] {
			seen[st] = true
			states = append(states, string(st))
		}
	}
	return states, nil
}

// Purge implements store.Store in one statement. For each state asked, it
// walks stint_tasks_finished from the oldest task of that state, up to the
// limit; of those it deletes the limit oldest. It reads at most Limit tasks
// per state, however many finished tasks there are, of any state.
func (s *Store) Purge(ctx context.Context, p store.PurgeParams) (int, error) {
	states, err := purgeStates(p)
	if err != nil || len(states) == 0 {
		return 0, err
	}
	tag, err := s.pool.Exec(ctx, `DELETE FROM stint_tasks WHERE id IN (
			SELECT o.id FROM unnest($1::text[]) AS s(state)
			CROSS JOIN LATERAL (
				SELECT t.id, t.finished_at FROM stint_tasks t
				WHERE t.state = s.state AND t.finished_at < $2 AND t.finished_at IS NOT NULL
				ORDER BY t.finished_at LIMIT $3) o
			ORDER BY o.finished_at, o.id LIMIT $3)`,
		states, p.FinishedBefore, p.Limit)
	if err != nil {
		return 0, err
	}
	return int(tag.RowsAffected()), nil
}

// groupColumns are the columns of a group, then its tasks' ids and states
// in dispatch order, in the order scanGroup reads them. The tasks are read
// once, in the statement's snapshot, so the counts and the ids agree.
const groupColumns = `g.id, g.description, g.owner, g.created_at, g.all_tasks_dispatched, m.ids, m.states`

// groupMembers is the lateral join that reads the tasks of the group g
// through stint_tasks_group.
const groupMembers = ` CROSS JOIN LATERAL (
	SELECT coalesce(array_agg(t.id ORDER BY t.seq), '{}') AS ids,
		coalesce(array_agg(t.state ORDER BY t.seq), '{}') AS states
	FROM stint_tasks t WHERE t.task_group = g.id AND t.task_group IS NOT NULL) m`

func scanGroup(row pgx.Row) (*store.TaskGroup, error) {
	var (
		g      store.TaskGroup
		states []string
	)
	if err := row.Scan(&g.ID, &g.Description, &g.Owner, &g.CreatedAt, &g.AllTasksDispatched, &g.Tasks, &states); err != nil {
		return nil, err
	}
	g.Counts = make(map[store.State]int)
	for _, st := range states {
		g.Counts[store.State(st)]++
	}
	return &g, nil
}

// CreateTaskGroup implements store.Store: the group's row and the tasks, in
// one transaction, the tasks through DispatchTx.
func (s *Store) CreateTaskGroup(ctx context.Context, g store.NewTaskGroup, tasks []store.NewTask) (*store.TaskGroup, []*store.Task, error) {
	for i, t := range tasks {
		if t.TaskGroup == nil || *t.TaskGroup != g.ID {
			return nil, nil, fmt.Errorf("postgres: create task group %s: task %d (%s) is not in the group", g.ID, i, t.ID)
		}
	}
	var (
		created    time.Time
		dispatched []*store.Task
	)
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		// Created open, and sealed after its tasks, which stint_dispatch
		// refuses in a sealed group.
		err := tx.QueryRow(ctx, `INSERT INTO stint_task_groups (id, description, owner, all_tasks_dispatched)
			VALUES ($1, $2, $3, false) ON CONFLICT (id) DO NOTHING RETURNING created_at`,
			g.ID, g.Description, g.Owner).Scan(&created)
		if errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: task group %s: %w", g.ID, store.ErrExists)
		}
		if err != nil {
			return classify(err)
		}
		if dispatched, err = DispatchTx(ctx, tx, tasks); err != nil || !g.AllTasksDispatched {
			return err
		}
		_, err = tx.Exec(ctx, `UPDATE stint_task_groups SET all_tasks_dispatched = true WHERE id = $1`, g.ID)
		return err
	})
	if err != nil {
		return nil, nil, err
	}
	// The group as TaskGroup would read it at the commit: its tasks are the
	// ones just dispatched, all waiting (no other transaction saw them yet).
	group := &store.TaskGroup{
		ID: g.ID, Description: g.Description, Owner: g.Owner, CreatedAt: created,
		AllTasksDispatched: g.AllTasksDispatched, Counts: map[store.State]int{}, Tasks: make([]uuid.UUID, len(dispatched)),
	}
	group.Tasks = group.Tasks[:0]
	for _, t := range dispatched {
		if t.Deduplicated {
			continue // an incomplete task that had its unique key: not in the group
		}
		group.Tasks = append(group.Tasks, t.ID)
		group.Counts[t.State]++
	}
	return group, dispatched, nil
}

// TaskGroup implements store.Store in one statement.
func (s *Store) TaskGroup(ctx context.Context, id uuid.UUID) (*store.TaskGroup, error) {
	g, err := scanGroup(s.pool.QueryRow(ctx, `SELECT `+groupColumns+` FROM stint_task_groups g`+groupMembers+` WHERE g.id = $1`, id))
	if errors.Is(err, pgx.ErrNoRows) {
		return nil, store.ErrNotFound
	}
	return g, err
}

// ListTaskGroups implements store.Store. The page and its groups' counts
// are one statement: a GROUP BY per group of the page, through
// stint_tasks_group. The total comes from a separate count that stops
// after store.CountBound+1 groups, run only when the page does not tell it,
// as in ListTasks.
func (s *Store) ListTaskGroups(ctx context.Context, f store.TaskGroupFilter) ([]*store.TaskGroup, *int, error) {
	if f.Limit < 0 || f.Offset < 0 {
		return nil, nil, fmt.Errorf("postgres: negative limit or offset (%d, %d)", f.Limit, f.Offset)
	}
	c := &conditions{}
	if f.Owner != "" {
		c.add("g.owner = $?", f.Owner)
	}
	if f.AllTasksDispatched != nil {
		c.add("g.all_tasks_dispatched = $?", *f.AllTasksDispatched)
	}
	where, args := c.where(), c.args
	page := `SELECT g.id, g.description, g.owner, g.created_at, g.all_tasks_dispatched
		FROM stint_task_groups g` + where + ` ORDER BY g.created_at DESC, g.id DESC`
	if f.Limit > 0 {
		args = append(args, f.Limit)
		page += ` LIMIT $` + strconv.Itoa(len(args))
	}
	if f.Offset > 0 {
		args = append(args, f.Offset)
		page += ` OFFSET $` + strconv.Itoa(len(args))
	}
	rows, err := s.pool.Query(ctx, `WITH page AS (`+page+`)
		SELECT p.id, p.description, p.owner, p.created_at, p.all_tasks_dispatched, n.state, n.count
		FROM page p LEFT JOIN LATERAL (
			SELECT t.state, count(*) AS count FROM stint_tasks t
			WHERE t.task_group = p.id AND t.task_group IS NOT NULL GROUP BY t.state) n ON true
		ORDER BY p.created_at DESC, p.id DESC`, args...)
	if err != nil {
		return nil, nil, err
	}
	defer rows.Close()
	var groups []*store.TaskGroup
	for rows.Next() {
		var (
			g     store.TaskGroup
			state *string
			n     *int
		)
		if err := rows.Scan(&g.ID, &g.Description, &g.Owner, &g.CreatedAt, &g.AllTasksDispatched, &state, &n); err != nil {
			return nil, nil, err
		}
		if k := len(groups); k == 0 || groups[k-1].ID != g.ID {
			g.Counts = map[store.State]int{}
			groups = append(groups, &g)
		}
		if state != nil {
			groups[len(groups)-1].Counts[store.State(*state)] = *n
		}
	}
	if err := rows.Err(); err != nil {
		return nil, nil, err
	}
	rows.Close()
	if (f.Limit == 0 || len(groups) < f.Limit) && (len(groups) > 0 || f.Offset == 0) {
		total := f.Offset + len(groups)
		return groups, &total, nil
	}
	total, err := s.boundedCount(ctx, `SELECT 1 FROM stint_task_groups g`+where, c.args)
	if err != nil {
		return nil, nil, err
	}
	return groups, total, nil
}

// SealTaskGroup implements store.Store: the update, then, in the same
// transaction, the group read by a second statement. The update waits for
// the dispatches into the group that hold its row (stint_dispatch locks it),
// and the read's snapshot, taken after, sees them: the group returned holds
// every task that joined it before the seal. (A read in the update's own
// statement would use the snapshot taken before the wait.)
func (s *Store) SealTaskGroup(ctx context.Context, id uuid.UUID) (*store.TaskGroup, error) {
	var g *store.TaskGroup
	err := pgx.BeginFunc(ctx, s.pool, func(tx pgx.Tx) error {
		tag, err := tx.Exec(ctx, `UPDATE stint_task_groups SET all_tasks_dispatched = true WHERE id = $1`, id)
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return store.ErrNotFound
		}
		g, err = scanGroup(tx.QueryRow(ctx, `SELECT `+groupColumns+` FROM stint_task_groups g`+groupMembers+` WHERE g.id = $1`, id))
		return err
	})
	return g, err
}

// cancelGroupCalls bounds the calls of stint_cancel_group of one
// CancelTaskGroup. A call asks for another only when a task of the group
// changed state while it ran, which happens a few times at most.
const cancelGroupCalls = 1000

// CancelTaskGroup implements store.Store with stint_cancel_group, called
// until it missed no task of the group: a task claimed while it ran is
// canceled by the next call, in a transaction of its own (see migration
// 0004). A call that fails on a serialization failure or a deadlock is
// retried, as Cancel does.
func (s *Store) CancelTaskGroup(ctx context.Context, id uuid.UUID) (*store.TaskGroup, error) {
	retries := 0
	for calls := 0; calls < cancelGroupCalls; calls++ {
		var missed int
		err := s.pool.QueryRow(ctx, `SELECT stint_cancel_group($1)`, id).Scan(&missed)
		if c := pgCode(err); (c == "40001" || c == "40P01") && retries < 10 {
			retries++
			continue
		}
		if err != nil {
			return nil, err
		}
		if missed < 0 {
			return nil, store.ErrNotFound
		}
		if missed == 0 {
			return s.TaskGroup(ctx, id)
		}
	}
	return nil, fmt.Errorf("postgres: cancel task group %s: its tasks kept changing state through %d calls", id, cancelGroupCalls)
}
