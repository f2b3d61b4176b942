package postgres_test

import (
	"context"
	"errors"
	"testing"

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
	// runnable at once.
	got, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"stint.noop"}, Limit: 10})
	if err != nil || len(got) != 1 {
		t.Fatalf("claim after DispatchTx: %d %v", len(got), err)
	}
}
