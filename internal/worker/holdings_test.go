package worker

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/internal/syncbuf"
	"github.com/stint-dev/stint/store"
)

// lossyClaims is a real store whose chosen claims commit, and whose
// answers are then lost on the way back to the worker: the claim
// returns an error instead of the tasks, as when the connection is cut
// right after the claim commits.
type lossyClaims struct {
	store.Store
	lose atomic.Int32 // how many of the next claims that got tasks to lose
}

func (s *lossyClaims) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Task, error) {
	tasks, err := s.Store.Claim(ctx, p)
	if err == nil && len(tasks) > 0 && s.lose.Add(-1) >= 0 {
		return nil, errors.New("connection reset by peer (the claim's answer was lost)")
	}
	return tasks, err
}

// A claim whose answer is lost leaves its task running under a live worker
// that does not know it: the worker's next heartbeat finds it, and the
// worker gives it up (dropped, claim-lost), so that the task behind it on
// its resource runs, and the worker goes on claiming.
func TestWorkerGivesUpTasksOfALostClaimAnswer(t *testing.T) {
	enginetest.Run(t, testWorkerGivesUpLostClaims)
}

func testWorkerGivesUpLostClaims(t *testing.T, eng enginetest.Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := &lossyClaims{Store: eng.Open(t)}
	st.lose.Store(1)
	lost := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.a", ExclusiveResources: []string{"r"}}
	behind := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.a", ExclusiveResources: []string{"r"}}
	if _, err := st.Dispatch(ctx, []store.NewTask{lost, behind}); err != nil {
		t.Fatal(err)
	}
	const heartbeat = 50 * time.Millisecond
	var logs syncbuf.Buffer
	var ran sync.Map
	w, err := New(st, Config{Name: "1@w", Names: []string{"test.a"}, Concurrency: 2, HeartbeatInterval: heartbeat,
		MissingAfter: time.Second, LostCheckInterval: heartbeat, PollInterval: 20 * time.Millisecond, SweepInterval: -1,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Handler: func(_ context.Context, task *store.Task, _ *Recorder) (json.RawMessage, *store.TaskError) {
			ran.Store(task.ID, true)
			return json.RawMessage(`"ok"`), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	began := time.Now()
	defer runWorker(t, ctx, w)()
	a, b := waitBothFinal(t, ctx, st, lost.ID, behind.ID, 10*time.Second, &logs)
	if a.State != store.StateDropped || a.Error == nil || a.Error.Kind != ClaimLostKind || a.Attempt != 1 {
		t.Fatalf("the task of the lost claim: %s attempt %d %+v", a.State, a.Attempt, a.Error)
	}
	if b.State != store.StateCompleted {
		t.Fatalf("the task behind it: %s %+v", b.State, b.Error)
	}
	t.Logf("given up and the next task completed %v after the worker started", time.Since(began).Round(time.Millisecond))
	if _, ok := ran.Load(lost.ID); ok {
		t.Error("the task whose claim answer was lost ran")
	}
	if !strings.Contains(logs.String(), "gave them up") {
		t.Errorf("the give-up was not logged:\n%s", logs.String())
	}
	if workers, err := st.Workers(ctx); err != nil || len(workers) != 1 {
		t.Errorf("the worker should still be listed: %v %v", workers, err)
	}
}

// A give-up never takes a task whose claim answer is on its way for a
// lost one: claims run through Holdings, and a give-up waits for them.
// Nor a task whose outcome is still being recorded. Here claims and
// finishes are slow to answer and heartbeats frequent, so that nearly
// every heartbeat reads tasks whose claims have not returned yet, or
// whose outcomes are on their way: every task must still complete.
func TestWorkerGiveUpSparesClaimsInFlight(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st := &slowClaims{Store: eng.Open(t), delay: 30 * time.Millisecond}
		const n = 60
		tasks := make([]store.NewTask, n)
		for i := range tasks {
			tasks[i] = store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.a"}
		}
		if _, err := st.Dispatch(ctx, tasks); err != nil {
			t.Fatal(err)
		}
		w, err := New(st, Config{Name: "1@w", Names: []string{"test.a"}, Concurrency: 2, HeartbeatInterval: 5 * time.Millisecond,
			MissingAfter: time.Second, PollInterval: 10 * time.Millisecond, SweepInterval: -1,
			Handler: func(context.Context, *store.Task, *Recorder) (json.RawMessage, *store.TaskError) {
				return json.RawMessage(`"ok"`), nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		stop := runWorker(t, ctx, w)
		for w.Stats().Finished < n && ctx.Err() == nil {
			time.Sleep(10 * time.Millisecond)
		}
		stop()
		for _, nt := range tasks {
			task, err := st.Task(ctx, nt.ID)
			if err != nil {
				t.Fatal(err)
			}
			if task.State != store.StateCompleted {
				t.Fatalf("task %s: %s %+v", task.ID, task.State, task.Error)
			}
		}
	})
}

// slowClaims answers claims and finishes only after delay, once they have
// committed.
type slowClaims struct {
	store.Store
	delay time.Duration
}

func (s *slowClaims) Finish(ctx context.Context, o []store.Outcome) ([]uuid.UUID, error) {
	ids, err := s.Store.Finish(ctx, o)
	time.Sleep(s.delay)
	return ids, err
}

func (s *slowClaims) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Task, error) {
	tasks, err := s.Store.Claim(ctx, p)
	time.Sleep(s.delay)
	return tasks, err
}

// hangingClaims is a real store whose claims, once armed, hang until
// their context ends, as a call on a connection that died silently does
// until its deadline.
type hangingClaims struct {
	store.Store
	hang  atomic.Bool
	calls atomic.Int32
}

func (s *hangingClaims) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Task, error) {
	if s.hang.Load() {
		s.calls.Add(1)
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Store.Claim(ctx, p)
}

// Every claim is bounded by the call timeout: a claim that hangs fails
// after it, and the worker claims again (and runs the task) once calls
// answer again.
func TestWorkerClaimsAreBoundedByTheCallTimeout(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st := &hangingClaims{Store: eng.Open(t)}
		st.hang.Store(true)
		var logs syncbuf.Buffer
		w, err := New(st, Config{Name: "1@w", Names: []string{"test.a"}, CallTimeout: 200 * time.Millisecond,
			PollInterval: 20 * time.Millisecond, SweepInterval: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Handler: func(context.Context, *store.Task, *Recorder) (json.RawMessage, *store.TaskError) {
				return json.RawMessage(`"ok"`), nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer runWorker(t, ctx, w)()
		for st.calls.Load() < 3 {
			if ctx.Err() != nil {
				t.Fatalf("the claim loop made %d claims that hung: stuck in one", st.calls.Load())
			}
			time.Sleep(20 * time.Millisecond)
		}
		if !strings.Contains(logs.String(), "claim failed") || !strings.Contains(logs.String(), "deadline exceeded") {
			t.Errorf("claims that timed out were not logged:\n%s", logs.String())
		}
		st.hang.Store(false)
		nt := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.a"}
		if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
			t.Fatal(err)
		}
		for {
			task, err := st.Task(ctx, nt.ID)
			if err != nil {
				t.Fatal(err)
			}
			if task.State == store.StateCompleted {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("task %s after the claims answered again", task.State)
			}
			time.Sleep(20 * time.Millisecond)
		}
	})
}

// A claim loop stuck in a call for more than twice the call timeout (the
// timeout did not end it: something below it hangs) stops the heartbeats,
// so that the others find the worker lost instead of trusting its
// heartbeat; they start again once the call returns.
func TestStuckClaimLoopStopsHeartbeats(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st := &deafClaims{Store: eng.Open(t), release: make(chan struct{})}
		var logs syncbuf.Buffer
		const callTimeout, heartbeat = 100 * time.Millisecond, 20 * time.Millisecond
		w, err := New(st, Config{Name: "1@w", Names: []string{"test.a"}, CallTimeout: callTimeout,
			HeartbeatInterval: heartbeat, MissingAfter: 10 * time.Second, SweepInterval: -1,
			Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Handler: func(context.Context, *store.Task, *Recorder) (json.RawMessage, *store.TaskError) {
				return json.RawMessage(`"ok"`), nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		defer runWorker(t, ctx, w)()
		lastHeartbeat := func() time.Time {
			info, err := st.Worker(ctx, "1@w")
			if err != nil {
				t.Fatal(err)
			}
			return info.LastHeartbeat
		}
		time.Sleep(4 * callTimeout)
		before := lastHeartbeat()
		time.Sleep(5 * heartbeat)
		if after := lastHeartbeat(); !after.Equal(before) {
			t.Fatalf("heartbeats went on while the claim loop was stuck: %v then %v", before, after)
		}
		if !strings.Contains(logs.String(), "not heartbeating") {
			t.Errorf("the stop of heartbeats was not logged:\n%s", logs.String())
		}
		close(st.release)
		for lastHeartbeat().Equal(before) {
			if ctx.Err() != nil {
				t.Fatal("heartbeats did not start again once the claim returned")
			}
			time.Sleep(heartbeat)
		}
	})
}

// deafClaims is a real store whose first claim hangs until release is
// closed, whatever its context says.
type deafClaims struct {
	store.Store
	release chan struct{}
	once    sync.Once
}

func (s *deafClaims) Claim(ctx context.Context, p store.ClaimParams) ([]*store.Task, error) {
	first := false
	s.once.Do(func() { first = true })
	if first {
		<-s.release
	}
	return s.Store.Claim(ctx, p)
}

// waitBothFinal waits up to within for the tasks a (the one under test)
// and b (one behind it on a resource) to be final, and returns them; it
// fails the test, with the worker's log, if they are not by then.
func waitBothFinal(t *testing.T, ctx context.Context, st store.Store, a, b uuid.UUID, within time.Duration, logs *syncbuf.Buffer) (*store.Task, *store.Task) {
	t.Helper()
	began := time.Now()
	for {
		ta, err := st.Task(ctx, a)
		if err != nil {
			t.Fatal(err)
		}
		tb, err := st.Task(ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		if ta.State.Final() && tb.State.Final() {
			return ta, tb
		}
		if time.Since(began) > within {
			t.Fatalf("after %v: the task is %s, the one behind it %s; log:\n%s",
				time.Since(began).Round(time.Millisecond), ta.State, tb.State, logs.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runWorker runs w until the returned function is called, which waits for
// Run to return and reports its error.
func runWorker(t *testing.T, ctx context.Context, w *Worker) (stop func()) {
	t.Helper()
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	return func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	}
}

// A give-up held back for more than twice the call timeout by a claim in
// flight that does not end (here an immediate dispatch of an API node,
// which has no claim loop of its own to be found stuck) stops the
// heartbeats, so that the others find the name lost and drop its tasks
// rather than trust a heartbeat while a task that no run knows of holds
// its resources; once the claim ends, the give-up proceeds and the
// heartbeats start again.
func TestHeldBackGiveUpStopsHeartbeats(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st := eng.Open(t)
		const name, callTimeout, heartbeat = "api@node", 100 * time.Millisecond, 20 * time.Millisecond
		var logs syncbuf.Buffer
		p, err := NewPresence(st, PresenceConfig{Info: store.WorkerInfo{Name: name, Concurrency: 1},
			HeartbeatInterval: heartbeat, MissingAfter: 10 * time.Second, CallTimeout: callTimeout,
			Logger: slog.New(slog.NewTextHandler(&logs, nil))})
		if err != nil {
			t.Fatal(err)
		}
		if err := p.Register(ctx); err != nil {
			t.Fatal(err)
		}
		// A task held under the name that no run knows of: a claim whose
		// answer was lost.
		nt := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.a"}
		if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
			t.Fatal(err)
		}
		if got, err := st.Claim(ctx, store.ClaimParams{Worker: name, Names: []string{"test.a"}, Limit: 1}); err != nil || len(got) != 1 {
			t.Fatalf("claim: %d tasks, %v", len(got), err)
		}
		// And a claim in flight that does not end.
		h := AcquireHoldings(name)
		defer h.Release()
		h.BeginClaim()
		ended := false
		defer func() {
			if !ended {
				h.EndClaim()
			}
		}()
		pctx, stopPresence := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); p.Run(pctx) }()
		defer func() { stopPresence(); <-done }()

		lastHeartbeat := func() time.Time {
			info, err := st.Worker(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			return info.LastHeartbeat
		}
		time.Sleep(4 * callTimeout)
		before := lastHeartbeat()
		time.Sleep(5 * heartbeat)
		if after := lastHeartbeat(); !after.Equal(before) {
			t.Fatalf("heartbeats went on while a give-up was held back: %v then %v", before, after)
		}
		if !strings.Contains(logs.String(), "not heartbeating") {
			t.Errorf("the stop of heartbeats was not logged:\n%s", logs.String())
		}
		if task, err := st.Task(ctx, nt.ID); err != nil || task.State != store.StateRunning {
			t.Fatalf("the task was ended while the claim was in flight: %v %v", task, err)
		}
		h.EndClaim()
		ended = true
		for {
			task, err := st.Task(ctx, nt.ID)
			if err != nil {
				t.Fatal(err)
			}
			if task.State == store.StateDropped && task.Error != nil && task.Error.Kind == ClaimLostKind &&
				lastHeartbeat().After(before) {
				break
			}
			if ctx.Err() != nil {
				t.Fatalf("after the claim ended: task %s %+v, heartbeats again: %v", task.State, task.Error, lastHeartbeat().After(before))
			}
			time.Sleep(heartbeat)
		}
	})
}

// hangingFinishes is a real store whose finishes, once armed, hang until
// their context ends, as calls on a database that went silent do.
type hangingFinishes struct {
	store.Store
	hang atomic.Bool
}

func (s *hangingFinishes) Finish(ctx context.Context, o []store.Outcome) ([]uuid.UUID, error) {
	if s.hang.Load() {
		<-ctx.Done()
		return nil, ctx.Err()
	}
	return s.Store.Finish(ctx, o)
}

// A worker asked to stop while its outcomes cannot be recorded (the
// database went silent) stops after twice the call timeout rather than
// retrying for as long as the silence lasts: its unrecorded tasks are
// left for the others to drop when they find it lost.
func TestStoppingWorkerDoesNotWaitForASilentDatabase(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		st := &hangingFinishes{Store: eng.Open(t)}
		const callTimeout = 200 * time.Millisecond
		started, release := make(chan struct{}, 1), make(chan struct{})
		var logs syncbuf.Buffer
		w, err := New(st, Config{Name: "1@w", Names: []string{"test.a"}, CallTimeout: callTimeout,
			PollInterval: 20 * time.Millisecond, SweepInterval: -1, Logger: slog.New(slog.NewTextHandler(&logs, nil)),
			Handler: func(context.Context, *store.Task, *Recorder) (json.RawMessage, *store.TaskError) {
				started <- struct{}{}
				<-release
				return json.RawMessage(`"ok"`), nil
			}})
		if err != nil {
			t.Fatal(err)
		}
		runCtx, stopRun := context.WithCancel(ctx)
		done := make(chan error, 1)
		go func() { done <- w.Run(runCtx) }()
		nt := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.a"}
		if _, err := st.Dispatch(ctx, []store.NewTask{nt}); err != nil {
			t.Fatal(err)
		}
		<-started
		st.hang.Store(true)
		close(release)
		time.Sleep(callTimeout / 2) // the outcome is on its way
		stopping := time.Now()
		stopRun()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("worker: %v", err)
			}
			if took := time.Since(stopping); took > finishAtShutdown*callTimeout+2*time.Second {
				t.Errorf("stopped after %v", took)
			}
		case <-time.After(finishAtShutdown*callTimeout + 5*time.Second):
			t.Fatalf("the worker did not stop while its outcome could not be recorded; log:\n%s", logs.String())
		}
		if !strings.Contains(logs.String(), "stopping without recording every outcome") {
			t.Errorf("the unrecorded outcome was not logged:\n%s", logs.String())
		}
		if task, err := st.Task(ctx, nt.ID); err != nil || task.State != store.StateRunning {
			t.Errorf("task %v %v: still running is expected, for the others to drop", task, err)
		}
	})
}
