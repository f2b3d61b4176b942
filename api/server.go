package api

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"runtime/debug"
	"strings"
	"time"

	"github.com/stint-dev/stint"
	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/internal/metrics"
	"github.com/stint-dev/stint/store"
	"github.com/stint-dev/stint/ui"
)

// DefaultMaxBodyBytes is the default limit on request bodies.
const DefaultMaxBodyBytes = 1 << 20

// DefaultMissingAfter is how long a worker may go without a heartbeat
// before the API shows it missing: the workers' own default
// (stint.DefaultMissingAfter).
const DefaultMissingAfter = stint.DefaultMissingAfter

// Config configures a Server. Store and Registry are required.
type Config struct {
	Store    store.Store
	Registry *stint.Registry // the task types this node accepts
	// Engine names the store's engine in /status, e.g. "postgresql".
	Engine string
	// Version is the server's version in /status.
	Version string
	// MaxBodyBytes limits request bodies; default DefaultMaxBodyBytes.
	MaxBodyBytes int64
	// MissingAfter: a worker silent this long is shown missing; default
	// DefaultMissingAfter.
	MissingAfter time.Duration
	// Metrics are served at /metrics and counted into; default a new set
	// reading gauges from Store.
	Metrics *metrics.Metrics
	// Logger; default slog.Default().
	Logger *slog.Logger
	// AllowOpen lets requests without a token in, as an anonymous admin,
	// while the store has no users (open mode). Without it such requests
	// get 401 until a user exists. Either way, open mode ends as soon as
	// the first user exists. The CLI sets it only on a loopback address or
	// with --insecure-no-auth.
	AllowOpen bool
	// OpenAnyHost lets open mode answer requests addressed to any name
	// (the CLI's --insecure-no-auth). Without it, an open server answers
	// requests without a token only when their Host is a loopback name or
	// address (localhost, 127.0.0.0/8, [::1]), so that a web page whose
	// name was rebound to 127.0.0.1 (DNS rebinding) gets 403.
	OpenAnyHost bool
	// TokenCacheTTL is how long this node trusts a token that checked out
	// (and the knowledge that users exist) without reading the store
	// again: a revoked token, a removed user or a changed role takes
	// effect within it. Default DefaultTokenCacheTTL; negative: read the
	// store on every request.
	TokenCacheTTL time.Duration
	// StatusCacheTTL is how old the figures of GET /status, and what a
	// task shows of its worker's liveness (missing, last_heartbeat), may
	// be: they are answered from memory and read again, in one request,
	// when they are older. Default DefaultStatusCacheTTL; negative: read
	// on every request.
	StatusCacheTTL time.Duration
	// CancelPolicy says who may cancel a task: CancelOwner (the default:
	// its owner or an admin) or CancelAdminOnly.
	CancelPolicy CancelPolicy
	// ImmediateWorker is the worker name immediate tasks run under in this
	// process: a worker this process registers and heartbeats, so that a
	// run lost with the process is detected like any other. Default
	// "{pid}@{hostname}", the default name of a worker in this process.
	ImmediateWorker string
	// MaxEventStreams bounds the event streams (GET /events) open at once
	// on this server; one more is a 429. Default DefaultMaxEventStreams.
	MaxEventStreams int
	// MaxEventStreamsPerUser bounds the event streams one user (or open
	// mode's anonymous admin) has open at once; default
	// DefaultMaxEventStreamsPerUser.
	MaxEventStreamsPerUser int
	// ImmediateSlots bounds the immediate tasks this server runs inline
	// at once; beyond it a deferred one waits for a worker and one with
	// deferred: false is a 429. Default DefaultImmediateSlots; negative
	// for none (every immediate task is then dispatched for a worker, or
	// refused).
	ImmediateSlots int
}

// Server serves the HTTP API. Create it with New, serve Handler, and call
// Close when done.
type Server struct {
	cfg Config
	// client is the one path of every operation that stint.Client offers
	// (dispatch, a task, cancel, blocked_by, groups): the API adds its
	// permissions to what an application would call. The store serves
	// what stint.Client has no call for (lists, workers, counts, users).
	client  *stint.Client
	log     *slog.Logger
	events  *hub
	handler http.Handler
	// tokens remembers checked tokens for Config.TokenCacheTTL.
	tokens *tokenCache
	// statuses keeps the last answer of GET /status.
	statuses *recent[[]byte]
	// workers keeps the last list of workers, for rendering tasks.
	workers *recent[[]store.WorkerInfo]
	// immediate holds a token per immediate task running inline; its
	// capacity is Config.ImmediateSlots.
	immediate chan struct{}
}

// New returns a server. Its event hub listens to the store's changes while
// event streams (GET /events) are open, until Close.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Registry == nil {
		return nil, errors.New("api: Store and Registry are required")
	}
	if cfg.MaxBodyBytes <= 0 {
		cfg.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if cfg.MissingAfter <= 0 {
		cfg.MissingAfter = DefaultMissingAfter
	}
	if cfg.Metrics == nil {
		cfg.Metrics = metrics.New(cfg.Store, cfg.MissingAfter)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	switch {
	case cfg.ImmediateSlots == 0:
		cfg.ImmediateSlots = DefaultImmediateSlots
	case cfg.ImmediateSlots < 0:
		cfg.ImmediateSlots = 0
	}
	if cfg.MaxEventStreams <= 0 {
		cfg.MaxEventStreams = DefaultMaxEventStreams
	}
	if cfg.MaxEventStreamsPerUser <= 0 {
		cfg.MaxEventStreamsPerUser = DefaultMaxEventStreamsPerUser
	}
	if cfg.ImmediateWorker == "" {
		cfg.ImmediateWorker = stint.DefaultWorkerName()
	}
	if cfg.TokenCacheTTL == 0 {
		cfg.TokenCacheTTL = DefaultTokenCacheTTL
	}
	if cfg.StatusCacheTTL == 0 {
		cfg.StatusCacheTTL = DefaultStatusCacheTTL
	}
	switch cfg.CancelPolicy {
	case "":
		cfg.CancelPolicy = CancelOwner
	case CancelOwner, CancelAdminOnly:
	default:
		return nil, fmt.Errorf("api: CancelPolicy %q: must be %q or %q", cfg.CancelPolicy, CancelOwner, CancelAdminOnly)
	}
	s := &Server{cfg: cfg, client: stint.NewClient(cfg.Store, cfg.Registry), log: cfg.Logger, immediate: make(chan struct{}, cfg.ImmediateSlots)}
	s.tokens = newTokenCache(cfg.TokenCacheTTL)
	s.statuses = &recent[[]byte]{ttl: max(cfg.StatusCacheTTL, 0)}
	s.workers = &recent[[]store.WorkerInfo]{ttl: max(cfg.StatusCacheTTL, 0)}
	s.events = newHub(cfg.Store, s.log, cfg.MaxEventStreams, cfg.MaxEventStreamsPerUser)
	s.handler = s.routes()
	return s, nil
}

// Close stops the event hub and ends every open event stream.
func (s *Server) Close() { s.events.stop() }

// Handler returns the server's HTTP handler: /api/v1/..., /metrics,
// /healthz, /readyz and the web UI at /ui/ (/ and /ui redirect to it).
func (s *Server) Handler() http.Handler { return s.handler }

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	p := apiv1.Prefix
	gz := compressed()
	// Every endpoint of /api/v1 needs a caller but /status and
	// /openapi.json, which are public, as are /metrics and the probes.
	mux.Handle("POST "+p+"/tasks", s.authenticate(s.dispatchTask))
	mux.Handle("GET "+p+"/tasks", gz(s.authenticate(s.listTasks)))
	mux.Handle("GET "+p+"/tasks/{id}", s.authenticate(s.getTask))
	mux.Handle("PATCH "+p+"/tasks/{id}", s.authenticate(s.patchTask))
	mux.Handle("POST "+p+"/tasks/{id}/retry", s.authenticate(s.retryTask))
	mux.Handle("GET "+p+"/workers", gz(s.authenticate(s.listWorkers)))
	mux.Handle("GET "+p+"/workers/{name}", s.authenticate(s.getWorker))
	mux.Handle("DELETE "+p+"/tasks/{id}", s.authenticate(s.deleteTask))
	mux.Handle("POST "+p+"/tasks/purge", s.authenticate(s.purgeTasks))
	mux.Handle("POST "+p+"/task-groups", s.authenticate(s.createTaskGroup))
	mux.Handle("GET "+p+"/task-groups", gz(s.authenticate(s.listTaskGroups)))
	mux.Handle("GET "+p+"/task-groups/{id}", gz(s.authenticate(s.getTaskGroup)))
	mux.Handle("PATCH "+p+"/task-groups/{id}", s.authenticate(s.patchTaskGroup))
	mux.Handle("GET "+p+"/resources", gz(s.authenticate(s.listResources)))
	mux.Handle("GET "+p+"/resources/{name}", gz(s.authenticate(s.getResource)))
	mux.Handle("PUT "+p+"/resources/{name}", s.authenticate(s.putResource))
	mux.Handle("GET "+p+"/events", s.authenticate(s.streamEvents))
	mux.Handle("GET "+p+"/me", s.authenticate(s.me))
	mux.HandleFunc("GET "+p+"/status", s.status)
	mux.Handle("GET "+p+"/openapi.json", gz(http.HandlerFunc(s.openAPI)))
	mux.HandleFunc(p+"/", func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path)
	})
	mux.Handle("GET /metrics", s.cfg.Metrics.Handler())
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		fmt.Fprintln(w, "ok")
	})
	mux.HandleFunc("GET /readyz", s.ready)
	mux.Handle("GET "+ui.Prefix, ui.Handler())
	mux.Handle("GET /ui", http.RedirectHandler(ui.Prefix, http.StatusMovedPermanently))
	mux.Handle("GET /{$}", http.RedirectHandler(ui.Prefix, http.StatusFound))
	return s.recoverPanics(s.guard(trimTrailingSlash(mux)))
}

// trimTrailingSlash serves /path/ as /path: the API accepts both.
func trimTrailingSlash(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// On the escaped path: a trailing %2F is part of a name (a
		// resource "x/" is /resources/x%2F), not a slash to trim.
		if p := r.URL.EscapedPath(); len(p) > 1 && strings.HasSuffix(p, "/") && p != "/ui/" {
			trimmed := strings.TrimRight(p, "/")
			if unescaped, err := url.PathUnescape(trimmed); err == nil {
				r2 := r.Clone(r.Context())
				r2.URL.Path, r2.URL.RawPath = unescaped, trimmed
				r = r2
			}
		}
		next.ServeHTTP(w, r)
	})
}

// recoverPanics turns a panic in a handler into a logged 500: a bug, never
// the client's doing.
func (s *Server) recoverPanics(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				if v == http.ErrAbortHandler {
					panic(v)
				}
				s.log.Error("panic in handler", "method", r.Method, "path", r.URL.Path, "panic", v, "stack", string(debug.Stack()))
				writeError(w, http.StatusInternalServerError, "internal error")
			}
		}()
		next.ServeHTTP(w, r)
	})
}

// writeJSON writes v with the given status.
func writeJSON(w http.ResponseWriter, status int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		writeError(w, http.StatusInternalServerError, "encoding the answer failed")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(b, '\n')) //nolint:errcheck // the client went away
}

// writeError writes {"detail": ...} with the given status.
func writeError(w http.ResponseWriter, status int, format string, a ...any) {
	writeJSON(w, status, apiv1.Error{Detail: fmt.Sprintf(format, a...)})
}

func (s *Server) openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(OpenAPIDocument()) //nolint:errcheck
}

func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	if _, err := s.cfg.Store.Workers(ctx); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintln(w, "database unreachable")
		return
	}
	fmt.Fprintln(w, "ready")
}
