package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/pgtest"
	"github.com/stint-dev/stint/internal/scheduling"
	"github.com/stint-dev/stint/internal/syncbuf"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// buildStint builds the stint binary into a temporary directory.
func buildStint(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "stint")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/stint-dev/stint/cmd/stint")
	cmd.Stderr = os.Stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("building stint: %v", err)
	}
	return bin
}

// workerProcess is a running `stint worker`.
type workerProcess struct {
	name   string
	cmd    *exec.Cmd
	stderr *syncbuf.Buffer
	exited chan struct{} // closed when the process has exited
	err    error         // its exit status, once exited is closed
}

// startWorker starts `stint worker` named name; extra flags come last, and
// override the ones before.
func startWorker(t *testing.T, bin, dsn, name string, extra ...string) *workerProcess {
	t.Helper()
	w := &workerProcess{name: name, stderr: &syncbuf.Buffer{}}
	args := append([]string{"worker", "--db", dsn, "--name", name, "--concurrency", "4",
		"--sweep-interval", "500ms", "--poll-interval", "200ms", "--shutdown-grace", "5s",
		"--workdir", t.TempDir()}, extra...)
	w.cmd = exec.Command(bin, args...)
	w.cmd.Stderr = w.stderr
	if err := w.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	w.exited = make(chan struct{})
	go func() { w.err = w.cmd.Wait(); close(w.exited) }()
	t.Cleanup(func() {
		w.cmd.Process.Kill() //nolint:errcheck // a no-op once it has exited
		<-w.exited
	})
	return w
}

// stop sends SIGTERM and waits for a clean exit.
func (w *workerProcess) stop(t *testing.T) {
	t.Helper()
	if err := w.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-w.exited:
		if w.err != nil {
			t.Errorf("worker %s exited with %v:\n%s", w.name, w.err, w.stderr.String())
		}
	case <-time.After(20 * time.Second):
		w.cmd.Process.Kill() //nolint:errcheck
		t.Errorf("worker %s did not stop within 20s of SIGTERM", w.name)
	}
}

// record is a finished task as the database has it.
type record struct {
	id              uuid.UUID
	seq             int64
	state           string
	res             scheduling.Resources
	started, finish time.Time
}

// TestStressManyWorkerProcesses runs three worker processes while four
// dispatchers send thousands of tasks over a few resources, then proves from
// the database's own timestamps that conflicting tasks never overlapped and
// never overtook each other, that every task completed, and that the
// scheduler's safety net never had anything to repair.
func TestStressManyWorkerProcesses(t *testing.T) {
	const (
		dispatchers = 4
		batches     = 15
		batchSize   = 50 // 4 × 15 × 50 = 3,000 tasks
	)
	resources := []string{"r0", "r1", "r2", "r3", "r4", "r5"}
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()

	bin := buildStint(t)
	dsn := pgtest.Database(t)
	if out, err := exec.Command(bin, "migrate", "--db", dsn).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v: %s", err, out)
	}
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	var workers []*workerProcess
	for i := range 3 {
		workers = append(workers, startWorker(t, bin, dsn, fmt.Sprintf("stress-%d", i)))
	}

	client := stint.NewClient(st, stint.NewRegistry())
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, dispatchers)
	for d := range dispatchers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(d), 42))
			for range batches {
				reqs := make([]stint.DispatchRequest, batchSize)
				for i := range reqs {
					reqs[i] = randomTask(rng, resources)
				}
				if _, err := client.DispatchMany(ctx, reqs); err != nil {
					errs <- err
					return
				}
				time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond) // let others complete meanwhile
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	total := dispatchers * batches * batchSize

	for {
		counts, err := st.CountByState(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if counts[store.StateWaiting]+counts[store.StateRunning]+counts[store.StateCanceling] == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("tasks still incomplete: %v", counts)
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	// Let every worker's sweep run at least once more over the final state.
	time.Sleep(time.Second)
	for _, w := range workers {
		w.stop(t)
	}

	tasks := loadTasks(ctx, t, st)
	if len(tasks) != total {
		t.Fatalf("%d tasks stored, %d dispatched", len(tasks), total)
	}
	for _, task := range tasks {
		if task.state != string(store.StateCompleted) {
			t.Errorf("task %s ended %s", task.id, task.state)
		}
	}
	pairs, overlaps, overtakes := checkResources(tasks, resources)
	for _, msg := range append(overlaps, overtakes...) {
		t.Error(msg)
	}
	res, err := st.Sweep(ctx)
	if err != nil || res.Total() != 0 {
		t.Errorf("final sweep: %+v %v", res, err)
	}
	for _, w := range workers {
		if log := w.stderr.String(); strings.Contains(log, "sweep found") {
			t.Errorf("worker %s's sweep repaired the scheduler:\n%s", w.name, log)
		}
	}
	t.Logf("%d tasks by %d worker processes in %v; %d conflicting neighbours compared; %d overlaps, %d overtakes",
		total, len(workers), elapsed.Round(time.Millisecond), pairs, len(overlaps), len(overtakes))
}

// randomTask draws a task: mostly no-ops, some short sleeps; 0-2 exclusive
// and 0-2 shared resources, some with none.
func randomTask(rng *rand.Rand, resources []string) stint.DispatchRequest {
	req := stint.DispatchRequest{Name: "stint.noop"}
	if rng.IntN(5) == 0 {
		req = stint.DispatchRequest{Name: "stint.sleep", Args: stint.SleepArgs{Seconds: 0.005 + 0.015*rng.Float64()}}
	}
	perm := rng.Perm(len(resources))
	nx, ns := rng.IntN(3), rng.IntN(3)
	for _, i := range perm[:nx] {
		req.ExclusiveResources = append(req.ExclusiveResources, resources[i])
	}
	for _, i := range perm[nx : nx+ns] {
		req.SharedResources = append(req.SharedResources, resources[i])
	}
	return req
}

func loadTasks(ctx context.Context, t *testing.T, st *postgres.Store) []record {
	t.Helper()
	rows, err := st.Pool().Query(ctx, `SELECT id, seq, state, exclusive_resources, shared_resources,
		coalesce(started_at, 'epoch'), coalesce(finished_at, 'epoch') FROM stint_tasks ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []record
	for rows.Next() {
		var r record
		if err := rows.Scan(&r.id, &r.seq, &r.state, &r.res.Exclusive, &r.res.Shared, &r.started, &r.finish); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// checkResources proves, per resource, from the recorded [started_at,
// finished_at] intervals (taken on the database's clock) that no two
// conflicting holders overlapped, and that a task never started before an
// earlier-dispatched conflicting one. Walking each resource's holders in
// dispatch order, it compares every holder with the conflicting holders
// next to it in the queue: an exclusive holder with the run of shared
// holders (or the exclusive holder) just before it, a shared holder with the
// exclusive holder before its run. Conflict is transitive along the queue,
// so this covers every conflicting pair; a final pass over the holders sorted
// by start time catches an overlap between holders that are not neighbours.
// It returns how many neighbour pairs it compared and a message per
// violation.
func checkResources(tasks []record, resources []string) (pairs int, overlaps, overtakes []string) {
	for _, name := range resources {
		var holders []record // in dispatch (seq) order
		for _, task := range tasks {
			if slices.Contains(task.res.Exclusive, name) || slices.Contains(task.res.Shared, name) {
				holders = append(holders, task)
			}
		}
		exclusive := func(r record) bool { return slices.Contains(r.res.Exclusive, name) }
		// compare checks a later holder against an earlier conflicting one.
		compare := func(earlier, later record) {
			pairs++
			if later.started.Before(earlier.finish) && earlier.started.Before(later.finish) {
				overlaps = append(overlaps, fmt.Sprintf("%s: %s [%v, %v] and %s [%v, %v] overlap", name,
					earlier.id, earlier.started, earlier.finish, later.id, later.started, later.finish))
			}
			if later.started.Before(earlier.started) {
				overtakes = append(overtakes, fmt.Sprintf("%s: %s (seq %d) started at %v, before earlier %s (seq %d) at %v", name,
					later.id, later.seq, later.started, earlier.id, earlier.seq, earlier.started))
			}
		}
		var lastExclusive *record
		var sharedSince []record
		for i := range holders {
			h := holders[i]
			if exclusive(h) {
				for _, s := range sharedSince {
					compare(s, h)
				}
				if lastExclusive != nil && len(sharedSince) == 0 {
					compare(*lastExclusive, h)
				}
				lastExclusive, sharedSince = &holders[i], nil
				continue
			}
			if lastExclusive != nil {
				compare(*lastExclusive, h)
			}
			sharedSince = append(sharedSince, h)
		}
		sorted := append([]record(nil), holders...)
		sort.Slice(sorted, func(i, j int) bool { return sorted[i].started.Before(sorted[j].started) })
		for i := 1; i < len(sorted); i++ {
			prev, cur := sorted[i-1], sorted[i]
			if (exclusive(prev) || exclusive(cur)) && cur.started.Before(prev.finish) {
				overlaps = append(overlaps, fmt.Sprintf("%s: %s and %s overlap (found by start order)", name, prev.id, cur.id))
			}
		}
	}
	return pairs, overlaps, overtakes
}
