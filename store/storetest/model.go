package storetest

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"sort"
	"sync"
	"testing"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/scheduling"
	"github.com/stint-dev/stint/store"
)

// testAgreesWithTheRule drives the store with random batches of dispatches,
// claims and finishes, and checks after every step that what it lets run is
// exactly what the resource rule (package scheduling) says is runnable. The
// last trials give half the resources a capacity of 1 to 3.
func testAgreesWithTheRule(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	type modelTask struct {
		res     scheduling.Resources
		state   store.State
		attempt int
	}
	for trial := range 5 {
		rng := rand.New(rand.NewPCG(uint64(trial), 1))
		var resources []string // each trial has its own, as it leaves tasks behind
		caps := scheduling.Capacities{}
		for i := range 6 {
			resources = append(resources, fmt.Sprintf("t%d-r%d", trial, i))
			if trial >= 3 && i%2 == 0 {
				caps[resources[i]] = 1 + rng.IntN(3)
				setCapacity(t, st, resources[i], caps[resources[i]])
			}
		}
		tasks := map[uuid.UUID]*modelTask{}
		var order []uuid.UUID
		name := fmt.Sprintf("test.model%d", trial)
		for step := range 40 {
			if rng.IntN(3) == 0 {
				var batch []store.NewTask
				for range 1 + rng.IntN(20) {
					perm := rng.Perm(len(resources))
					nx, ns := rng.IntN(3), rng.IntN(3)
					if len(caps) > 0 && rng.IntN(5) > 0 {
						nx, ns = 0, 1+rng.IntN(2) // mostly shared: the capacities bound
					}
					var exl, shr []string
					for _, i := range perm[:nx] {
						exl = append(exl, resources[i])
					}
					for _, i := range perm[nx : nx+ns] {
						shr = append(shr, resources[i])
					}
					sort.Strings(exl)
					sort.Strings(shr)
					batch = append(batch, newTask(name, exl, shr))
				}
				if _, err := st.Dispatch(ctx, batch); err != nil {
					t.Fatal(err)
				}
				for _, nt := range batch {
					tasks[nt.ID] = &modelTask{res: scheduling.Resources{Exclusive: nt.ExclusiveResources, Shared: nt.SharedResources}, state: store.StateWaiting}
					order = append(order, nt.ID)
				}
			}
			var earlier []scheduling.Resources
			want := map[uuid.UUID]bool{}
			for _, id := range order {
				m := tasks[id]
				if m.state == store.StateWaiting && scheduling.Runnable(m.res, earlier, caps) {
					want[id] = true
				}
				if !m.state.Final() {
					earlier = append(earlier, m.res)
				}
			}
			claimed, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{name}, Limit: 1000})
			if err != nil {
				t.Fatal(err)
			}
			got := map[uuid.UUID]bool{}
			for _, c := range claimed {
				got[c.ID] = true
				tasks[c.ID].state, tasks[c.ID].attempt = store.StateRunning, c.Attempt
			}
			for id := range want {
				if !got[id] {
					t.Fatalf("trial %d step %d: runnable task %+v was not claimed (capacities %v)", trial, step, tasks[id].res, caps)
				}
			}
			for id := range got {
				if !want[id] {
					t.Fatalf("trial %d step %d: task %+v was claimed against the rule (capacities %v)", trial, step, tasks[id].res, caps)
				}
			}
			var outcomes []store.Outcome
			for _, id := range order {
				m := tasks[id]
				switch {
				case m.state == store.StateRunning && rng.IntN(2) == 0:
					outcomes = append(outcomes, store.Outcome{ID: id, Attempt: m.attempt, State: store.StateCompleted, Result: json.RawMessage(`1`)})
					m.state = store.StateCompleted
				case m.state == store.StateWaiting && rng.IntN(25) == 0:
					if _, err := st.Cancel(ctx, id); err != nil {
						t.Fatal(err)
					}
					m.state = store.StateCanceled
				}
			}
			if _, err := st.Finish(ctx, outcomes); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// testConcurrentReleases finishes, at the same moment and in separate
// transactions, the two tasks that block a third on two different
// resources: exactly one of the two releases must unblock it (a lost
// wake-up leaves it waiting forever but for the sweep).
func testConcurrentReleases(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	for i := range 30 {
		r1, r2 := fmt.Sprintf("a%d", i), fmt.Sprintf("b%d", i)
		first, second := newTask("test.a", []string{r1}, nil), newTask("test.a", []string{r2}, nil)
		both := newTask("test.a", []string{r1, r2}, nil)
		if _, err := st.Dispatch(ctx, []store.NewTask{first, second, both}); err != nil {
			t.Fatal(err)
		}
		running := claimAll(t, st, []string{"test.a"}, 10)
		if len(running) != 2 {
			t.Fatalf("claimed %d tasks, want the two blockers", len(running))
		}
		var wg sync.WaitGroup
		for _, r := range running {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := st.Finish(ctx, []store.Outcome{{ID: r.ID, Attempt: r.Attempt, State: store.StateCompleted}}); err != nil {
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		task, err := st.Task(ctx, both.ID)
		if err != nil {
			t.Fatal(err)
		}
		if task.UnblockedAt == nil {
			t.Fatalf("round %d: the task behind two concurrent releases was not unblocked", i)
		}
		next := claimAll(t, st, []string{"test.a"}, 10)
		if len(next) != 1 || next[0].ID != both.ID {
			t.Fatalf("round %d: claimed %d tasks after the releases", i, len(next))
		}
		if _, err := st.Finish(ctx, []store.Outcome{{ID: both.ID, Attempt: next[0].Attempt, State: store.StateCompleted}}); err != nil {
			t.Fatal(err)
		}
	}
}
