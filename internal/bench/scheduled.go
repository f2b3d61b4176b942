package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// scheduledAhead is how many tasks the scheduled scenario schedules an
// hour ahead before its throughput run.
const scheduledAhead = 100_000

// preloadScheduled dispatches n tasks scheduled an hour ahead: they sit in
// the due index, and dispatches and claims of other tasks must not pay for
// them.
func preloadScheduled(ctx context.Context, st *postgres.Store, n int) error {
	at := time.Now().Add(time.Hour).UTC()
	const chunk = 10_000
	var batch []store.NewTask
	for left := n; left > 0; left -= chunk {
		batch = batch[:0]
		for range min(chunk, left) {
			batch = append(batch, store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "stint.noop",
				Args: json.RawMessage(`{}`), ScheduledAt: &at})
		}
		if _, err := st.Dispatch(ctx, batch); err != nil {
			return err
		}
	}
	return settle(ctx, st, "scheduled", "")
}

// runScheduled is the scheduled scenario: throughput-noop on an empty
// database and with scheduledAhead tasks scheduled an hour ahead, and then
// how late due tasks start on an idle worker (cfg.Samples tasks, each
// scheduled 100 to 300 ms ahead, one at a time).
func runScheduled(ctx context.Context, cfg Config) (string, error) {
	plain, err := runThroughput(ctx, cfg, scratchPostgres, cfg.load("stint.noop"))
	if err != nil {
		return "", err
	}
	load := cfg.load("stint.noop")
	load.scheduled = scheduledAhead
	ahead, err := runThroughput(ctx, cfg, scratchPostgres, load)
	if err != nil {
		return "", err
	}
	p50, p99, err := runDueLatency(ctx, cfg)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf("scheduled: ratio %.2f (throughput-noop with %d tasks scheduled an hour ahead: %.0f tasks/s; with none: %.0f tasks/s)\n"+
		"scheduled: due to running p50 %.1f ms p99 %.1f ms (a task scheduled 100-300 ms ahead, on an idle worker, %d samples)",
		ahead.rate/plain.rate, scheduledAhead, ahead.rate, plain.rate, ms(p50), ms(p99), cfg.Samples), nil
}

// runDueLatency measures, for tasks scheduled a little ahead, the time
// from their scheduled time to the start of their run on an idle worker.
func runDueLatency(ctx context.Context, cfg Config) (p50, p99 time.Duration, err error) {
	st, done, err := scratch(ctx, cfg)
	if err != nil {
		return 0, 0, err
	}
	defer done()
	var mu sync.Mutex
	started := map[uuid.UUID]chan time.Time{}
	reg := stint.NewRegistry()
	stint.Register(reg, "bench.due", func(_ context.Context, run *stint.Run, _ struct{}) (struct{}, error) {
		now := time.Now()
		mu.Lock()
		ch := started[run.ID()]
		mu.Unlock()
		if ch != nil {
			ch <- now
		}
		return struct{}{}, nil
	})
	client := stint.NewClient(st, reg)
	w, err := stint.NewWorker(st, reg, stint.WorkerConfig{Name: "bench", Concurrency: 4, SweepInterval: -1, Logger: cfg.Logger})
	if err != nil {
		return 0, 0, err
	}
	wctx, stopWorker := context.WithCancel(ctx)
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()
	defer func() { stopWorker(); <-werr }()
	time.Sleep(200 * time.Millisecond) // let the worker register and listen

	lat := make([]time.Duration, 0, cfg.Samples)
	for i := range cfg.Samples {
		at := time.Now().Add(100*time.Millisecond + time.Duration(i%3)*100*time.Millisecond)
		nts, err := client.Prepare([]stint.DispatchRequest{{Name: "bench.due", ScheduledAt: at}})
		if err != nil {
			return 0, 0, err
		}
		ch := make(chan time.Time, 1)
		mu.Lock()
		started[nts[0].ID] = ch
		mu.Unlock()
		if _, err := st.Dispatch(ctx, nts); err != nil {
			return 0, 0, err
		}
		select {
		case t1 := <-ch:
			if t1.Before(at) {
				return 0, 0, fmt.Errorf("task %s started %v before its time", nts[0].ID, at.Sub(t1))
			}
			lat = append(lat, t1.Sub(at))
		case <-time.After(10 * time.Second):
			return 0, 0, fmt.Errorf("task %s did not start within 10s", nts[0].ID)
		}
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}
