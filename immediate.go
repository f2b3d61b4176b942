package stint

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/worker"
	"github.com/stint-dev/stint/store"
)

// recordTimeout bounds how long DispatchImmediate keeps trying to record
// the outcome of an inline run while the database is unreachable.
const recordTimeout = 30 * time.Second

// DispatchImmediate validates a task like Dispatch and dispatches it as an
// immediate task (DESIGN §3): if its resources are free, it is claimed for
// workerName and run inline, now, in the calling goroutine, and
// DispatchImmediate returns once it is final: completed, or failed (an
// error or a panic), or canceled if ctx ended while it ran and it stopped
// for that. The task must therefore be short: the caller, an API request
// typically, waits for it.
//
// If its resources are busy (an earlier incomplete task conflicts with it)
// it does not run inline: with deferred it stays waiting, for a worker,
// like any dispatched task; without, it ends skipped and never runs. The
// same holds when the task requires versions (DispatchRequest.Versions)
// that the worker registered as workerName does not provide.
//
// workerName is the worker the run is recorded under: a worker registered
// by this process (a Worker it runs, say), whose heartbeats show the run's
// process alive. Tasks run inline get a working directory under that
// worker's default one, and dispatch their children through c.
//
// The dispatch and claim are one store call, bounded by
// worker.DefaultCallTimeout as a worker's claims are. The task is returned
// as it is at the end. A *ValidationError says what
// is wrong with the request. An outcome that cannot be recorded (the
// database unreachable for long) is an error; the task then stays running
// until the next heartbeat of workerName gives it up (it ends dropped), or
// until its worker is found lost.
func (c *Client) DispatchImmediate(ctx context.Context, req DispatchRequest, workerName string, deferred bool) (*Task, error) {
	nt, err := c.prepare(req, -1)
	if err != nil {
		return nil, err
	}
	if workerName == "" {
		return nil, errors.New("stint: DispatchImmediate needs the name of the worker that runs the task")
	}
	// The run is one of workerName's holdings in this process from its
	// claim until its outcome is recorded: the Presence of workerName
	// heartbeats with it, and gives the task up if the claim's answer is
	// lost (the dispatch fails, yet the task is running under workerName).
	holdings := worker.AcquireHoldings(workerName)
	defer holdings.Release()
	holdings.BeginClaim()
	// Bounded as a worker's claim is: a give-up of workerName waits for
	// the claims in flight, and a call that hung would hold it back.
	cctx, cancelClaim := context.WithTimeout(ctx, worker.DefaultCallTimeout)
	task, err := c.store.DispatchImmediate(cctx, nt, store.ImmediateParams{Worker: workerName, Deferred: deferred})
	cancelClaim()
	if err == nil && task.State == store.StateRunning {
		holdings.Add(task.ID)
	}
	holdings.EndClaim()
	if err != nil {
		return nil, err
	}
	if task.State != store.StateRunning {
		return task, nil // waiting for a worker, or skipped
	}
	// The run of a worker, in this goroutine: outputs, panics, fencing.
	outcome := worker.Execute(ctx, c.store, task, c.handler(defaultWorkDir(workerName), DefaultCancelGrace), nil)
	// Recorded even if ctx ended meanwhile: a running task left unrecorded
	// would hold its resources until its worker is found lost.
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), recordTimeout)
	defer cancel()
	if err := worker.Record(rctx, c.store, []store.Outcome{outcome}, nil); err != nil {
		// No longer held here: the Presence of workerName gives it up.
		holdings.Remove(task.ID)
		return nil, fmt.Errorf("stint: recording the outcome of task %s: %w", task.ID, err)
	}
	holdings.Remove(task.ID)
	if outcome.State == store.StateCanceled {
		c.runCleanups(rctx, []uuid.UUID{task.ID}, nil)
	}
	return c.store.Task(rctx, task.ID)
}
