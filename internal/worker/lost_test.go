package worker

import (
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/internal/syncbuf"
	"github.com/stint-dev/stint/store"
)

// A running worker notices a registered worker that never heartbeats, ends
// its task within MissingAfter (and a heartbeat or two), removes it from the
// list, logs it, and runs the task that waited behind it.
func TestWorkerDropsLostWorkers(t *testing.T) {
	enginetest.Run(t, testWorkerDropsLostWorkers)
}

func testWorkerDropsLostWorkers(t *testing.T, eng enginetest.Engine) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	st := eng.Open(t)
	const silent = "1@silent"
	if err := st.RegisterWorker(ctx, store.WorkerInfo{Name: silent, Hostname: "silent", PID: 1, Concurrency: 1}); err != nil {
		t.Fatal(err)
	}
	silentSince := time.Now()
	stuck := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.stuck", ExclusiveResources: []string{"r"}}
	after := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "test.after", ExclusiveResources: []string{"r"}}
	if _, err := st.Dispatch(ctx, []store.NewTask{stuck, after}); err != nil {
		t.Fatal(err)
	}
	if claimed, err := st.Claim(ctx, store.ClaimParams{Worker: silent, Names: []string{"test.stuck"}, Limit: 1}); err != nil || len(claimed) != 1 {
		t.Fatalf("claim as the silent worker: %v %v", claimed, err)
	}

	const heartbeat, missingAfter = 50 * time.Millisecond, 500 * time.Millisecond
	var logs syncbuf.Buffer
	w, err := New(st, Config{Name: "2@live", Names: []string{"test.after"}, HeartbeatInterval: heartbeat,
		MissingAfter: missingAfter, LostCheckInterval: heartbeat, PollInterval: 50 * time.Millisecond, SweepInterval: -1,
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
		Handler: func(context.Context, *store.Task, *Recorder) (json.RawMessage, *store.TaskError) {
			return json.RawMessage(`"ok"`), nil
		}})
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.Run(runCtx) }()
	defer func() {
		stop()
		if err := <-done; err != nil {
			t.Errorf("worker: %v", err)
		}
	}()

	// Dropped within MissingAfter of the last heartbeat, give or take a
	// heartbeat of the live worker and the slowness of -race.
	deadline := silentSince.Add(missingAfter + time.Second)
	for {
		task, err := st.Task(ctx, stuck.ID)
		if err != nil {
			t.Fatal(err)
		}
		if task.State.Final() {
			if task.State != store.StateDropped || task.Error == nil || task.Error.Kind != store.WorkerLostKind {
				t.Fatalf("task of the silent worker: %s %+v", task.State, task.Error)
			}
			if took := time.Since(silentSince); took < missingAfter {
				t.Fatalf("dropped after %v, before MissingAfter (%v)", took, missingAfter)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("task of the silent worker still %s %v after it went silent", task.State, time.Since(silentSince))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := st.Worker(ctx, silent); err == nil {
		t.Fatalf("the silent worker is still in the list")
	}
	if _, err := st.Worker(ctx, "2@live"); err != nil {
		t.Fatalf("the live worker: %v", err)
	}
	// The task behind it runs on the live worker.
	for {
		task, err := st.Task(ctx, after.ID)
		if err != nil {
			t.Fatal(err)
		}
		if task.State == store.StateCompleted {
			break
		}
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("task behind the lost one is %s", task.State)
		}
		time.Sleep(10 * time.Millisecond)
	}
	out := logs.String()
	if !strings.Contains(out, "level=WARN") || !strings.Contains(out, silent) || !strings.Contains(out, stuck.ID.String()) {
		t.Fatalf("no warning naming the lost worker and its task in the log:\n%s", out)
	}
}

func TestNewValidatesMissingAfter(t *testing.T) {
	h := func(context.Context, *store.Task, *Recorder) (json.RawMessage, *store.TaskError) { return nil, nil }
	if _, err := New(nil, Config{Name: "w", Names: []string{"a"}, Handler: h, HeartbeatInterval: time.Second,
		MissingAfter: time.Second}); err == nil || !strings.Contains(err.Error(), "MissingAfter") {
		t.Fatalf("New with MissingAfter = HeartbeatInterval: %v", err)
	}
	w, err := New(nil, Config{Name: "w", Names: []string{"a"}, Handler: h})
	if err != nil || w.presence.cfg.MissingAfter != DefaultMissingAfter {
		t.Fatalf("default MissingAfter: %v %v", w, err)
	}
}
