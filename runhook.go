package stint

import (
	"context"
	"encoding/json"

	"github.com/stint-dev/stint/internal/runhook"
	"github.com/stint-dev/stint/store"
)

// The test kit's way in (package stinttest, through internal/runhook).
func init() {
	runhook.NewRun = func(task *store.Task, sink runhook.Sink, dispatch runhook.Dispatch, workRoot string) any {
		r := &Run{task: task, rec: sink, workRoot: workRoot}
		r.viaWorker = func(ctx context.Context, req DispatchRequest) (*Task, error) {
			req.Owner = task.Owner
			if req.TaskGroup == nil {
				req.TaskGroup = task.TaskGroup
			}
			return dispatch(ctx, req)
		}
		return r
	}
	runhook.EncodeArgs = encodeArgs
	runhook.Work = func(ctx context.Context, reg, run any) (json.RawMessage, *store.TaskError, bool) {
		r := run.(*Run)
		tt, ok := reg.(*Registry).lookup(r.task.Name)
		if !ok {
			return nil, nil, false
		}
		runCtx := ctx
		if tt.opts.timeout > 0 {
			var cancel context.CancelFunc
			runCtx, cancel = context.WithTimeout(ctx, tt.opts.timeout)
			defer cancel()
		}
		defer r.cleanup()
		result, taskErr := tt.call(runCtx, r)
		return result, tt.timedOut(ctx, runCtx, taskErr), true
	}
}
