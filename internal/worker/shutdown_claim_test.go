package worker

import (
	"context"
	"encoding/json"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/store"
)

// claimAnsweredAfterStop is a real store whose first claim that takes
// tasks commits, then holds its answer until the test lets it go, and
// then answers as a driver does for a caller whose context ended while
// the answer was on its way: with the context's error.
type claimAnsweredAfterStop struct {
	store.Store
	once    sync.Once
	claimed chan struct{} // closed once a claim committed with tasks
	release chan struct{} // closed by the test
}

func (s *claimAnsweredAfterStop) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Task, error) {
	tasks, err := s.Store.Claim(context.WithoutCancel(ctx), p)
	if err != nil || len(tasks) == 0 {
		return tasks, err
	}
	first := false
	s.once.Do(func() { first = true; close(s.claimed) })
	if first {
		<-s.release
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	return tasks, nil
}

// A claim in flight when the worker is told to stop finishes: the tasks
// it committed run, within the shutdown grace, and end completed. (A
// claim bound to the worker's context lost its answer at the stop and
// left its tasks running under a worker that then left the list: a
// SIGTERM right after a claim committed, as CI once caught.)
func TestShutdownFinishesTheClaimInFlight(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st := &claimAnsweredAfterStop{Store: eng.Open(t), claimed: make(chan struct{}), release: make(chan struct{})}
		nt := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.a"}
		if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
			t.Fatal(err)
		}
		w, err := New(st, Config{Name: "1@w", Names: []string{"test.a"}, PollInterval: 20 * time.Millisecond,
			SweepInterval: -1, ShutdownGrace: 10 * time.Second,
			Handler: func(context.Context, *store.Task, *Recorder) (json.RawMessage, *store.TaskError) {
				return json.RawMessage(`"ok"`), nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		stop := runWorker(t, ctx, w)
		select {
		case <-st.claimed:
		case <-ctx.Done():
			t.Fatal("the worker claimed nothing")
		}
		stopped := make(chan struct{})
		go func() { stop(); close(stopped) }()
		time.Sleep(50 * time.Millisecond) // the stop reaches the worker
		close(st.release)
		select {
		case <-stopped:
		case <-ctx.Done():
			t.Fatal("the worker did not stop")
		}
		task, err := st.Task(ctx, nt.ID)
		if err != nil {
			t.Fatal(err)
		}
		if task.State != store.StateCompleted {
			t.Fatalf("the task of the claim in flight at the stop is %s; want completed", task.State)
		}
		if workers, err := st.Workers(ctx); err != nil || len(workers) != 0 {
			t.Fatalf("workers after the stop: %+v, %v", workers, err)
		}
	})
}
