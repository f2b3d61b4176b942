package sqlite

import (
	"cmp"
	"context"
	"database/sql"
	"errors"
	"fmt"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// SetCapacity implements store.Store: it writes or deletes the resource's
// row of stint_resources and promotes what the new capacity lets start.
func (s *Store) SetCapacity(ctx context.Context, name string, capacity *int) error {
	if err := checkText("resource", name); err != nil {
		return err
	}
	if capacity != nil && *capacity < 1 {
		return fmt.Errorf("capacity %d: must be at least 1", *capacity)
	}
	return s.write(ctx, func(w *wtx) error {
		var err error
		if capacity == nil {
			_, err = w.exec(`DELETE FROM stint_resources WHERE name = ?1`, name)
		} else {
			_, err = w.exec(`INSERT INTO stint_resources (name, capacity) VALUES (?1, ?2)
				ON CONFLICT (name) DO UPDATE SET capacity = excluded.capacity`, name, *capacity)
		}
		if err != nil {
			return err
		}
		_, err = w.promote([]string{name})
		return err
	})
}

// CollectResources implements store.Store. The engine keeps nothing of a
// resource beyond its queue entries and its capacity: there is nothing to
// collect.
func (s *Store) CollectResources(context.Context, int) (int, error) { return 0, nil }

// resourceOrder is the ORDER BY of each ResourceOrdering.
var resourceOrder = map[store.ResourceOrdering]string{
	store.OrderResourceName:        "name",
	store.OrderResourceNameDesc:    "name DESC",
	store.OrderResourceWaiting:     "waiting, name",
	store.OrderResourceWaitingDesc: "waiting DESC, name",
	store.OrderResourceHolders:     "holders, name",
	store.OrderResourceHoldersDesc: "holders DESC, name",
}

// sqlResources is every resource with queue entries or a capacity, with
// its counts, as the table "resources" (name, capacity, holders,
// waiting), for the selection of ?1 (a name), ?2 (a substring) and ?3
// (busy only). It reads every queue entry: the view is for operators, not
// for the task path.
const sqlResources = `WITH queues AS (
		SELECT resource AS name, sum(ready) AS holders, sum(NOT ready) AS waiting
		FROM stint_task_resources GROUP BY resource
	), resources AS (
		SELECT q.name, c.capacity, q.holders, q.waiting FROM queues q LEFT JOIN stint_resources c ON c.name = q.name
		UNION ALL
		SELECT c.name, c.capacity, 0, 0 FROM stint_resources c WHERE c.name NOT IN (SELECT name FROM queues)
	)
	SELECT name, capacity, holders, waiting FROM resources
	WHERE (?1 = '' OR name = ?1) AND (?2 = '' OR instr(name, ?2) > 0) AND (NOT ?3 OR holders > 0 OR waiting > 0)`

// Resources implements store.Store.
func (s *Store) Resources(ctx context.Context, f store.ResourceFilter) (store.ResourcePage, error) {
	order, ok := resourceOrder[cmp.Or(f.Ordering, store.OrderResourceName)]
	if !ok {
		return store.ResourcePage{}, fmt.Errorf("unknown ordering %q", f.Ordering)
	}
	limit := -1
	if f.Limit > 0 {
		limit = f.Limit
	}
	var page store.ResourcePage
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		page = store.ResourcePage{}
		rows, err := tx.QueryContext(ctx, sqlResources+` ORDER BY `+order+` LIMIT ?4 OFFSET ?5`,
			f.Name, f.NameContains, f.Busy, limit, f.Offset)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			r := &store.Resource{}
			var capacity sql.NullInt64
			if err := rows.Scan(&r.Name, &capacity, &r.Holders, &r.Waiting); err != nil {
				return err
			}
			if capacity.Valid {
				r.Capacity = new(int(capacity.Int64))
			}
			page.Resources = append(page.Resources, r)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		if err := tx.QueryRowContext(ctx, `SELECT count(*), coalesce(sum(waiting), 0) FROM (`+sqlResources+`)`,
			f.Name, f.NameContains, f.Busy).Scan(&page.Count, &page.Waiting); err != nil {
			return err
		}
		for _, r := range page.Resources {
			if err := resourceTasks(ctx, tx, r, 1); err != nil {
				return err
			}
		}
		return nil
	})
	return page, err
}

// Resource implements store.Store.
func (s *Store) Resource(ctx context.Context, name string) (*store.Resource, error) {
	r := &store.Resource{Name: name}
	err := s.readTx(ctx, func(tx *sql.Tx) error {
		var capacity sql.NullInt64
		err := tx.QueryRowContext(ctx, `SELECT capacity FROM stint_resources WHERE name = ?1`, name).Scan(&capacity)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		if capacity.Valid {
			r.Capacity = new(int(capacity.Int64))
		}
		if err := tx.QueryRowContext(ctx, `SELECT coalesce(sum(ready), 0), coalesce(sum(NOT ready), 0)
			FROM stint_task_resources WHERE resource = ?1`, name).Scan(&r.Holders, &r.Waiting); err != nil {
			return err
		}
		return resourceTasks(ctx, tx, r, store.ResourceTaskLimit)
	})
	if err != nil {
		return nil, err
	}
	if r.WaitingTasks == nil {
		r.WaitingTasks = []store.ResourceTask{}
	}
	return r, nil
}

// resourceTasks fills r's holders (up to store.ResourceTaskLimit), its first
// waiting tasks (up to waiting; WaitingTasks only when waiting > 1) and when
// the first of them entered the queue.
func resourceTasks(ctx context.Context, tx *sql.Tx, r *store.Resource, waiting int) error {
	r.HolderTasks = []store.ResourceTask{}
	if !r.Busy() {
		return nil
	}
	rows, err := tx.QueryContext(ctx, `
		SELECT * FROM (SELECT 1 AS ready, q.seq, t.id, t.owner, q.exclusive, max(t.created_at, coalesce(t.scheduled_at, 0))
			FROM stint_task_resources q JOIN stint_tasks t ON t.seq = q.seq
			WHERE q.resource = ?1 AND q.ready ORDER BY q.seq LIMIT ?2)
		UNION ALL
		SELECT * FROM (SELECT 0, q.seq, t.id, t.owner, q.exclusive, max(t.created_at, coalesce(t.scheduled_at, 0))
			FROM stint_task_resources q INDEXED BY stint_task_resources_waiting JOIN stint_tasks t ON t.seq = q.seq
			WHERE q.resource = ?1 AND NOT q.ready ORDER BY q.seq LIMIT ?3)`, r.Name, store.ResourceTaskLimit, waiting)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var ready, exclusive bool
		var seq, since int64
		var id, owner string
		if err := rows.Scan(&ready, &seq, &id, &owner, &exclusive, &since); err != nil {
			return err
		}
		task := store.ResourceTask{ID: uuid.MustParse(id), Owner: owner, Exclusive: exclusive}
		switch {
		case ready:
			r.HolderTasks = append(r.HolderTasks, task)
		default:
			if r.OldestWaitingSince == nil {
				r.OldestWaitingSince = new(timeOf(since))
			}
			if waiting > 1 {
				r.WaitingTasks = append(r.WaitingTasks, task)
			}
		}
	}
	return rows.Err()
}
