package postgres_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
	"github.com/stint-dev/stint/store/storetest"
)

func openFresh(t *testing.T) store.Store {
	ctx := context.Background()
	st, err := postgres.Open(ctx, pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		st.Close()
		t.Fatal(err)
	}
	return st
}

func TestConformance(t *testing.T) {
	storetest.Run(t, openFresh)
}

// TestDispatchTx dispatches inside the caller's transaction: the task exists
// if and only if that transaction commits.
func TestDispatchTx(t *testing.T) {
	ctx := context.Background()
	st := openFresh(t)
	defer st.Close()
	client := stint.NewClient(st, stint.NewRegistry())
	for _, commit := range []bool{false, true} {
		tasks, err := client.Prepare([]stint.DispatchRequest{{Name: "stint.noop", ExclusiveResources: []string{"repo:1"}}})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := st.(*postgres.Store).Pool().Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "CREATE TABLE IF NOT EXISTS app_rows (n int)"); err != nil {
			t.Fatal(err)
		}
		if _, err := postgres.DispatchTx(ctx, tx, tasks); err != nil {
			t.Fatal(err)
		}
		// Dispatch calls meanwhile (gathered into transactions of their
		// own) neither join the caller's transaction nor wait for it.
		others, err := client.Prepare([]stint.DispatchRequest{{Name: "stint.noop"}})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Dispatch(ctx, others); err != nil {
			t.Fatal(err)
		}
		if _, err := st.Task(ctx, tasks[0].ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("a task of the open transaction is visible outside it: %v", err)
		}
		if _, err := st.Task(ctx, others[0].ID); err != nil {
			t.Fatalf("a Dispatch during the open transaction: %v", err)
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		_, err = st.Task(ctx, tasks[0].ID)
		if commit && err != nil {
			t.Fatalf("committed dispatch: %v", err)
		}
		if !commit && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("rolled-back dispatch: %v", err)
		}
	}
	// The rolled-back task left nothing in the queues: the committed one is
	// runnable at once (with the two dispatched beside the transactions).
	got, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"stint.noop"}, Limit: 10})
	if err != nil || len(got) != 3 {
		t.Fatalf("claim after DispatchTx: %d %v", len(got), err)
	}
}

// TestDispatchTxUniqueKey: a unique key dispatched in a caller's open
// transaction is locked until it ends: a second dispatch of the key waits,
// and finds the first task once that transaction commits, or creates its
// own when it rolls back.
func TestDispatchTxUniqueKey(t *testing.T) {
	ctx := context.Background()
	st := openFresh(t)
	defer st.Close()
	pool := st.(*postgres.Store).Pool()
	client := stint.NewClient(st, stint.NewRegistry())
	for _, commit := range []bool{true, false} {
		key := fmt.Sprintf("key-%v", commit)
		prepare := func() []store.NewTask {
			tasks, err := client.Prepare([]stint.DispatchRequest{{Name: "stint.noop", UniqueKey: key}})
			if err != nil {
				t.Fatal(err)
			}
			return tasks
		}
		first := prepare()
		tx, err := pool.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if got, err := postgres.DispatchTx(ctx, tx, first); err != nil || got[0].Deduplicated {
			t.Fatalf("first dispatch: %+v %v", got, err)
		}
		second := prepare()
		answer := make(chan *store.Task, 1)
		go func() {
			got, err := st.Dispatch(ctx, second)
			if err != nil {
				t.Error(err)
				answer <- nil
				return
			}
			answer <- got[0]
		}()
		select {
		case got := <-answer:
			t.Fatalf("the second dispatch of the key did not wait for the open transaction: %+v", got)
		case <-time.After(300 * time.Millisecond):
		}
		if commit {
			err = tx.Commit(ctx)
		} else {
			err = tx.Rollback(ctx)
		}
		if err != nil {
			t.Fatal(err)
		}
		got := <-answer
		switch {
		case got == nil:
		case commit && (got.ID != first[0].ID || !got.Deduplicated):
			t.Fatalf("after the commit: %+v, want the first task, deduplicated", got)
		case !commit && (got.ID != second[0].ID || got.Deduplicated):
			t.Fatalf("after the rollback: %+v, want a new task", got)
		}
	}
}

// TestSweepRecountsQueues breaks a queue's counters the way a scheduler bug
// would (a waiting entry not counted, so that the release before it moves
// nothing): the sweep recounts the queue, reports it, and promotes the
// entry the release missed.
func TestSweepRecountsQueues(t *testing.T) {
	ctx := context.Background()
	st := openFresh(t)
	defer st.Close()
	pg := st.(*postgres.Store)
	tasks := dispatch(t, st,
		stint.DispatchRequest{Name: "stint.noop", ExclusiveResources: []string{"x"}},
		stint.DispatchRequest{Name: "stint.noop", ExclusiveResources: []string{"x"}})
	first, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"stint.noop"}, Limit: 10})
	if err != nil || len(first) != 1 {
		t.Fatalf("claim: %d tasks, %v", len(first), err)
	}
	if _, err := pg.Pool().Exec(ctx, `UPDATE stint_resources SET waiting = 0 WHERE name = 'x'`); err != nil {
		t.Fatal(err)
	}
	if _, err := st.Finish(ctx, []store.Outcome{{ID: first[0].ID, Attempt: first[0].Attempt, State: store.StateCompleted}}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"stint.noop"}, Limit: 10}); err != nil || len(got) != 0 {
		t.Fatalf("claim with the broken counter: %d tasks, %v (want none: the release saw nothing waiting)", len(got), err)
	}
	res, err := st.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if res.Recounted != 1 || res.Unblocked != 1 {
		t.Fatalf("sweep: %+v, want 1 queue recounted and 1 entry promoted", res)
	}
	second, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"stint.noop"}, Limit: 10})
	if err != nil || len(second) != 1 || second[0].ID != tasks[1].ID {
		t.Fatalf("claim after the sweep: %d tasks, %v", len(second), err)
	}
	if res, err := st.Sweep(ctx); err != nil || res.Total() != 0 {
		t.Fatalf("second sweep: %+v, %v", res, err)
	}
}

// TestClaimChecksTheQueues marks a waiting task runnable the way a
// scheduler bug would: the claim still refuses it, because its entry is
// past its queue's frontier (the second line of defence of DESIGN §3).
func TestClaimChecksTheQueues(t *testing.T) {
	ctx := context.Background()
	st := openFresh(t)
	defer st.Close()
	pg := st.(*postgres.Store)
	tasks := dispatch(t, st,
		stint.DispatchRequest{Name: "stint.noop", ExclusiveResources: []string{"x"}},
		stint.DispatchRequest{Name: "stint.noop", SharedResources: []string{"x"}})
	if _, err := pg.Pool().Exec(ctx, `UPDATE stint_tasks SET unblocked_at = now(), blocked_count = 0 WHERE id = $1`, tasks[1].ID); err != nil {
		t.Fatal(err)
	}
	got, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"stint.noop"}, Limit: 10})
	if err != nil || len(got) != 1 || got[0].ID != tasks[0].ID {
		t.Fatalf("claim: %d tasks, %v; want only the exclusive one", len(got), err)
	}
}

// dispatch dispatches reqs in one batch, through a Client's validation.
func dispatch(t *testing.T, st store.Store, reqs ...stint.DispatchRequest) []store.NewTask {
	t.Helper()
	tasks, err := stint.NewClient(st, stint.NewRegistry()).Prepare(reqs)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Dispatch(context.Background(), tasks); err != nil {
		t.Fatal(err)
	}
	return tasks
}
