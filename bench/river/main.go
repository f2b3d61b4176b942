// Command riverbench measures River (github.com/riverqueue/river) the way
// River's own benchmark measures it in its burn-down mode (`river bench
// --num-total-jobs N`): N no-op jobs are inserted in batches of 5,000, then
// one client with River's benchmark settings (2,000 workers, 2 ms fetch
// cooldown, 20 ms poll interval) works them, and the figure is the jobs
// worked per second from the client's start to the last completion. River's
// command is not served by the module proxy, so this is a reimplementation
// of its method, in a module of its own so that Stint's module does not
// depend on River.
//
//	go run . [--db SERVER_URL] [--jobs N] [--stint PATH]
//	go run . --single [--db SERVER_URL] [--duration D] [--stint PATH]
//
// With --single it measures instead what a request handler does: Insert of
// one job per call, back to back, from 1, 8 and 50 goroutines for D each;
// with --stint it then runs Stint's dispatch-single and http scenarios and
// prints the ratios of issue 15's floors.
//
// It works in a scratch database created on the server at --db and dropped
// at the end. With --stint, it then runs PATH bench --scenario
// throughput-noop on the same server, with 100 worker slots (the scenario's
// default) and with 2,000 (River's), for the comparison of DESIGN §11.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"runtime/debug"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/riverqueue/river"
	"github.com/riverqueue/river/riverdriver/riverpgxv5"
	"github.com/riverqueue/river/rivermigrate"

	"github.com/stint-dev/stint/internal/scratchdb"
)

// noopArgs are the arguments of the benchmark's job kind.
type noopArgs struct {
	Num int `json:"num"`
}

// Kind implements river.JobArgs.
func (noopArgs) Kind() string { return "noop" }

// noopWorker works a job by doing nothing.
type noopWorker struct {
	river.WorkerDefaults[noopArgs]
}

// Work implements river.Worker.
func (*noopWorker) Work(context.Context, *river.Job[noopArgs]) error { return nil }

func main() {
	server := flag.String("db", scratchdb.LocalServer, "URL of a database on the server to benchmark on")
	jobs := flag.Int("jobs", 50_000, "jobs to insert and work")
	stint := flag.String("stint", "", "path of a stint binary: run its throughput-noop scenario afterwards (with --single: its dispatch-single and http scenarios)")
	single := flag.Bool("single", false, "measure Insert of one job per call from 1, 8 and 50 goroutines instead")
	duration := flag.Duration("duration", 5*time.Second, "length of each run of --single")
	flag.Parse()
	ctx := context.Background()
	if *single {
		rates, err := runSingle(ctx, *server, *duration)
		if err != nil {
			fmt.Fprintln(os.Stderr, "riverbench:", err)
			os.Exit(1)
		}
		fmt.Println(singleLine(rates))
		if *stint != "" {
			if err := compareSingle(ctx, *stint, *server, *duration, rates); err != nil {
				fmt.Fprintln(os.Stderr, "riverbench:", err)
				os.Exit(1)
			}
		}
		return
	}
	rate, err := run(ctx, *server, *jobs)
	if err != nil {
		fmt.Fprintln(os.Stderr, "riverbench:", err)
		os.Exit(1)
	}
	fmt.Printf("river-noop: %.0f jobs/s (%d jobs, River %s, 2000 workers)\n", rate, *jobs, riverVersion())
	if *stint == "" {
		return
	}
	// Stint's scenario as DESIGN §11 runs it (100 slots), then with as many
	// slots as River's benchmark gives its client.
	for _, slots := range []string{"100", "2000"} {
		cmd := exec.CommandContext(ctx, *stint, "bench", "--db", *server, "--scenario", "throughput-noop", "--concurrency", slots)
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stderr
		if err := cmd.Run(); err != nil {
			fmt.Fprintln(os.Stderr, "riverbench: stint bench:", err)
			os.Exit(1)
		}
	}
}

// run inserts n jobs in a scratch database, works them with one client and
// returns the jobs worked per second.
func run(ctx context.Context, server string, n int) (float64, error) {
	dsn, drop, err := scratchdb.Create(ctx, server, "stint_riverbench")
	if err != nil {
		return 0, err
	}
	defer drop() //nolint:errcheck // a scratch database; a leftover is named as such
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return 0, err
	}
	defer pool.Close()
	driver := riverpgxv5.New(pool)
	migrator, err := rivermigrate.New(driver, nil)
	if err != nil {
		return 0, err
	}
	if _, err := migrator.Migrate(ctx, rivermigrate.DirectionUp, nil); err != nil {
		return 0, fmt.Errorf("migrating River's schema: %w", err)
	}

	workers := river.NewWorkers()
	river.AddWorker(workers, &noopWorker{})
	client, err := river.NewClient(driver, &river.Config{
		FetchCooldown:     2 * time.Millisecond,
		FetchPollInterval: 20 * time.Millisecond,
		Queues:            map[string]river.QueueConfig{river.QueueDefault: {MaxWorkers: 2_000}},
		Workers:           workers,
	})
	if err != nil {
		return 0, err
	}
	const batch = 5_000
	params := make([]river.InsertManyParams, 0, batch)
	for i := 0; i < n; i += batch {
		params = params[:0]
		for j := i; j < min(i+batch, n); j++ {
			params = append(params, river.InsertManyParams{Args: noopArgs{Num: j}})
		}
		if _, err := client.InsertMany(ctx, params); err != nil {
			return 0, fmt.Errorf("inserting jobs: %w", err)
		}
	}

	// A channel that holds every event: a dropped event would leave the
	// count short.
	completed, cancel := client.SubscribeConfig(&river.SubscribeConfig{ChanSize: n,
		Kinds: []river.EventKind{river.EventKindJobCompleted, river.EventKindJobFailed, river.EventKindJobCancelled}})
	defer cancel()
	start := time.Now()
	if err := client.Start(ctx); err != nil {
		return 0, err
	}
	defer client.Stop(context.WithoutCancel(ctx)) //nolint:errcheck // the figure is taken
	var last time.Time
	for worked := 0; worked < n; worked++ {
		select {
		case ev := <-completed:
			if ev == nil {
				return 0, fmt.Errorf("the event channel of River's client closed after %d jobs", worked)
			}
			if ev.Kind != river.EventKindJobCompleted {
				return 0, fmt.Errorf("job %d ended %s", ev.Job.ID, ev.Kind)
			}
			last = time.Now()
		case <-time.After(time.Minute):
			return 0, fmt.Errorf("no job finished for a minute, after %d of %d", worked, n)
		}
	}
	return float64(n) / last.Sub(start).Seconds(), nil
}

// riverVersion is the version of River this command was built with.
func riverVersion() string {
	if info, ok := debug.ReadBuildInfo(); ok {
		for _, m := range info.Deps {
			if m.Path == "github.com/riverqueue/river" {
				return m.Version
			}
		}
	}
	return "(unknown version)"
}
