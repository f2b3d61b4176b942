package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/faultproxy"
	"github.com/stint-dev/stint/internal/syncbuf"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// config is the scale of a chaos run, from the environment.
type config struct {
	tasks     int           // STINT_CHAOS_TASKS: logical tasks dispatched
	duration  time.Duration // STINT_CHAOS_SECONDS: how long the chaos lasts
	seed      uint64        // STINT_CHAOS_SEED: the random choices
	workers   int           // worker processes kept alive
	resources int           // the pool of resources tasks draw from
	drain     time.Duration // the longest wait for every task to end after the chaos
}

// The node's timings and the checker's limits.
const (
	heartbeat    = 500 * time.Millisecond
	missingAfter = 3 * time.Second
	stopFor      = missingAfter + 3*time.Second // longer than the missing timeout and the slack
)

var limits = Limits{MissingAfter: missingAfter, Slack: 2 * time.Second, InFlight: time.Second}

func envInt(t *testing.T, name string, def int) int {
	t.Helper()
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		t.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func loadConfig(t *testing.T) config {
	cfg := config{
		tasks:     envInt(t, "STINT_CHAOS_TASKS", 3000),
		duration:  time.Duration(envInt(t, "STINT_CHAOS_SECONDS", 30)) * time.Second,
		seed:      uint64(envInt(t, "STINT_CHAOS_SEED", int(time.Now().UnixNano()%1_000_000_000))),
		workers:   3,
		resources: 12,
	}
	cfg.drain = 60*time.Second + cfg.duration
	return cfg
}

// TestChaos is the reliability check of DESIGN §12: worker and API
// processes on a private PostgreSQL cluster run thousands of tasks with
// random exclusive and shared resources while workers are SIGKILLed and
// replaced, one is SIGSTOPped past the missing timeout and resumed, and
// PostgreSQL is restarted; then Check judges what the database recorded.
func TestChaos(t *testing.T) {
	if testing.Short() {
		skipOutsideCI(t, "the chaos check takes a minute; skipped with -short")
	}
	cfg := loadConfig(t)
	t.Logf("STINT_CHAOS_TASKS=%d STINT_CHAOS_SECONDS=%d STINT_CHAOS_SEED=%d",
		cfg.tasks, int(cfg.duration/time.Second), cfg.seed)
	began := time.Now()
	pg := startCluster(t)
	bin := buildNode(t)
	if out, err := exec.Command(bin, "migrate", "--db", pg.URL).CombinedOutput(); err != nil {
		t.Fatalf("migrate: %v\n%s", err, out)
	}
	pool, err := pgxpool.New(context.Background(), pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer pool.Close()

	r := &chaosRun{t: t, cfg: cfg, bin: bin, pg: pg, pool: pool, rng: rand.New(rand.NewPCG(cfg.seed, 7))}
	r.capacities = setCapacities(t, pg.URL, rand.New(rand.NewPCG(cfg.seed, 13)), cfg.resources)
	apis := []*node{r.startNode("api", "api-0"), r.startNode("api", "api-1")}
	// One worker reaches PostgreSQL through a fault-injecting proxy, for
	// the network fault; it is neither killed nor stopped.
	upstream, err := faultproxy.NetAddr(pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	r.proxy = faultproxy.Start(t, upstream)
	r.netWorker = r.startNodeOn("worker", "worker-net", r.proxy.DSN(pg.URL))
	for range cfg.workers - 1 {
		r.startWorker()
	}
	t.Logf("cluster, node binary and %d nodes ready in %v", len(r.nodes), time.Since(began).Round(time.Millisecond))

	ctx, cancel := context.WithTimeout(context.Background(), cfg.duration+cfg.drain)
	defer cancel()
	d := &dispatcher{apis: apis, client: &http.Client{Timeout: 10 * time.Second}}
	dispatched := make(chan struct{})
	go func() {
		defer close(dispatched)
		d.run(ctx, cfg, rand.New(rand.NewPCG(cfg.seed, 11)))
	}()
	chaosStart := time.Now()
	r.chaos(ctx)
	<-dispatched
	t.Logf("chaos over after %v: %d kills, %d stops, %d restarts, %d network cuts, %d silences; %d dispatches in %v, %d tries of unknown outcome",
		time.Since(chaosStart).Round(time.Millisecond), r.count(Kill), r.count(Stop), len(r.outages), r.count(Cut), r.count(Silence),
		len(d.results), d.elapsed.Round(time.Millisecond), d.unknown.Load())
	for _, msg := range d.refused {
		t.Errorf("dispatch refused: %s", msg)
	}

	drainStart := time.Now()
	if err := r.drain(ctx); err != nil {
		t.Error(err)
		r.diagnose()
	}
	t.Logf("drained in %v", time.Since(drainStart).Round(time.Millisecond))
	r.stopAll()

	h := r.history(d)
	r.logRecovery(h)
	rep := Check(h, limits)
	t.Logf("%s", rep.Summary())
	t.Logf("tasks: %d, completed: %d, dropped: %d, kills: %d, restarts: %d, stops: %d, network cuts: %d, silences: %d, claims lost: %d, max overlap found: %v",
		rep.Tasks, rep.States["completed"], rep.States["dropped"], rep.Kills, rep.Restarts, rep.Stops, rep.Cuts, rep.Silences,
		rep.ClaimsLost, rep.MaxOverlap)
	t.Logf("retries: %d tasks retried, %d earlier attempts (failed %d, dropped %d, of which lost with a worker %d); %d lost runs had exited",
		rep.RetriedTasks, rep.Retries, rep.FailedRetries, rep.DroppedRetries, rep.LostRetried, rep.LostCompletions)
	if rep.OutageDrops > 0 {
		t.Logf("%d tasks of live workers were dropped after an outage as long as the missing timeout", rep.OutageDrops)
	}
	const shown = 40
	for i, v := range rep.Violations {
		if i == shown {
			t.Errorf("... and %d more violations", len(rep.Violations)-shown)
			break
		}
		t.Error(v)
	}
	if rep.Unacknowledged > 0 {
		t.Errorf("%d logical tasks were never acknowledged by the API", rep.Unacknowledged)
	}
	if t.Failed() {
		r.dumpLogs()
	}
	t.Logf("TestChaos took %v", time.Since(began).Round(time.Millisecond))
}

// buildNode builds chaosnode, without the race detector (it would only
// slow the nodes down: the race detector guards the test's own code).
func buildNode(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "chaosnode")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/stint-dev/stint/internal/chaos/chaosnode")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("building chaosnode: %v\n%s", err, out)
	}
	return bin
}

// node is a running chaosnode process.
type node struct {
	kind, name string
	cmd        *exec.Cmd
	stdout     *syncbuf.Buffer
	stderr     *syncbuf.Buffer
	exited     chan struct{}
	err        error // the exit status, once exited is closed
	url        string
	killed     bool
}

// chaosRun is the state of one chaos run.
type chaosRun struct {
	t    *testing.T
	cfg  config
	bin  string
	pg   *cluster
	pool *pgxpool.Pool
	rng  *rand.Rand

	// proxy is between netWorker and PostgreSQL.
	proxy     *faultproxy.Proxy
	netWorker *node

	mu    sync.Mutex // guards nodes, next and each node's killed
	nodes []*node
	next  int // the number of the next worker

	losses  []Loss // the chaos, as Check takes it
	outages []Outage
	// capacities of the counted resources, by name.
	capacities map[string]int
}

// countedResources is how many of the run's resources get a capacity.
const countedResources = 4

// setCapacities gives countedResources of the n resources of the run a
// capacity of 2 or 3, and returns them.
func setCapacities(t *testing.T, dsn string, rng *rand.Rand, n int) map[string]int {
	t.Helper()
	ctx := context.Background()
	st, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	caps := map[string]int{}
	for _, i := range rng.Perm(n)[:countedResources] {
		name, c := resourceName(i), 2+rng.IntN(2)
		if err := st.SetCapacity(ctx, name, &c); err != nil {
			t.Fatal(err)
		}
		caps[name] = c
	}
	t.Logf("capacities: %v", caps)
	return caps
}

var listeningRE = regexp.MustCompile(`listening (http://[0-9.:]+)`)

// startNode starts chaosnode kind (api or worker) named name; an API
// node's URL is known when it returns.
func (r *chaosRun) startNode(kind, name string) *node {
	r.t.Helper()
	return r.startNodeOn(kind, name, r.pg.URL)
}

// startNodeOn starts a node that connects to PostgreSQL with dsn.
func (r *chaosRun) startNodeOn(kind, name, dsn string) *node {
	t := r.t
	t.Helper()
	n := &node{kind: kind, name: name, stdout: &syncbuf.Buffer{}, stderr: &syncbuf.Buffer{}, exited: make(chan struct{})}
	args := []string{kind, "--db", dsn, "--name", name,
		"--heartbeat", heartbeat.String(), "--missing-after", missingAfter.String()}
	if kind == "worker" {
		args = append(args, "--concurrency", "4", "--workdir", filepath.Join(t.TempDir(), name),
			"--sweep-interval", "5s", "--shutdown-grace", "5s")
	}
	n.cmd = exec.Command(r.bin, args...)
	n.cmd.Stdout, n.cmd.Stderr = n.stdout, n.stderr
	n.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := n.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { n.err = n.cmd.Wait(); close(n.exited) }()
	t.Cleanup(func() {
		n.cmd.Process.Signal(syscall.SIGCONT) //nolint:errcheck // in case the test stopped while it was stopped
		n.cmd.Process.Kill()                  //nolint:errcheck // a no-op once it has exited
		<-n.exited
	})
	// A node is started once it handles signals (a SIGTERM before would
	// end it uncleanly); an API node once it listens, too.
	started := func() bool { return strings.Contains(n.stdout.String(), "chaosnode handles signals") }
	if kind == "api" {
		started = func() bool {
			m := listeningRE.FindStringSubmatch(n.stdout.String())
			if m != nil {
				n.url = m[1]
			}
			return m != nil
		}
	}
	deadline := time.Now().Add(30 * time.Second)
	for !started() {
		select {
		case <-n.exited:
			t.Fatalf("%s node %s exited: %v\n%s", kind, name, n.err, n.stderr.String())
		case <-time.After(10 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s node %s did not start:\n%s", kind, name, n.stderr.String())
		}
	}
	r.mu.Lock()
	r.nodes = append(r.nodes, n)
	r.mu.Unlock()
	return n
}

// startWorker starts a worker with a new name.
func (r *chaosRun) startWorker() *node {
	r.mu.Lock()
	name := fmt.Sprintf("worker-%d", r.next)
	r.next++
	r.mu.Unlock()
	return r.startNode("worker", name)
}

// liveWorkers returns the workers neither killed nor exited, but skip
// and the worker behind the proxy (the network fault's). A worker that
// exited on its own is an error, reported once.
func (r *chaosRun) liveWorkers(skip *node) []*node {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []*node
	for _, n := range r.nodes {
		if n.kind != "worker" || n.killed || n == skip || n == r.netWorker {
			continue
		}
		select {
		case <-n.exited:
			n.killed = true // gone: not to be signaled
			r.t.Errorf("worker %s exited on its own: %v\n%s", n.name, n.err, tail(n.stderr.String(), 20))
		default:
			out = append(out, n)
		}
	}
	return out
}

// tail returns the last n lines of s.
func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	return strings.Join(lines[max(0, len(lines)-n):], "\n")
}

func (r *chaosRun) count(kind string) int {
	n := 0
	for _, l := range r.losses {
		if l.Kind == kind {
			n++
		}
	}
	return n
}

// clock reads the database's clock, retrying for a while if the database
// does not answer.
func (r *chaosRun) clock() time.Time {
	var last error
	for range 100 {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		var now time.Time
		last = r.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&now)
		cancel()
		if last == nil {
			return now
		}
		time.Sleep(100 * time.Millisecond)
	}
	r.t.Fatalf("reading the database's clock: %v", last)
	return time.Time{}
}

// signal sends sig to n between two readings of the database's clock.
func (r *chaosRun) signal(n *node, sig syscall.Signal) (before, after time.Time) {
	before = r.clock()
	if err := n.cmd.Process.Signal(sig); err != nil {
		r.t.Fatalf("%v to %s: %v", sig, n.name, err)
	}
	return before, r.clock()
}

// chaos runs the chaos for cfg.duration: it SIGKILLs a random worker every
// 2 to 4 seconds and starts a replacement; at a quarter of the time it
// SIGSTOPs one for stopFor, then SIGCONTs it; at two thirds it restarts
// PostgreSQL (immediate shutdown, crash recovery); and once, at a random
// moment, it cuts every connection of the worker behind the proxy, or
// silences them for stopFor (the seed chooses).
func (r *chaosRun) chaos(ctx context.Context) {
	start := time.Now()
	type event struct {
		at   time.Duration
		kind string
	}
	var events []event
	for at := 2*time.Second + r.jitter(); at < r.cfg.duration; at += 2*time.Second + r.jitter() {
		events = append(events, event{at, Kill})
	}
	events = append(events, event{r.cfg.duration / 4, Stop}, event{r.cfg.duration * 2 / 3, "restart"})
	netFault := Cut
	if r.rng.IntN(2) == 0 {
		netFault = Silence
	}
	// At a random moment, which may overlap the restart of PostgreSQL (a
	// silence lasts stopFor). Such an overlap once made the worker's exit
	// wait half a minute for pgx to give up its silent connections;
	// Store.Close now bounds that.
	window := r.cfg.duration * 2 / 3
	events = append(events, event{r.cfg.duration/10 + time.Duration(r.rng.Int64N(int64(window))), netFault})
	var netIdx int
	var (
		stopped *node
		stopIdx int
	)
	for len(events) > 0 {
		slices.SortStableFunc(events, func(a, b event) int { return int(a.at - b.at) })
		ev := events[0]
		events = events[1:]
		select {
		case <-ctx.Done():
			r.t.Errorf("the chaos ran out of time")
			return
		case <-time.After(time.Until(start.Add(ev.at))):
		}
		switch ev.kind {
		case Kill:
			live := r.liveWorkers(stopped)
			if len(live) == 0 {
				continue
			}
			victim := live[r.rng.IntN(len(live))]
			before, after := r.signal(victim, syscall.SIGKILL)
			r.mu.Lock()
			victim.killed = true
			r.mu.Unlock()
			r.losses = append(r.losses, Loss{Worker: victim.name, Kind: Kill, Before: before, After: after})
			r.t.Logf("%s: killed %s", ts(before), victim.name)
			r.t.Logf("%s: started %s", ts(r.clock()), r.startWorker().name)
		case Stop:
			live := r.liveWorkers(nil)
			stopped = live[r.rng.IntN(len(live))]
			before, after := r.signal(stopped, syscall.SIGSTOP)
			r.losses = append(r.losses, Loss{Worker: stopped.name, Kind: Stop, Before: before, After: after})
			stopIdx = len(r.losses) - 1
			r.t.Logf("%s: stopped %s", ts(before), stopped.name)
			events = append(events, event{ev.at + stopFor, "resume"})
		case "resume":
			resumed, _ := r.signal(stopped, syscall.SIGCONT)
			r.losses[stopIdx].Resumed = resumed
			r.t.Logf("%s: resumed %s", ts(resumed), stopped.name)
			stopped = nil
		case Cut:
			before := r.clock()
			r.proxy.CutAll()
			after := r.clock()
			r.losses = append(r.losses, Loss{Worker: r.netWorker.name, Kind: Cut, Before: before, After: after})
			r.t.Logf("%s: cut every connection of %s", ts(before), r.netWorker.name)
		case Silence:
			before := r.clock()
			r.proxy.Silence()
			after := r.clock()
			r.losses = append(r.losses, Loss{Worker: r.netWorker.name, Kind: Silence, Before: before, After: after})
			netIdx = len(r.losses) - 1
			r.t.Logf("%s: silenced every connection of %s", ts(before), r.netWorker.name)
			events = append(events, event{ev.at + stopFor, "restore"})
		case "restore":
			resumed := r.clock()
			dead := r.proxy.Restore()
			r.losses[netIdx].Resumed = resumed
			r.t.Logf("%s: network of %s back; %d of its connections died in the silence", ts(resumed), r.netWorker.name, dead)
		case "restart":
			from := r.clock()
			if err := r.pg.restart(); err != nil {
				r.t.Fatalf("restarting PostgreSQL: %v", err)
			}
			to := r.clock()
			r.outages = append(r.outages, Outage{From: from, To: to})
			r.t.Logf("%s: PostgreSQL restarted: down until %s, for %v", ts(from), ts(to), to.Sub(from).Round(time.Millisecond))
		}
	}
}

// jitter is a random 0 to 2 s.
func (r *chaosRun) jitter() time.Duration {
	return time.Duration(r.rng.Int64N(int64(2 * time.Second)))
}

// stallAfter: when no task has ended for this long after the chaos, with
// every worker alive and PostgreSQL up, the run is stuck (a lost worker's
// tasks end within the missing timeout and the slack).
const stallAfter = 20 * time.Second

// drain waits until no task is waiting, running or canceling, and gives up
// when ctx ends or nothing ends for stallAfter.
func (r *chaosRun) drain(ctx context.Context) error {
	var (
		left, progress = -1, time.Now()
		err            error
	)
	for {
		var n int
		err = r.pool.QueryRow(ctx, `SELECT count(*) FROM stint_tasks WHERE state IN ('scheduled', 'waiting', 'running', 'canceling')`).Scan(&n)
		switch {
		case err == nil && n == 0:
			return nil
		case err == nil && n != left:
			left, progress = n, time.Now()
		case time.Since(progress) > stallAfter:
			return fmt.Errorf("stalled: %d tasks incomplete, and none ended for %v (last error: %v)", left, stallAfter, err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d tasks still incomplete when the time ran out (last error: %v)", left, err)
		case <-time.After(200 * time.Millisecond):
		}
	}
}

// diagnose logs what may explain a stall: the workers, the incomplete
// tasks, the heads of the resource queues, and the database sessions that
// are busy or waiting.
func (r *chaosRun) diagnose() {
	queries := []struct{ title, sql string }{
		{"workers", `SELECT name, pid, round(extract(epoch FROM now() - last_heartbeat)::numeric, 1) AS silent_s,
			to_jsonb(w) - 'name' - 'pid' - 'hostname' - 'versions' AS rest FROM stint_workers w ORDER BY name`},
		{"incomplete tasks by state and worker", `SELECT state, coalesce(worker, '-'), unblocked_at IS NOT NULL AS unblocked, count(*)
			FROM stint_tasks WHERE state IN ('scheduled', 'waiting', 'running', 'canceling') GROUP BY 1, 2, 3 ORDER BY 1, 2, 3`},
		{"oldest incomplete tasks", `SELECT seq, id, state, coalesce(worker, '-'), attempt, started_at, unblocked_at, scheduled_at,
			jsonb_array_length(attempts), exclusive_resources, shared_resources
			FROM stint_tasks WHERE state IN ('scheduled', 'waiting', 'running', 'canceling') ORDER BY seq LIMIT 12`},
		{"busy queues", `SELECT r.name, r.frontier, r.holders, r.exclusive_held, r.waiting,
			(SELECT q.seq FROM stint_task_resources q WHERE q.resource = r.name AND q.seq > r.frontier ORDER BY q.seq LIMIT 1) AS head
			FROM stint_resources r WHERE r.holders > 0 OR r.waiting > 0 ORDER BY r.name`},
		{"busy sessions", `SELECT pid, state, wait_event_type, wait_event, round(extract(epoch FROM now() - xact_start)::numeric, 1) AS xact_s,
			pg_blocking_pids(pid) AS blocked_by, left(regexp_replace(query, '\s+', ' ', 'g'), 160)
			FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state <> 'idle' ORDER BY xact_start`},
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, q := range queries {
		rows, err := r.pool.Query(ctx, q.sql)
		if err != nil {
			r.t.Logf("%s: %v", q.title, err)
			continue
		}
		var lines []string
		for rows.Next() {
			vals, err := rows.Values()
			if err != nil {
				lines = append(lines, err.Error())
				break
			}
			lines = append(lines, fmt.Sprint(vals...))
		}
		rows.Close()
		r.t.Logf("%s:\n%s", q.title, strings.Join(lines, "\n"))
	}
}

// stopAll stops the nodes still running with SIGTERM; each must exit
// cleanly within 20 s.
func (r *chaosRun) stopAll() {
	r.mu.Lock()
	nodes := slices.Clone(r.nodes)
	r.mu.Unlock()
	for _, n := range nodes {
		if !n.killed {
			n.cmd.Process.Signal(syscall.SIGTERM) //nolint:errcheck // checked below
		}
	}
	for _, n := range nodes {
		if n.killed {
			<-n.exited
			continue
		}
		select {
		case <-n.exited:
			if n.err != nil {
				r.t.Errorf("%s %s exited with %v", n.kind, n.name, n.err)
			}
		case <-time.After(20 * time.Second):
			// SIGQUIT makes the Go runtime print every goroutine's
			// stack: where the node is stuck.
			n.cmd.Process.Signal(syscall.SIGQUIT) //nolint:errcheck // it may exit meanwhile
			select {
			case <-n.exited:
			case <-time.After(5 * time.Second):
			}
			r.t.Errorf("%s %s did not exit within 20s of SIGTERM; its goroutines at SIGQUIT:\n%s", n.kind, n.name,
				goroutinesOf(n.stderr.String()))
		}
	}
}

// logRecovery logs how long the worker behind the proxy took, after the
// network fault ended, to start a task that then completed.
func (r *chaosRun) logRecovery(h History) {
	for _, l := range h.Losses {
		if l.Kind != Cut && l.Kind != Silence {
			continue
		}
		end := l.After
		if l.Kind == Silence {
			end = l.Resumed
		}
		var (
			first         time.Time
			before, after int
		)
		for _, t := range h.Tasks {
			if t.Worker != l.Worker || t.State != "completed" {
				continue
			}
			if !t.StartedAt.After(end) {
				before++
				continue
			}
			after++
			if first.IsZero() || t.StartedAt.Before(first) {
				first = t.StartedAt
			}
		}
		if first.IsZero() {
			r.t.Logf("network %s of %s: it completed %d tasks before the fault ended, none claimed after", l.Kind, l.Worker, before)
			continue
		}
		r.t.Logf("network %s of %s: %v after the fault ended, it started a task that completed (%d completed before, %d after)",
			l.Kind, l.Worker, first.Sub(end).Round(time.Millisecond), before, after)
	}
}

// goroutinesOf returns the goroutine dump at the end of a node's stderr
// (after SIGQUIT), without the goroutines of the runtime's and the
// standard library's own machinery that wait as usual.
func goroutinesOf(stderr string) string {
	i := strings.Index(stderr, "\ngoroutine ")
	if i < 0 {
		return tail(stderr, 40)
	}
	var keep []string
	for g := range strings.SplitSeq(stderr[i+1:], "\n\n") {
		if strings.Contains(g, "github.com/stint-dev/stint") || strings.Contains(g, "pgx") {
			keep = append(keep, g)
		}
	}
	return strings.Join(keep, "\n\n")
}

// dumpLogs prints the nodes' warnings and errors.
func (r *chaosRun) dumpLogs() {
	for _, n := range r.nodes {
		var lines []string
		for line := range strings.SplitSeq(n.stderr.String(), "\n") {
			if strings.Contains(line, "level=WARN") || strings.Contains(line, "level=ERROR") || strings.Contains(line, "panic") {
				lines = append(lines, line)
			}
		}
		if len(lines) > 30 {
			lines = append(lines[:30], fmt.Sprintf("... %d more", len(lines)-30))
		}
		if len(lines) > 0 {
			r.t.Logf("%s %s:\n%s", n.kind, n.name, strings.Join(lines, "\n"))
		}
	}
}

// history reads what the database recorded, with what the dispatcher and
// the chaos recorded.
func (r *chaosRun) history(d *dispatcher) History {
	t := r.t
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// Events and Dispatches not nil: an empty log is checked, not skipped.
	h := History{Losses: r.losses, Outages: r.outages, Events: []Event{}, Dispatches: []Dispatch{}}
	rows, err := r.pool.Query(ctx, `SELECT id, seq, coalesce(args->>'key', ''), state, attempt, coalesce(worker, ''),
		exclusive_resources, shared_resources, started_at, finished_at, coalesce(error->>'description', ''),
		coalesce(error->>'kind', ''), coalesce((error->>'no_retry')::boolean, false), retry, attempts
		FROM stint_tasks ORDER BY seq`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var (
			task              Task
			started, finished *time.Time
			retry, attempts   []byte
		)
		if err := rows.Scan(&task.ID, &task.Seq, &task.Key, &task.State, &task.Attempt, &task.Worker,
			&task.Exclusive, &task.Shared, &started, &finished, &task.Reason, &task.ErrorKind, &task.NoRetry,
			&retry, &attempts); err != nil {
			t.Fatal(err)
		}
		if err := readRetries(&task, retry, attempts); err != nil {
			t.Fatalf("task %s: %v", task.ID, err)
		}
		if started != nil {
			task.StartedAt = *started
		}
		if finished != nil {
			task.FinishedAt = *finished
		}
		h.Tasks = append(h.Tasks, task)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	rows, err = r.pool.Query(ctx, `SELECT task, attempt, run, event, at FROM chaos_log`)
	if err != nil {
		t.Fatal(err)
	}
	for rows.Next() {
		var e Event
		if err := rows.Scan(&e.Task, &e.Attempt, &e.Run, &e.Event, &e.At); err != nil {
			t.Fatal(err)
		}
		h.Events = append(h.Events, e)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	h.Capacities = r.capacities
	if err := r.pool.QueryRow(ctx, `SELECT count(*) FROM stint_task_resources`).Scan(&h.QueueEntries); err != nil {
		t.Fatal(err)
	}
	// The safety net: one last sweep, and what the nodes' sweeps found.
	st, err := postgres.Open(ctx, r.pg.URL)
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	swept, err := st.Sweep(ctx)
	if err != nil {
		t.Fatal(err)
	}
	h.Repairs = swept.Total()
	for _, n := range r.nodes {
		if c := strings.Count(n.stderr.String(), "sweep found stuck tasks"); c > 0 {
			t.Logf("%s's sweep repaired the scheduler %d times", n.name, c)
			h.Repairs += c
		}
	}
	h.Dispatches = append(h.Dispatches, d.results...)
	return h
}

// readRetries fills in t's retry policy and earlier attempts from the
// columns retry and attempts of stint_tasks (JSON, as the engine stores
// them: store.RetryPolicy and store.Attempt).
func readRetries(t *Task, retry, attempts []byte) error {
	if len(retry) > 0 {
		t.Retry = new(store.RetryPolicy)
		if err := json.Unmarshal(retry, t.Retry); err != nil {
			return fmt.Errorf("retry %s: %w", retry, err)
		}
	}
	var list []store.Attempt
	if err := json.Unmarshal(attempts, &list); err != nil {
		return fmt.Errorf("attempts %s: %w", attempts, err)
	}
	for _, a := range list {
		at := Attempt{Number: a.Number, State: string(a.State), Worker: a.Worker, StartedAt: a.StartedAt, FinishedAt: a.FinishedAt}
		if a.Error != nil {
			at.Reason, at.ErrorKind = a.Error.Description, a.Error.Kind
		}
		t.Attempts = append(t.Attempts, at)
	}
	return nil
}

// dispatcher sends the tasks through the API nodes.
type dispatcher struct {
	apis   []*node
	client *http.Client

	mu      sync.Mutex
	results []Dispatch
	refused []string
	unknown atomic.Int64
	elapsed time.Duration
}

// run dispatches cfg.tasks tasks, evenly over most of the chaos, from 8
// goroutines, each task through one API node, retried (through the other)
// until one try is acknowledged.
func (d *dispatcher) run(ctx context.Context, cfg config, rng *rand.Rand) {
	start := time.Now()
	type job struct {
		key  string
		body []byte
	}
	jobs := make(chan job)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range jobs {
				d.dispatch(ctx, g, j.key, j.body)
			}
		}()
	}
	interval := cfg.duration * 4 / 5 / time.Duration(cfg.tasks)
	for i := range cfg.tasks {
		key := fmt.Sprintf("k%06d", i)
		req := drawTask(rng, key)
		req.ExclusiveResources, req.SharedResources = drawResources(rng, cfg.resources)
		body, err := json.Marshal(req)
		if err != nil {
			panic(err) // a struct of strings always encodes
		}
		select {
		case <-ctx.Done():
		case jobs <- job{key, body}:
		}
		if wait := time.Until(start.Add(time.Duration(i+1) * interval)); wait > 0 {
			time.Sleep(wait)
		}
	}
	close(jobs)
	wg.Wait()
	d.elapsed = time.Since(start)
}

// The shares of the tasks with retries, in percent: chaos.step.retried
// (its type's policy, RetryDropped), failing 0, 1 or 2 times and sleeping
// up to retriedSleepMS, so that the chaos finds more of them running; and
// chaos.step with a retry policy of its dispatch (2 attempts), failing
// once. The others are plain chaos.step, which never fail.
const (
	retriedShare   = 16
	overrideShare  = 8
	retriedSleepMS = 80
)

// drawTask draws the kind of a task and its args: its sleep, and how many
// of its attempts fail.
func drawTask(rng *rand.Rand, key string) apiv1.DispatchTask {
	req := apiv1.DispatchTask{Name: "chaos.step"}
	sleep, fail := rng.IntN(31), 0
	switch x := rng.IntN(100); {
	case x < retriedShare:
		req.Name, fail, sleep = "chaos.step.retried", rng.IntN(3), rng.IntN(retriedSleepMS+1)
	case x < retriedShare+overrideShare:
		req.Retry, fail = &apiv1.Retry{MaxAttempts: 2, InitialDelay: "10ms"}, 1
	}
	args := fmt.Sprintf(`{"sleep_ms": %d, "key": %q}`, sleep, key)
	if fail > 0 {
		args = fmt.Sprintf(`{"sleep_ms": %d, "key": %q, "fail_attempts": %d}`, sleep, key, fail)
	}
	req.Args = json.RawMessage(args)
	return req
}

// drawResources picks 1 to 3 of n resources, each exclusive or shared at
// random.
func drawResources(rng *rand.Rand, n int) (exclusive, shared []string) {
	perm := rng.Perm(n)
	for _, i := range perm[:1+rng.IntN(3)] {
		name := resourceName(i)
		if rng.IntN(2) == 0 {
			exclusive = append(exclusive, name)
		} else {
			shared = append(shared, name)
		}
	}
	return exclusive, shared
}

// resourceName is the name of the run's resource i.
func resourceName(i int) string { return fmt.Sprintf("res-%02d", i) }

// dispatch POSTs one logical task until an API node acknowledges it,
// counting the tries of unknown outcome; a 4xx is recorded as refused.
func (d *dispatcher) dispatch(ctx context.Context, g int, key string, body []byte) {
	res := Dispatch{Key: key}
	defer func() {
		d.mu.Lock()
		d.results = append(d.results, res)
		d.mu.Unlock()
	}()
	for try := 0; ctx.Err() == nil; try++ {
		api := d.apis[(g+try)%len(d.apis)]
		status, answer, err := d.post(ctx, api.url+apiv1.Prefix+"/tasks", body)
		switch {
		case err == nil && status == http.StatusAccepted:
			var ref apiv1.TaskRef
			if err := json.Unmarshal(answer, &ref); err != nil {
				d.refuse(fmt.Sprintf("%s: bad answer %q: %v", key, answer, err))
				return
			}
			id, err := apiv1.ParseTaskRef(ref.Task)
			if err != nil {
				d.refuse(fmt.Sprintf("%s: bad href %q: %v", key, ref.Task, err))
				return
			}
			res.ID = id
			return
		case err == nil && status < 500:
			d.refuse(fmt.Sprintf("%s through %s: %d %s", key, api.name, status, answer))
			return
		}
		// The connection broke or the API could not reach the database:
		// the task may exist all the same.
		res.Unknown++
		d.unknown.Add(1)
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(50+25*min(try, 8)) * time.Millisecond):
		}
	}
}

func (d *dispatcher) refuse(msg string) {
	d.mu.Lock()
	d.refused = append(d.refused, msg)
	d.mu.Unlock()
}

func (d *dispatcher) post(ctx context.Context, url string, body []byte) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := d.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(resp.Body)
	return resp.StatusCode, answer, err
}
