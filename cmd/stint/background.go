package main

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/store"
)

// apiNodeHeartbeat is how often an API node without a worker heartbeats.
const apiNodeHeartbeat = 2 * time.Second

// registerAPINode registers this process, which runs no worker, under the
// name its immediate tasks run under (stint.DefaultWorkerName), with
// concurrency 0, and heartbeats until ctx ends; then it leaves the worker
// list. A run lost with this process is then detected like a worker's. At
// each heartbeat it also ends the tasks of the workers silent for
// api.DefaultMissingAfter (store.DropLostWorkers), as workers do, so that
// lost workers are found even where no worker is left; and it registers
// again when it finds itself removed from the list.
func registerAPINode(ctx context.Context, st store.Store, log *slog.Logger) {
	host, _ := os.Hostname()
	info := store.WorkerInfo{Name: stint.DefaultWorkerName(), Hostname: host, PID: os.Getpid()}
	if err := st.RegisterWorker(ctx, info); err != nil {
		log.Warn("registering the API node for immediate tasks", "err", err)
	}
	tick := time.NewTicker(apiNodeHeartbeat)
	defer tick.Stop()
	lastBeat := time.Now().Round(0)
	for {
		select {
		case <-ctx.Done():
			if err := st.RemoveWorker(context.WithoutCancel(ctx), info.Name); err != nil {
				log.Warn("leaving the worker list", "err", err)
			}
			return
		case <-tick.C:
			_, err := st.Heartbeat(ctx, info.Name, nil)
			if errors.Is(err, store.ErrNotFound) {
				log.Warn("the API node was removed from the worker list; registering again")
				err = st.RegisterWorker(ctx, info)
			}
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("API node heartbeat", "err", err)
				}
				continue
			}
			// Wall-clock time, as internal/worker: after a stop of this
			// process or machine, the others beside it get a round to
			// heartbeat before they are judged.
			now := time.Now().Round(0)
			stalled := now.Sub(lastBeat) > apiNodeHeartbeat+(api.DefaultMissingAfter-apiNodeHeartbeat)/2
			lastBeat = now
			if stalled {
				continue
			}
			lost, err := st.DropLostWorkers(ctx, api.DefaultMissingAfter)
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("looking for lost workers", "err", err)
				}
				continue
			}
			if len(lost.Workers) > 0 {
				log.Warn("lost workers removed; their tasks were dropped", "missing_after", api.DefaultMissingAfter,
					"lost_workers", lost.Workers, "tasks", lost.Tasks)
			}
		}
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
