package main

import (
	"context"
	"log/slog"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/store"
)

// registerAPINode keeps this process, which runs no worker, in the worker
// list until ctx ends (Client.RunNode): under the name its immediate tasks
// run under, looking for lost workers silent for missingAfter as workers
// do, so that they are found even where no worker is left.
func registerAPINode(ctx context.Context, client *stint.Client, missingAfter time.Duration, log *slog.Logger) {
	if err := client.RunNode(ctx, stint.NodeConfig{MissingAfter: missingAfter, Logger: log}); err != nil {
		log.Error("API node", "err", err)
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
