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
// is ended; its client reconnects and re-reads the tasks it follows. The
// queue grows as events come, up to this, and shrinks when it empties: an
// idle stream holds none.
const subscriberBuffer = 4096

// streamWriteTimeout bounds each write of an event stream: a client that
// stops reading is cut off after it, whatever the server's write timeout.
const streamWriteTimeout = 30 * time.Second

// Defaults of the limits on event streams.
const (
	DefaultMaxEventStreams        = 512
	DefaultMaxEventStreamsPerUser = 64
)

// hub fans the store's task changes out to the open event streams. It
// reads the changed tasks once per batch of changes, and only when some
// stream wants them.
type hub struct {
	store  store.Store
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	done   chan struct{}

	maxStreams, maxPerUser int

	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	byUser map[string]int // open streams per user ("" for open mode's anonymous admin)
}

// subscriber is one open event stream and what it follows: the tasks and
// groups named, or everything when both are empty; and of those only the
// tasks its caller may access.
type subscriber struct {
	viewer principal
	tasks  map[uuid.UUID]bool
	groups map[uuid.UUID]bool
	ready  chan struct{} // signaled when the queue holds something
	ended  chan struct{} // closed when the hub ends the stream
	once   sync.Once

	mu     sync.Mutex
	queue  []apiv1.TaskEvent // what the stream has yet to write
	resync bool              // changes may have been lost: tell the client first
}

// push queues an event; a stream that fell subscriberBuffer events behind
// is ended (its client reconnects and re-reads).
func (s *subscriber) push(ev apiv1.TaskEvent) {
	s.mu.Lock()
	full := len(s.queue) >= subscriberBuffer
	if !full {
		s.queue = append(s.queue, ev)
	}
	s.mu.Unlock()
	if full {
		s.end()
		return
	}
	s.signal()
}

// lost says that changes may have been lost: the events queued are
// dropped, since the client re-reads everything they would have told.
func (s *subscriber) lost() {
	s.mu.Lock()
	s.queue, s.resync = nil, true
	s.mu.Unlock()
	s.signal()
}

func (s *subscriber) signal() {
	select {
	case s.ready <- struct{}{}:
	default:
	}
}

// take returns what the stream has to write, emptying its queue.
func (s *subscriber) take() (events []apiv1.TaskEvent, resync bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	events, resync = s.queue, s.resync
	s.queue, s.resync = nil, false
	return events, resync
}

func (s *subscriber) all() bool { return len(s.tasks) == 0 && len(s.groups) == 0 }

func (s *subscriber) wants(t *store.Task) bool {
	if !s.viewer.mayAccess(t.Owner) {
		return false
	}
	return s.all() || s.tasks[t.ID] || (t.TaskGroup != nil && s.groups[*t.TaskGroup])
}

func (s *subscriber) end() { s.once.Do(func() { close(s.ended) }) }

func newHub(st store.Store, log *slog.Logger, maxStreams, maxPerUser int) *hub {
	ctx, cancel := context.WithCancel(context.Background())
	return &hub{store: st, log: log, ctx: ctx, cancel: cancel, done: make(chan struct{}),
		maxStreams: maxStreams, maxPerUser: maxPerUser, subs: map[*subscriber]struct{}{}, byUser: map[string]int{}}
}

func (h *hub) start() error {
	changes, err := h.store.Changes(h.ctx)
	if err != nil {
		return fmt.Errorf("api: listening for task changes: %w", err)
	}
	go func() {
		defer close(h.done)
		for batch := range changes {
			if len(batch) == 0 {
				h.resync()
				continue
			}
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

// errTooManyStreams is why subscribe refused a stream.
type errTooManyStreams struct{ detail string }

func (e errTooManyStreams) Error() string { return e.detail }

// subscribe opens a stream for viewer, unless it would be one too many in
// all or for viewer's user.
func (h *hub) subscribe(viewer principal, tasks, groups map[uuid.UUID]bool) (*subscriber, error) {
	s := &subscriber{viewer: viewer, tasks: tasks, groups: groups, ready: make(chan struct{}, 1), ended: make(chan struct{})}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.ctx.Err() != nil {
		s.end()
		return s, nil
	}
	if len(h.subs) >= h.maxStreams {
		return nil, errTooManyStreams{fmt.Sprintf("this server has %d event streams open, its limit; try again later", len(h.subs))}
	}
	if h.byUser[viewer.user] >= h.maxPerUser {
		return nil, errTooManyStreams{fmt.Sprintf("you have %d event streams open on this server, the limit per user; close one first", h.byUser[viewer.user])}
	}
	h.subs[s] = struct{}{}
	h.byUser[viewer.user]++
	return s, nil
}

func (h *hub) unsubscribe(s *subscriber) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, ok := h.subs[s]; !ok {
		return
	}
	delete(h.subs, s)
	if h.byUser[s.viewer.user]--; h.byUser[s.viewer.user] <= 0 {
		delete(h.byUser, s.viewer.user)
	}
}

// resync tells every stream that changes may have been lost.
func (h *hub) resync() {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.log.Info("task changes may have been lost; event streams told to re-read", "streams", len(h.subs))
	for s := range h.subs {
		s.lost()
	}
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
			if s.wants(t) {
				s.push(ev)
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
	sub, err := s.events.subscribe(viewer, tasks, groups)
	if err != nil {
		s.log.Warn("event stream refused", "user", viewer.user, "reason", err)
		w.Header().Set("Retry-After", "5")
		writeError(w, http.StatusTooManyRequests, "%v", err)
		return
	}
	defer s.events.unsubscribe(sub)
	// The stream outlives the server's write timeout; each write has a
	// deadline of its own instead.
	rc := http.NewResponseController(w)
	noWriteDeadline(w)
	write := func(format string, a ...any) error {
		rc.SetWriteDeadline(time.Now().Add(streamWriteTimeout)) //nolint:errcheck // not every writer has deadlines
		_, err := fmt.Fprintf(w, format, a...)
		return err
	}

	h := w.Header()
	h.Set("Content-Type", "text/event-stream")
	h.Set("Cache-Control", "no-cache")
	h.Set("X-Accel-Buffering", "no")
	w.WriteHeader(http.StatusOK)
	if write(": connected\n\n") != nil {
		return
	}
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
			if write(": keep-alive\n\n") != nil {
				return
			}
		case <-sub.ready:
			events, resync := sub.take()
			if resync && write("event: %s\ndata: {}\n\n", apiv1.EventResync) != nil {
				return
			}
			for _, ev := range events {
				data, err := json.Marshal(ev)
				if err != nil {
					return
				}
				if write("event: %s\nid: %s\ndata: %s\n\n", apiv1.EventTask, ev.ID, data) != nil {
					return
				}
			}
		}
		flusher.Flush()
	}
}
