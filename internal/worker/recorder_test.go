package worker

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// slowSaves is a real store whose SaveOutputs takes a while, so that a
// coalesced write is still in flight when the run ends.
type slowSaves struct {
	store.Store
}

func (s slowSaves) SaveOutputs(ctx context.Context, id uuid.UUID, attempt int, out store.Outputs) (bool, error) {
	time.Sleep(100 * time.Millisecond)
	return s.Store.SaveOutputs(ctx, id, attempt, out)
}

// Flush returns only once everything recorded before it is stored, even
// while a coalesced write of the same outputs is still in flight: the run's
// outcome is written right after it, and a write after that is refused.
func TestFlushWaitsForWriteInFlight(t *testing.T) {
	ctx := context.Background()
	pg, err := postgres.Open(ctx, pgtest.Database(t))
	if err != nil {
		t.Fatal(err)
	}
	defer pg.Close()
	if err := pg.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := pg.Dispatch(ctx, []store.NewTask{{ID: uuid.Must(uuid.NewV7()), Name: "test.task"}}); err != nil {
		t.Fatal(err)
	}
	claimed, err := pg.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.task"}, Limit: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	task := claimed[0]

	rec := newRecorder(slowSaves{pg}, task, nil)
	rec.Progress(store.ProgressReport{Code: "p", Done: 1})
	time.Sleep(20 * time.Millisecond) // the coalesced write has started
	rec.stop()
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := pg.Task(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ProgressReports) != 1 || got.ProgressReports[0].Done != 1 {
		t.Fatalf("after Flush the stored progress is %+v", got.ProgressReports)
	}
}
