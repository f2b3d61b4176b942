package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/sqlite"
)

// The throughput benchmarks run tasks through the store alone, as one
// worker would: dispatch in batches of 1,000, then claim and finish in
// batches of 100 until none is left. Each iteration runs 20,000 tasks on
// one file; the result is reported as tasks/s.
//
//	go test -run '^$' -bench Throughput -benchtime 3x ./store/sqlite/

const (
	benchTasks         = 20_000
	benchDispatchBatch = 1_000
	benchClaimBatch    = 100
)

func BenchmarkThroughputNoop(b *testing.B) {
	benchThroughput(b, func(int) ([]string, []string) { return nil, nil }, 0)
}

// BenchmarkThroughputResources gives each task 1 exclusive and 2 shared
// resources out of 1,000.
func BenchmarkThroughputResources(b *testing.B) {
	benchThroughput(b, func(i int) ([]string, []string) {
		r := func(k int) string { return fmt.Sprintf("repo:%d", k%1000) }
		return []string{r(i)}, []string{r(i + 1 + i%7), r(i + 500 + i%11)}
	}, 0)
}

// BenchmarkThroughputDepth runs the no-op tasks while 100,000 tasks wait on
// another resource: the cost of dispatch, claim and finish must not grow
// with them.
func BenchmarkThroughputDepth(b *testing.B) {
	benchThroughput(b, func(int) ([]string, []string) { return nil, nil }, 100_000)
}

func benchThroughput(b *testing.B, resources func(i int) (exclusive, shared []string), waiting int) {
	ctx := context.Background()
	st, err := sqlite.Open(ctx, filepath.Join(b.TempDir(), "bench.db"))
	if err != nil {
		b.Fatal(err)
	}
	defer st.Close()
	if waiting > 0 {
		// One running task holds "deep"; the others wait behind it.
		for i := 0; i < waiting+1; i += benchDispatchBatch {
			var batch []store.NewTask
			for range min(benchDispatchBatch, waiting+1-i) {
				batch = append(batch, newTask("bench.waiting", []string{"deep"}, nil))
			}
			if _, err := st.Dispatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		if got, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"bench.waiting"}, Limit: 10}); err != nil || len(got) != 1 {
			b.Fatal(len(got), err)
		}
	}
	b.ResetTimer()
	start := time.Now()
	var dispatchTime time.Duration
	claims := 0
	for range b.N {
		t0 := time.Now()
		for i := 0; i < benchTasks; i += benchDispatchBatch {
			batch := make([]store.NewTask, 0, benchDispatchBatch)
			for k := range benchDispatchBatch {
				ex, sh := resources(i + k)
				batch = append(batch, newTask("bench.noop", ex, sh))
			}
			if _, err := st.Dispatch(ctx, batch); err != nil {
				b.Fatal(err)
			}
		}
		dispatchTime += time.Since(t0)
		done := 0
		for done < benchTasks {
			runs, err := st.Claim(ctx, store.ClaimParams{Worker: "w", Names: []string{"bench.noop"}, Limit: benchClaimBatch})
			if err != nil {
				b.Fatal(err)
			}
			if len(runs) == 0 {
				b.Fatalf("nothing to claim after %d of %d tasks", done, benchTasks)
			}
			outcomes := make([]store.Outcome, len(runs))
			for k, r := range runs {
				outcomes[k] = store.Outcome{ID: r.ID, Attempt: r.Attempt, State: store.StateCompleted}
			}
			if _, err := st.Finish(ctx, outcomes); err != nil {
				b.Fatal(err)
			}
			done += len(runs)
			claims++
		}
	}
	elapsed := time.Since(start)
	b.StopTimer()
	n := float64(b.N * benchTasks)
	b.ReportMetric(n/elapsed.Seconds(), "tasks/s")
	b.ReportMetric(n/dispatchTime.Seconds(), "dispatched/s")
	b.ReportMetric(n/(elapsed-dispatchTime).Seconds(), "claimed+finished/s")
	b.ReportMetric(float64(b.N*benchTasks)/float64(claims), "tasks/claim")
	b.ReportMetric(0, "ns/op")
}
