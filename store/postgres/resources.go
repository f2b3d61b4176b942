package postgres

import (
	"cmp"
	"context"
	"fmt"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"

	"github.com/stint-dev/stint/store"
)

// SetCapacity implements store.Store, through stint_set_capacity.
func (s *Store) SetCapacity(ctx context.Context, name string, capacity *int) error {
	if capacity != nil && *capacity < 1 {
		return fmt.Errorf("capacity %d: must be at least 1", *capacity)
	}
	_, err := s.pool.Exec(ctx, `SELECT stint_set_capacity($1, $2)`, name, capacity)
	return err
}

// CollectResources implements store.Store, through stint_collect_resources.
func (s *Store) CollectResources(ctx context.Context, limit int) (int, error) {
	var n int
	err := s.pool.QueryRow(ctx, `SELECT stint_collect_resources($1)`, limit).Scan(&n)
	return n, err
}

// resourceOrder is the ORDER BY of each ResourceOrdering.
var resourceOrder = map[store.ResourceOrdering]string{
	store.OrderResourceName:        "r.name",
	store.OrderResourceNameDesc:    "r.name DESC",
	store.OrderResourceWaiting:     "r.waiting, r.name",
	store.OrderResourceWaitingDesc: "r.waiting DESC, r.name",
	store.OrderResourceHolders:     "r.holders, r.name",
	store.OrderResourceHoldersDesc: "r.holders DESC, r.name",
}

// resourceSelection is the WHERE of Resources: $1 name, $2 a substring,
// $3 busy only.
const resourceSelection = `(r.holders > 0 OR r.waiting > 0 OR r.capacity IS NOT NULL)
	AND ($1 = '' OR r.name = $1) AND ($2 = '' OR strpos(r.name, $2) > 0)
	AND (NOT $3 OR r.holders > 0 OR r.waiting > 0)`

// Resources implements store.Store: the counters of the resources' rows,
// then the first holders and the first waiting task of each resource of
// the page.
func (s *Store) Resources(ctx context.Context, f store.ResourceFilter) (store.ResourcePage, error) {
	order, ok := resourceOrder[cmp.Or(f.Ordering, store.OrderResourceName)]
	if !ok {
		return store.ResourcePage{}, fmt.Errorf("unknown ordering %q", f.Ordering)
	}
	var page store.ResourcePage
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		limit := any(nil)
		if f.Limit > 0 {
			limit = f.Limit
		}
		rows, err := tx.Query(ctx, `SELECT r.name, r.capacity, r.holders, r.waiting FROM stint_resources r
			WHERE `+resourceSelection+` ORDER BY `+order+` LIMIT $4 OFFSET $5`,
			f.Name, f.NameContains, f.Busy, limit, f.Offset)
		if err != nil {
			return err
		}
		page.Resources, err = pgx.CollectRows(rows, func(row pgx.CollectableRow) (*store.Resource, error) {
			r := &store.Resource{}
			err := row.Scan(&r.Name, &r.Capacity, &r.Holders, &r.Waiting)
			return r, err
		})
		if err != nil {
			return err
		}
		if err := tx.QueryRow(ctx, `SELECT count(*), coalesce(sum(r.waiting), 0) FROM stint_resources r
			WHERE `+resourceSelection, f.Name, f.NameContains, f.Busy).Scan(&page.Count, &page.Waiting); err != nil {
			return err
		}
		return resourceTasks(ctx, tx, page.Resources, 1)
	})
	return page, err
}

// Resource implements store.Store.
func (s *Store) Resource(ctx context.Context, name string) (*store.Resource, error) {
	r := &store.Resource{Name: name}
	err := pgx.BeginTxFunc(ctx, s.pool, pgx.TxOptions{IsoLevel: pgx.RepeatableRead, AccessMode: pgx.ReadOnly}, func(tx pgx.Tx) error {
		err := tx.QueryRow(ctx, `SELECT capacity, holders, waiting FROM stint_resources WHERE name = $1`, name).
			Scan(&r.Capacity, &r.Holders, &r.Waiting)
		if err == pgx.ErrNoRows {
			return nil
		}
		if err != nil {
			return err
		}
		return resourceTasks(ctx, tx, []*store.Resource{r}, store.ResourceTaskLimit)
	})
	if err != nil {
		return nil, err
	}
	if r.WaitingTasks == nil {
		r.WaitingTasks = []store.ResourceTask{}
	}
	return r, nil
}

// resourceTasks fills the holders of each resource of list (up to
// store.ResourceTaskLimit), its first waiting tasks (up to waiting, and
// WaitingTasks only when waiting > 1) and when the first of them entered
// the queue.
func resourceTasks(ctx context.Context, tx pgx.Tx, list []*store.Resource, waiting int) error {
	byName := make(map[string]*store.Resource, len(list))
	names := make([]string, 0, len(list))
	for _, r := range list {
		r.HolderTasks = []store.ResourceTask{}
		if r.Busy() {
			byName[r.Name] = r
			names = append(names, r.Name)
		}
	}
	if len(names) == 0 {
		return nil
	}
	rows, err := tx.Query(ctx, `
		SELECT p.name, e.ready, e.task_id, t.owner, e.exclusive, greatest(t.created_at, coalesce(t.scheduled_at, t.created_at))
		FROM unnest($1::text[]) AS p(name)
		JOIN stint_resources r ON r.name = p.name
		CROSS JOIN LATERAL (
			(SELECT true AS ready, q.seq, q.task_id, q.exclusive FROM stint_task_resources q
			 WHERE q.resource = r.name AND q.seq <= r.frontier ORDER BY q.seq LIMIT $2)
			UNION ALL
			(SELECT false, q.seq, q.task_id, q.exclusive FROM stint_task_resources q
			 WHERE q.resource = r.name AND q.seq > r.frontier ORDER BY q.seq LIMIT $3)) e
		JOIN stint_tasks t ON t.id = e.task_id
		ORDER BY p.name, e.seq`, names, store.ResourceTaskLimit, waiting)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var name, owner string
		var ready, exclusive bool
		var id uuid.UUID
		var since time.Time
		if err := rows.Scan(&name, &ready, &id, &owner, &exclusive, &since); err != nil {
			return err
		}
		r := byName[name]
		task := store.ResourceTask{ID: id, Owner: owner, Exclusive: exclusive}
		switch {
		case ready:
			r.HolderTasks = append(r.HolderTasks, task)
		default:
			if r.OldestWaitingSince == nil {
				r.OldestWaitingSince = &since
			}
			if waiting > 1 {
				r.WaitingTasks = append(r.WaitingTasks, task)
			}
		}
	}
	return rows.Err()
}
