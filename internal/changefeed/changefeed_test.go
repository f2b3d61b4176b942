package changefeed_test

import (
	"context"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/changefeed"
	"github.com/stint-dev/stint/store"
)

func receive(t *testing.T, out <-chan []store.TaskChange) []store.TaskChange {
	t.Helper()
	select {
	case batch := <-out:
		return batch
	case <-time.After(5 * time.Second):
		t.Fatal("no batch")
		return nil
	}
}

// TestCoalescesWhileTheReaderIsSlow: changes that wait are coalesced per
// task, in first-change order, with each task's latest state.
func TestCoalescesWhileTheReaderIsSlow(t *testing.T) {
	var dropped atomic.Uint64
	b := changefeed.NewBacklog(&dropped)
	a, c := uuid.New(), uuid.New()
	b.Add([]store.TaskChange{{ID: a, State: store.StateWaiting}, {ID: c, State: store.StateWaiting}})
	b.Add([]store.TaskChange{{ID: a, State: store.StateRunning}})
	b.Add([]store.TaskChange{{ID: a, State: store.StateCompleted}, {ID: c, State: store.StateRunning}})
	b.Add(nil)

	out := make(chan []store.TaskChange) // unbuffered: nothing is taken before Pump runs
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Pump(ctx, nil, out)
	got := receive(t, out)
	want := []store.TaskChange{{ID: a, State: store.StateCompleted}, {ID: c, State: store.StateRunning}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("batch %v, want %v", got, want)
	}
	// After a take, a task's next change is a new entry.
	b.Add([]store.TaskChange{{ID: a, State: store.StateCanceled}})
	if got := receive(t, out); len(got) != 1 || got[0].State != store.StateCanceled {
		t.Fatalf("next batch %v", got)
	}
	if dropped.Load() != 0 {
		t.Fatalf("dropped %d", dropped.Load())
	}
}

// TestDropsBeyondTheLimitAndSaysSo: past MaxBacklog tasks, changes of new
// tasks are dropped and counted, changes of held tasks still coalesce, and
// an empty batch follows.
func TestDropsBeyondTheLimitAndSaysSo(t *testing.T) {
	var dropped atomic.Uint64
	b := changefeed.NewBacklog(&dropped)
	changes := make([]store.TaskChange, changefeed.MaxBacklog+3)
	for i := range changes {
		changes[i] = store.TaskChange{ID: uuid.New(), State: store.StateWaiting}
	}
	b.Add(changes)
	b.Add([]store.TaskChange{{ID: changes[0].ID, State: store.StateFailed}})

	out := make(chan []store.TaskChange, changefeed.Buffer)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go b.Pump(ctx, nil, out)
	got := receive(t, out)
	if len(got) != changefeed.MaxBacklog || got[0].State != store.StateFailed {
		t.Fatalf("batch of %d, first %v", len(got), got[0])
	}
	if got := receive(t, out); len(got) != 0 {
		t.Fatalf("after a drop: a batch of %d, want the empty batch", len(got))
	}
	if dropped.Load() != 3 {
		t.Fatalf("dropped %d, want 3", dropped.Load())
	}
}

// TestLoseSendsAnEmptyBatchAndStopEndsPump: Lose makes the reader re-read,
// and closing stop ends Pump.
func TestLoseSendsAnEmptyBatchAndStopEndsPump(t *testing.T) {
	var dropped atomic.Uint64
	b := changefeed.NewBacklog(&dropped)
	out := make(chan []store.TaskChange, 1)
	stop := make(chan struct{})
	ended := make(chan struct{})
	go func() {
		defer close(ended)
		b.Pump(context.Background(), stop, out)
	}()
	b.Lose()
	if got := receive(t, out); got == nil || len(got) != 0 {
		t.Fatalf("after Lose: %v, want an empty batch", got)
	}
	close(stop)
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("Pump did not end when stop closed")
	}
}
