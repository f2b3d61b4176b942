package storetest

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/scheduling"
	"github.com/stint-dev/stint/store"
)

// heldTasks is what the claimers of a stress test hold at once. A claim
// that conflicts with a task already held is a scheduler bug.
type heldTasks struct {
	mu    sync.Mutex
	tasks map[uuid.UUID]*store.Task
}

func newHeldTasks() *heldTasks { return &heldTasks{tasks: map[uuid.UUID]*store.Task{}} }

// hold records tasks just claimed, and returns an error for each one that
// conflicts with a task held.
func (h *heldTasks) hold(got []*store.Task) []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	var errs []error
	for _, g := range got {
		for _, o := range h.tasks {
			if scheduling.Conflicts(scheduling.Resources{Exclusive: g.ExclusiveResources, Shared: g.SharedResources},
				scheduling.Resources{Exclusive: o.ExclusiveResources, Shared: o.SharedResources}) {
				errs = append(errs, fmt.Errorf("conflicting tasks %s and %s held at once", g.ID, o.ID))
			}
		}
		h.tasks[g.ID] = g
	}
	return errs
}

// release forgets tasks about to be finished.
func (h *heldTasks) release(got []*store.Task) {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, g := range got {
		delete(h.tasks, g.ID)
	}
}

// completed returns the outcomes that complete the claimed tasks.
func completed(got []*store.Task) []store.Outcome {
	outs := make([]store.Outcome, len(got))
	for i, g := range got {
		outs[i] = store.Outcome{ID: g.ID, Attempt: g.Attempt, State: store.StateCompleted}
	}
	return outs
}

// waitAllFinal waits until no task is waiting, running or canceling. The
// test fails after timeout, or at once when errs (nil for none) reports an
// error of the goroutines that drive the store.
func waitAllFinal(t *testing.T, ctx context.Context, st store.Store, timeout time.Duration, errs <-chan error) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		counts, err := st.CountByState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts[store.StateWaiting]+counts[store.StateRunning]+counts[store.StateCanceling] == 0 {
			return
		}
		select {
		case err := <-errs:
			t.Fatalf("a claimer failed: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("tasks still incomplete: %v", counts)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
