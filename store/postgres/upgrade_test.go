package postgres_test

import (
	"context"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/internal/scheduling"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// TestUpgradeKeepsQueues fills the queues of a version-7 database (ready
// flags on every entry), some tasks running, upgrades it to the counted
// queues of version 8, and runs everything to the end: every claim agrees
// with the per-resource rule, nothing is left waiting, and the sweep finds
// nothing to repair.
func TestUpgradeKeepsQueues(t *testing.T) {
	ctx := context.Background()
	st, err := postgres.Open(ctx, pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.MigrateTo(ctx, 7); err != nil {
		t.Fatal(err)
	}

	type task struct {
		res     scheduling.Resources
		state   store.State
		attempt int
	}
	tasks := map[uuid.UUID]*task{}
	var order []uuid.UUID
	rng := rand.New(rand.NewPCG(7, 8))
	var batch []store.NewTask
	for range 200 {
		perm := rng.Perm(5)
		nx, ns := rng.IntN(2), rng.IntN(3)
		var ex, sh []string
		for _, i := range perm[:nx] {
			ex = append(ex, fmt.Sprintf("r%d", i))
		}
		for _, i := range perm[nx : nx+ns] {
			sh = append(sh, fmt.Sprintf("r%d", i))
		}
		slices.Sort(ex)
		slices.Sort(sh)
		nt := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.upgrade", Args: json.RawMessage(`{}`),
			ExclusiveResources: ex, SharedResources: sh}
		batch = append(batch, nt)
		tasks[nt.ID] = &task{res: scheduling.Resources{Exclusive: nt.ExclusiveResources, Shared: nt.SharedResources}, state: store.StateWaiting}
		order = append(order, nt.ID)
	}
	// Version 7's functions, called as a node of that version did: the
	// store's own calls take the arguments and read the columns of the
	// newest version.
	upgraded := false
	{
		var ids, names, args, owners, versions []string
		var parents, groups []*uuid.UUID
		var resTask []int32
		var res []string
		var resExclusive []bool
		for i, nt := range batch {
			ids, names, args, owners, versions = append(ids, nt.ID.String()), append(names, nt.Name), append(args, "{}"),
				append(owners, ""), append(versions, "{}")
			parents, groups = append(parents, nil), append(groups, nil)
			for _, r := range nt.ExclusiveResources {
				resTask, res, resExclusive = append(resTask, int32(i+1)), append(res, r), append(resExclusive, true)
			}
			for _, r := range nt.SharedResources {
				resTask, res, resExclusive = append(resTask, int32(i+1)), append(res, r), append(resExclusive, false)
			}
		}
		if _, err := st.Pool().Exec(ctx, `SELECT count(*) FROM stint_dispatch($1::uuid[], $2, $3, $4, $5, $6, $7, $8, $9, $10)`,
			ids, names, args, owners, versions, parents, groups, resTask, res, resExclusive); err != nil {
			t.Fatal(err)
		}
	}
	claimTasks := func() ([]*store.Task, error) {
		if upgraded {
			return st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.upgrade"}, Limit: 1000})
		}
		rows, err := st.Pool().Query(ctx, `SELECT id, attempt FROM stint_claim('w', '{test.upgrade}', 1000, '{}')`)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []*store.Task
		for rows.Next() {
			var c store.Task
			if err := rows.Scan(&c.ID, &c.Attempt); err != nil {
				return nil, err
			}
			out = append(out, &c)
		}
		return out, rows.Err()
	}
	finishTasks := func(outcomes []store.Outcome) error {
		if upgraded {
			_, err := st.Finish(ctx, outcomes)
			return err
		}
		var ids []uuid.UUID
		var attempts []int32
		var states []string
		for _, o := range outcomes {
			ids, attempts, states = append(ids, o.ID), append(attempts, int32(o.Attempt)), append(states, string(o.State))
		}
		_, err := st.Pool().Exec(ctx, `SELECT count(*) FROM stint_finish($1, $2, $3, $4, $5)`,
			ids, attempts, states, make([]*string, len(ids)), make([]*string, len(ids)))
		return err
	}

	// claim claims what is runnable, checking it against the rule, and
	// returns how many it claimed.
	claim := func(step string) int {
		t.Helper()
		var earlier []scheduling.Resources
		want := map[uuid.UUID]bool{}
		for _, id := range order {
			m := tasks[id]
			if m.state == store.StateWaiting && scheduling.Runnable(m.res, earlier, nil) {
				want[id] = true
			}
			if !m.state.Final() {
				earlier = append(earlier, m.res)
			}
		}
		got, err := claimTasks()
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range got {
			if !want[c.ID] {
				t.Fatalf("%s: task %+v claimed against the rule", step, tasks[c.ID].res)
			}
			tasks[c.ID].state, tasks[c.ID].attempt = store.StateRunning, c.Attempt
		}
		if len(got) != len(want) {
			t.Fatalf("%s: claimed %d tasks, want the %d runnable ones", step, len(got), len(want))
		}
		return len(got)
	}
	finish := func() {
		t.Helper()
		var outcomes []store.Outcome
		for _, id := range order {
			if m := tasks[id]; m.state == store.StateRunning {
				outcomes = append(outcomes, store.Outcome{ID: id, Attempt: m.attempt, State: store.StateCompleted})
				m.state = store.StateCompleted
			}
		}
		if err := finishTasks(outcomes); err != nil {
			t.Fatal(err)
		}
	}

	// Version 7: some tasks run, some have finished, one waiting is canceled.
	claim("version 7")
	finish()
	claim("version 7, second round")
	for _, id := range order {
		if tasks[id].state == store.StateWaiting {
			if _, err := st.Pool().Exec(ctx, `SELECT count(*) FROM stint_cancel($1)`, id); err != nil {
				t.Fatal(err)
			}
			tasks[id].state = store.StateCanceled
			break
		}
	}

	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if v, err := st.SchemaVersion(ctx); err != nil || v < 8 {
		t.Fatalf("schema version %d, %v", v, err)
	}
	upgraded = true
	for round := 0; ; round++ {
		finish()
		if claim(fmt.Sprintf("version 8, round %d", round)) == 0 {
			break
		}
	}
	for _, id := range order {
		if m := tasks[id]; !m.state.Final() {
			t.Fatalf("task %+v left %s", m.res, m.state)
		}
	}
	res, err := st.Sweep(ctx)
	if err != nil || res.Total() != 0 {
		t.Fatalf("sweep after the upgrade: %+v, %v", res, err)
	}
}
