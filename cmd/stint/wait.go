package main

import (
	"context"
	"errors"
	"time"

	"github.com/stint-dev/stint/client"
)

// errTimeout is the cause of the context of a wait that reached --timeout.
var errTimeout = errors.New("timeout")

// waitView shows a wait as it goes: plain lines, progress bars, or nothing.
type waitView interface {
	// show is called after every change of a task: its first state, a new
	// state, new progress.
	show(t *client.WaitedTask, stateChanged bool)
	// end is called once when the wait stops, with every task followed
	// and whether the timeout stopped it.
	end(tasks []*client.WaitedTask, timedOut bool)
}

// waitFunc is one of the client's waits (WaitForTasks, WaitForAll,
// WaitForTaskGroup) with its subject bound.
type waitFunc func(ctx context.Context, opts client.WaitOptions) ([]*client.WaitedTask, error)

// runWait runs wait until it is over or the timeout (0 for none), shows it
// in view (opts.OnChange is the view's), and ends the view. It returns the
// tasks followed and whether the timeout stopped it, or the error that
// did: "interrupted" when ctx ended.
func runWait(ctx context.Context, timeout time.Duration, view waitView, wait waitFunc, opts client.WaitOptions) ([]*client.WaitedTask, bool, error) {
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		wctx, cancel = context.WithTimeoutCause(ctx, timeout, errTimeout)
	}
	opts.OnChange = view.show
	tasks, err := wait(wctx, opts)
	cancel()
	timedOut := errors.Is(err, errTimeout)
	view.end(tasks, timedOut)
	switch {
	case timedOut:
		return tasks, true, nil
	case err != nil && ctx.Err() != nil:
		return tasks, false, errors.New("interrupted")
	}
	return tasks, false, err
}
