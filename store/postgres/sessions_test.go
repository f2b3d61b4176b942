package postgres_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// Two stores on one database stand for two processes: a worker whose
// session ends is found lost at once by the other, long before its missing
// timeout, and its task is dropped with the reason; a live worker is left
// alone.
func TestDeadSessionIsFoundAtOnce(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := pgtest.Database(t)
	other := openAt(t, dsn)
	dying := openAt(t, dsn)
	for _, name := range []string{"1@dying", "2@live"} {
		st := other
		if name == "1@dying" {
			st = dying
		}
		if err := st.RegisterWorker(ctx, store.WorkerInfo{Name: name, Concurrency: 1}); err != nil {
			t.Fatal(err)
		}
	}
	task := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "t", ExclusiveResources: []string{"r"}}
	next := store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "t", ExclusiveResources: []string{"r"}}
	if _, err := other.Dispatch(ctx, []store.NewTask{task, next}); err != nil {
		t.Fatal(err)
	}
	if got, err := dying.Claim(ctx, store.ClaimParams{Worker: "1@dying", Names: []string{"t"}, Limit: 1}); err != nil || len(got) != 1 {
		t.Fatalf("claim: %v %v", got, err)
	}
	// Alive: nothing is lost, however often one looks.
	if lost, err := other.DropLostWorkers(ctx, time.Hour); err != nil || len(lost.Workers) != 0 {
		t.Fatalf("lost while alive: %+v %v", lost, err)
	}
	// The process dies: its session ends with it, as soon as the server
	// has seen the connection go.
	dying.Close()
	var (
		lost store.LostWorkers
		err  error
	)
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if lost, err = other.DropLostWorkers(ctx, time.Hour); err != nil || len(lost.Workers) > 0 {
			break
		}
	}
	if err != nil || len(lost.Workers) != 1 || lost.Workers[0] != "1@dying" || len(lost.Tasks) != 1 || lost.Tasks[0] != task.ID {
		t.Fatalf("after the session ended: %+v %v", lost, err)
	}
	got, err := other.Task(ctx, task.ID)
	if err != nil || got.State != store.StateDropped || got.Error == nil || got.Error.Kind != store.WorkerLostKind ||
		!strings.Contains(got.Error.Description, "database session of worker 1@dying ended") {
		t.Fatalf("task of the dead worker: %+v %v", got, err)
	}
	if got, err := other.Task(ctx, next.ID); err != nil || got.UnblockedAt == nil {
		t.Fatalf("the task behind it is not runnable: %+v %v", got, err)
	}
	if _, err := other.Worker(ctx, "2@live"); err != nil {
		t.Fatalf("the live worker: %v", err)
	}
}

// A worker whose session broke while the process lives (the server ended
// the connection) gets a new one at its next heartbeat, unless another node
// found it lost first: then the heartbeat says so and it registers again.
func TestBrokenSessionIsReplaced(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := pgtest.Database(t)
	admin := openAt(t, dsn)
	w := openAt(t, dsn)
	if err := w.RegisterWorker(ctx, store.WorkerInfo{Name: "w", Concurrency: 1}); err != nil {
		t.Fatal(err)
	}
	terminate := func() {
		t.Helper()
		// The worker's session is the backend holding its advisory lock.
		_, err := admin.Pool().Exec(ctx, `SELECT pg_terminate_backend(l.pid) FROM pg_locks l
			JOIN stint_workers w ON w.session_key = l.objid::bigint::integer
			WHERE l.locktype = 'advisory' AND w.name = 'w' AND l.database =
				(SELECT oid FROM pg_database WHERE datname = current_database())`)
		if err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond) // the backend exits
	}
	terminate()
	// The first heartbeat fails on the dead connection, or replaces it.
	for i := 0; ; i++ {
		if _, err := w.Heartbeat(ctx, "w", nil); err == nil {
			break
		} else if i == 2 {
			t.Fatalf("heartbeat after the session broke: %v", err)
		}
	}
	if lost, err := admin.DropLostWorkers(ctx, time.Hour); err != nil || len(lost.Workers) != 0 {
		t.Fatalf("lost with a new session: %+v %v", lost, err)
	}
	terminate()
	if lost, err := admin.DropLostWorkers(ctx, time.Hour); err != nil || len(lost.Workers) != 1 {
		t.Fatalf("not lost without its session: %+v %v", lost, err)
	}
	var err error
	for i := 0; i < 3; i++ {
		if _, err = w.Heartbeat(ctx, "w", nil); errors.Is(err, store.ErrNotFound) {
			return
		}
	}
	t.Fatalf("heartbeat of a worker found lost: %v, want ErrNotFound", err)
}

func openAt(t *testing.T, dsn string) *postgres.Store {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(st.Close)
	return st
}

// Names are unique among online workers: a second process cannot register
// a name a live worker holds, the worker itself can register again, and
// once the holder's session ends the name is free.
func TestWorkerNameInUseIsRefused(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	dsn := pgtest.Database(t)
	holder, other := openAt(t, dsn), openAt(t, dsn)
	info := store.WorkerInfo{Name: "builder-1", Concurrency: 1}
	if err := holder.RegisterWorker(ctx, info); err != nil {
		t.Fatal(err)
	}
	if err := other.RegisterWorker(ctx, info); !errors.Is(err, store.ErrExists) || !strings.Contains(err.Error(), "builder-1") {
		t.Fatalf("a second process with the same name: %v", err)
	}
	if err := holder.RegisterWorker(ctx, info); err != nil {
		t.Fatalf("the holder registering again: %v", err)
	}
	if _, err := holder.Heartbeat(ctx, "builder-1", nil); err != nil {
		t.Fatalf("the holder's heartbeat: %v", err)
	}
	holder.Close()
	var err error
	for deadline := time.Now().Add(2 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if err = other.RegisterWorker(ctx, info); err == nil {
			return
		}
	}
	t.Fatalf("the name once its holder is gone: %v", err)
}
