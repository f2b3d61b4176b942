package main

import (
	"context"
	"fmt"
	"net"
	"runtime"
	"time"

	"github.com/spf13/cobra"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/api"
	"github.com/stint-dev/stint/node"
	"github.com/stint-dev/stint/store/sqlite"
)

// defaultAddr is where stint serve and stint api listen by default.
const defaultAddr = "127.0.0.1:7710"

// serverFlags are the flags stint serve and stint api share.
type serverFlags struct {
	db           string
	addr         string
	migrate      bool
	maxBody      int64
	shutdownWait time.Duration
	cancelPolicy string
	insecureOpen bool
	retain       time.Duration
	missingAfter time.Duration
	http         api.HTTPLimits
	streams      int
	userStreams  int
	immediate    int
}

func (f *serverFlags) register(cmd *cobra.Command, migrateByDefault bool, defaultDB string) {
	dbFlag(cmd, &f.db, defaultDB)
	fl := cmd.Flags()
	fl.StringVar(&f.addr, "addr", defaultAddr, "address to listen on, host:port")
	fl.BoolVar(&f.migrate, "migrate", migrateByDefault, "apply schema migrations at start")
	fl.Int64Var(&f.maxBody, "max-body", api.DefaultMaxBodyBytes, "largest request body accepted, in bytes")
	fl.DurationVar(&f.shutdownWait, "shutdown-grace", 30*time.Second, "time running tasks and requests get to finish at shutdown")
	fl.StringVar(&f.cancelPolicy, "cancel-policy", "owner", "who may cancel a task: owner (its owner and admins) or admin-only")
	fl.BoolVar(&f.insecureOpen, "insecure-no-auth", false, "serve a non-loopback --addr even when no users exist, open to anyone who can reach it")
	fl.DurationVar(&f.missingAfter, "missing-after", stint.DefaultMissingAfter, "a worker silent this long is lost and its tasks dropped; use the same on every node")
	httpLimitFlags(cmd, &f.http)
	fl.IntVar(&f.immediate, "immediate-slots", api.DefaultImmediateSlots, "most immediate tasks this process runs inline at once; beyond, deferred ones wait for a worker and deferred: false is a 429; 0 runs none inline")
	fl.IntVar(&f.streams, "max-event-streams", api.DefaultMaxEventStreams, "most event streams (GET /api/v1/events) open at once; one more is a 429")
	fl.IntVar(&f.userStreams, "max-event-streams-per-user", api.DefaultMaxEventStreamsPerUser, "most event streams one user has open at once")
	fl.DurationVar(&f.retain, "retain", 0, "purge final tasks that finished longer ago than this (e.g. 720h), every hour; 0 keeps them")
}

// httpLimitFlags registers the flags of the HTTP server's limits.
func httpLimitFlags(cmd *cobra.Command, l *api.HTTPLimits) {
	fl := cmd.Flags()
	fl.DurationVar(&l.ReadTimeout, "read-timeout", api.DefaultReadTimeout, "longest a client may take to send a request, body included")
	fl.DurationVar(&l.WriteTimeout, "write-timeout", api.DefaultWriteTimeout, "longest an answer may take to be written (event streams and immediate runs exempt)")
	fl.DurationVar(&l.IdleTimeout, "idle-timeout", api.DefaultIdleTimeout, "close keep-alive connections idle this long")
	fl.IntVar(&l.MaxConnections, "max-connections", api.DefaultMaxConnections, "most HTTP connections served at once; more wait until one closes")
}

// immediateSlots translates --immediate-slots, where 0 is none, into
// api.Config.ImmediateSlots, where 0 is the default.
func immediateSlots(flag int) int {
	if flag == 0 {
		return -1
	}
	return flag
}

// cancelPolicyValue translates --cancel-policy.
func (f *serverFlags) cancelPolicyValue() (api.CancelPolicy, error) {
	switch f.cancelPolicy {
	case "owner":
		return api.CancelOwner, nil
	case "admin-only":
		return api.CancelAdminOnly, nil
	}
	return "", fmt.Errorf("--cancel-policy %q: must be owner or admin-only", f.cancelPolicy)
}

func newServeCommand() *cobra.Command {
	var (
		flags   serverFlags
		workers int
	)
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the API and workers in one process",
		Long: `Run the HTTP API (/api/v1, /metrics, /healthz, /readyz) and a worker with
--workers slots in one process. On SIGINT or SIGTERM it stops accepting
requests, lets running tasks finish within --shutdown-grace, and exits.

With no --db (and no STINT_DB) it uses the SQLite file ./stint.db, created
if absent: nothing to install. One process serves one SQLite file; tasks a
killed process left running end dropped when it starts again. For several
processes, use PostgreSQL (--db postgres://...) with stint api and stint worker.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServer(cmd.Context(), "serve", flags, workers)
		},
	}
	flags.register(cmd, true, defaultSQLite)
	cmd.Flags().IntVar(&workers, "workers", runtime.NumCPU(), "tasks run at once by this process's worker")
	return cmd
}

func newAPICommand() *cobra.Command {
	var flags serverFlags
	cmd := &cobra.Command{
		Use:   "api",
		Short: "Run the HTTP API only (for many API nodes on one PostgreSQL)",
		Long: `Run the HTTP API (/api/v1, /metrics, /healthz, /readyz) without a worker.
Run as many as you like on one PostgreSQL database, with stint worker
processes beside them.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return runServer(cmd.Context(), "api", flags, 0)
		},
	}
	flags.register(cmd, false, "")
	return cmd
}

// isLoopback reports whether a listening address is reachable only from
// this machine.
func isLoopback(addr net.Addr) bool {
	tcp, ok := addr.(*net.TCPAddr)
	return ok && tcp.IP.IsLoopback()
}

// runServer serves the API, and runs a worker with the given slots if
// workers > 0, until ctx ends: one node (package node).
func runServer(ctx context.Context, command string, f serverFlags, workers int) error {
	log := newLogger()
	policy, err := f.cancelPolicyValue()
	if err != nil {
		return err
	}
	if err := f.http.Validate(); err != nil {
		return err
	}
	if f.streams < 1 || f.userStreams < 1 {
		return fmt.Errorf("--max-event-streams %d, --max-event-streams-per-user %d: must be at least 1", f.streams, f.userStreams)
	}
	if f.immediate < 0 {
		return fmt.Errorf("--immediate-slots %d: must be 0 or more", f.immediate)
	}
	if f.retain < 0 {
		return fmt.Errorf("--retain %s: must be positive (or 0 to keep every task)", f.retain)
	}
	st, target, err := openStore(ctx, command, f.db, command != "serve")
	if err != nil {
		return err
	}
	defer st.Close()
	if lite, ok := st.(*sqlite.Store); ok {
		log.Info("database", "engine", engineSQLite, "path", lite.Path())
		if r := lite.Recovered(); r.Dropped+r.Canceled+r.Workers > 0 {
			log.Warn("the previous process stopped while tasks ran; they were ended",
				"dropped", r.Dropped, "canceled", r.Canceled, "workers_removed", r.Workers)
		}
	}
	if f.migrate {
		if err := st.Migrate(ctx); err != nil {
			return err
		}
	}
	ln, err := net.Listen("tcp", f.addr)
	if err != nil {
		return fmt.Errorf("--addr %s: %w", f.addr, err)
	}
	defer ln.Close()
	loopback := isLoopback(ln.Addr())
	hasUsers, err := st.HasUsers(ctx)
	if err != nil {
		return err
	}
	if !hasUsers {
		if !loopback && !f.insecureOpen {
			return fmt.Errorf("--addr %s: no users exist, so the API would be open to anyone who can reach it; add one first (stint user add NAME --role admin), listen on a loopback address, or pass --insecure-no-auth", f.addr)
		}
		log.Warn("no users exist: the API is open, without tokens, to anyone who can reach "+ln.Addr().String()+"; stint user add NAME --role admin closes it",
			"addr", ln.Addr().String())
	}

	if f.missingAfter <= stint.DefaultHeartbeatInterval {
		return fmt.Errorf("--missing-after %v: must be more than the heartbeat interval (%v)", f.missingAfter, stint.DefaultHeartbeatInterval)
	}
	cfg := node.Config{
		Store: st, MissingAfter: f.missingAfter, Logger: log, Retain: f.retain, ShutdownWait: f.shutdownWait,
		API: &node.API{
			Listener: ln,
			Server: api.Config{
				Engine: target.engine, Version: version, MaxBodyBytes: f.maxBody,
				AllowOpen: loopback || f.insecureOpen, OpenAnyHost: f.insecureOpen, CancelPolicy: policy,
				MaxEventStreams: f.streams, MaxEventStreamsPerUser: f.userStreams, ImmediateSlots: immediateSlots(f.immediate),
			},
			HTTP: f.http,
		},
	}
	if workers > 0 {
		cfg.Worker = &stint.WorkerConfig{Concurrency: workers, ShutdownGrace: f.shutdownWait}
	}
	return node.Run(ctx, cfg)
}
