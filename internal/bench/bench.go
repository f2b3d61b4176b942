// Package bench runs the benchmark scenarios of `stint bench`. Each scenario
// runs in a scratch database of its own (on PostgreSQL, created on the given
// server and dropped afterwards; on SQLite, a file in a temporary directory
// removed afterwards) and prints one line: "NAME: VALUE UNIT", details after.
package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/internal/scratchdb"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
	"github.com/stint-dev/stint/store/sqlite"
)

// Scenarios lists the scenario names in the order they run. All but
// "sqlite" run on PostgreSQL; "sqlite" is throughput-noop on the embedded
// engine.
var Scenarios = []string{"throughput-noop", "throughput-resources", "throughput-counted", "depth", "latency", "scheduled", "process", "dispatch-single", "http", "sqlite"}

// Config configures a benchmark run.
type Config struct {
	ServerURL    string        // PostgreSQL server to create scratch databases on; empty for SQLite only
	SQLiteDir    string        // where the sqlite scenario's scratch file goes; default the system's temporary directory
	Scenarios    []string      // default: all that the given engines can run
	Tasks        int           // tasks per throughput run; default 50,000
	Concurrency  int           // worker slots; default 100
	ProcessTasks int           // tasks of the process run, each in a child process; default 1,000
	BatchSize    int           // tasks per dispatch call; default 1,000
	DepthWaiting int           // waiting tasks of the deep run of "depth"; default 1,000,000
	Samples      int           // latency samples; default 300
	Duration     time.Duration // of each timed run (dispatch-single, http); default 5 s
	HTTPTasks    int           // tasks in the table of the http scenario's read paths; default 1,000,000
	Keep         bool          // keep the scratch databases, for inspection
	Out          io.Writer
	Logger       *slog.Logger
}

func (c *Config) defaults() {
	if len(c.Scenarios) == 0 {
		c.Scenarios = Scenarios
		if c.ServerURL == "" {
			c.Scenarios = []string{"sqlite"}
		}
	}
	if c.Tasks <= 0 {
		c.Tasks = 50_000
	}
	if c.Concurrency <= 0 {
		c.Concurrency = 100
	}
	if c.ProcessTasks <= 0 {
		c.ProcessTasks = 1000
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 1000
	}
	if c.DepthWaiting <= 0 {
		c.DepthWaiting = 1_000_000
	}
	if c.Samples <= 0 {
		c.Samples = 300
	}
	if c.Duration <= 0 {
		c.Duration = 5 * time.Second
	}
	if c.HTTPTasks <= 0 {
		c.HTTPTasks = 1_000_000
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
}

// Run runs the configured scenarios and prints their lines to cfg.Out.
func Run(ctx context.Context, cfg Config) error {
	cfg.defaults()
	for _, name := range cfg.Scenarios {
		if !slices.Contains(Scenarios, name) {
			return fmt.Errorf("unknown scenario %q (known: %v)", name, Scenarios)
		}
		if name != "sqlite" && cfg.ServerURL == "" {
			return fmt.Errorf("scenario %s needs PostgreSQL: give --db postgres://URL", name)
		}
	}
	for _, name := range cfg.Scenarios {
		var line string
		var err error
		switch name {
		case "throughput-noop":
			var r throughput
			r, err = runThroughput(ctx, cfg, scratchPostgres, cfg.load("stint.noop"))
			line = fmt.Sprintf("throughput-noop: %.0f tasks/s (%d tasks, dispatch %.0f tasks/s, %d slots)", r.rate, cfg.Tasks, r.dispatchRate, cfg.Concurrency)
		case "throughput-resources":
			var r throughput
			r, err = runThroughput(ctx, cfg, scratchPostgres, cfg.load("stint.noop").withResources(0))
			line = fmt.Sprintf("throughput-resources: %.0f tasks/s (%d tasks, 1 exclusive + 2 shared of %d resources each, dispatch %.0f tasks/s)", r.rate, cfg.Tasks, resourceCount, r.dispatchRate)
		case "throughput-counted":
			line, err = runCounted(ctx, cfg)
		case "depth":
			var shallow, deep throughput
			if shallow, err = runThroughput(ctx, cfg, scratchPostgres, cfg.load("stint.noop").withResources(1000)); err == nil {
				deep, err = runThroughput(ctx, cfg, scratchPostgres, cfg.load("stint.noop").withResources(cfg.DepthWaiting))
			}
			line = fmt.Sprintf("depth: ratio %.2f (throughput-resources with 1000 tasks waiting: %.0f tasks/s; with %d waiting: %.0f tasks/s)",
				deep.rate/shallow.rate, shallow.rate, cfg.DepthWaiting, deep.rate)
		case "latency":
			var p50, p99 time.Duration
			p50, p99, err = runLatency(ctx, cfg)
			line = fmt.Sprintf("latency: p50 %.1f ms p99 %.1f ms (dispatch to running on an idle worker, %d samples)", ms(p50), ms(p99), cfg.Samples)
		case "scheduled":
			line, err = runScheduled(ctx, cfg)
		case "process":
			var r throughput
			load := cfg.load("stint.process.noop")
			load.tasks = cfg.ProcessTasks
			r, err = runThroughput(ctx, cfg, scratchPostgres, load)
			line = fmt.Sprintf("process: %.0f tasks/s (%d stint.process.noop tasks, each in a child process, %d slots)", r.rate, load.tasks, load.slots)
		case "dispatch-single":
			var rs []singleResult
			rs, err = runDispatchSingle(ctx, cfg)
			line = singleLine(rs)
		case "http":
			var rs []httpResult
			rs, err = runHTTP(ctx, cfg)
			line = httpLines(rs, cfg)
		case "sqlite":
			var r throughput
			r, err = runThroughput(ctx, cfg, scratchSQLite, cfg.load("stint.noop"))
			line = fmt.Sprintf("sqlite: %.0f tasks/s (throughput-noop on the embedded engine: %d tasks, dispatch %.0f tasks/s, %d slots)", r.rate, cfg.Tasks, r.dispatchRate, cfg.Concurrency)
		}
		if err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		fmt.Fprintln(cfg.Out, line)
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }

// resourceCount is the number of distinct resources throughput-resources
// draws from.
const resourceCount = 1000

// scratchFunc creates a scratch database and returns its store and a
// function that closes and removes it.
type scratchFunc func(ctx context.Context, cfg Config) (store.Store, func(), error)

// scratchSQLite opens a scratch SQLite file in a new temporary directory.
func scratchSQLite(ctx context.Context, cfg Config) (store.Store, func(), error) {
	dir, err := os.MkdirTemp(cfg.SQLiteDir, "stint-bench-")
	if err != nil {
		return nil, nil, err
	}
	st, err := sqlite.Open(ctx, filepath.Join(dir, "bench.db"))
	if err != nil {
		os.RemoveAll(dir) //nolint:errcheck
		return nil, nil, err
	}
	return st, func() {
		st.Close()
		if cfg.Keep {
			cfg.Logger.Info("kept scratch database", "path", filepath.Join(dir, "bench.db"))
			return
		}
		if err := os.RemoveAll(dir); err != nil {
			cfg.Logger.Warn("removing scratch database failed", "error", err)
		}
	}, nil
}

// scratchPostgres creates and migrates a scratch PostgreSQL database.
func scratchPostgres(ctx context.Context, cfg Config) (store.Store, func(), error) {
	st, done, err := scratch(ctx, cfg)
	if err != nil {
		return nil, nil, err
	}
	return st, done, nil
}

// scratch creates and migrates a scratch database and returns its store.
func scratch(ctx context.Context, cfg Config) (*postgres.Store, func(), error) {
	dsn, drop, err := scratchdb.Create(ctx, cfg.ServerURL, "stint_bench")
	if err != nil {
		return nil, nil, err
	}
	st, err := postgres.Open(ctx, dsn)
	if err == nil {
		err = st.Migrate(ctx)
		if err != nil {
			st.Close()
		}
	}
	if err != nil {
		drop() //nolint:errcheck
		return nil, nil, err
	}
	return st, func() {
		st.Close()
		if cfg.Keep {
			cfg.Logger.Info("kept scratch database", "dsn", dsn)
			return
		}
		if err := drop(); err != nil {
			cfg.Logger.Warn("dropping scratch database failed", "error", err)
		}
	}, nil
}

type throughput struct {
	rate, dispatchRate float64
}

// throughputLoad is what a throughput run dispatches, and to how many
// worker slots.
type throughputLoad struct {
	name  string // of the task type: a no-op
	tasks int
	slots int
	// resources: each task holds 1 exclusive and 2 shared resources out
	// of resourceCount.
	resources bool
	// counted: each task holds 1 shared resource out of countedCount,
	// each of capacity countedCapacity.
	counted bool
	// waiting tasks wait on other resources before the run starts.
	waiting int
	// scheduled tasks are scheduled an hour ahead before the run starts.
	scheduled int
	// settled: the database is vacuumed, analyzed and checkpointed before
	// the run even when nothing was preloaded, as the baseline of a
	// preloaded run is.
	settled bool
}

// load is a run of cfg.Tasks tasks named name on cfg.Concurrency slots.
func (c *Config) load(name string) throughputLoad {
	return throughputLoad{name: name, tasks: c.Tasks, slots: c.Concurrency}
}

// withResources is l with resources and waiting tasks.
func (l throughputLoad) withResources(waiting int) throughputLoad {
	l.resources, l.waiting = true, waiting
	return l
}

// runThroughput dispatches l.tasks no-op tasks in batches while one worker
// runs them, and measures from the first dispatch to the last completion.
// With l.waiting > 0, that many tasks first wait on resources no benchmark
// task uses, behind blockers no worker claims; with l.scheduled > 0, that
// many are scheduled an hour ahead; either preload, and l.settled, ends
// with the database vacuumed, analyzed and checkpointed.
func runThroughput(ctx context.Context, cfg Config, open scratchFunc, l throughputLoad) (throughput, error) {
	st, done, err := open(ctx, cfg)
	if err != nil {
		return throughput{}, err
	}
	defer done()
	if l.waiting > 0 {
		pg, ok := st.(*postgres.Store)
		if !ok {
			return throughput{}, fmt.Errorf("the depth scenario runs on PostgreSQL only")
		}
		if err := preloadWaiting(ctx, pg, l.waiting); err != nil {
			return throughput{}, fmt.Errorf("preloading %d waiting tasks: %w", l.waiting, err)
		}
	}
	if l.scheduled > 0 || l.settled {
		pg, ok := st.(*postgres.Store)
		if !ok {
			return throughput{}, fmt.Errorf("the scheduled scenario runs on PostgreSQL only")
		}
		if err := preloadScheduled(ctx, pg, l.scheduled); err != nil {
			return throughput{}, fmt.Errorf("preloading %d scheduled tasks: %w", l.scheduled, err)
		}
	}
	reg := stint.NewRegistry()
	client := stint.NewClient(st, reg)
	if l.counted {
		for i := range countedCount {
			if err := client.SetCapacity(ctx, fmt.Sprintf("counted:%d", i), countedCapacity); err != nil {
				return throughput{}, err
			}
		}
	}
	w, err := stint.NewWorker(st, reg, stint.WorkerConfig{Name: "bench", Concurrency: l.slots, SweepInterval: -1, Logger: cfg.Logger})
	if err != nil {
		return throughput{}, err
	}
	wctx, stopWorker := context.WithCancel(ctx)
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()
	defer func() { stopWorker(); <-werr }()

	rng := rand.New(rand.NewPCG(1, 2))
	reqs := make([]stint.DispatchRequest, l.tasks)
	for i := range reqs {
		reqs[i] = stint.DispatchRequest{Name: l.name}
		if l.resources {
			picks := rng.Perm(resourceCount)[:3]
			reqs[i].ExclusiveResources = []string{fmt.Sprintf("res:%d", picks[0])}
			reqs[i].SharedResources = []string{fmt.Sprintf("res:%d", picks[1]), fmt.Sprintf("res:%d", picks[2])}
		}
		if l.counted {
			reqs[i].SharedResources = []string{fmt.Sprintf("counted:%d", rng.IntN(countedCount))}
		}
	}
	start := time.Now()
	for i := 0; i < len(reqs); i += cfg.BatchSize {
		if _, err := client.DispatchMany(ctx, reqs[i:min(i+cfg.BatchSize, len(reqs))]); err != nil {
			return throughput{}, err
		}
	}
	dispatched := time.Since(start)
	for w.Stats().Finished < int64(l.tasks) {
		select {
		case <-ctx.Done():
			return throughput{}, ctx.Err()
		case err := <-werr:
			return throughput{}, fmt.Errorf("worker stopped: %v", err)
		case <-time.After(time.Millisecond):
		}
	}
	elapsed := time.Since(start)
	return throughput{
		rate:         float64(l.tasks) / elapsed.Seconds(),
		dispatchRate: float64(l.tasks) / dispatched.Seconds(),
	}, nil
}

// The resources of throughput-counted: how many, and the capacity of each.
const (
	countedCount    = 100
	countedCapacity = 10
)

// runCounted is the throughput-counted scenario: tasks that each hold one
// shared resource of capacity countedCapacity out of countedCount, beside
// throughput-resources in the same run, alternated (resources, counted,
// counted, resources) so that drift favours neither; the rates are the
// means of each pair.
func runCounted(ctx context.Context, cfg Config) (string, error) {
	resources := cfg.load("stint.noop").withResources(0)
	counted := cfg.load("stint.noop")
	counted.counted = true
	var sum [2]float64
	for _, kind := range []int{0, 1, 1, 0} {
		load := resources
		if kind == 1 {
			load = counted
		}
		r, err := runThroughput(ctx, cfg, scratchPostgres, load)
		if err != nil {
			return "", err
		}
		sum[kind] += r.rate
	}
	res, cnt := sum[0]/2, sum[1]/2
	return fmt.Sprintf("throughput-counted: %.0f tasks/s, ratio %.2f to throughput-resources (%.0f tasks/s) in the same run "+
		"(%d tasks, 1 shared of %d resources of capacity %d each; means of 2 runs each, alternated)",
		cnt, cnt/res, res, cfg.Tasks, countedCount, countedCapacity), nil
}

// preloadWaiting dispatches n tasks that stay waiting: 100 blockers hold
// resources exclusively under a name no worker runs, and the n tasks share
// those resources behind them.
func preloadWaiting(ctx context.Context, st *postgres.Store, n int) error {
	const blockers = 100
	newTask := func(ex, sh []string) store.NewTask {
		return store.NewTask{ID: uuid.Must(uuid.NewV7()), Name: "bench.blocked", Args: json.RawMessage(`{}`), ExclusiveResources: ex, SharedResources: sh}
	}
	var batch []store.NewTask
	for i := range blockers {
		batch = append(batch, newTask([]string{fmt.Sprintf("blocked:%d", i)}, nil))
	}
	if _, err := st.Dispatch(ctx, batch); err != nil {
		return err
	}
	const chunk = 10_000
	for left := n; left > 0; left -= chunk {
		batch = batch[:0]
		for i := range min(chunk, left) {
			batch = append(batch, newTask(nil, []string{fmt.Sprintf("blocked:%d", i%blockers)}))
		}
		if _, err := st.Dispatch(ctx, batch); err != nil {
			return err
		}
	}
	// Measure the steady state of a deep queue, not the aftermath of the
	// bulk load.
	return settle(ctx, st, "depth", "")
}

// settle brings a database that a fixture was just bulk-loaded into to a
// steady state, so that a scenario measures its own work rather than the
// aftermath of the load: it vacuums and analyzes table (every table when
// ""), as autovacuum would have, and takes a checkpoint. Without it, the
// load's write-ahead log starts a checkpoint that spreads over the next
// minute, and every page first changed after it began is logged whole.
func settle(ctx context.Context, st *postgres.Store, scenario, table string) error {
	vacuum := "VACUUM ANALYZE"
	if table != "" {
		vacuum += " " + table
	}
	if _, err := st.Pool().Exec(ctx, vacuum); err != nil {
		return err
	}
	if _, err := st.Pool().Exec(ctx, "CHECKPOINT"); err != nil {
		return fmt.Errorf("CHECKPOINT (the %s scenario needs a role allowed to run it): %w", scenario, err)
	}
	return nil
}

// runLatency dispatches tasks one at a time to an idle worker and measures,
// on one clock, from before the dispatch call to the start of the task's
// function.
func runLatency(ctx context.Context, cfg Config) (p50, p99 time.Duration, err error) {
	return startLatency(ctx, cfg, "bench.latency", nil)
}

// startLatency dispatches cfg.Samples tasks named name, one at a time, to
// an idle worker, and returns the p50 and p99 of how late each started. With
// ahead nil, a task is dispatched to run at once and is late from before the
// dispatch call to the start of its function; otherwise task i is scheduled
// ahead(i) from now and is late from its scheduled time (a start before it
// is an error).
func startLatency(ctx context.Context, cfg Config, name string, ahead func(i int) time.Duration) (p50, p99 time.Duration, err error) {
	st, done, err := scratch(ctx, cfg)
	if err != nil {
		return 0, 0, err
	}
	defer done()
	var mu sync.Mutex
	started := map[uuid.UUID]chan time.Time{}
	reg := stint.NewRegistry()
	stint.Register(reg, name, func(_ context.Context, run *stint.Run, _ struct{}) (struct{}, error) {
		now := time.Now()
		mu.Lock()
		ch := started[run.ID()]
		mu.Unlock()
		if ch != nil {
			ch <- now
		}
		return struct{}{}, nil
	})
	// Ids are known only once Prepare returns, so the task looks its
	// channel up; the channel is registered before the dispatch by id.
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
		req := stint.DispatchRequest{Name: name}
		if ahead != nil {
			req.ScheduledAt = time.Now().Add(ahead(i))
		}
		nts, err := client.Prepare([]stint.DispatchRequest{req})
		if err != nil {
			return 0, 0, err
		}
		ch := make(chan time.Time, 1)
		mu.Lock()
		started[nts[0].ID] = ch
		mu.Unlock()
		from := time.Now()
		if ahead != nil {
			from = req.ScheduledAt
		}
		if _, err := st.Dispatch(ctx, nts); err != nil {
			return 0, 0, err
		}
		select {
		case t1 := <-ch:
			if t1.Before(from) {
				return 0, 0, fmt.Errorf("task %s started %v before its time", nts[0].ID, from.Sub(t1))
			}
			lat = append(lat, t1.Sub(from))
		case <-time.After(10 * time.Second):
			return 0, 0, fmt.Errorf("task %s did not start within 10s", nts[0].ID)
		}
		time.Sleep(5 * time.Millisecond) // the worker is idle again
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	return lat[len(lat)/2], lat[len(lat)*99/100], nil
}
