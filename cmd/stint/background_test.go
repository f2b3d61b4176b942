package main

import (
	"context"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/enginetest"
	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// TestRetainPurgesOldTasks: serve --retain dispatches stint.purge at start,
// which deletes the final tasks older than the retention and keeps newer
// ones.
func TestRetainPurgesOldTasks(t *testing.T) {
	t.Parallel() // a server and a database of its own
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		dir, db := t.TempDir(), eng.URL(t)
		first := startServe(t, dir, "--db", db)
		old := dispatch(t, first.url, "stint.noop")
		if _, stderr, code := runClient(t, first.url, "task", "wait", old.String()); code != 0 {
			t.Fatalf("wait: exit %d %s", code, stderr)
		}
		first.stop(t)
		time.Sleep(1500 * time.Millisecond)

		second := startServe(t, dir, "--db", db, "--retain", "1s")
		api, err := client.New(second.url)
		if err != nil {
			t.Fatal(err)
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			purges, err := api.AllTasks(ctx, url.Values{"name": {"stint.purge"}, "state": {"completed"}})
			if err != nil {
				t.Fatal(err)
			}
			if len(purges) == 1 {
				if string(purges[0].Result) != `{"deleted":1}` {
					t.Fatalf("purge result %s", purges[0].Result)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("no completed stint.purge:\n%s", second.output())
			}
		}
		if _, err := api.Task(ctx, old); !client.IsStatus(err, 404) {
			t.Fatalf("the old task: %v", err)
		}
		if bad, stderr, code := run(t, "serve", "--db", db, "--retain", "-1h"); code != 1 || !strings.Contains(stderr, "--retain -1h0m0s: must be positive") {
			t.Errorf("negative --retain: exit %d %q %q", code, bad, stderr)
		}
	})
}

// TestAPINodeRunsImmediateTasks: a server without workers registers the
// name its immediate tasks run under, with concurrency 0, and runs them.
func TestAPINodeRunsImmediateTasks(t *testing.T) {
	t.Parallel() // a server and a database of its own
	enginetest.Run(t, func(t *testing.T, eng enginetest.Engine) {
		p := startServe(t, t.TempDir(), "--db", eng.URL(t), "--workers", "0")
		out, stderr, code := runClient(t, p.url, "task", "dispatch", "stint.noop", "--immediate", "-o", "json")
		if code != 0 {
			t.Fatalf("dispatch: exit %d %s", code, stderr)
		}
		task := decodeJSON[apiv1.Task](t, "dispatch", out)
		if task.State != "completed" || task.Worker == nil {
			t.Fatalf("immediate task: %+v", task)
		}
		out, _, code = runClient(t, p.url, "worker", "list", "-o", "json")
		workers := decodeJSON[[]apiv1.Worker](t, "worker list", out)
		if code != 0 || len(workers) != 1 || workers[0].Concurrency != 0 || workers[0].Name != task.Worker.Name || workers[0].Missing {
			t.Fatalf("workers: %+v; the task ran under %s", workers, task.Worker.Name)
		}
	})
}

// TestServeMissingAfter: a server without workers finds a silent worker
// lost after its --missing-after, not the default 10 s, and refuses a
// value no heartbeat could meet.
func TestServeMissingAfter(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := pgtest.Database(t)
	if _, stderr, code := run(t, "serve", "--db", dsn, "--missing-after", "1s"); code != 1 ||
		!strings.Contains(stderr, "--missing-after 1s: must be more than the heartbeat interval") {
		t.Fatalf("--missing-after 1s: exit %d %q", code, stderr)
	}
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	// A worker that claims and falls silent, its session open: only its
	// missed heartbeats tell.
	if err := st.RegisterWorker(ctx, store.WorkerInfo{Name: "silent", Concurrency: 1}); err != nil {
		t.Fatal(err)
	}
	id := uuid.Must(uuid.NewV7())
	if _, err := st.Dispatch(ctx, []store.NewTask{{ID: id, Name: "stint.sleep"}}); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Claim(ctx, store.ClaimParams{Worker: "silent", Names: []string{"stint.sleep"}, Limit: 1}); err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	silentSince := time.Now()
	startServe(t, t.TempDir(), "--db", dsn, "--workers", "0", "--missing-after", "3s")
	for {
		task, err := st.Task(ctx, id)
		if err != nil {
			t.Fatal(err)
		}
		if task.State == store.StateDropped {
			if took := time.Since(silentSince); took < 3*time.Second || took > 7*time.Second {
				t.Fatalf("dropped %v after the worker fell silent, with --missing-after 3s", took)
			}
			return
		}
		if time.Since(silentSince) > 15*time.Second {
			t.Fatalf("task still %s", task.State)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
