package main

import (
	"context"
	"log/slog"
	"os"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/internal/worker"
	"github.com/stint-dev/stint/store"
)

// registerAPINode registers this process, which runs no worker, under the
// name its immediate tasks run under (stint.DefaultWorkerName), with
// concurrency 0, and heartbeats until ctx ends; then it leaves the worker
// list. A run lost with this process is then detected like a worker's. It
// also looks for lost workers (store.DropLostWorkers, silent for
// missingAfter) as workers do, so
// that they are found even where no worker is left, and runs the cleanup
// hooks of the tasks it ends; and it registers again when it finds itself
// removed from the list.
func registerAPINode(ctx context.Context, st store.Store, client *stint.Client, missingAfter time.Duration, log *slog.Logger) {
	host, _ := os.Hostname()
	p, err := worker.NewPresence(st, worker.PresenceConfig{
		Info:         store.WorkerInfo{Name: stint.DefaultWorkerName(), Hostname: host, PID: os.Getpid()},
		MissingAfter: missingAfter, Logger: log,
		Dropped: func(ctx context.Context, ids []uuid.UUID) { go client.RunCleanupHooks(ctx, ids, log) },
	})
	if err != nil {
		log.Error("API node presence", "err", err)
		return
	}
	if err := p.Register(ctx); err != nil {
		log.Warn("registering the API node for immediate tasks", "err", err)
	}
	p.Run(ctx)
	if err := st.RemoveWorker(context.WithoutCancel(ctx), stint.DefaultWorkerName()); err != nil {
		log.Warn("leaving the worker list", "err", err)
	}
}

// retentionInterval is how often --retain purges.
const retentionInterval = time.Hour

// retainTasks dispatches stint.purge for every final task that finished
// more than retain ago, at start and then every retentionInterval, until
// ctx ends. It skips a round while an earlier purge has not run yet, so
// that purges do not pile up without a worker.
func retainTasks(ctx context.Context, client *stint.Client, st store.Store, retain time.Duration, log *slog.Logger) {
	var final []store.State
	for _, s := range store.States {
		if s.Final() {
			final = append(final, s)
		}
	}
	tick := time.NewTicker(retentionInterval)
	defer tick.Stop()
	for {
		pending, _, err := st.ListTasks(ctx, store.TaskFilter{Name: "stint.purge", States: []store.State{store.StateWaiting}, Limit: 1})
		switch {
		case err != nil:
			if ctx.Err() == nil {
				log.Warn("retention: reading pending purges", "err", err)
			}
		case len(pending) > 0:
			log.Info("retention: an earlier purge still waits", "task", pending[0].ID)
		default:
			task, err := client.Dispatch(ctx, stint.DispatchRequest{
				Name:               "stint.purge",
				Args:               stint.PurgeArgs{FinishedBefore: time.Now().Add(-retain).UTC(), States: final},
				ExclusiveResources: []string{api.PurgeResource},
			})
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("retention: dispatching stint.purge", "err", err)
				}
			} else {
				log.Info("retention: purge dispatched", "task", task.ID, "finished_before", time.Now().Add(-retain).UTC())
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
