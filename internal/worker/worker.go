// Package worker claims runnable tasks from a store, runs them with a
// handler, heartbeats, and records how each run ended.
//
// A Worker has a fixed number of slots. One loop claims as many tasks as
// there are free slots, in one query, whenever it is woken (a notification
// from the store, a freed slot after a full claim, or the poll interval).
// Outcomes are written in batches by a second loop: whatever finished while
// the previous batch was being written goes into the next one.
package worker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime/debug"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/versions"
	"github.com/stint-dev/stint/store"
)

// Handler runs one task. It returns the task's result, or the error that
// failed it. It must return soon after ctx is canceled.
type Handler func(ctx context.Context, t *store.Task, rec *Recorder) (json.RawMessage, *store.TaskError)

// Config configures a Worker. Zero values take the defaults noted.
type Config struct {
	Name              string            // unique among online workers; required
	Hostname          string            // reported in the worker list
	PID               int               // reported in the worker list
	Concurrency       int               // slots; default 1
	ClaimBatch        int               // most tasks per claim; default 100
	Names             []string          // task names this worker runs; required
	Versions          map[string]string // component versions it provides; see internal/versions
	Handler           Handler           // runs a task; required
	PollInterval      time.Duration     // claim at least this often; default 1 s
	HeartbeatInterval time.Duration     // default 2 s
	SweepInterval     time.Duration     // scheduler safety net; default 30 s, negative disables
	ShutdownGrace     time.Duration     // time running tasks get to finish at shutdown; default 30 s
	Logger            *slog.Logger      // default slog.Default()
	// MissingAfter: every LostCheckInterval, the worker ends the tasks of
	// the workers (any, on any node) silent this long and removes them
	// from the list (store.DropLostWorkers). Default DefaultMissingAfter;
	// it must exceed HeartbeatInterval.
	MissingAfter time.Duration
	// LostCheckInterval; default DefaultLostCheckInterval. See
	// PresenceConfig.
	LostCheckInterval time.Duration
	// CallTimeout bounds each call the worker makes to the store (a claim,
	// one try of recording outcomes, a heartbeat, ...); default
	// DefaultCallTimeout. A claim loop stuck in a call for twice as long
	// stops the heartbeats (PresenceConfig.Stuck).
	CallTimeout time.Duration
	// Cleanup, if set, is called in a goroutine of its own with the tasks
	// that ended canceled or dropped under this worker: its own runs, and
	// the tasks of lost workers it ended. It runs the task types' cleanup
	// hooks.
	Cleanup func(ctx context.Context, ids []uuid.UUID)
	// Finished, if set, is called after each run this worker ends, with
	// the task's name, the state it ended in (StateScheduled for a run
	// whose task is retried) and how long it ran.
	Finished func(name string, state store.State, run time.Duration)
}

// ShutdownKind is the Kind of the error of a task that a worker's
// shutdown ended dropped.
const ShutdownKind = "shutdown"

// shutdownCancelWait is how long runs canceled at shutdown get to return
// before they are recorded dropped and left behind.
const shutdownCancelWait = 2 * time.Second

// The defaults of Config and PresenceConfig, the one definition of each:
// stint, api and node name them from here.
const (
	// DefaultMissingAfter: a worker silent this long is lost.
	DefaultMissingAfter = 10 * time.Second
	// DefaultHeartbeatInterval: how often a worker heartbeats.
	DefaultHeartbeatInterval = 2 * time.Second
)

// Stats counts what a worker did.
type Stats struct {
	Claimed     int64
	Finished    int64
	SweepRepair int64 // repairs the sweep made: each one is a scheduler bug signal
}

// Worker runs tasks from a store. Create it with New and start it with Run.
type Worker struct {
	store store.Store
	cfg   Config
	log   *slog.Logger

	outcomes chan store.Outcome
	freed    chan struct{}

	outMu     sync.Mutex // guards sending on outcomes against its closing
	outClosed bool

	presence *Presence
	holdings *Holdings // while Run runs
	cleanups sync.WaitGroup

	// claimSince is when the claim in flight began (Unix nanoseconds), 0
	// while none is.
	claimSince atomic.Int64

	mu      sync.Mutex
	running map[uuid.UUID]*runningTask
	stats   Stats
}

type runningTask struct {
	task   *store.Task
	cancel context.CancelFunc
	began  time.Time
	// shutdown: the worker's shutdown canceled the run, which then ends
	// dropped rather than canceled (no one asked for the cancel).
	shutdown bool
}

// New returns a worker that is not yet running.
func New(st store.Store, cfg Config) (*Worker, error) {
	if cfg.Name == "" || cfg.Handler == nil || len(cfg.Names) == 0 {
		return nil, errors.New("worker: Name, Handler and Names are required")
	}
	// A version that does not parse would satisfy no requirement, silently:
	// refuse it at start-up instead.
	if err := versions.Validate(cfg.Versions); err != nil {
		return nil, fmt.Errorf("worker: versions: %w", err)
	}
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 1
	}
	if cfg.ClaimBatch <= 0 {
		cfg.ClaimBatch = 100
	}
	if cfg.PollInterval <= 0 {
		cfg.PollInterval = time.Second
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = DefaultHeartbeatInterval
	}
	if cfg.SweepInterval == 0 {
		cfg.SweepInterval = 30 * time.Second
	}
	if cfg.ShutdownGrace <= 0 {
		cfg.ShutdownGrace = 30 * time.Second
	}
	if cfg.CallTimeout <= 0 {
		cfg.CallTimeout = DefaultCallTimeout
	}
	log := cfg.Logger
	if log == nil {
		log = slog.Default()
	}
	w := &Worker{
		store:    st,
		cfg:      cfg,
		log:      log.With("worker", cfg.Name),
		outcomes: make(chan store.Outcome, cfg.Concurrency),
		freed:    make(chan struct{}, 1),
		running:  make(map[uuid.UUID]*runningTask),
	}
	p, err := NewPresence(st, PresenceConfig{
		Info: store.WorkerInfo{Name: cfg.Name, Hostname: cfg.Hostname, PID: cfg.PID,
			Versions: cfg.Versions, Concurrency: cfg.Concurrency},
		HeartbeatInterval: cfg.HeartbeatInterval, MissingAfter: cfg.MissingAfter,
		LostCheckInterval: cfg.LostCheckInterval, Logger: w.log, CallTimeout: cfg.CallTimeout,
		Gone: func(id uuid.UUID, _ store.State) { w.stop(id) }, Stuck: w.stuck,
		Dropped: func(ctx context.Context, ids []uuid.UUID) { w.cleanup(ctx, ids) },
	})
	if err != nil {
		return nil, err
	}
	w.presence = p
	return w, nil
}

// Stats returns a snapshot of the worker's counters.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.stats
}

// Run registers the worker and runs tasks until ctx ends. Then it stops
// claiming, gives running tasks the shutdown grace period, cancels those
// still running, records them dropped if they do not return, and removes
// the worker from the list.
func (w *Worker) Run(ctx context.Context) error {
	w.holdings = AcquireHoldings(w.cfg.Name)
	defer w.holdings.Release()
	if err := w.presence.Register(ctx); err != nil {
		return err
	}
	// Background loops use their own context: they outlive ctx until the
	// running tasks have been wound down.
	bg, stopBackground := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBackground()
	wakeups, err := w.store.Wakeups(bg)
	if err != nil {
		return err
	}
	cancels, err := w.store.Cancels(bg)
	if err != nil {
		return err
	}
	dues, err := w.store.DueSignals(bg)
	if err != nil {
		return err
	}

	var loops sync.WaitGroup
	finisherDone := make(chan struct{})
	finishing, stopFinishing := context.WithCancel(bg)
	defer stopFinishing()
	go func() { defer close(finisherDone); w.finishLoop(finishing) }()
	loops.Add(2)
	go func() { defer loops.Done(); w.presence.Run(bg) }()
	go func() { defer loops.Done(); w.cancelLoop(cancels) }()
	if w.cfg.SweepInterval > 0 {
		loops.Add(1)
		go func() { defer loops.Done(); w.sweepLoop(bg) }()
	}

	var tasks sync.WaitGroup
	w.claimLoop(ctx, wakeups, dues, &tasks)
	w.shutdown(&tasks)
	w.outMu.Lock()
	w.outClosed = true
	close(w.outcomes)
	w.outMu.Unlock()
	// The outcomes are recorded while the database answers, but a
	// stopping worker does not wait for one that went silent: the tasks
	// whose outcomes are not recorded by then end dropped when other nodes
	// find this worker lost (at once on PostgreSQL, when its session ends
	// with the process).
	select {
	case <-finisherDone:
	case <-time.After(finishAtShutdown * w.cfg.CallTimeout):
		w.log.Error("stopping without recording every outcome: the database does not answer; other nodes will drop those tasks",
			"waited", finishAtShutdown*w.cfg.CallTimeout)
		stopFinishing()
		<-finisherDone
	}
	stopBackground()
	loops.Wait()
	w.cleanups.Wait()
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.CallTimeout)
	defer cancel()
	return w.store.RemoveWorker(rctx, w.cfg.Name)
}

// finishAtShutdown is how many call timeouts a stopping worker waits for
// the outcomes of its last runs to be recorded.
const finishAtShutdown = 2

func (w *Worker) free() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.cfg.Concurrency - len(w.running)
}

// dueBatch is the most scheduled tasks one EnqueueDue makes waiting; when
// it makes that many, the worker calls it again at once.
const dueBatch = 1000

// dueSafetyPolls: every this many polls, the worker looks for due tasks
// even though no signal or timer told it to (signals may be lost).
const dueSafetyPolls = 10

// claimLoop claims and starts tasks until ctx ends. It also makes
// scheduled tasks waiting when they are due: it asks the store (EnqueueDue)
// at start, whenever a task was scheduled anywhere (DueSignals), at the
// nearest due time the store gave it (a timer), and every dueSafetyPolls
// polls.
func (w *Worker) claimLoop(ctx context.Context, wakeups, dues <-chan struct{}, tasks *sync.WaitGroup) {
	poll := time.NewTicker(w.cfg.PollInterval)
	defer poll.Stop()
	due := time.NewTimer(time.Hour)
	defer due.Stop()
	checkDue := true // there may be due tasks
	polls := 0
	more := true // there may be runnable tasks
	for {
		if ctx.Err() != nil {
			return // a stopping worker takes no more tasks
		}
		if checkDue {
			checkDue = false
			if n, err := w.enqueueDue(ctx, due); err != nil {
				w.log.Warn("enqueueing due tasks failed", "error", err)
			} else if n > 0 {
				more = true
				checkDue = n == dueBatch
			}
		}
		if free := w.free(); more && free > 0 {
			limit := min(free, w.cfg.ClaimBatch)
			n, err := w.claim(ctx, limit, tasks)
			if err != nil {
				// The claim may have committed with its answer lost: the
				// next heartbeat finds its tasks and gives them up (a
				// stopping worker's are dropped by the other nodes, as
				// orphans).
				w.log.Warn("claim failed", "error", err)
				more = false
			} else {
				more = n == limit
				if more {
					continue
				}
			}
		}
		if checkDue {
			continue
		}
		select {
		case <-ctx.Done():
			return
		case _, ok := <-wakeups:
			if !ok {
				wakeups = nil
			}
			more = true
		case _, ok := <-dues:
			if !ok {
				dues = nil
			}
			checkDue = true
		case <-due.C:
			checkDue = true
		case <-w.freed:
		case <-poll.C:
			more = true
			polls++
			checkDue = polls%dueSafetyPolls == 0
		}
	}
}

// enqueueDue makes the due scheduled tasks waiting, within the call
// timeout, and sets timer to the nearest due time of those still
// scheduled (by the store's clock, so that a worker's own clock does not
// matter). It returns how many it made waiting.
func (w *Worker) enqueueDue(ctx context.Context, timer *time.Timer) (int, error) {
	cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
	defer cancel()
	due, err := w.store.EnqueueDue(cctx, dueBatch)
	if err != nil {
		return 0, err
	}
	timer.Stop()
	if due.NextIn >= 0 {
		// A millisecond late rather than early: a timer that fires before
		// the store's clock reaches the time finds nothing due.
		timer.Reset(due.NextIn + time.Millisecond)
	}
	return due.Enqueued, nil
}

// claim claims up to limit tasks, within the call timeout, and starts
// them. It runs as a claim of the worker's Holdings, so that a give-up
// never takes its tasks for lost ones.
func (w *Worker) claim(ctx context.Context, limit int, tasks *sync.WaitGroup) (int, error) {
	// Stamped before the gate, so that a claim held up there counts as
	// stuck too.
	w.claimSince.Store(time.Now().UnixNano())
	defer w.claimSince.Store(0)
	w.holdings.BeginClaim()
	defer w.holdings.EndClaim()
	// Not ended by ctx: a claim that committed when the worker is told to
	// stop must bring its answer home, or its tasks would stay running
	// under a worker that then leaves the list. Its tasks run within the
	// shutdown grace like the others; the call timeout bounds the wait.
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), w.cfg.CallTimeout)
	defer cancel()
	claimed, err := w.store.Claim(cctx, store.ClaimParams{Worker: w.cfg.Name, Names: w.cfg.Names, Limit: limit,
		Versions: w.cfg.Versions})
	if err != nil {
		return 0, err
	}
	for _, t := range claimed {
		w.start(t, tasks)
	}
	return len(claimed), nil
}

// stuck reports a claim loop stuck in a call for more than twice the
// call timeout: the timeout should have ended it, so something below it
// hangs, and the worker had better be found lost than look alive.
func (w *Worker) stuck() error {
	since := w.claimSince.Load()
	if since == 0 {
		return nil
	}
	if d := time.Since(time.Unix(0, since)); d > 2*w.cfg.CallTimeout {
		return fmt.Errorf("the claim loop has been in one call for %v (call timeout %v)", d.Round(time.Millisecond), w.cfg.CallTimeout)
	}
	return nil
}

// start runs one claimed task in its own goroutine.
func (w *Worker) start(t *store.Task, tasks *sync.WaitGroup) {
	ctx, cancel := context.WithCancel(context.Background())
	rt := &runningTask{task: t, cancel: cancel, began: time.Now()}
	w.mu.Lock()
	w.running[t.ID] = rt
	w.stats.Claimed++
	w.mu.Unlock()
	w.holdings.Add(t.ID)
	tasks.Add(1)
	go func() {
		defer tasks.Done()
		defer cancel()
		outcome := Execute(ctx, w.store, t, w.cfg.Handler, w.log)
		ran := time.Since(rt.began)
		w.mu.Lock()
		shutdown := rt.shutdown
		w.mu.Unlock()
		if shutdown && outcome.State == store.StateCanceled {
			outcome.State, outcome.Result = store.StateDropped, nil
			outcome.Error = &store.TaskError{Kind: ShutdownKind, Description: fmt.Sprintf(
				"the worker shut down and stopped the task after its grace period (%v)", w.cfg.ShutdownGrace)}
		}
		if w.report(outcome) && w.cfg.Finished != nil {
			state := outcome.State
			if t.RetriedBy(outcome) {
				state = store.StateScheduled
			}
			w.cfg.Finished(t.Name, state, ran)
		}
		w.mu.Lock()
		delete(w.running, t.ID)
		w.mu.Unlock()
		select {
		case w.freed <- struct{}{}:
		default:
		}
	}()
}

// Execute runs one claimed task t with h in the calling goroutine, with the
// machinery of a worker's run: a Recorder for its outputs, fenced by the
// run's attempt (when the run no longer owns the task, ctx of the handler
// is canceled), the outputs flushed when h returns, and a panic of h made
// a failure with its stack. It returns the outcome for the caller to
// record (see Record): completed with h's result, failed with its error,
// or canceled when h failed after ctx was canceled. Workers run each task
// through it; so does an immediate dispatch that runs its task inline.
func Execute(ctx context.Context, st store.Store, t *store.Task, h Handler, log *slog.Logger) store.Outcome {
	if log == nil {
		log = slog.Default()
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rec := newRecorder(st, t, cancel)
	result, taskErr := callHandler(ctx, t, rec, h)
	rec.stop()
	// The outputs are saved even when ctx ended: they are part of the
	// outcome, and the write is fenced anyway.
	if err := rec.Flush(context.WithoutCancel(ctx)); err != nil {
		log.Warn("saving outputs failed", "task", t.ID, "error", err)
	}
	outcome := store.Outcome{ID: t.ID, Attempt: t.Attempt, State: store.StateCompleted, Result: result}
	if taskErr != nil {
		outcome.State, outcome.Result, outcome.Error = store.StateFailed, nil, taskErr
		outcome.NoRetry = taskErr.NoRetry
		if ctx.Err() != nil {
			outcome.State = store.StateCanceled
		}
	}
	return outcome
}

// callHandler calls h and turns a panic that escapes it into a failure: a
// panic in a task's goroutine would otherwise end the whole process, and
// every task it runs with it.
func callHandler(ctx context.Context, t *store.Task, rec *Recorder, h Handler) (result json.RawMessage, taskErr *store.TaskError) {
	defer func() {
		if p := recover(); p != nil {
			result = nil
			taskErr = &store.TaskError{Kind: PanicKind, Description: fmt.Sprint(p), Traceback: string(debug.Stack())}
		}
	}()
	return h(ctx, t, rec)
}

// report queues an outcome for the finish loop. A task abandoned at
// shutdown that returns later reports nothing (it was recorded dropped),
// and report returns false.
func (w *Worker) report(o store.Outcome) bool {
	w.outMu.Lock()
	defer w.outMu.Unlock()
	if w.outClosed {
		return false
	}
	w.outcomes <- o
	return true
}

// finishLoop writes outcomes in batches until the outcomes channel closes.
func (w *Worker) finishLoop(ctx context.Context) {
	const maxBatch = 1000
	batch := make([]store.Outcome, 0, maxBatch)
	for first := range w.outcomes {
		batch = append(batch[:0], first)
	collect:
		for len(batch) < maxBatch {
			select {
			case o, ok := <-w.outcomes:
				if !ok {
					break collect
				}
				batch = append(batch, o)
			default:
				break collect
			}
		}
		w.finish(ctx, batch)
	}
}

// finish records a batch of outcomes (see Record), counts them, and hands
// the canceled ones to the cleanup. Outcomes the database refused are let
// go of: their tasks leave the worker's holdings, so that its next
// heartbeat finds them held under its name by no run and gives them up
// (dropped, ClaimLostKind) rather than leave them running for good.
func (w *Worker) finish(ctx context.Context, batch []store.Outcome) {
	err := record(ctx, w.store, batch, w.log, w.cfg.CallTimeout)
	var refused *RefusedError
	if err != nil && !errors.As(err, &refused) {
		return // ctx ended: the worker stops
	}
	recorded := batch
	if refused != nil {
		w.log.Error("the database refuses to record these outcomes while it answers; "+
			"the worker lets go of their tasks, which it will give up as lost",
			"tasks", refused.IDs, "error", refused.Err)
		recorded = slices.DeleteFunc(slices.Clone(batch), func(o store.Outcome) bool { return slices.Contains(refused.IDs, o.ID) })
	}
	for _, o := range batch {
		w.holdings.Remove(o.ID)
	}
	w.mu.Lock()
	w.stats.Finished += int64(len(recorded))
	w.mu.Unlock()
	w.cleanup(ctx, undone(recorded))
}

// undone returns the ids of the outcomes whose runs may have left created
// resources behind: canceled and dropped ones.
func undone(batch []store.Outcome) []uuid.UUID {
	var ids []uuid.UUID
	for _, o := range batch {
		if o.State == store.StateCanceled || o.State == store.StateDropped {
			ids = append(ids, o.ID)
		}
	}
	return ids
}

// Record records outcomes with the store's Finish, retrying while the
// database is unreachable, until ctx ends (it then returns ctx's error). If
// the batch holds data the store cannot keep (a result PostgreSQL's jsonb
// refuses, say), the outcomes are recorded one by one and each unstorable
// one becomes a failure that says why. Outcomes of runs that no longer own
// their tasks are ignored, as Finish ignores them.
//
// A Finish that keeps failing with an error that is neither a timeout nor
// a network error, while the database answers (Record reads the batch's
// first task after refuseAfter failed tries), is taken for a refusal of
// the batch, not an outage: the outcomes are recorded one by
// one, each refused one is replaced by a failure of kind
// UnrecordableKind that says why, and one refused even then is given up:
// Record returns a *RefusedError naming it, having recorded the others.
//
// Each try is bounded by DefaultCallTimeout.
func Record(ctx context.Context, st store.Store, batch []store.Outcome, log *slog.Logger) error {
	return record(ctx, st, batch, log, DefaultCallTimeout)
}

// UnrecordableKind is the Kind of the failure recorded instead of an
// outcome that the database refused while it answered (see Record).
const UnrecordableKind = "unrecordable_outcome"

// UnstorableResultKind is the Kind of the failure recorded instead of an
// outcome the engine cannot store (store.ErrUnstorable: a result with a
// JSON \u0000 escape on PostgreSQL, say).
const UnstorableResultKind = "unstorable_result"

// PanicKind is the Kind of the error of a run that panicked.
const PanicKind = "panic"

// RefusedError is returned by Record for outcomes the database refused to
// record while it answered, even as failures of kind UnrecordableKind.
type RefusedError struct {
	IDs []uuid.UUID // the tasks whose outcomes were not recorded
	Err error       // the last refusal
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("the database refused to record the outcomes of %d task(s): %v", len(e.IDs), e.Err)
}

func (e *RefusedError) Unwrap() error { return e.Err }

// refuseAfter is how many failed tries of a Finish Record makes before it
// asks whether the database answers at all.
const refuseAfter = 4

// record is Record with each try bounded by timeout.
func record(ctx context.Context, st store.Store, batch []store.Outcome, log *slog.Logger, timeout time.Duration) error {
	if log == nil {
		log = slog.Default()
	}
	replaced := false // the single outcome of batch is already a failure put in its place
	for attempt := 0; ; attempt++ {
		tctx, cancel := context.WithTimeout(ctx, timeout)
		_, err := st.Finish(tctx, batch)
		cancel()
		if err == nil {
			return nil
		}
		unstorable := errors.Is(err, store.ErrUnstorable)
		refused := !unstorable && attempt+1 >= refuseAfter && ctx.Err() == nil && refusal(err) && answers(ctx, st, batch[0].ID, timeout)
		if unstorable || refused {
			o := batch[0]
			switch {
			case len(batch) > 1:
				return recordEach(ctx, st, batch, log, timeout)
			case replaced: // even the failure put in its place
				return &RefusedError{IDs: []uuid.UUID{o.ID}, Err: err}
			}
			kind := UnrecordableKind
			if unstorable {
				kind = UnstorableResultKind
			}
			log.Warn("outcome cannot be stored; recording a failure instead", "task", o.ID, "error", err)
			batch = []store.Outcome{{ID: o.ID, Attempt: o.Attempt, State: store.StateFailed,
				Error: &store.TaskError{Kind: kind, Description: "the outcome could not be recorded: " + err.Error()}}}
			replaced, attempt = true, -1
			continue
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		log.Warn("recording outcomes failed; retrying", "tasks", len(batch), "error", err)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff(attempt)):
		}
	}
}

// recordEach records the outcomes of batch one by one. It returns ctx's
// error if ctx ended, or else a *RefusedError naming every outcome that
// was refused, or nil.
func recordEach(ctx context.Context, st store.Store, batch []store.Outcome, log *slog.Logger, timeout time.Duration) error {
	var all *RefusedError
	for _, o := range batch {
		err := record(ctx, st, []store.Outcome{o}, log, timeout)
		var refused *RefusedError
		switch {
		case errors.As(err, &refused):
			if all == nil {
				all = &RefusedError{}
			}
			all.IDs, all.Err = append(all.IDs, refused.IDs...), refused.Err
		case err != nil:
			return err
		}
	}
	if all == nil {
		return nil
	}
	return all
}

// refusal reports whether err may be the database's answer rather than a
// failure to reach it: not a timeout (a Finish held up behind a lock, or a
// stalled connection), nor a network error (a cut connection).
func refusal(err error) bool {
	var netErr net.Error
	return !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled) &&
		!errors.As(err, &netErr) && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF)
}

// answers reports whether the database answers a read of task id (one that
// no longer exists counts: the answer came).
func answers(ctx context.Context, st store.Store, id uuid.UUID, timeout time.Duration) bool {
	tctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	_, err := st.Task(tctx, id)
	return err == nil || errors.Is(err, store.ErrNotFound)
}

func backoff(attempt int) time.Duration {
	d := 50 * time.Millisecond << min(attempt, 5)
	return min(d, 2*time.Second)
}

// stop cancels the context of the run of task id, if the worker runs it.
func (w *Worker) stop(id uuid.UUID) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if rt, ok := w.running[id]; ok {
		rt.cancel()
	}
}

// cancelLoop is the fast path of cancellation: when a cancel of a running
// task is signaled, on any node, the worker heartbeats at once, which
// returns its tasks' states, and stops the runs of the tasks no longer
// running. Signals may be lost; the regular heartbeat is the slow path
// that never misses a cancel.
func (w *Worker) cancelLoop(cancels <-chan struct{}) {
	for range cancels {
		w.presence.CheckNow()
	}
}

// cleanup hands the tasks that ended canceled or dropped to Config.Cleanup,
// in a goroutine that Run waits for before it returns.
func (w *Worker) cleanup(ctx context.Context, ids []uuid.UUID) {
	if w.cfg.Cleanup == nil || len(ids) == 0 {
		return
	}
	w.cleanups.Add(1)
	go func() {
		defer w.cleanups.Done()
		w.cfg.Cleanup(context.WithoutCancel(ctx), ids)
	}()
}

// sweepLoop runs the scheduler's safety net. Whatever it repairs is logged
// as an error: the scheduler should have done it on its own.
func (w *Worker) sweepLoop(ctx context.Context) {
	t := time.NewTicker(w.cfg.SweepInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		sctx, cancel := context.WithTimeout(ctx, max(w.cfg.CallTimeout, w.cfg.SweepInterval))
		res, err := w.store.Sweep(sctx)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("sweep failed", "error", err)
			}
			continue
		}
		if res.Total() > 0 {
			w.mu.Lock()
			w.stats.SweepRepair += int64(res.Total())
			w.mu.Unlock()
			w.log.Error("sweep found stuck tasks (scheduler bug)", "unblocked", res.Unblocked,
				"stale_queue_tasks", res.StaleQueues, "recounted_queues", res.Recounted)
		}
		w.collectResources(ctx)
	}
}

// collectBatch is how many idle resources one CollectResources call
// deletes; collectBatches bounds the calls of one sweep.
const (
	collectBatch   = 1000
	collectBatches = 100
)

// collectResources deletes what the store keeps of resources that nothing
// holds, waits for or bounds, in short batches.
func (w *Worker) collectResources(ctx context.Context) {
	total := 0
	for range collectBatches {
		cctx, cancel := context.WithTimeout(ctx, w.cfg.CallTimeout)
		n, err := w.store.CollectResources(cctx, collectBatch)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				w.log.Warn("collecting idle resources failed", "error", err)
			}
			return
		}
		total += n
		if n < collectBatch {
			break
		}
	}
	if total > 0 {
		w.log.Debug("collected idle resources", "resources", total)
	}
}

// shutdown waits for running tasks for the grace period, cancels the rest,
// and records as dropped those that still do not return.
func (w *Worker) shutdown(tasks *sync.WaitGroup) {
	done := make(chan struct{})
	go func() { tasks.Wait(); close(done) }()
	select {
	case <-done:
		return
	case <-time.After(w.cfg.ShutdownGrace):
	}
	w.mu.Lock()
	for _, rt := range w.running {
		rt.shutdown = true
		rt.cancel()
	}
	w.mu.Unlock()
	select {
	case <-done:
		return
	case <-time.After(shutdownCancelWait):
	}
	w.mu.Lock()
	var dropped []store.Outcome
	for id, rt := range w.running {
		dropped = append(dropped, store.Outcome{ID: id, Attempt: rt.task.Attempt, State: store.StateDropped,
			Error: &store.TaskError{Kind: ShutdownKind, Description: "the worker stopped before the task returned"}})
		if w.cfg.Finished != nil {
			w.cfg.Finished(rt.task.Name, store.StateDropped, time.Since(rt.began))
		}
	}
	w.mu.Unlock()
	if len(dropped) > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), w.cfg.CallTimeout)
		_, err := w.store.Finish(ctx, dropped)
		cancel()
		if err != nil {
			w.log.Error("recording dropped tasks failed", "error", err)
		} else {
			for _, o := range dropped {
				w.holdings.Remove(o.ID)
			}
		}
		w.cleanup(context.Background(), undone(dropped))
	}
}
