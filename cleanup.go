package stint

import (
	"context"
	"fmt"
	"log/slog"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
)

// cleanupTimeout bounds one call of a cleanup hook.
const cleanupTimeout = 5 * time.Minute

// runCleanups calls the cleanup hooks (WithCleanup) of the given tasks that
// ended canceled or dropped with created resources, one task at a time.
// Tasks of types without a hook, or not registered here, are skipped; a
// hook's error or panic is logged.
func (c *Client) runCleanups(ctx context.Context, ids []uuid.UUID, log *slog.Logger) {
	if log == nil {
		log = slog.Default()
	}
	if !c.reg.hasCleanups() {
		return
	}
	tasks, _, err := c.store.ListTasks(ctx, store.TaskFilter{IDs: ids,
		States: []store.State{store.StateCanceled, store.StateDropped}})
	if err != nil {
		log.Error("reading tasks to clean up failed; their cleanup hooks do not run", "tasks", ids, "error", err)
		return
	}
	for _, t := range tasks {
		tt, ok := c.reg.lookup(t.Name)
		if !ok || tt.opts.cleanup == nil || len(t.CreatedResources) == 0 {
			continue
		}
		if err := callCleanup(ctx, tt.opts.cleanup, t.CreatedResources); err != nil {
			log.Error("cleanup hook failed", "task", t.ID, "name", t.Name, "state", t.State,
				"created_resources", t.CreatedResources, "error", err)
			continue
		}
		log.Info("cleanup hook ran", "task", t.ID, "name", t.Name, "state", t.State, "created_resources", len(t.CreatedResources))
	}
}

// callCleanup calls a cleanup hook, bounded in time, making a panic an
// error.
func callCleanup(ctx context.Context, fn CleanupFunc, resources []string) (err error) {
	ctx, cancel := context.WithTimeout(ctx, cleanupTimeout)
	defer cancel()
	defer func() {
		if p := recover(); p != nil {
			err = &Error{Kind: PanicKind, Description: fmt.Sprint(p)}
		}
	}()
	return fn(ctx, append([]string(nil), resources...))
}

// RunCleanupHooks calls the cleanup hooks (WithCleanup) of those of the
// given tasks that ended canceled or dropped and recorded created
// resources, logging to log (nil: slog.Default()). Workers call it for the
// tasks they end; a process that ends tasks otherwise, such as an API node
// that finds lost workers (store.DropLostWorkers), calls it with the tasks
// it ended.
func (c *Client) RunCleanupHooks(ctx context.Context, ids []uuid.UUID, log *slog.Logger) {
	c.runCleanups(ctx, ids, log)
}
