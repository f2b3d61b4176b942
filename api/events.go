package api

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"sync"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/store"
)

// keepAliveInterval is how often an idle event stream gets a comment line,
// so that proxies and clients see it is alive.
const keepAliveInterval = 15 * time.Second

// subscriberBuffer is how many events a stream may fall behind before it
// is ended; its client reconnects and re-reads the tasks it follows.
const subscriberBuffer = 4096

// hub fans the store's task changes out to the open event streams. It
// reads the changed tasks once per batch of changes, and only when some
// stream wants them.
type hub struct {
	store  store.Store
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

// subscriber is one open event stream and what it follows: the tasks and
// groups named, or everything when both are empty; and of those only the
// tasks its caller may access.
type subscriber struct {
	viewer principal
	tasks  map[uuid.UUID]bool
	groups map[uuid.UUID]bool
	events chan apiv1.TaskEvent
	ended  chan struct{} // closed when the hub ends the stream
	once   sync.Once
}

func (s *subscriber) all() bool { return len(s.tasks) == 0 && len(s.groups) == 0 }

func (s *subscriber) wants(t *store.Task) bool {
	if !s.viewer.mayAccess(t.Owner) {
		return false
	}
	return s.all() || s.tasks[t.ID] || (t.TaskGroup != nil && s.groups[*t.TaskGroup])
}

func (s *subscriber) end() { s.once.Do(func() { close(s.ended) }) }

func newHub(st store.Store, log *slog.Logger) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &hub{store: st, log: log, ctx: ctx, cancel: cancel, done: make(chan struct{}), subs: map[*subscriber]struct{}{}}
}

func (h *hub) start() error {
	changes, err := h.store.Changes(h.ctx)
	if err != nil {
		return fmt.Errorf("api: listening for task changes: %w", err)
	}
	go func() {
		defer close(h.done)
		for batch := range changes {
			h.publish(batch)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		for s := range h.subs {
			s.end()
		}
	}()
	return nil
}

func (h *hub) stop() {
	h.cancel()
	<-h.done
}

func (h *hub) subscribe(viewer principal, tasks, groups map[uuid.UUID]bool) *subscriber {
	s := &subscriber{viewer: viewer, tasks: tasks, groups: groups, events: make(chan apiv1.TaskEvent, subscriberBuffer), ended: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		s.end()
		return s
	}
	h.subs[s] = struct{}{}
	return s
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	delete(h.subs, s)
}

// publish reads the tasks a batch of changes is about, if any stream wants
// them, and hands each stream the events it follows.
func (h *hub) publish(batch []store.TaskChange) {
	h.mu.Lock()
	subs := make([]*subscriber, 0, len(h.subs))
	needAll := false
	wanted := map[uuid.UUID]bool{}
	for s := range h.subs {
		subs = append(subs, s)
		needAll = needAll || len(s.groups) > 0 || s.all()
		for id := range s.tasks {
			wanted[id] = true
		}
	}
	h.mu.Unlock()
	if len(subs) == 0 {
		return
	}
	var ids []uuid.UUID
	seen := map[uuid.UUID]bool{}
	for _, c := range batch {
		if (needAll || wanted[c.ID]) && !seen[c.ID] {
			seen[c.ID] = true
			ids = append(ids, c.ID)
		}
	}
	if len(ids) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(h.ctx, 10*time.Second)
	tasks, _, err := h.store.ListTasks(ctx, store.TaskFilter{IDs: ids})
	cancel()
	if err != nil {
		if h.ctx.Err() == nil {
			h.log.Warn("reading changed tasks for event streams failed", "tasks", len(ids), "error", err)
		}
		return
	}
	byID := make(map[uuid.UUID]*store.Task, len(tasks))
	for _, t := range tasks {
		byID[t.ID] = t
	}
	for _, c := range batch {
		t, ok := byID[c.ID]
		if !ok {
			continue
		}
		ev := apiv1.TaskEvent{
			Task: apiv1.TaskHref(t.ID), ID: t.ID, Name: t.Name, State: string(c.State),
			ProgressReports: progressReports(t.ProgressReports), UpdatedAt: apiv1.Time{Time: t.UpdatedAt},
		}
		if t.TaskGroup != nil {
			g := apiv1.TaskGroupHref(*t.TaskGroup)
			ev.TaskGroup = &g
		}
		for _, s := range subs {
			if !s.wants(t) {
				continue
			}
			select {
			case s.events <- ev:
			default:
				s.end() // too far behind: its client reconnects
			}
		}
	}
}

// streamEvents is GET /events: Server-Sent Events of changes of the tasks
// the caller may access, optionally only those of the tasks (?task=) and
// groups (?task_group=) named; both may repeat. Every authRecheckInterval
// it checks the caller again and ends the stream when the caller changed
// or may no longer use the API (a revoked token, a removed user, the end
// of open mode).
func (s *Server) streamEvents(w http.ResponseWriter, r *http.Request) {
	tasks, groups := map[uuid.UUID]bool{}, map[uuid.UUID]bool{}
	query, err := parseRawQuery(r.URL.RawQuery)
	if err != nil {
		writeError(w, http.StatusBadRequest, "%v", err)
		return
	}
	for key, values := range query {
		var parse func(string) (uuid.UUID, error)
		var into map[uuid.UUID]bool
		switch key {
		case "task":
			parse, into = apiv1.ParseTaskRef, tasks
		case "task_group":
			parse, into = apiv1.ParseTaskGroupRef, groups
		default:
			writeError(w, http.StatusBadRequest, "%s: unknown query parameter; known: task, task_group", key)
			return
		}
		for _, v := range values {
			id, err := parse(v)
			if err != nil {
				writeError(w, http.StatusBadRequest, "%s: %v", key, err)
				return
			}
			into[id] = true
		}
	}
	flusher, ok := w.(http.Flusher)
	if !ok {
		writeError(w, http.StatusInternalServerError, "this connection cannot stream")
		return
	}
	viewer := caller(r)
	sub := s.events.subscribe(viewer, tasks, groups)
	defer s.events.unsubscribe(sub)

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	fmt.Fprint(w, ": connected\n\n")
	flusher.Flush()

	keepAlive := time.NewTicker(keepAliveInterval)
	defer keepAlive.Stop()
	recheck := time.NewTicker(authRecheckInterval)
	defer recheck.Stop()
	for {
		select {
		case <-r.Context().Done():
			return
		case <-sub.ended:
			return
		case <-recheck.C:
			p, refused, err := s.identify(r.Context(), r.Header)
			if err == nil && (refused != nil || p != viewer) {
				return // its client reconnects and is answered 401, or gets its own stream
			}
			continue // a store error is no reason to end the stream
		case <-keepAlive.C:
			if _, err := fmt.Fprint(w, ": keep-alive\n\n"); err != nil {
				return
			}
		case ev := <-sub.events:
			data, err := json.Marshal(ev)
			if err != nil {
				return
			}
			if _, err := fmt.Fprintf(w, "event: %s\nid: %s\ndata: %s\n\n", apiv1.EventTask, ev.ID, data); err != nil {
				return
			}
		}
		flusher.Flush()
	}
}
