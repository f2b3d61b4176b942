package node

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/internal/metrics"
	"github.com/stint-dev/stint/store"
)

// DefaultShutdownWait is how long Run gives the HTTP servers to finish the
// requests in flight when ctx ends, unless Config.ShutdownWait says
// otherwise.
const DefaultShutdownWait = 30 * time.Second

// RetentionInterval is how often a node with Config.Retain purges.
const RetentionInterval = time.Hour

// Config describes one Stint process: what it serves and runs, and the one
// name it has among the nodes. Store is required, and at least one of API
// and Worker.
type Config struct {
	// Store is the database the node works on; Run does not close it.
	Store store.Store
	// Registry holds the task types the node accepts (API) and runs
	// (worker); default stint.NewRegistry(), the built-in ones.
	Registry *stint.Registry
	// Name is the node's name in the worker list: its worker's name, and
	// the name its API's immediate tasks run under. Default
	// stint.DefaultWorkerName(), "{pid}@{hostname}".
	Name string
	// MissingAfter: a node silent this long is lost and its tasks are
	// dropped; more than the heartbeat interval (2 s). Default
	// stint.DefaultMissingAfter. Use the same on every node.
	MissingAfter time.Duration
	// Logger; default slog.Default().
	Logger *slog.Logger

	// API, when set, serves the HTTP API (and the web UI, /metrics,
	// /healthz and /readyz) on API.Listener.
	API *API
	// Worker, when set, runs a worker in the node: its Name, MissingAfter,
	// Logger and OnFinished are the node's, whatever they say here. A node
	// without a worker keeps itself in the worker list with no slots
	// (stint.Client.RunNode), so that an immediate task lost with it ends
	// dropped as a worker's would, and looks for lost workers as workers
	// do.
	Worker *stint.WorkerConfig
	// MetricsListener, when set, serves /metrics and /healthz: for a node
	// without an API, whose API serves its own.
	MetricsListener net.Listener
	// Retain, when positive, purges the final tasks that finished more
	// than Retain ago: at start and then every RetentionInterval, a
	// stint.purge task (run by any worker), skipped while an earlier one
	// still waits.
	Retain time.Duration
	// ShutdownWait bounds how long the HTTP servers get to finish the
	// requests in flight when ctx ends; default DefaultShutdownWait.
	ShutdownWait time.Duration
}

// API is what the node's HTTP API serves, and where.
type API struct {
	// Listener is where the API is served; Run closes it.
	Listener net.Listener
	// Server configures the API. Its Store, Registry, Logger, Metrics,
	// MissingAfter and ImmediateWorker are the node's, whatever they say
	// here.
	Server api.Config
	// HTTP bounds the HTTP server's timeouts and headers.
	HTTP api.HTTPLimits
}

// Run runs the node until ctx ends, then stops it: the HTTP servers stop
// taking requests and finish those in flight (within ShutdownWait), the
// worker shuts down as its ShutdownGrace says, and the node leaves the
// worker list. It returns an error for a bad cfg, or when a part of the
// node stops on its own (an HTTP server that cannot serve, a worker that
// fails).
func Run(ctx context.Context, cfg Config) error {
	if cfg.Store == nil {
		return errors.New("node: Config.Store is required")
	}
	if cfg.API == nil && cfg.Worker == nil {
		return errors.New("node: a node serves the API, runs a worker, or both: set Config.API or Config.Worker")
	}
	if cfg.API != nil && cfg.API.Listener == nil {
		return errors.New("node: Config.API.Listener is required")
	}
	if cfg.Registry == nil {
		cfg.Registry = stint.NewRegistry()
	}
	if cfg.Name == "" {
		cfg.Name = stint.DefaultWorkerName()
	}
	if cfg.MissingAfter == 0 {
		cfg.MissingAfter = stint.DefaultMissingAfter
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.ShutdownWait <= 0 {
		cfg.ShutdownWait = DefaultShutdownWait
	}
	if cfg.Retain < 0 {
		return fmt.Errorf("node: Retain %v: must be positive, or 0 to keep every task", cfg.Retain)
	}
	log := cfg.Logger
	m := metrics.New(cfg.Store, cfg.MissingAfter)
	client := stint.NewClient(cfg.Store, cfg.Registry)

	// The parts that end with the node: they get a context that ends only
	// after the HTTP servers stopped, so that no request in flight finds
	// the worker gone.
	partsCtx, stopParts := context.WithCancel(context.WithoutCancel(ctx))
	defer stopParts()
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	var servers []*http.Server

	var w *stint.Worker
	if cfg.Worker != nil {
		wc := *cfg.Worker
		wc.Name, wc.MissingAfter, wc.Logger, wc.OnFinished = cfg.Name, cfg.MissingAfter, log, m.Finished
		var err error
		if w, err = stint.NewWorker(cfg.Store, cfg.Registry, wc); err != nil {
			return err
		}
	}
	var srv *api.Server
	if cfg.API != nil {
		sc := cfg.API.Server
		sc.Store, sc.Registry, sc.Logger, sc.Metrics = cfg.Store, cfg.Registry, log, m
		sc.MissingAfter, sc.ImmediateWorker = cfg.MissingAfter, cfg.Name
		var err error
		if srv, err = api.New(sc); err != nil {
			return err
		}
		defer srv.Close()
		hs := api.NewHTTPServer(srv.Handler(), cfg.API.HTTP, log)
		servers = append(servers, hs)
		ln, limits := cfg.API.Listener, cfg.API.HTTP
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := api.Serve(hs, ln, limits); !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("API: %w", err)
			}
		}()
		log.Info("serving", "addr", "http://"+ln.Addr().String(), "api", "http://"+ln.Addr().String()+"/api/v1/")
	}
	if cfg.MetricsListener != nil {
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", m.Handler())
		mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
		hs := api.NewHTTPServer(mux, api.HTTPLimits{}, log)
		servers = append(servers, hs)
		ln := cfg.MetricsListener
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := api.Serve(hs, ln, api.HTTPLimits{}); !errors.Is(err, http.ErrServerClosed) {
				errs <- fmt.Errorf("metrics: %w", err)
			}
		}()
		log.Info("serving metrics", "addr", "http://"+ln.Addr().String()+"/metrics")
	}

	if w != nil {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := w.Run(partsCtx); err != nil {
				errs <- fmt.Errorf("worker: %w", err)
			}
		}()
		log.Info("worker started", "name", w.Name(), "concurrency", cfg.Worker.Concurrency)
	} else {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := client.RunNode(partsCtx, stint.NodeConfig{Name: cfg.Name, MissingAfter: cfg.MissingAfter, Logger: log}); err != nil {
				errs <- fmt.Errorf("presence: %w", err)
			}
		}()
	}
	if cfg.Retain > 0 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			retainTasks(partsCtx, client, cfg.Store, cfg.Retain, log)
		}()
	}

	var runErr error
	select {
	case <-ctx.Done():
		log.Info("shutting down")
	case runErr = <-errs:
	}
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownWait)
	defer cancel()
	if srv != nil {
		srv.Close() // ends event streams, which Shutdown would wait for
	}
	for _, hs := range servers {
		if err := hs.Shutdown(shutdownCtx); err != nil {
			hs.Close() //nolint:errcheck
		}
	}
	stopParts()
	wg.Wait()
	return runErr
}

// retainTasks dispatches stint.purge for every final task that finished
// more than retain ago, at start and then every RetentionInterval, until
// ctx ends. It skips a round while an earlier purge has not run yet, so
// that purges do not pile up without a worker.
func retainTasks(ctx context.Context, client *stint.Client, st store.Store, retain time.Duration, log *slog.Logger) {
	var final []store.State
	for _, s := range store.States {
		if s.Final() {
			final = append(final, s)
		}
	}
	tick := time.NewTicker(RetentionInterval)
	defer tick.Stop()
	for {
		pending, _, err := st.ListTasks(ctx, store.TaskFilter{Name: "stint.purge", States: []store.State{store.StateWaiting}, Limit: 1})
		switch {
		case err != nil:
			if ctx.Err() == nil {
				log.Warn("retention: reading pending purges", "err", err)
			}
		case len(pending) > 0:
			log.Info("retention: an earlier purge still waits", "task", pending[0].ID)
		default:
			before := time.Now().Add(-retain).UTC()
			task, err := client.Dispatch(ctx, stint.DispatchRequest{
				Name:               "stint.purge",
				Args:               stint.PurgeArgs{FinishedBefore: before, States: final},
				ExclusiveResources: []string{stint.PurgeResource},
			})
			if err != nil {
				if ctx.Err() == nil {
					log.Warn("retention: dispatching stint.purge", "err", err)
				}
			} else {
				log.Info("retention: purge dispatched", "task", task.ID, "finished_before", before)
			}
		}
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
	}
}
