package stint

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/stint-dev/stint/internal/worker"
	"github.com/stint-dev/stint/store"
)

// DefaultCancelGrace is how long a canceled or timed-out run may take to
// return before it is abandoned (in-process) or killed (child process).
const DefaultCancelGrace = time.Second

// handler runs the tasks of c's registry, each with a Run whose children
// are dispatched through c and whose working directory is under workRoot,
// in-process or in a child process as the task type says, bounded by its
// timeout. A run that does not return within grace of its context ending
// is abandoned or killed. Workers and immediate dispatches run tasks
// through it.
func (c *Client) handler(workRoot string, grace time.Duration) worker.Handler {
	if grace <= 0 {
		grace = DefaultCancelGrace
	}
	return func(ctx context.Context, t *store.Task, rec *worker.Recorder) (json.RawMessage, *store.TaskError) {
		tt, ok := c.reg.lookup(t.Name)
		if !ok {
			return nil, &store.TaskError{Kind: UnknownTaskKind, Description: fmt.Sprintf("no task type %q is registered in this worker", t.Name)}
		}
		run := &Run{task: t, rec: rec, client: c, workRoot: workRoot}
		runCtx := ctx
		if tt.opts.timeout > 0 {
			var cancel context.CancelFunc
			runCtx, cancel = context.WithTimeout(ctx, tt.opts.timeout)
			defer cancel()
		}
		var (
			result  json.RawMessage
			taskErr *store.TaskError
		)
		if tt.opts.process {
			result, taskErr = c.runInChild(runCtx, tt, run, grace)
		} else {
			result, taskErr = superviseInProcess(runCtx, grace, tt, run)
		}
		return result, tt.timedOut(ctx, runCtx, taskErr)
	}
}

// timedOut returns the error of a run that ended with taskErr in runCtx,
// the context of its timeout within ctx: a timeout error when the run
// failed because its timeout passed (ctx itself still live), taskErr
// otherwise.
func (tt *taskType) timedOut(ctx, runCtx context.Context, taskErr *store.TaskError) *store.TaskError {
	if taskErr != nil && ctx.Err() == nil && errors.Is(runCtx.Err(), context.DeadlineExceeded) {
		return &store.TaskError{Kind: TimeoutKind,
			Description: fmt.Sprintf("the task exceeded its timeout of %v (%s)", tt.opts.timeout, taskErr.Description)}
	}
	return taskErr
}

// superviseInProcess calls the task's function in a goroutine of its own
// and waits for it; once ctx ends, it waits grace more, then abandons the
// run: the function may go on in the background, but the worker records
// the run as ended (canceled, or failed for a timeout) and frees its slot.
// Whatever the abandoned function records later is fenced off. Its working
// directory is removed when the function returns.
func superviseInProcess(ctx context.Context, grace time.Duration, tt *taskType, run *Run) (json.RawMessage, *store.TaskError) {
	type ended struct {
		result  json.RawMessage
		taskErr *store.TaskError
	}
	done := make(chan ended, 1)
	go func() {
		defer run.cleanup()
		result, taskErr := tt.call(ctx, run)
		done <- ended{result, taskErr}
	}()
	select {
	case e := <-done:
		return e.result, e.taskErr
	case <-ctx.Done():
	}
	timer := time.NewTimer(grace)
	defer timer.Stop()
	select {
	case e := <-done:
		return e.result, e.taskErr
	case <-timer.C:
		return nil, &store.TaskError{Kind: AbandonedKind, Description: fmt.Sprintf(
			"the task did not return within %v of being told to stop (%v); the worker abandoned it", grace, context.Cause(ctx))}
	}
}
