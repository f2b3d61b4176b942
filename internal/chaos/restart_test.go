package chaos

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// TestRestartKeepsLiveWorkers: when PostgreSQL restarts, every database
// session ends, those of live workers too. A worker that is alive, and
// heartbeats again within the missing timeout, must keep its tasks: a
// lost-worker check that runs on another node right after the restart,
// before the worker's next heartbeat, must not take the ended session for
// a dead process (DESIGN §2: dropped means the worker died or went
// silent). This is the deterministic form of what TestChaos finds as
// dropped-alive after its restart.
func TestRestartKeepsLiveWorkers(t *testing.T) {
	if testing.Short() {
		skipOutsideCI(t, "starts a PostgreSQL cluster of its own; skipped with -short")
	}
	pg := startCluster(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	open := func() *postgres.Store {
		st, err := postgres.Open(ctx, pg.URL)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		return st
	}
	node, other := open(), open()
	if err := node.Migrate(ctx); err != nil {
		t.Fatal(err)
	}
	if err := node.RegisterWorker(ctx, store.WorkerInfo{Name: "w1", Concurrency: 1}); err != nil {
		t.Fatal(err)
	}
	if _, err := node.Dispatch(ctx, []store.NewTask{{ID: uuid.Must(uuid.NewV7()), Name: "test.step",
		ExclusiveResources: []string{"r"}}}); err != nil {
		t.Fatal(err)
	}
	claimed, err := node.Claim(ctx, store.ClaimParams{Worker: "w1", Names: []string{"test.step"}, Limit: 1})
	if err != nil || len(claimed) != 1 {
		t.Fatalf("claim: %v %v", claimed, err)
	}
	id := claimed[0].ID

	began := time.Now()
	if err := pg.restart(); err != nil {
		t.Fatal(err)
	}
	const missingAfter = 10 * time.Second // far longer than the restart
	var lost store.LostWorkers
	for {
		// The pool's connections died with the server: retry until one
		// answers.
		if lost, err = other.DropLostWorkers(ctx, missingAfter); err == nil {
			break
		}
		if time.Since(began) > 20*time.Second {
			t.Fatalf("looking for lost workers after the restart: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("restart and first lost-worker check in %v", time.Since(began).Round(time.Millisecond))
	if len(lost.Workers)+len(lost.Tasks) > 0 {
		t.Errorf("right after a restart of %v, the live worker was found lost: %+v", time.Since(began).Round(time.Millisecond), lost)
	}
	var states map[uuid.UUID]store.State
	for {
		var reply store.HeartbeatReply
		reply, err = node.Heartbeat(ctx, "w1", []uuid.UUID{id})
		states = reply.States
		if err == nil || errors.Is(err, store.ErrNotFound) || time.Since(began) > 20*time.Second {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err != nil || states[id] != store.StateRunning {
		t.Errorf("the worker's heartbeat after the restart: states %v, %v; want its task running", states, err)
	}
}
