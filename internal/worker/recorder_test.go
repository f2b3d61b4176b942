package worker

import (
	"context"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
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
	enginetest.Run(t, testFlushWaitsForWriteInFlight)
}

func testFlushWaitsForWriteInFlight(t *testing.T, eng enginetest.Engine) {
	ctx := context.Background()
	st := eng.Open(t)
	if _, err := st.Dispatch(ctx, []store.NewTask{{ID: uuid.Must(uuid.NewV7()), Name: "test.task"}}); err != nil {
		t.Fatal(err)
	}
	claimed, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"test.task"}, Limit: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	task := claimed[0]

	rec := newRecorder(slowSaves{st}, task, nil)
	rec.Progress(store.ProgressReport{Code: "p", Done: 1})
	time.Sleep(20 * time.Millisecond) // the coalesced write has started
	rec.stop()
	if err := rec.Flush(ctx); err != nil {
		t.Fatal(err)
	}
	got, err := st.Task(ctx, task.ID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got.ProgressReports) != 1 || got.ProgressReports[0].Done != 1 {
		t.Fatalf("after Flush the stored progress is %+v", got.ProgressReports)
	}
}
