package stint_test

import (
	"strings"
	"testing"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
)

// A worker claims only the tasks whose minimum versions it provides; the
// others wait, without holding up the tasks behind them, for a worker that
// does.
func TestWorkerClaimsOnlyWhatItsVersionsSatisfy(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		h := newHarness(t, eng)
		needs, err := h.client.Dispatch(h.ctx, stint.DispatchRequest{Name: "stint.noop", Versions: map[string]string{"myplugin": "2.0"}})
		if err != nil {
			t.Fatal(err)
		}
		plain, err := h.client.Dispatch(h.ctx, stint.DispatchRequest{Name: "stint.noop"})
		if err != nil {
			t.Fatal(err)
		}
		old := h.startWorker(stint.WorkerConfig{Name: "old", Concurrency: 1, PollInterval: 20 * time.Millisecond,
			Versions: map[string]string{"myplugin": "1.9"}})
		if got := h.waitFinal(plain.ID); got.State != store.StateCompleted || got.Worker != old.Name() {
			t.Fatalf("task without requirement: %s on %q", got.State, got.Worker)
		}
		time.Sleep(100 * time.Millisecond) // several polls of the old worker
		if got, err := h.client.Task(h.ctx, needs.ID); err != nil || got.State != store.StateWaiting {
			t.Fatalf("task requiring myplugin 2.0, worker with 1.9: %+v %v", got, err)
		}
		current := h.startWorker(stint.WorkerConfig{Name: "current", Versions: map[string]string{"myplugin": "2.1", "other": "1"}})
		if got := h.waitFinal(needs.ID); got.State != store.StateCompleted || got.Worker != current.Name() {
			t.Fatalf("task requiring myplugin 2.0: %s on %q", got.State, got.Worker)
		}
	})
}

func TestWorkerVersionsAreValidated(t *testing.T) {
	_, err := stint.NewWorker(nil, stint.NewRegistry(), stint.WorkerConfig{Versions: map[string]string{"myplugin": "2.x"}})
	if err == nil || !strings.Contains(err.Error(), `myplugin: "2.x" is not a version`) {
		t.Fatalf("NewWorker with a bad version: %v", err)
	}
}
