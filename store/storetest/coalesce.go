package storetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// The tests of this file hold engines that gather concurrent Dispatch calls
// into one transaction (group commit) to the promises of one call per
// transaction: each caller gets its own tasks or its own error, order on a
// resource follows the order in which calls returned, and a caller that
// leaves takes only its own dispatch with it.

func testConcurrentDispatch(t *testing.T, open Opener) {
	t.Run("EachCallerGetsItsOwnOutcome", func(t *testing.T) { testDispatchOwnOutcomes(t, open) })
	t.Run("OrderOnAResourceFollowsReturns", func(t *testing.T) { testDispatchOrderFollowsReturns(t, open) })
	t.Run("ACanceledCallerAbandonsOnlyItsOwn", func(t *testing.T) { testDispatchCanceledCaller(t, open) })
}

// dispatchOutcome is what one concurrent Dispatch call sent and got.
type dispatchOutcome struct {
	sent []store.NewTask
	got  []*store.Task
	err  error
}

// testDispatchOwnOutcomes runs many concurrent callers, some of them into
// a sealed group (each such call must fail with ErrSealed and leave
// nothing), the others with and without resources: every good caller gets
// exactly its own tasks, in its order, and they exist; no bad caller's
// task does.
func testDispatchOwnOutcomes(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	sealed := newGroup("sealed", "alice", true)
	if _, _, err := st.CreateTaskGroup(ctx, sealed, nil); err != nil {
		t.Fatal(err)
	}
	const callers, rounds = 40, 5
	outcomes := make([][]dispatchOutcome, callers)
	var wg sync.WaitGroup
	for c := range callers {
		wg.Go(func() {
			for r := range rounds {
				var tasks []store.NewTask
				for i := range 1 + (c+r)%3 {
					switch (c + i) % 3 {
					case 0:
						tasks = append(tasks, newTask("test.own", nil, nil))
					case 1:
						tasks = append(tasks, newTask("test.own", ex(fmt.Sprintf("own:%d", c%4)), sh("own:shared")))
					default:
						tasks = append(tasks, newTask("test.own", nil, sh("own:shared")))
					}
				}
				if c%7 == 3 && r%2 == 0 {
					// One bad task makes the whole call fail, and only it.
					tasks = append(tasks, into(sealed, newTask("test.own", nil, nil))...)
				}
				got, err := st.Dispatch(ctx, tasks)
				outcomes[c] = append(outcomes[c], dispatchOutcome{sent: tasks, got: got, err: err})
			}
		})
	}
	wg.Wait()
	var good, bad int
	for c, calls := range outcomes {
		for r, o := range calls {
			intoSealed := slices.ContainsFunc(o.sent, func(nt store.NewTask) bool { return nt.TaskGroup != nil })
			if intoSealed {
				bad++
				if !errors.Is(o.err, store.ErrSealed) {
					t.Errorf("caller %d round %d (into a sealed group): err = %v, want ErrSealed", c, r, o.err)
				}
				for _, nt := range o.sent {
					if _, err := st.Task(ctx, nt.ID); !errors.Is(err, store.ErrNotFound) {
						t.Errorf("caller %d round %d failed, yet its task %s exists (%v)", c, r, nt.ID, err)
					}
				}
				continue
			}
			good++
			if o.err != nil {
				t.Errorf("caller %d round %d: %v", c, r, o.err)
				continue
			}
			if !slices.Equal(storedIDs(o.got), newIDs(o.sent)) {
				t.Errorf("caller %d round %d: got tasks %v, sent %v", c, r, storedIDs(o.got), newIDs(o.sent))
				continue
			}
			for i, task := range o.got {
				nt := o.sent[i]
				if task.Name != nt.Name || !slices.Equal(task.ExclusiveResources, nt.ExclusiveResources) ||
					!slices.Equal(task.SharedResources, nt.SharedResources) || task.State != store.StateWaiting {
					t.Errorf("caller %d round %d task %d: %+v, sent %+v", c, r, i, task, nt)
				}
				if _, err := st.Task(ctx, task.ID); err != nil {
					t.Errorf("caller %d round %d: task %s: %v", c, r, task.ID, err)
				}
			}
		}
	}
	if bad == 0 || good == 0 {
		t.Fatalf("%d good and %d bad calls: the test lost its point", good, bad)
	}
	sweepClean(t, st)
}

// timedDispatch is one task dispatched alone, with the times its call began
// and returned.
type timedDispatch struct {
	task            *store.Task
	began, returned time.Time
}

// testDispatchOrderFollowsReturns dispatches tasks on one exclusive
// resource from concurrent callers, one per call, and checks that whenever
// a call returned before another began, its task comes first in the
// resource's queue (its seq is lower, and it runs first).
func testDispatchOrderFollowsReturns(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	const callers, rounds = 16, 20
	results := make([][]timedDispatch, callers)
	var wg sync.WaitGroup
	errs := make(chan error, callers)
	for c := range callers {
		wg.Go(func() {
			for range rounds {
				began := time.Now()
				got, err := st.Dispatch(ctx, []store.NewTask{newTask("test.order", ex("order:r"), nil)})
				if err != nil {
					errs <- err
					return
				}
				results[c] = append(results[c], timedDispatch{task: got[0], began: began, returned: time.Now()})
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	all := slices.Concat(results...)
	for _, a := range all {
		for _, b := range all {
			if a.returned.Before(b.began) && a.task.Seq >= b.task.Seq {
				t.Fatalf("task %s returned before %s was dispatched, yet has seq %d >= %d",
					a.task.ID, b.task.ID, a.task.Seq, b.task.Seq)
			}
		}
	}
	// The queue runs them in seq order, one at a time.
	slices.SortFunc(all, func(a, b timedDispatch) int { return int(a.task.Seq - b.task.Seq) })
	for i, want := range all {
		got := claimOne(t, st, "w", "test.order")
		if got.ID != want.task.ID {
			t.Fatalf("claim %d: got %s, want %s (seq %d)", i, got.ID, want.task.ID, want.task.Seq)
		}
		end(t, st, got, store.StateCompleted)
	}
	sweepClean(t, st)
}

// testDispatchCanceledCaller: a caller whose context has ended before it
// dispatches gets the context's error and no task, and one whose context
// ends during its call gets either its task or the context's error; the
// concurrent callers around them are not affected.
func testDispatchCanceledCaller(t *testing.T, open Opener) {
	st, ctx := openStore(t, open)
	var wg sync.WaitGroup
	stop := make(chan struct{})
	errs := make(chan error, 100)
	var mu sync.Mutex
	var others []uuid.UUID
	for range 8 {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				nt := newTask("test.cancel", nil, sh("cancel:shared"))
				if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
					errs <- err
					return
				}
				mu.Lock()
				others = append(others, nt.ID)
				mu.Unlock()
			}
		})
	}
	canceled, cancel := context.WithCancel(ctx)
	cancel()
	for range 20 {
		nt := newTask("test.cancel", nil, sh("cancel:shared"))
		if _, err := st.Dispatch(canceled, []store.NewTask{nt}); !errors.Is(err, context.Canceled) {
			t.Errorf("dispatch with a canceled context: err = %v, want context.Canceled", err)
		}
		if _, err := st.Task(ctx, nt.ID); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("dispatch with a canceled context left task %s (%v)", nt.ID, err)
		}
	}
	for i := range 20 {
		short, cancel := context.WithTimeout(ctx, time.Duration(i*50)*time.Microsecond)
		nt := newTask("test.cancel", nil, sh("cancel:shared"))
		got, err := st.Dispatch(short, []store.NewTask{nt})
		cancel()
		switch {
		case err == nil:
			if len(got) != 1 || got[0].ID != nt.ID {
				t.Errorf("dispatch with a short deadline: got %v", storedIDs(got))
			}
			if _, err := st.Task(ctx, nt.ID); err != nil {
				t.Errorf("acknowledged task %s: %v", nt.ID, err)
			}
		case errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled):
			// The task may exist or not: the caller left before the answer.
		default:
			t.Errorf("dispatch with a short deadline: %v", err)
		}
	}
	close(stop)
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("a concurrent caller failed: %v", err)
	}
	if len(others) == 0 {
		t.Fatal("the concurrent callers dispatched nothing")
	}
	for _, id := range others {
		if _, err := st.Task(ctx, id); err != nil {
			t.Errorf("a concurrent caller's task %s: %v", id, err)
		}
	}
	sweepClean(t, st)
}
