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

// waiter follows tasks until they are final: the ids given, and those its
// scope brings. It keeps the tasks, the event stream and the loop, so that
// each way of waiting only says what it covers.
type waiter struct {
	c     *client.Client
	view  waitView
	scope waitScope
	tasks map[uuid.UUID]*tracked
	order []*tracked
	open  int  // tracked tasks not final
	ended bool // a task ended since the last refresh
}

// waitScope is what a wait follows beyond the ids given to it: nothing
// (idsScope), every incomplete task (allScope) or a task group
// (groupScope).
type waitScope interface {
	// subscribe opens the event stream the wait needs.
	subscribe(ctx context.Context, w *waiter) (*client.EventStream, error)
	// adopts reports whether the event of a task not followed brings a
	// task to follow.
	adopts(ev apiv1.TaskEvent) bool
	// refresh reads what the scope covers now, and the states of the
	// tasks followed with w.readTasks.
	refresh(ctx context.Context, w *waiter) error
	// done reports whether the wait is over once every task followed is
	// final.
	done(w *waiter) bool
	// reread reports whether to refresh before the next recheck, and
	// after how long (0: at once), for what no event tells.
	reread(w *waiter) (after time.Duration, ok bool)
}

func newWaiter(c *client.Client, view waitView, ids []uuid.UUID, scope waitScope) *waiter {
	w := &waiter{c: c, view: view, scope: scope, tasks: map[uuid.UUID]*tracked{}}
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
		w.ended = true
	}
	w.view.show(t, changed)
}

func (w *waiter) applyTask(t *tracked, task *apiv1.Task) {
	w.apply(t, task.Name, task.State, task.UpdatedAt.Time, task.ProgressReports)
}

func (w *waiter) applyEvent(ev apiv1.TaskEvent) {
	t, ok := w.tasks[ev.ID]
	if !ok {
		if !w.scope.adopts(ev) {
			return
		}
		t = w.track(ev.ID)
	}
	w.apply(t, ev.Name, ev.State, ev.UpdatedAt.Time, ev.ProgressReports)
}

// done reports whether the wait is over: every task followed is final and
// the scope has nothing more to wait for.
func (w *waiter) done() bool { return w.open == 0 && w.scope.done(w) }

// refresh reads the current state of what the wait follows.
func (w *waiter) refresh(ctx context.Context) error {
	w.ended = false
	return w.scope.refresh(ctx, w)
}

// readTasks applies the states of the tasks a scope listed, following
// those not followed yet, then reads each task followed that is neither
// final nor listed. Such a task that no longer exists is an error, or,
// with forgetGone (tasks a list found, which may be deleted once final),
// forgotten.
func (w *waiter) readTasks(ctx context.Context, listed []apiv1.Task, forgetGone bool) error {
	inList := map[uuid.UUID]bool{}
	for i := range listed {
		inList[listed[i].ID] = true
		w.applyTask(w.track(listed[i].ID), &listed[i])
	}
	var stale []*tracked
	for _, t := range w.order {
		if !t.final() && !inList[t.id] {
			stale = append(stale, t)
		}
	}
	got := make([]*apiv1.Task, len(stale))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, t := range stale {
		g.Go(func() error {
			task, err := w.c.Task(gctx, t.id)
			if forgetGone && client.IsStatus(err, http.StatusNotFound) {
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

// wait runs the wait until it is done or the timeout (0 for none) and ends
// the view. It returns whether the timeout stopped it, or the error that
// did: "interrupted" when ctx ended.
func (w *waiter) wait(ctx context.Context, timeout time.Duration) (timedOut bool, err error) {
	wctx, cancel := ctx, context.CancelFunc(func() {})
	if timeout > 0 {
		wctx, cancel = context.WithTimeoutCause(ctx, timeout, errTimeout)
	}
	err = w.run(wctx)
	cancel()
	timedOut = errors.Is(err, errTimeout)
	w.view.end(w.order, timedOut)
	switch {
	case timedOut:
		return true, nil
	case err != nil && ctx.Err() != nil:
		return false, errors.New("interrupted")
	}
	return false, err
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
	reread := time.NewTimer(time.Hour)
	defer reread.Stop()
	var rereadAt time.Time // when the reread the scope asks for is due
	for !w.done() {
		var rereadC <-chan time.Time
		if after, ok := w.scope.reread(w); ok {
			if rereadAt.IsZero() || after == 0 {
				rereadAt = time.Now().Add(after)
			}
			reread.Reset(time.Until(rereadAt))
			rereadC = reread.C
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
		case <-f.resync: // changes may have been lost: read the states again
		case <-recheck.C:
		case <-rereadC:
		case <-ctx.Done():
			return context.Cause(ctx)
		}
		rereadAt = time.Time{}
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
	resync chan struct{} // the server said that changes may have been lost
	errc   chan error
	stop   chan struct{}
}

// follow subscribes to the events of the wait's scope and reads them in a
// goroutine.
func (w *waiter) follow(ctx context.Context) (*feed, error) {
	s, err := w.scope.subscribe(ctx, w)
	if err != nil {
		return nil, err
	}
	f := &feed{s: s, events: make(chan apiv1.TaskEvent), resync: make(chan struct{}, 1), errc: make(chan error, 1), stop: make(chan struct{})}
	go func() {
		for {
			ev, err := s.Next()
			if errors.Is(err, client.ErrResync) {
				select {
				case f.resync <- struct{}{}:
				default: // one is pending already
				}
				continue
			}
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

// idsScope follows the tasks given and no other.
type idsScope struct{}

// subscribe names the tasks, unless there are too many to name.
func (idsScope) subscribe(ctx context.Context, w *waiter) (*client.EventStream, error) {
	var ids []uuid.UUID
	if len(w.order) <= maxFilteredTasks {
		for _, t := range w.order {
			ids = append(ids, t.id)
		}
	}
	return w.c.Events(ctx, ids, nil)
}

func (idsScope) adopts(apiv1.TaskEvent) bool { return false }

// refresh reads each task: one given must exist.
func (idsScope) refresh(ctx context.Context, w *waiter) error { return w.readTasks(ctx, nil, false) }

func (idsScope) done(*waiter) bool { return true }

func (idsScope) reread(*waiter) (time.Duration, bool) { return 0, false }

// allScope follows every task that is incomplete, or becomes so before
// the others end: the wait is over once a list finds none.
type allScope struct {
	listedNone bool // the last list found no incomplete task
}

func (*allScope) subscribe(ctx context.Context, w *waiter) (*client.EventStream, error) {
	return w.c.Events(ctx, nil, nil)
}

// adopts takes a task that appeared during the wait, unless it has
// already ended.
func (s *allScope) adopts(ev apiv1.TaskEvent) bool {
	if apiv1.FinalState(ev.State) {
		return false
	}
	s.listedNone = false
	return true
}

func (s *allScope) refresh(ctx context.Context, w *waiter) error {
	tasks, err := w.c.AllTasks(ctx, url.Values{"state__in": {incompleteStates}, "limit": {fmt.Sprint(apiv1.MaxLimit)}})
	if err != nil {
		return err
	}
	s.listedNone = len(tasks) == 0
	return w.readTasks(ctx, tasks, true)
}

// done asks for a list with no incomplete task since the last task ended:
// others may have been dispatched meanwhile.
func (s *allScope) done(w *waiter) bool { return s.listedNone && !w.ended }

// reread lists again soon after tasks end (coalescing the lists their
// events would ask for), at once when none is left.
func (*allScope) reread(w *waiter) (time.Duration, bool) {
	switch {
	case !w.ended:
		return 0, false
	case w.open == 0:
		return 0, true
	}
	return relistAfter, true
}
