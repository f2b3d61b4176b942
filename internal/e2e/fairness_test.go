package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/chaos"
	"github.com/stint-dev/stint/internal/pgtest"
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
		if task.State != string(store.StateCompleted) {
			t.Errorf("task %s ended %s", task.ID, task.State)
		}
	}
	// The chaos check's checker, on the tasks alone: no overlap, no
	// overtake, every task final.
	rep := chaos.Check(chaos.History{Tasks: tasks}, chaos.Limits{})
	for _, v := range rep.Violations {
		t.Error(v)
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
	t.Logf("%d tasks by %d worker processes in %v; %d conflicting pairs compared; %d overlaps, %d overtakes",
		total, len(workers), elapsed.Round(time.Millisecond), rep.Compared, rep.Count(chaos.Overlap), rep.Count(chaos.Overtake))
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

func loadTasks(ctx context.Context, t *testing.T, st *postgres.Store) []chaos.Task {
	t.Helper()
	rows, err := st.Pool().Query(ctx, `SELECT id, seq, state, attempt, coalesce(worker, ''), exclusive_resources, shared_resources,
		started_at, finished_at, coalesce(error->>'description', '') FROM stint_tasks ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var out []chaos.Task
	for rows.Next() {
		var (
			r                 chaos.Task
			started, finished *time.Time
		)
		if err := rows.Scan(&r.ID, &r.Seq, &r.State, &r.Attempt, &r.Worker, &r.Exclusive, &r.Shared,
			&started, &finished, &r.Reason); err != nil {
			t.Fatal(err)
		}
		if started != nil {
			r.StartedAt = *started
		}
		if finished != nil {
			r.FinishedAt = *finished
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}
