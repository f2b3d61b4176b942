package groupcommit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stint-dev/stint/internal/groupcommit"
)

// recorder is a batch function that doubles its items and records the
// batches it saw. A negative item fails the whole batch. While gate is
// non-nil, each batch waits for a value on it first.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	gate    chan struct{}
	started chan []int // if set, each batch is sent here when it starts
}

func (r *recorder) fn(ctx context.Context, items []int) ([]int, error) {
	r.mu.Lock()
	r.batches = append(r.batches, slices.Clone(items))
	gate, started := r.gate, r.started
	r.mu.Unlock()
	if started != nil {
		started <- slices.Clone(items)
	}
	if gate != nil {
		select {
		case <-gate:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	out := make([]int, len(items))
	for i, v := range items {
		if v < 0 {
			return nil, fmt.Errorf("bad item %d", v)
		}
		out[i] = 2 * v
	}
	return out, nil
}

func (r *recorder) seen() [][]int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.batches)
}

// TestEachCallerGetsItsOwnResults runs many concurrent callers and checks
// that every one gets the results of its own items, whatever batches they
// were gathered into.
func TestEachCallerGetsItsOwnResults(t *testing.T) {
	for _, running := range []int{1, 2, 4} {
		t.Run(fmt.Sprintf("MaxRunning=%d", running), func(t *testing.T) {
			r := &recorder{}
			c := groupcommit.New(r.fn, groupcommit.Config{MaxRunning: running, MaxBatch: 50})
			defer c.Close()
			var wg sync.WaitGroup
			errs := make(chan error, 200)
			for g := range 200 {
				wg.Go(func() {
					items := []int{g * 10, g*10 + 1, g*10 + 2}[:1+g%3]
					got, err := c.Do(context.Background(), items)
					if err != nil {
						errs <- err
						return
					}
					want := make([]int, len(items))
					for i, v := range items {
						want[i] = 2 * v
					}
					if !slices.Equal(got, want) {
						errs <- fmt.Errorf("caller %d: got %v, want %v", g, got, want)
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				t.Error(err)
			}
			for _, b := range r.seen() {
				if len(b) > 50 {
					t.Errorf("batch of %d items, MaxBatch is 50", len(b))
				}
			}
		})
	}
}

// TestCallsArrivingDuringABatchShareTheNext checks the batching itself:
// with one runner busy, the calls that arrive meanwhile run as one batch,
// in the order they arrived.
func TestCallsArrivingDuringABatchShareTheNext(t *testing.T) {
	r := &recorder{gate: make(chan struct{}), started: make(chan []int, 10)}
	c := groupcommit.New(r.fn, groupcommit.Config{MaxRunning: 1})
	defer c.Close()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = c.Do(context.Background(), []int{0}) })
	<-r.started // the first batch is in flight
	for i := 1; i <= 5; i++ {
		wg.Go(func() { _, _ = c.Do(context.Background(), []int{i}) })
		waitFor(t, func() bool { return c.Queued() == i })
	}
	r.gate <- struct{}{} // the first batch ends
	if got := <-r.started; !slices.Equal(got, []int{1, 2, 3, 4, 5}) {
		t.Errorf("second batch = %v, want the five queued calls in arrival order", got)
	}
	r.gate <- struct{}{}
	wg.Wait()
	if n := len(r.seen()); n != 2 {
		t.Errorf("%d batches, want 2", n)
	}
}

// TestABadCallFailsOnlyItself: a batch that fails is run again call by
// call, so that only the caller whose item is bad sees the error.
func TestABadCallFailsOnlyItself(t *testing.T) {
	r := &recorder{gate: make(chan struct{}), started: make(chan []int, 10)}
	c := groupcommit.New(r.fn, groupcommit.Config{MaxRunning: 1})
	defer c.Close()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = c.Do(context.Background(), []int{0}) })
	<-r.started
	results := make([][]int, 4)
	errs := make([]error, 4)
	for i, items := range [][]int{{1}, {2, -2}, {3}, {4}} {
		wg.Go(func() { results[i], errs[i] = c.Do(context.Background(), items) })
		waitFor(t, func() bool { return c.Queued() == i+1 })
	}
	close(r.gate) // let every batch through
	wg.Wait()
	for i, want := range [][]int{{2}, nil, {6}, {8}} {
		if i == 1 {
			if errs[i] == nil || errs[i].Error() != "bad item -2" {
				t.Errorf("bad caller: err = %v, want bad item -2", errs[i])
			}
			continue
		}
		if errs[i] != nil || !slices.Equal(results[i], want) {
			t.Errorf("caller %d: %v, %v; want %v", i, results[i], errs[i], want)
		}
	}
}

// TestACanceledQueuedCallNeverRuns: a call whose context ends before its
// batch starts returns the context's error and is never run.
func TestACanceledQueuedCallNeverRuns(t *testing.T) {
	r := &recorder{gate: make(chan struct{}), started: make(chan []int, 10)}
	c := groupcommit.New(r.fn, groupcommit.Config{MaxRunning: 1})
	defer c.Close()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = c.Do(context.Background(), []int{0}) })
	<-r.started
	ctx, cancel := context.WithCancel(context.Background())
	var canceledErr error
	wg.Go(func() { _, canceledErr = c.Do(ctx, []int{7}) })
	waitFor(t, func() bool { return c.Queued() == 1 })
	var kept []int
	wg.Go(func() { kept, _ = c.Do(context.Background(), []int{8}) })
	waitFor(t, func() bool { return c.Queued() == 2 })
	cancel()
	waitFor(t, func() bool { return c.Queued() == 1 })
	close(r.gate)
	wg.Wait()
	if !errors.Is(canceledErr, context.Canceled) {
		t.Errorf("canceled caller: err = %v, want context.Canceled", canceledErr)
	}
	if !slices.Equal(kept, []int{16}) {
		t.Errorf("other caller: %v, want [16]", kept)
	}
	for _, b := range r.seen() {
		if slices.Contains(b, 7) {
			t.Errorf("the canceled call's item ran in batch %v", b)
		}
	}
}

// TestACanceledCallInFlightLeavesAtOnce: a caller whose context ends while
// its batch runs returns at once; the batch goes on for the others, and is
// canceled only when every caller has left.
func TestACanceledCallInFlightLeavesAtOnce(t *testing.T) {
	r := &recorder{gate: make(chan struct{}), started: make(chan []int, 10)}
	c := groupcommit.New(r.fn, groupcommit.Config{MaxRunning: 1})
	defer c.Close()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = c.Do(context.Background(), []int{0}) })
	<-r.started
	ctx1, cancel1 := context.WithCancel(context.Background())
	ctx2, cancel2 := context.WithCancel(context.Background())
	errs := make(chan error, 2)
	wg.Go(func() { _, err := c.Do(ctx1, []int{1}); errs <- err })
	waitFor(t, func() bool { return c.Queued() == 1 })
	wg.Go(func() { _, err := c.Do(ctx2, []int{2}); errs <- err })
	waitFor(t, func() bool { return c.Queued() == 2 })
	r.gate <- struct{}{} // first batch done; the batch {1, 2} starts
	if got := <-r.started; !slices.Equal(got, []int{1, 2}) {
		t.Fatalf("second batch = %v, want [1 2]", got)
	}
	cancel1()
	select {
	case err := <-errs:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("first caller: err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a canceled caller still waits for its batch")
	}
	cancel2() // the last caller leaves: the batch's context ends, the gate wait returns
	select {
	case err := <-errs:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("second caller: err = %v, want context.Canceled", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the second canceled caller still waits")
	}
	wg.Wait()
	c.Close() // returns: the batch was canceled and its runner retired
}

// TestAnInFlightBatchKeepsRunningForTheOthers: one caller leaving does not
// cancel the batch of the others.
func TestAnInFlightBatchKeepsRunningForTheOthers(t *testing.T) {
	r := &recorder{gate: make(chan struct{}), started: make(chan []int, 10)}
	c := groupcommit.New(r.fn, groupcommit.Config{MaxRunning: 1})
	defer c.Close()
	var wg sync.WaitGroup
	wg.Go(func() { _, _ = c.Do(context.Background(), []int{0}) })
	<-r.started
	ctx, cancel := context.WithCancel(context.Background())
	wg.Go(func() { _, _ = c.Do(ctx, []int{1}) })
	waitFor(t, func() bool { return c.Queued() == 1 })
	var got []int
	var err error
	wg.Go(func() { got, err = c.Do(context.Background(), []int{2}) })
	waitFor(t, func() bool { return c.Queued() == 2 })
	r.gate <- struct{}{}
	<-r.started
	cancel()
	time.Sleep(10 * time.Millisecond)
	r.gate <- struct{}{}
	wg.Wait()
	if err != nil || !slices.Equal(got, []int{4}) {
		t.Errorf("remaining caller: %v, %v; want [4]", got, err)
	}
}

// TestAResultCountMismatchIsAnError guards the promise of one result per
// item.
func TestAResultCountMismatchIsAnError(t *testing.T) {
	c := groupcommit.New(func(ctx context.Context, items []int) ([]int, error) {
		return items[1:], nil
	}, groupcommit.Config{})
	defer c.Close()
	if _, err := c.Do(context.Background(), []int{1, 2}); err == nil {
		t.Error("no error for a batch function that lost a result")
	}
}

// TestClose: Close waits for the batch in flight; calls after it fail.
func TestClose(t *testing.T) {
	r := &recorder{gate: make(chan struct{}), started: make(chan []int, 10)}
	c := groupcommit.New(r.fn, groupcommit.Config{})
	var got []int
	done := make(chan struct{})
	go func() { got, _ = c.Do(context.Background(), []int{3}); close(done) }()
	<-r.started
	closed := make(chan struct{})
	go func() { c.Close(); close(closed) }()
	select {
	case <-closed:
		t.Fatal("Close returned with a batch in flight")
	case <-time.After(20 * time.Millisecond):
	}
	close(r.gate)
	<-closed
	<-done
	if !slices.Equal(got, []int{6}) {
		t.Errorf("the call in flight got %v, want [6]", got)
	}
	if _, err := c.Do(context.Background(), []int{1}); !errors.Is(err, groupcommit.ErrClosed) {
		t.Errorf("Do after Close: err = %v, want ErrClosed", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not reached in 5 s")
		}
		time.Sleep(time.Millisecond)
	}
}

// BenchmarkLoneCaller measures what a Committer adds to a call that has no
// company.
func BenchmarkLoneCaller(b *testing.B) {
	c := groupcommit.New(func(ctx context.Context, items []int) ([]int, error) { return items, nil }, groupcommit.Config{})
	defer c.Close()
	ctx := context.Background()
	items := []int{1}
	for b.Loop() {
		if _, err := c.Do(ctx, items); err != nil {
			b.Fatal(err)
		}
	}
}
