package api

import (
	"context"
	"encoding/json"
	"errors"
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

// feedLinger is how long the hub goes on listening for task changes after
// the last event stream closed: a page reload or a client's reconnect finds
// it still listening, and a node that nobody watches stops paying for every
// change of every task (on PostgreSQL, a notification per batch of
// dispatches, claims and completions, sent to this node and parsed).
var feedLinger = 30 * time.Second

// hub fans the store's task changes out to the open event streams. It
// listens to the store only while some stream is open (and feedLinger
// after the last one closed), reads the changed tasks once per batch of
// changes, and only when some stream wants them.
type hub struct {
	store  store.Store
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	feeds  sync.WaitGroup // the listening goroutines

	maxStreams, maxPerUser int

	mu     sync.Mutex
	subs   map[*subscriber]struct{}
	byUser map[string]int // open streams per user ("" for open mode's anonymous admin)
	feed   *feed          // the listening in progress; nil when none
	idle   *time.Timer    // ends feed once it has served no stream for feedLinger
}

// feed is one subscription of the hub to the store's task changes.
type feed struct {
	cancel context.CancelFunc
	ready  chan struct{} // closed once listening, or once that failed (err set)
	err    error
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
	return &hub{store: st, log: log, ctx: ctx, cancel: cancel,
		maxStreams: maxStreams, maxPerUser: maxPerUser, subs: map[*subscriber]struct{}{}, byUser: map[string]int{}}
}

// listen starts listening to the store's changes, as h.feed. h.mu is held.
func (h *hub) listen() *feed {
	ctx, cancel := context.WithCancel(h.ctx)
	f := &feed{cancel: cancel, ready: make(chan struct{})}
	h.feed = f
	h.feeds.Add(1)
	go func() {
		defer h.feeds.Done()
		defer cancel()
		changes, err := h.store.Changes(ctx)
		if err != nil {
			f.err = err
			h.mu.Lock()
			if h.feed == f {
				h.feed = nil // the next stream tries again
			}
			h.mu.Unlock()
			close(f.ready)
			return
		}
		close(f.ready)
		for batch := range changes {
			if len(batch) == 0 {
				h.resync(f)
				continue
			}
			h.publish(f, batch)
		}
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.feed != f {
			return // ended for idleness: no stream was left to serve
		}
		// The hub stopped, or the store closed: the streams end, and their
		// clients reconnect.
		h.feed = nil
		for s := range h.subs {
			s.end()
		}
	}()
	return f
}

// stop stops listening and ends every stream.
func (h *hub) stop() {
	h.cancel()
	h.feeds.Wait()
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.idle != nil {
		h.idle.Stop()
		h.idle = nil
	}
	for s := range h.subs {
		s.end()
	}
}

// errTooManyStreams is why subscribe refused a stream.
type errTooManyStreams struct{ detail string }

func (e errTooManyStreams) Error() string { return e.detail }

// errNoChanges is why subscribe could not open a stream: the store's
// changes could not be listened to.
type errNoChanges struct{ err error }

func (e errNoChanges) Error() string {
	return fmt.Sprintf("cannot follow task changes now: %v; try again later", e.err)
}

// subscribe opens a stream for viewer, unless it would be one too many in
// all or for viewer's user. It returns once the hub listens to the store's
// changes, so that the stream misses none that commit after it returned.
func (h *hub) subscribe(ctx context.Context, viewer principal, tasks, groups map[uuid.UUID]bool) (*subscriber, error) {
	s := &subscriber{viewer: viewer, tasks: tasks, groups: groups, ready: make(chan struct{}, 1), ended: make(chan struct{})}
	h.mu.Lock()
	if h.ctx.Err() != nil {
		h.mu.Unlock()
		s.end()
		return s, nil
	}
	if len(h.subs) >= h.maxStreams {
		h.mu.Unlock()
		return nil, errTooManyStreams{fmt.Sprintf("this server has %d event streams open, its limit; try again later", len(h.subs))}
	}
	if h.byUser[viewer.user] >= h.maxPerUser {
		n := h.byUser[viewer.user]
		h.mu.Unlock()
		return nil, errTooManyStreams{fmt.Sprintf("you have %d event streams open on this server, the limit per user; close one first", n)}
	}
	h.subs[s] = struct{}{}
	h.byUser[viewer.user]++
	if h.idle != nil {
		h.idle.Stop()
		h.idle = nil
	}
	f := h.feed
	if f == nil {
		f = h.listen()
	}
	h.mu.Unlock()
	select {
	case <-f.ready:
	case <-ctx.Done():
		h.unsubscribe(s)
		return nil, ctx.Err()
	}
	if f.err != nil {
		h.unsubscribe(s)
		return nil, errNoChanges{f.err}
	}
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
	if len(h.subs) > 0 || h.feed == nil || h.idle != nil {
		return
	}
	f := h.feed
	var t *time.Timer
	t = time.AfterFunc(feedLinger, func() {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.idle == t {
			h.idle = nil
		}
		if h.feed == f && len(h.subs) == 0 {
			h.feed = nil
			f.cancel()
		}
	})
	h.idle = t
}

// resync tells every stream that changes may have been lost, unless f is
// no longer the hub's feed.
func (h *hub) resync(f *feed) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.feed != f {
		return
	}
	h.log.Info("task changes may have been lost; event streams told to re-read", "streams", len(h.subs))
	for s := range h.subs {
		s.lost()
	}
}

// publish reads the tasks a batch of changes of f is about, if any stream
// wants them, and hands each stream the events it follows. A feed that is
// no longer the hub's (ended for idleness, its last changes still coming)
// publishes nothing: its successor serves the streams.
func (h *hub) publish(f *feed, batch []store.TaskChange) {
	h.mu.Lock()
	if h.feed != f {
		h.mu.Unlock()
		return
	}
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
	sub, err := s.events.subscribe(r.Context(), viewer, tasks, groups)
	if err != nil {
		if r.Context().Err() != nil {
			return // the client went away
		}
		s.log.Warn("event stream refused", "user", viewer.user, "reason", err)
		w.Header().Set("Retry-After", "5")
		status := http.StatusTooManyRequests
		if errors.As(err, new(errNoChanges)) {
			status = http.StatusServiceUnavailable
		}
		writeError(w, status, "%v", err)
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
