package main

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
)

// Tunables of wait.
var (
	// recheckEvery re-reads the states of the tasks wait follows, a safety
	// net should an event be lost.
	recheckEvery = 10 * time.Second
	// relistAfter coalesces the re-lists of "wait all" that final events
	// trigger.
	relistAfter = 250 * time.Millisecond
	// reconnectFor is how long wait tries to subscribe again when the
	// event stream breaks.
	reconnectFor = 15 * time.Second
)

// maxFilteredTasks is the most tasks wait names in its subscription; with
// more it subscribes to every event and picks its own.
const maxFilteredTasks = 50

// incompleteStates are the states "wait all" waits out.
const incompleteStates = "waiting,running,canceling"

// errTimeout is the cause of the context of a wait that reached --timeout.
var errTimeout = errors.New("timeout")

// tracked is what a wait knows of one task.
type tracked struct {
	id       uuid.UUID
	name     string
	state    string // "" until read
	updated  time.Time
	progress []apiv1.ProgressReport
}

func (t *tracked) final() bool { return apiv1.FinalState(t.state) }

// waitView shows a wait as it goes: plain lines, progress bars, or nothing.
type waitView interface {
	// show is called after every change of a task: its first state, a new
	// state, new progress.
	show(t *tracked, stateChanged bool)
	// end is called once when the wait stops, with every task followed
	// and whether the timeout stopped it.
	end(tasks []*tracked, timedOut bool)
}

// waiter follows tasks until they are final: given ids, or with all every
// task that is incomplete now or becomes so before the others end.
type waiter struct {
	c     *client.Client
	view  waitView
	all   bool
	tasks map[uuid.UUID]*tracked
	order []*tracked
	open  int // tracked tasks not final

	listedNone bool      // all: the last list found no incomplete task
	relist     bool      // all: a task ended since the last list
	relistAt   time.Time // all: when to list again
}

func newWaiter(c *client.Client, view waitView, ids []uuid.UUID, all bool) *waiter {
	w := &waiter{c: c, view: view, all: all, tasks: map[uuid.UUID]*tracked{}}
	for _, id := range ids {
		w.track(id)
	}
	return w
}

// track starts following a task.
func (w *waiter) track(id uuid.UUID) *tracked {
	if t, ok := w.tasks[id]; ok {
		return t
	}
	t := &tracked{id: id}
	w.tasks[id] = t
	w.order = append(w.order, t)
	w.open++
	return t
}

// forget stops following a task that no longer exists.
func (w *waiter) forget(t *tracked) {
	delete(w.tasks, t.id)
	for i, o := range w.order {
		if o == t {
			w.order = append(w.order[:i], w.order[i+1:]...)
			break
		}
	}
	if !t.final() {
		w.open--
	}
}

// apply records a task's state; it ignores what is older than what is
// known, and any change of a final task.
func (w *waiter) apply(t *tracked, name, state string, updated time.Time, progress []apiv1.ProgressReport) {
	if t.final() || (t.state != "" && updated.Before(t.updated)) {
		return
	}
	changed := state != t.state
	t.name, t.state, t.updated, t.progress = name, state, updated, progress
	if t.final() {
		w.open--
		w.relist = true
	}
	w.view.show(t, changed)
}

func (w *waiter) applyTask(t *tracked, task *apiv1.Task) {
	w.apply(t, task.Name, task.State, task.UpdatedAt.Time, task.ProgressReports)
}

func (w *waiter) applyEvent(ev apiv1.TaskEvent) {
	t, ok := w.tasks[ev.ID]
	if !ok {
		if !w.all || apiv1.FinalState(ev.State) {
			return
		}
		t = w.track(ev.ID) // a task that appeared during "wait all"
		w.listedNone = false
	}
	w.apply(t, ev.Name, ev.State, ev.UpdatedAt.Time, ev.ProgressReports)
}

// done reports whether the wait is over: every task followed is final and,
// for all, the server listed no incomplete task since.
func (w *waiter) done() bool {
	return w.open == 0 && (!w.all || (w.listedNone && !w.relist))
}

// subscribe opens the event stream the wait needs.
func (w *waiter) subscribe(ctx context.Context) (*client.EventStream, error) {
	var ids []uuid.UUID
	if !w.all && len(w.order) <= maxFilteredTasks {
		for _, t := range w.order {
			ids = append(ids, t.id)
		}
	}
	return w.c.Events(ctx, ids, nil)
}

// refresh reads the current state of what the wait follows: with all, the
// list of incomplete tasks; then each task followed that is not final.
func (w *waiter) refresh(ctx context.Context) error {
	listed := map[uuid.UUID]bool{}
	if w.all {
		w.relist = false
		tasks, err := w.c.AllTasks(ctx, url.Values{"state__in": {incompleteStates}, "limit": {fmt.Sprint(apiv1.MaxLimit)}})
		if err != nil {
			return err
		}
		w.listedNone = len(tasks) == 0
		for i := range tasks {
			listed[tasks[i].ID] = true
			w.applyTask(w.track(tasks[i].ID), &tasks[i])
		}
	}
	var stale []*tracked
	for _, t := range w.order {
		if !t.final() && !listed[t.id] {
			stale = append(stale, t)
		}
	}
	got := make([]*apiv1.Task, len(stale))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, t := range stale {
		g.Go(func() error {
			task, err := w.c.Task(gctx, t.id)
			if w.all && client.IsStatus(err, http.StatusNotFound) {
				return nil // deleted once final: nothing to wait for
			}
			if err != nil {
				return fmt.Errorf("task %s: %w", t.id, err)
			}
			got[i] = task
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, t := range stale {
		if got[i] == nil {
			w.forget(t)
		} else {
			w.applyTask(t, got[i])
		}
	}
	return nil
}

// run follows the tasks until done, ctx ends (its cause is returned: with
// errTimeout at the timeout) or the server cannot be reached.
func (w *waiter) run(ctx context.Context) error {
	// Subscribe first, then read the states: no change is missed.
	f, err := w.follow(ctx)
	if err != nil {
		return err
	}
	defer func() { f.close() }()
	if err := w.refresh(ctx); err != nil {
		return err
	}
	recheck := time.NewTicker(recheckEvery)
	defer recheck.Stop()
	relist := time.NewTimer(time.Hour)
	defer relist.Stop()
	for !w.done() {
		if w.all && w.relist {
			// List again soon after tasks end, at once when none is left.
			if w.relistAt.IsZero() {
				w.relistAt = time.Now().Add(relistAfter)
			}
			if w.open == 0 {
				w.relistAt = time.Now()
			}
			relist.Reset(time.Until(w.relistAt))
		}
		select {
		case ev := <-f.events:
			w.applyEvent(ev)
			continue
		case err := <-f.errc:
			if ctx.Err() != nil {
				return context.Cause(ctx)
			}
			f.close()
			next, err := w.reconnect(ctx, err)
			if err != nil {
				return err
			}
			f = next
		case <-recheck.C:
		case <-relist.C:
			if !w.relist {
				continue
			}
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		w.relistAt = time.Time{}
		if err := w.refresh(ctx); err != nil {
			return err
		}
	}
	return nil
}

// reconnect subscribes again after the stream broke, for a while.
func (w *waiter) reconnect(ctx context.Context, cause error) (*feed, error) {
	deadline := time.Now().Add(reconnectFor)
	for {
		f, err := w.follow(ctx)
		if err == nil {
			return f, nil
		}
		if ctx.Err() != nil {
			return nil, context.Cause(ctx)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("the event stream ended (%v) and subscribing again failed: %w", cause, err)
		}
		select {
		case <-time.After(time.Second):
		case <-ctx.Done():
			return nil, context.Cause(ctx)
		}
	}
}

// feed reads an event stream in its own goroutine.
type feed struct {
	s      *client.EventStream
	events chan apiv1.TaskEvent
	errc   chan error
	stop   chan struct{}
}

func (w *waiter) follow(ctx context.Context) (*feed, error) {
	s, err := w.subscribe(ctx)
	if err != nil {
		return nil, err
	}
	f := &feed{s: s, events: make(chan apiv1.TaskEvent), errc: make(chan error, 1), stop: make(chan struct{})}
	go func() {
		for {
			ev, err := s.Next()
			if err != nil {
				f.errc <- err
				return
			}
			select {
			case f.events <- ev:
			case <-f.stop:
				return
			}
		}
	}()
	return f, nil
}

func (f *feed) close() {
	select {
	case <-f.stop:
	default:
		close(f.stop)
		f.s.Close()
	}
}
