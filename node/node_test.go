package node_test

import (
	"context"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/node"
	"github.com/stint-dev/stint/store"
)

// start runs a node of cfg on a 127.0.0.1 listener of its own when it
// serves the API, and returns its API's client and a function that stops
// it and returns what Run returned.
func start(t *testing.T, cfg node.Config) (*client.Client, func() error) {
	t.Helper()
	var api *client.Client
	if cfg.API != nil {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		cfg.API.Listener = ln
		cfg.API.Server.AllowOpen = true
		if api, err = client.New("http://" + ln.Addr().String()); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- node.Run(ctx, cfg) }()
	stopped := false
	stop := func() error {
		stopped = true
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(30 * time.Second):
			t.Fatal("the node did not stop within 30 s")
			return nil
		}
	}
	t.Cleanup(func() {
		if !stopped {
			stop() //nolint:errcheck
		}
	})
	return api, stop
}

// waitFinal polls the task until it is final.
func waitFinal(t *testing.T, api *client.Client, id uuid.UUID) *apiv1.Task {
	t.Helper()
	ctx := context.Background()
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		task, err := api.Task(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if store.State(task.State).Final() {
			return task
		}
		if time.Now().After(deadline) {
			t.Fatalf("task %s still %s", id, task.State)
		}
	}
}

// TestNodeHasOneName: a node with the API and a worker is one entry of the
// worker list, under its name, which its worker's tasks and its immediate
// tasks both run under; it leaves the list when it stops.
func TestNodeHasOneName(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		ctx := context.Background()
		st := eng.Open(t)
		api, stop := start(t, node.Config{Store: st, Name: "node-a", API: &node.API{}, Worker: &stint.WorkerConfig{Concurrency: 2}})

		queued, err := api.Dispatch(ctx, apiv1.DispatchTask{Name: "stint.noop"})
		if err != nil {
			t.Fatal(err)
		}
		immediate, err := api.Dispatch(ctx, apiv1.DispatchTask{Name: "stint.noop", Immediate: true})
		if err != nil {
			t.Fatal(err)
		}
		for _, id := range []uuid.UUID{queued, immediate} {
			task := waitFinal(t, api, id)
			if task.State != "completed" || task.Worker == nil || task.Worker.Name != "node-a" {
				t.Errorf("task %s: %s, worker %+v; want completed by node-a", id, task.State, task.Worker)
			}
		}
		workers, err := api.Workers(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(workers) != 1 || workers[0].Name != "node-a" || workers[0].Concurrency != 2 {
			t.Fatalf("workers %+v; want node-a alone, with 2 slots", workers)
		}
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if left, err := st.Workers(ctx); err != nil || len(left) != 0 {
			t.Fatalf("workers after the node stopped: %+v, %v", left, err)
		}
	})
}

// TestNodeWithoutWorker: an API node without a worker is in the worker
// list with no slots, under its name, and runs immediate tasks under it.
func TestNodeWithoutWorker(t *testing.T) {
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		ctx := context.Background()
		st := eng.Open(t)
		api, stop := start(t, node.Config{Store: st, Name: "api-b", API: &node.API{}})
		id, err := api.Dispatch(ctx, apiv1.DispatchTask{Name: "stint.noop", Immediate: true})
		if err != nil {
			t.Fatal(err)
		}
		if task := waitFinal(t, api, id); task.State != "completed" || task.Worker == nil || task.Worker.Name != "api-b" {
			t.Errorf("immediate task: %s, worker %+v", task.State, task.Worker)
		}
		for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			workers, err := api.Workers(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(workers) == 1 && workers[0].Name == "api-b" && workers[0].Concurrency == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("workers %+v; want api-b with no slots", workers)
			}
		}
		if err := stop(); err != nil {
			t.Fatalf("Run: %v", err)
		}
		if left, err := st.Workers(ctx); err != nil || len(left) != 0 {
			t.Fatalf("workers after the node stopped: %+v, %v", left, err)
		}
	})
}

// TestNodeConfigErrors: a node with nothing to do, or without a store, a
// listener or a sensible retention, is refused at once with an error that
// names the field.
func TestNodeConfigErrors(t *testing.T) {
	st := enginetest.SQLite.Open(t)
	ctx := context.Background()
	for _, tc := range []struct {
		name string
		cfg  node.Config
		want string
	}{
		{"no store", node.Config{Worker: &stint.WorkerConfig{}}, "Config.Store"},
		{"nothing to run", node.Config{Store: st}, "Config.API or Config.Worker"},
		{"no listener", node.Config{Store: st, API: &node.API{}}, "Config.API.Listener"},
		{"negative retention", node.Config{Store: st, Worker: &stint.WorkerConfig{Concurrency: 1}, Retain: -time.Hour}, "Retain"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := node.Run(ctx, tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Run: %v; want an error naming %s", err, tc.want)
			}
		})
	}
}
