package bench

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/store"
)

// singleCallers are the numbers of goroutines dispatch-single runs with.
var singleCallers = []int{1, 8, 50}

// singleResult is the figure of one dispatch-single run.
type singleResult struct {
	callers int
	rate    float64
}

// runDispatchSingle runs, for each of singleCallers, that many goroutines
// that each call client.Dispatch with one no-op task, back to back, for
// cfg.Duration, in a fresh scratch database: the path of a request handler
// that dispatches one task per request. No worker runs the tasks (as in
// River's measurement of Insert), but the process listens for wake-ups and
// task changes, as a worker and an API node would, so that whatever
// notifications a dispatch sends are delivered.
func runDispatchSingle(ctx context.Context, cfg Config) ([]singleResult, error) {
	var out []singleResult
	for _, callers := range singleCallers {
		rate, err := dispatchSingleOnce(ctx, cfg, callers)
		if err != nil {
			return nil, fmt.Errorf("%d callers: %w", callers, err)
		}
		out = append(out, singleResult{callers: callers, rate: rate})
	}
	return out, nil
}

func dispatchSingleOnce(ctx context.Context, cfg Config, callers int) (float64, error) {
	st, done, err := scratchPostgres(ctx, cfg)
	if err != nil {
		return 0, err
	}
	defer done()
	lctx, stopListening := context.WithCancel(ctx)
	defer stopListening()
	if err := drainNotifications(lctx, st); err != nil {
		return 0, err
	}
	client := stint.NewClient(st, stint.NewRegistry())
	var (
		count   atomic.Int64
		wg      sync.WaitGroup
		errOnce sync.Once
		runErr  error
	)
	deadline := time.Now().Add(cfg.Duration)
	start := time.Now()
	for range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for time.Now().Before(deadline) {
				if _, err := client.Dispatch(ctx, stint.DispatchRequest{Name: "stint.noop"}); err != nil {
					errOnce.Do(func() { runErr = err })
					return
				}
				count.Add(1)
			}
		}()
	}
	wg.Wait()
	if runErr != nil {
		return 0, runErr
	}
	return float64(count.Load()) / time.Since(start).Seconds(), nil
}

// drainNotifications subscribes to st's wake-ups and task changes and
// discards them until ctx ends.
func drainNotifications(ctx context.Context, st store.Store) error {
	wake, err := st.Wakeups(ctx)
	if err != nil {
		return err
	}
	changes, err := st.Changes(ctx)
	if err != nil {
		return err
	}
	go func() {
		for {
			select {
			case <-ctx.Done():
				return
			case <-wake:
			case <-changes:
			}
		}
	}()
	return nil
}

// singleLine formats the figures of dispatch-single.
func singleLine(rs []singleResult) string {
	parts := make([]string, len(rs))
	for i, r := range rs {
		parts[i] = fmt.Sprintf("%d callers %.0f tasks/s", r.callers, r.rate)
	}
	return "dispatch-single: " + strings.Join(parts, ", ") + " (client.Dispatch of one task per call, back to back)"
}
