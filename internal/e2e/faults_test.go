package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/chaos"
	"github.com/stint-dev/stint/internal/faultproxy"
	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/internal/syncbuf"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// The fault tests put a fault-injecting proxy (internal/faultproxy)
// between a node and PostgreSQL and break its connections at chosen
// moments: a worker whose claim's reply is cut or silenced after the claim
// committed, a worker whose outcome's reply is cut after it committed, a
// dispatcher cut during a dispatch, all of a worker's connections silent
// for longer than the missing timeout, and latency with a bandwidth
// limit. The node is an in-process stint.Worker (or a stint.Client) whose
// store connects through the proxy; the test reads and dispatches through
// a direct connection of its own, and an observer node on a direct
// connection looks for lost workers, as every other node of a cluster
// would. For each fault: every task reaches a final state within a bound
// (recoverWithin), none is lost or completed twice, the tasks queued
// behind it on its resources run, and the time to recover is logged.

// The timings of the nodes in the fault tests.
const (
	faultHeartbeat = 500 * time.Millisecond
	faultMissing   = 3 * time.Second
	// recoverWithin bounds the time from a fault to the end of the tasks
	// it hit: above the worker's call timeout (the default, 10 s) plus a
	// few heartbeats.
	recoverWithin = 30 * time.Second
)

// faultStep is the task type of the fault tests: it sleeps for its args'
// milliseconds and counts its runs.
const faultStep = "fault.step"

// stepArgs are the args of fault.step.
type stepArgs struct {
	MS int `json:"ms"`
}

// runCounts counts the calls of fault.step per task: entered, and
// returned without error.
type runCounts struct {
	mu       sync.Mutex
	entered  map[uuid.UUID]int
	returned map[uuid.UUID]int
}

func (c *runCounts) add(m *map[uuid.UUID]int, id uuid.UUID) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if *m == nil {
		*m = map[uuid.UUID]int{}
	}
	(*m)[id]++
}

func (c *runCounts) get(id uuid.UUID) (entered, returned int) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.entered[id], c.returned[id]
}

// faultRig is a database, a direct store on it, a proxy in front of its
// server, and an observer node.
type faultRig struct {
	ctx    context.Context
	dsn    string
	direct *postgres.Store
	reg    *stint.Registry
	client *stint.Client // dispatches and reads through the direct store
	proxy  *faultproxy.Proxy
	runs   *runCounts
}

func newFaultRig(t *testing.T) *faultRig {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	t.Cleanup(cancel)
	r := &faultRig{ctx: ctx, dsn: pgtest.Database(t), runs: &runCounts{}}
	direct, err := postgres.Open(ctx, r.dsn)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(direct.Close)
	if err := direct.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	r.direct = direct
	r.reg = stint.NewRegistry()
	stint.Register(r.reg, faultStep, func(ctx context.Context, run *stint.Run, a stepArgs) (struct{}, error) {
		r.runs.add(&r.runs.entered, run.ID())
		select {
		case <-ctx.Done():
			return struct{}{}, ctx.Err()
		case <-time.After(time.Duration(a.MS) * time.Millisecond):
		}
		r.runs.add(&r.runs.returned, run.ID())
		return struct{}{}, nil
	})
	r.client = stint.NewClient(direct, r.reg)
	addr, err := faultproxy.NetAddr(r.dsn)
	if err != nil {
		t.Fatal(err)
	}
	r.proxy = faultproxy.Start(t, addr)

	// The observer: another node of the cluster, on a direct connection,
	// that finds lost workers and ends their tasks.
	octx, stop := context.WithCancel(context.WithoutCancel(ctx))
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.client.RunNode(octx, stint.NodeConfig{Name: "observer", HeartbeatInterval: faultHeartbeat, //nolint:errcheck // a valid config
			MissingAfter: faultMissing, LostCheckInterval: 250 * time.Millisecond, Logger: slog.New(slog.DiscardHandler)})
	}()
	t.Cleanup(func() { stop(); <-done })
	return r
}

// faultyWorker is an in-process worker whose store connects through the
// proxy.
type faultyWorker struct {
	name string
	log  *syncbuf.Buffer
	done chan error
}

// startWorker starts a worker through the proxy that provides
// version faulty=1 (tasks that require it run only there).
func (r *faultRig) startWorker(t *testing.T, name string) *faultyWorker {
	t.Helper()
	st, err := postgres.Open(r.ctx, r.proxy.DSN(r.dsn))
	if err != nil {
		t.Fatal(err)
	}
	w := &faultyWorker{name: name, log: &syncbuf.Buffer{}, done: make(chan error, 1)}
	worker, err := stint.NewWorker(st, r.reg, stint.WorkerConfig{
		Name: name, Concurrency: 2, Versions: map[string]string{"faulty": "1"},
		PollInterval: 200 * time.Millisecond, HeartbeatInterval: faultHeartbeat, MissingAfter: faultMissing,
		LostCheckInterval: 250 * time.Millisecond, SweepInterval: time.Second, ShutdownGrace: 2 * time.Second,
		WorkDir: t.TempDir(), Logger: slog.New(slog.NewTextHandler(w.log, &slog.HandlerOptions{Level: slog.LevelInfo})),
	})
	if err != nil {
		t.Fatal(err)
	}
	wctx, stop := context.WithCancel(context.WithoutCancel(r.ctx))
	go func() { w.done <- worker.Run(wctx) }()
	t.Cleanup(func() {
		stop()
		select {
		case <-w.done:
		case <-time.After(30 * time.Second):
			t.Errorf("worker %s did not stop within 30 s", name)
		}
		st.Close()
		if t.Failed() {
			t.Logf("worker %s's log:\n%s", name, tail(w.log.String(), 40))
		}
	})
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if _, err := r.direct.Worker(r.ctx, name); err == nil {
			return w
		}
		if time.Now().After(deadline) {
			t.Fatalf("worker %s did not register:\n%s", name, w.log.String())
		}
	}
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

// dispatch dispatches fault.step for ms milliseconds on the exclusive
// resources, pinned to the faulty worker (version faulty=1).
func (r *faultRig) dispatch(t *testing.T, ms int, exclusive ...string) *stint.Task {
	t.Helper()
	task, err := r.client.Dispatch(r.ctx, stint.DispatchRequest{Name: faultStep, Args: stepArgs{MS: ms},
		ExclusiveResources: exclusive, Versions: map[string]string{"faulty": "1"}})
	if err != nil {
		t.Fatal(err)
	}
	return task
}

// final waits until task id is final, for at most within, and returns it
// and when it ended by the test's clock. It fails the test when the task is
// still incomplete then.
func (r *faultRig) final(t *testing.T, id uuid.UUID, within time.Duration, what string) (*stint.Task, time.Time) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		task, err := r.client.Task(r.ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if task.State.Final() {
			return task, time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: task %s is still %s (worker %q, attempt %d) %v after the fault: stuck", what, id, task.State,
				task.Worker, task.Attempt, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// completed is final that also requires the task to have completed.
func (r *faultRig) completed(t *testing.T, id uuid.UUID, within time.Duration, what string) time.Time {
	t.Helper()
	task, at := r.final(t, id, within, what)
	if task.State != store.StateCompleted {
		t.Fatalf("%s: task %s ended %s (%+v), want completed", what, id, task.State, task.Error)
	}
	return at
}

// waitFault waits for a proxy rule to fire.
func waitFault(t *testing.T, faults <-chan faultproxy.Fault, what string) faultproxy.Fault {
	t.Helper()
	select {
	case f := <-faults:
		return f
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: the proxy's rule did not fire within 30 s", what)
	}
	return faultproxy.Fault{}
}

// verify judges every task of the database: final, no conflicting
// overlap or overtake, every started task claimed once (attempt 1), none
// completed by more than one run, the queues empty; and that no task
// ended dropped unless allowed.
func (r *faultRig) verify(t *testing.T, allowDropped ...uuid.UUID) {
	t.Helper()
	tasks := loadTasks(r.ctx, t, r.direct)
	rep := chaos.Check(chaos.History{Tasks: tasks}, chaos.Limits{})
	for _, v := range rep.Violations {
		// The checker knows nothing of the fault: the drops it explains
		// are the test's to judge.
		if v.Kind == chaos.DroppedAlive && slices.ContainsFunc(allowDropped, func(id uuid.UUID) bool {
			return strings.Contains(v.Msg, id.String())
		}) {
			continue
		}
		t.Error(v)
	}
	for _, task := range tasks {
		entered, returned := r.runs.get(task.ID)
		if returned > 1 || entered > 1 {
			t.Errorf("task %s was run %d times (%d returned): it was claimed once", task.ID, entered, returned)
		}
		if task.State == string(store.StateCompleted) && returned != 1 {
			t.Errorf("task %s completed, but %d runs of it returned", task.ID, returned)
		}
		if task.State == string(store.StateDropped) && !slices.Contains(allowDropped, task.ID) {
			t.Errorf("task %s was dropped (%s), though the fault did not touch it", task.ID, task.Reason)
		}
	}
	var left int
	if err := r.direct.Pool().QueryRow(r.ctx, `SELECT count(*) FROM stint_task_resources`).Scan(&left); err != nil {
		t.Fatal(err)
	}
	if left > 0 {
		t.Errorf("%d queue entries remain", left)
	}
}

// claimOf matches the row of a claimed task holding resource res: a task
// row (some twenty columns) whose resources hold the name.
func claimOf(res string) faultproxy.Match {
	return func(row faultproxy.Row) bool { return len(row) > 10 && row.Contains([]byte(res)) }
}

// finishOf matches the reply of stint_finish for task id: rows of one
// column, the ids it finished.
func finishOf(id uuid.UUID) faultproxy.Match {
	return func(row faultproxy.Row) bool { return len(row) == 1 && row.HasUUID(id) }
}

// TestFaultClaimReplyCut: the connection of a claim is cut right after
// the claim committed, its reply lost on the way back (issue 14, finding
// 2). The proxy reads the server's reply and cuts the connection at the
// ReadyForQuery that follows the claimed row, withholding the reply: the
// claim is committed (the task is running under the worker's name) and the
// worker never learns it. The task must not stay running: the worker
// gives it up (dropped, claim-lost) or runs it, and the task queued behind
// it on its resource runs.
func TestFaultClaimReplyCut(t *testing.T) {
	r := newFaultRig(t)
	r.startWorker(t, "faulty")
	faults := r.proxy.CutAfterReply(claimOf("fault:claim-cut"))
	held := r.dispatch(t, 100, "fault:claim-cut")
	behind := r.dispatch(t, 0, "fault:claim-cut")
	f := waitFault(t, faults, "claim")
	if !f.Committed() {
		t.Fatalf("the claim's transaction status was %q at the cut", f.TxStatus)
	}
	task, ended := r.final(t, held.ID, recoverWithin, "the task whose claim's reply was cut")
	doneBehind := r.completed(t, behind.ID, recoverWithin, "the task behind it")
	t.Logf("claim's reply cut: the task ended %s (%s) %v after the cut; the task behind it completed %v after the cut",
		task.State, errKind(task), ended.Sub(f.At).Round(time.Millisecond), doneBehind.Sub(f.At).Round(time.Millisecond))
	other := r.dispatch(t, 0)
	r.completed(t, other.ID, recoverWithin, "a task dispatched after the fault")
	r.verify(t, held.ID)
}

// errKind returns the kind of a task's error, or "-".
func errKind(t *stint.Task) string {
	if t.Error == nil {
		return "-"
	}
	return t.Error.Kind
}

// TestFaultFinishReplyCut: the connection that records a task's outcome
// is cut right after stint_finish committed; the worker retries the
// outcome, which must change nothing: the task completed once, and the
// task behind it runs.
func TestFaultFinishReplyCut(t *testing.T) {
	r := newFaultRig(t)
	r.startWorker(t, "faulty")
	held := r.dispatch(t, 1000, "fault:finish-cut")
	faults := r.proxy.CutAfterReply(finishOf(held.ID)) // armed while the task sleeps
	behind := r.dispatch(t, 0, "fault:finish-cut")
	f := waitFault(t, faults, "finish")
	if !f.Committed() {
		t.Fatalf("the finish's transaction status was %q at the cut", f.TxStatus)
	}
	r.completed(t, held.ID, recoverWithin, "the task whose outcome's reply was cut")
	doneBehind := r.completed(t, behind.ID, recoverWithin, "the task behind it")
	t.Logf("finish's reply cut: the task behind it completed %v after the cut", doneBehind.Sub(f.At).Round(time.Millisecond))
	other := r.dispatch(t, 0)
	r.completed(t, other.ID, recoverWithin, "a task dispatched after the fault")
	r.verify(t)
}

// TestFaultDispatchCut: a dispatcher's connection is cut during a
// dispatch. When the dispatch's own implicit transaction committed (the
// reply is lost), the task exists and runs once; when the dispatch ran in
// the application's transaction (DispatchTx) and the cut comes before its
// COMMIT, PostgreSQL rolls it back: no task, nothing left in the queues,
// and the next task on the resource runs at once.
func TestFaultDispatchCut(t *testing.T) {
	r := newFaultRig(t)
	r.startWorker(t, "faulty")
	dispatcher, err := postgres.Open(r.ctx, r.proxy.DSN(r.dsn))
	if err != nil {
		t.Fatal(err)
	}
	defer dispatcher.Close()
	through := stint.NewClient(dispatcher, r.reg)
	req := func(res string) stint.DispatchRequest {
		return stint.DispatchRequest{Name: faultStep, Args: stepArgs{MS: 50}, ExclusiveResources: []string{res},
			Versions: map[string]string{"faulty": "1"}}
	}

	t.Run("committed", func(t *testing.T) {
		faults := r.proxy.CutAfterReply(func(row faultproxy.Row) bool {
			return len(row) > 10 && row.Contains([]byte("fault:dispatch-committed"))
		})
		if task, err := through.Dispatch(r.ctx, req("fault:dispatch-committed")); err == nil {
			t.Fatalf("the dispatch's reply came through: %s", task.ID)
		}
		f := waitFault(t, faults, "dispatch")
		if !f.Committed() {
			t.Fatalf("transaction status %q at the cut", f.TxStatus)
		}
		tasks, _, err := r.direct.ListTasks(r.ctx, store.TaskFilter{ExclusiveResource: "fault:dispatch-committed", Limit: 10})
		if err != nil || len(tasks) != 1 {
			t.Fatalf("tasks of the cut dispatch: %d, %v; want 1 (it committed)", len(tasks), err)
		}
		done := r.completed(t, tasks[0].ID, recoverWithin, "the task whose dispatch's reply was cut")
		t.Logf("dispatch's reply cut after its commit: the task completed %v after the cut", done.Sub(f.At).Round(time.Millisecond))
	})

	t.Run("in the application's transaction", func(t *testing.T) {
		faults := r.proxy.CutAfterReply(func(row faultproxy.Row) bool {
			return len(row) > 10 && row.Contains([]byte("fault:dispatch-tx"))
		})
		prepared, err := through.Prepare([]stint.DispatchRequest{req("fault:dispatch-tx")})
		if err != nil {
			t.Fatal(err)
		}
		tx, err := dispatcher.Pool().Begin(r.ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := postgres.DispatchTx(r.ctx, tx, prepared); err == nil {
			t.Fatal("the dispatch's reply came through")
		}
		tx.Rollback(r.ctx) //nolint:errcheck // the connection is gone
		f := waitFault(t, faults, "dispatch in a transaction")
		if f.TxStatus != 'T' {
			t.Fatalf("transaction status %q at the cut, want T (inside the application's transaction)", f.TxStatus)
		}
		next := r.dispatch(t, 0, "fault:dispatch-tx")
		done := r.completed(t, next.ID, recoverWithin, "the next task on the resource")
		t.Logf("dispatch cut inside the application's transaction: the next task on its resource completed %v after the cut",
			done.Sub(f.At).Round(time.Millisecond))
		if _, err := r.direct.Task(r.ctx, prepared[0].ID); err == nil {
			t.Fatalf("the task of the rolled-back dispatch exists")
		}
	})
	r.verify(t)
}

// TestFaultSilentConnections: connections of a worker go silent (no FIN,
// no RST: what is sent is black-holed) and stay so (issue 14, finding 3).
func TestFaultSilentConnections(t *testing.T) {
	// The claim's reply is black-holed after the claim committed, and
	// that connection stays silent for good while the rest of the network
	// works: the worker's heartbeats, on another connection, go on. The
	// claim must not hang the claim loop: it times out, the task it got is
	// given up (or run), and the tasks behind it and after it run.
	t.Run("claim", func(t *testing.T) {
		r := newFaultRig(t)
		r.startWorker(t, "faulty")
		faults := r.proxy.SilenceAfterReply(claimOf("fault:claim-silent"))
		held := r.dispatch(t, 100, "fault:claim-silent")
		behind := r.dispatch(t, 0, "fault:claim-silent")
		f := waitFault(t, faults, "claim")
		if !f.Committed() {
			t.Fatalf("the claim's transaction status was %q at the silence", f.TxStatus)
		}
		other := r.dispatch(t, 0) // needs the claim loop
		task, ended := r.final(t, held.ID, recoverWithin, "the task whose claim's reply was silenced")
		doneBehind := r.completed(t, behind.ID, recoverWithin, "the task behind it")
		doneOther := r.completed(t, other.ID, recoverWithin, "a task dispatched after the silence")
		t.Logf("claim's connection silent: the task ended %s (%s) %v after; the task behind it completed after %v, a new task after %v",
			task.State, errKind(task), ended.Sub(f.At).Round(time.Millisecond), doneBehind.Sub(f.At).Round(time.Millisecond),
			doneOther.Sub(f.At).Round(time.Millisecond))
		r.verify(t, held.ID)
	})

	// Every connection of the worker goes silent for longer than the
	// missing timeout: the observer finds the worker lost and drops its
	// task. Then the network comes back, but the connections that lost
	// bytes in the silence stay silent for good: the worker must notice,
	// open new ones, register again and run the tasks only it can run.
	t.Run("all past the missing timeout", func(t *testing.T) {
		r := newFaultRig(t)
		r.startWorker(t, "faulty")
		held := r.dispatch(t, 3000, "fault:silent")
		for deadline := time.Now().Add(recoverWithin); ; time.Sleep(20 * time.Millisecond) {
			task, err := r.client.Task(r.ctx, held.ID)
			if err != nil {
				t.Fatal(err)
			}
			if task.State == store.StateRunning {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("the task did not start: %s", task.State)
			}
		}
		silenced := time.Now()
		r.proxy.Silence()
		behind := r.dispatch(t, 0, "fault:silent")
		dropped, at := r.final(t, held.ID, faultMissing+5*time.Second, "the task of the silent worker")
		if dropped.State != store.StateDropped {
			t.Fatalf("the silent worker's task ended %s, want dropped", dropped.State)
		}
		time.Sleep(time.Until(silenced.Add(faultMissing + 2*time.Second)))
		dead := r.proxy.Restore()
		restored := time.Now()
		t.Logf("all connections silent for %v: the task was dropped %v after the silence began; %d connections died in it",
			restored.Sub(silenced).Round(time.Millisecond), at.Sub(silenced).Round(time.Millisecond), dead)
		doneBehind := r.completed(t, behind.ID, recoverWithin, "the task behind it (only the silent worker can run it)")
		other := r.dispatch(t, 0)
		doneOther := r.completed(t, other.ID, recoverWithin, "a task dispatched after the network came back")
		t.Logf("after the network came back, the worker ran the task behind in %v, a new task at %v",
			doneBehind.Sub(restored).Round(time.Millisecond), doneOther.Sub(restored).Round(time.Millisecond))
		if _, err := r.direct.Worker(r.ctx, "faulty"); err != nil {
			t.Errorf("the worker is not listed after the network came back: %v", err)
		}
		r.verify(t, held.ID)
	})
}

// TestFaultLatencyAndBandwidth: a worker behind 40 ms ± 10 ms of latency
// each way and a 32 KB/s bandwidth limit runs a batch of tasks on shared
// and exclusive resources: all complete, once, none is dropped (its
// heartbeats arrive in time), and the resource rule holds.
func TestFaultLatencyAndBandwidth(t *testing.T) {
	r := newFaultRig(t)
	r.startWorker(t, "faulty")
	defer r.proxy.Latency(40*time.Millisecond, 10*time.Millisecond)()
	defer r.proxy.Bandwidth(32)()
	rng := rand.New(rand.NewPCG(14, 5))
	var reqs []stint.DispatchRequest
	for range 60 {
		req := stint.DispatchRequest{Name: faultStep, Args: stepArgs{MS: rng.IntN(20)}, Versions: map[string]string{"faulty": "1"}}
		for _, i := range rng.Perm(4)[:1+rng.IntN(2)] {
			res := fmt.Sprintf("fault:slow-%d", i)
			if rng.IntN(2) == 0 {
				req.ExclusiveResources = append(req.ExclusiveResources, res)
			} else {
				req.SharedResources = append(req.SharedResources, res)
			}
		}
		reqs = append(reqs, req)
	}
	began := time.Now()
	tasks, err := r.client.DispatchMany(r.ctx, reqs)
	if err != nil {
		t.Fatal(err)
	}
	for _, task := range tasks {
		r.completed(t, task.ID, time.Minute, "a task of the slow worker")
	}
	t.Logf("%d tasks through 40±10 ms each way and 32 KB/s in %v", len(tasks), time.Since(began).Round(time.Millisecond))
	r.verify(t)
}
