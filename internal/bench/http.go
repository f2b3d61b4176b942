package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"strings"
	"time"

	vegeta "github.com/tsenart/vegeta/v12/lib"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/auth"
	"github.com/stint-dev/stint/internal/metrics"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/store/postgres"
)

// httpClients is the number of concurrent HTTP clients of each path.
const httpClients = 50

// httpIDs is how many existing tasks GET /tasks/{id} rotates among.
const httpIDs = 10_000

// httpUser is the admin user whose token every request carries, and the
// owner of the fixture's tasks.
const httpUser = "bench"

// httpDrainWait bounds the wait, after a POST path, for the worker to run
// what it dispatched, so that the next path starts on an idle node.
const httpDrainWait = 2 * time.Minute

// httpPath is one path of the http scenario: what it requests, and how its
// line names it.
type httpPath struct {
	label    string // "POST /tasks", ...
	targeter vegeta.Targeter
	dispatch bool // the path dispatches a task per request
	tasks    bool // the line says how many tasks the table held
}

// httpResult is the figure of one path.
type httpResult struct {
	path     httpPath
	rate     float64 // requests per second, all answers counted
	p50, p99 time.Duration
	ok       int64  // 2xx answers
	errors   int    // answers not 2xx, and requests that got no answer
	firstErr string // the first of them: status and body, or the error
}

// httpNode is an API node and a worker in this process, on a scratch
// database, served on a loopback listener.
type httpNode struct {
	st     *postgres.Store
	worker *stint.Worker
	base   string      // http://127.0.0.1:PORT
	header http.Header // Authorization of the admin user
}

// runHTTP starts an API node and a worker running no-op tasks on a scratch
// database filled with cfg.HTTPTasks tasks, and drives each path in turn
// with vegeta: httpClients clients at an unbounded rate for cfg.Duration.
// Dispatched tasks are run by the worker, as in a deployment; after each
// POST path the run waits (up to httpDrainWait) until they are.
func runHTTP(ctx context.Context, cfg Config) ([]httpResult, error) {
	st, done, err := scratch(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer done()
	start := time.Now()
	if err := fillTasks(ctx, st, cfg.HTTPTasks); err != nil {
		return nil, fmt.Errorf("filling %d tasks: %w", cfg.HTTPTasks, err)
	}
	cfg.Logger.Info("http: table filled", "tasks", cfg.HTTPTasks, "took", time.Since(start).Round(time.Millisecond))
	ids, err := sampleIDs(ctx, st, httpIDs)
	if err != nil {
		return nil, err
	}
	node, stop, err := startHTTPNode(ctx, cfg, st)
	if err != nil {
		return nil, err
	}
	defer stop()

	var out []httpResult
	var dispatched int64
	for _, p := range node.paths(ids) {
		r, err := attack(ctx, p, cfg.Duration)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", p.label, err)
		}
		out = append(out, r)
		if p.dispatch {
			dispatched += r.ok // one task per 2xx answer
			if err := node.drain(ctx, cfg, dispatched); err != nil {
				return nil, err
			}
		}
	}
	return out, nil
}

// fillTasks inserts n tasks of the no-op type owned by httpUser, as a
// fixture: a direct bulk INSERT ... SELECT generate_series rather than n
// dispatches, which would take many minutes for the 1,000,000 of the
// scenario. The rows are what a worker leaves behind over 30 days, oldest
// first: UUIDv7 ids of their creation times, sequence numbers from the
// tasks' sequence, 90% completed ({} result), 7% failed (an error of kind
// "error"), 3% canceled before they started. None holds a resource and none
// is waiting, so no queue rows are needed. It settles the table after.
func fillTasks(ctx context.Context, st *postgres.Store, n int) error {
	const chunk = 100_000
	for from := 1; from <= n; from += chunk {
		to := min(from+chunk-1, n)
		if _, err := st.Pool().Exec(ctx, fillSQL, from, to, n, httpUser); err != nil {
			return err
		}
	}
	// A deployment's checkpoints come from its own writes, as River's do in
	// its measurement; the fixture's (some 500 MB of write-ahead log) is
	// taken before the paths are measured.
	return settle(ctx, st, "http", "stint_tasks")
}

// fillSQL inserts tasks $1 to $2 of $3 owned by $4 (see fillTasks). Task i
// is created at a time proportional to i over the last 30 days; its id is
// a UUIDv7 of that time: 48 bits of milliseconds over gen_random_uuid's
// bytes, version nibble 7 (its variant bits are already RFC 4122's).
const fillSQL = `
WITH t AS (
    SELECT i,
        now() - interval '30 days' + (interval '30 days') * (i::float8 / $3) AS created,
        CASE WHEN i % 100 < 90 THEN 'completed' WHEN i % 100 < 97 THEN 'failed' ELSE 'canceled' END AS state
    FROM generate_series($1::bigint, $2::bigint) AS i
), u AS (
    SELECT t.*,
        set_byte(overlay(uuid_send(gen_random_uuid())
            PLACING substring(int8send((extract(epoch FROM created) * 1000)::bigint) FROM 3) FROM 1 FOR 6),
            6, (random() * 15)::int | 112) AS idbytes,
        created + interval '2 ms' AS started,
        created + interval '2 ms' + (interval '1 ms') * (i % 20) AS finished
    FROM t
)
INSERT INTO stint_tasks (id, seq, name, state, args, owner, created_at, updated_at, unblocked_at,
    started_at, finished_at, worker, attempt, result, error)
SELECT encode(idbytes, 'hex')::uuid, nextval('stint_task_seq'), 'stint.noop', state, '{}', $4,
    created,
    CASE WHEN state = 'canceled' THEN created + interval '1 ms' ELSE finished END,
    created,
    CASE WHEN state = 'canceled' THEN NULL ELSE started END,
    CASE WHEN state = 'canceled' THEN created + interval '1 ms' ELSE finished END,
    CASE WHEN state = 'canceled' THEN NULL ELSE 'bench-fixture' END,
    CASE WHEN state = 'canceled' THEN 0 ELSE 1 END,
    CASE WHEN state = 'completed' THEN '{}'::jsonb END,
    CASE WHEN state = 'failed' THEN '{"kind": "error", "description": "bench: a failed fixture task"}'::jsonb END
FROM u ORDER BY i`

// sampleIDs returns up to n ids of existing tasks, in random order.
func sampleIDs(ctx context.Context, st *postgres.Store, n int) ([]string, error) {
	rows, err := st.Pool().Query(ctx, "SELECT id::text FROM stint_tasks ORDER BY random() LIMIT $1", n)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, err
	}
	if len(ids) == 0 {
		return nil, errors.New("no tasks to read: --http-tasks must be at least 1")
	}
	return ids, nil
}

// adminToken creates httpUser as an admin and returns a token of it, as
// `stint user add bench --role admin` would.
func adminToken(ctx context.Context, st store.Users) (string, error) {
	if err := st.CreateUser(ctx, httpUser, store.RoleAdmin); err != nil {
		return "", err
	}
	t, err := auth.New()
	if err != nil {
		return "", err
	}
	if err := st.AddToken(ctx, store.NewToken{ID: t.ID, User: httpUser, Hash: t.Hash}); err != nil {
		return "", err
	}
	return t.Secret, nil
}

// startHTTPNode starts what `stint serve` runs, in this process: the API
// server over st on a 127.0.0.1 listener with the default HTTP limits, and
// a worker with cfg.Concurrency slots, sharing one set of metrics. The
// worker's sweep is off, as in the other scenarios: the safety net is not
// what is measured. stop shuts both down.
func startHTTPNode(ctx context.Context, cfg Config, st *postgres.Store) (*httpNode, func(), error) {
	token, err := adminToken(ctx, st)
	if err != nil {
		return nil, nil, err
	}
	reg := stint.NewRegistry()
	m := metrics.New(st, stint.DefaultMissingAfter)
	srv, err := api.New(api.Config{Store: st, Registry: reg, Engine: "postgresql", Version: "bench", Metrics: m, Logger: cfg.Logger})
	if err != nil {
		return nil, nil, err
	}
	w, err := stint.NewWorker(st, reg, stint.WorkerConfig{Name: "bench", Concurrency: cfg.Concurrency, SweepInterval: -1, Logger: cfg.Logger, OnFinished: m.Finished})
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		srv.Close()
		return nil, nil, err
	}
	hs := api.NewHTTPServer(srv.Handler(), api.HTTPLimits{}, cfg.Logger)
	serveErr := make(chan error, 1)
	go func() { serveErr <- api.Serve(hs, ln, api.HTTPLimits{}) }()
	wctx, stopWorker := context.WithCancel(ctx)
	werr := make(chan error, 1)
	go func() { werr <- w.Run(wctx) }()
	time.Sleep(200 * time.Millisecond) // let the worker register and listen
	stop := func() {
		srv.Close()
		if err := hs.Shutdown(context.Background()); err != nil {
			cfg.Logger.Warn("http: shutting the API server down failed", "error", err)
		}
		if err := <-serveErr; !errors.Is(err, http.ErrServerClosed) {
			cfg.Logger.Warn("http: serving failed", "error", err)
		}
		stopWorker()
		if err := <-werr; err != nil {
			cfg.Logger.Warn("http: worker failed", "error", err)
		}
	}
	header := http.Header{"Authorization": {"Bearer " + token}}
	return &httpNode{st: st, worker: w, base: "http://" + ln.Addr().String(), header: header}, stop, nil
}

// paths returns the paths of the scenario in the order they run: GET
// /tasks/{id} rotates among ids.
func (n *httpNode) paths(ids []string) []httpPath {
	tasks := n.base + apiv1.Prefix + "/tasks"
	post := func(body string) vegeta.Targeter {
		h := n.header.Clone()
		h.Set("Content-Type", "application/json")
		return vegeta.NewStaticTargeter(vegeta.Target{Method: http.MethodPost, URL: tasks, Body: []byte(body), Header: h})
	}
	get := func(urls ...string) vegeta.Targeter {
		ts := make([]vegeta.Target, len(urls))
		for i, u := range urls {
			ts[i] = vegeta.Target{Method: http.MethodGet, URL: u, Header: n.header}
		}
		return vegeta.NewStaticTargeter(ts...)
	}
	byID := make([]string, len(ids))
	for i, id := range ids {
		byID[i] = tasks + "/" + id
	}
	return []httpPath{
		{label: "POST /tasks", dispatch: true,
			targeter: post(`{"name": "stint.noop", "args": {}}`)},
		{label: "POST /tasks contended", dispatch: true,
			targeter: post(`{"name": "stint.noop", "args": {}, "exclusive_resources": ["bench:http:exclusive"], "shared_resources": ["bench:http:shared"]}`)},
		{label: "GET /tasks/{id}", targeter: get(byID...)},
		{label: "GET /tasks?limit=20", tasks: true, targeter: get(tasks + "?limit=20")},
		{label: "GET /status", tasks: true, targeter: get(n.base + apiv1.Prefix + "/status")},
	}
}

// attack drives p with httpClients vegeta workers, each with a connection
// of its own, at an unbounded rate for d (or until ctx ends), and sums up
// the answers: 2xx is success, anything else (3xx included) or no answer an
// error.
func attack(ctx context.Context, p httpPath, d time.Duration) (httpResult, error) {
	a := vegeta.NewAttacker(
		vegeta.Workers(httpClients), vegeta.MaxWorkers(httpClients),
		vegeta.Connections(httpClients), vegeta.MaxConnections(httpClients),
		vegeta.Redirects(vegeta.NoFollow), vegeta.MaxBody(4096),
	)
	defer context.AfterFunc(ctx, func() { a.Stop() })()
	var m vegeta.Metrics
	r := httpResult{path: p}
	start := time.Now()
	for res := range a.Attack(p.targeter, vegeta.Rate{Freq: 0}, d, p.label) {
		m.Add(res)
		if res.Code < 200 || res.Code > 299 || res.Error != "" {
			if r.errors == 0 {
				r.firstErr = describe(res)
			}
			r.errors++
			continue
		}
		r.ok++
	}
	elapsed := time.Since(start)
	if err := ctx.Err(); err != nil {
		return r, err
	}
	m.Close()
	if m.Requests == 0 {
		return r, errors.New("no request was made")
	}
	r.rate = float64(m.Requests) / elapsed.Seconds()
	r.p50, r.p99 = m.Latencies.P50, m.Latencies.P99
	return r, nil
}

// describe is what went wrong with a request: its status and the start
// of the body, or the error of a request that got no answer.
func describe(res *vegeta.Result) string {
	if res.Code == 0 {
		return res.Error
	}
	body := strings.TrimSpace(string(res.Body))
	if len(body) > 300 {
		body = body[:300] + "..."
	}
	return fmt.Sprintf("%d: %s", res.Code, body)
}

// drain waits until the worker has run dispatched tasks, or httpDrainWait
// passed (then it logs how many are left and goes on).
func (n *httpNode) drain(ctx context.Context, cfg Config, dispatched int64) error {
	start := time.Now()
	for n.worker.Stats().Finished < dispatched {
		if time.Since(start) > httpDrainWait {
			cfg.Logger.Warn("http: the worker did not run every dispatched task in time; going on",
				"dispatched", dispatched, "finished", n.worker.Stats().Finished, "waited", httpDrainWait)
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(10 * time.Millisecond):
		}
	}
	cfg.Logger.Info("http: dispatched tasks ran", "tasks", dispatched, "drain", time.Since(start).Round(time.Millisecond))
	return nil
}

// httpLines formats the figures of the http scenario, one line per path,
// each followed by its first error if it had any.
func httpLines(rs []httpResult, cfg Config) string {
	var b strings.Builder
	for i, r := range rs {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "http %s: %.0f req/s, p50 %.1f ms, p99 %.1f ms, errors %d (%d clients, %s",
			r.path.label, r.rate, ms(r.p50), ms(r.p99), r.errors, httpClients, cfg.Duration)
		if r.path.tasks {
			fmt.Fprintf(&b, ", %d tasks", cfg.HTTPTasks)
		}
		b.WriteByte(')')
		if r.errors > 0 {
			fmt.Fprintf(&b, "\n  first error of %s: %s", r.path.label, r.firstErr)
		}
	}
	return b.String()
}
