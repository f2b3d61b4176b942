package client

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"time"

	"github.com/google/uuid"
	"golang.org/x/sync/errgroup"

	"github.com/stint-dev/stint/apiv1"
)

// Tunables of the waits (variables, for tests).
var (
	// recheckEvery re-reads the states of the tasks wait follows, a safety
	// net should an event be lost.
	recheckEvery = 10 * time.Second
	// relistAfter coalesces the re-lists of WaitForAll that final events
	// trigger.
	relistAfter = 250 * time.Millisecond
	// reconnectFor is how long wait tries to subscribe again when the
	// event stream breaks.
	reconnectFor = 15 * time.Second
)

// maxFilteredTasks is the most tasks wait names in its subscription; with
// more it subscribes to every event and picks its own.
const maxFilteredTasks = 50

// incompleteStates are the states WaitForAll waits out.
const incompleteStates = "scheduled,waiting,running,canceling"

// WaitedTask is what a wait knows of one task it follows, from the task's
// events and reads.
type WaitedTask struct {
	ID              uuid.UUID
	Name            string
	State           string // "" until read
	UpdatedAt       time.Time
	ProgressReports []apiv1.ProgressReport
}

// Final reports whether the task's state is final.
func (t *WaitedTask) Final() bool { return apiv1.FinalState(t.State) }

// WaitOptions are what a wait tells as it goes. Both callbacks are called
// from the goroutine that waits.
type WaitOptions struct {
	// OnChange is called after every change of a task followed: its first
	// state, a new state (stateChanged), new progress.
	OnChange func(t *WaitedTask, stateChanged bool)
	// OnUnsealed is called once, by WaitForTaskGroup, when the group is
	// first read not sealed: the wait goes on until it is.
	OnUnsealed func()
}

// WaitForTasks follows the tasks ids until each is final, and returns them
// in the order given, as last known. It subscribes to their events first
// and then reads them, so that no change is missed; it reads them again
// when the server says that events may have been lost and every
// recheckEvery as a safety net, and subscribes again, for a while, when
// the stream breaks. It returns early, with the tasks as they stand, when
// ctx ends (with context.Cause(ctx)), when a task does not exist, or when
// the server cannot be reached.
func (c *Client) WaitForTasks(ctx context.Context, ids []uuid.UUID, opts WaitOptions) ([]*WaitedTask, error) {
	w := newWaiter(c, opts, ids, idsScope{})
	err := w.run(ctx)
	return w.order, err
}

// WaitForAll follows every incomplete task, and those dispatched while it
// waits, until a list of the incomplete tasks finds none; as
// WaitForTasks, it returns every task it followed, in the order it found
// them. A task deleted once final is forgotten.
func (c *Client) WaitForAll(ctx context.Context, opts WaitOptions) ([]*WaitedTask, error) {
	w := newWaiter(c, opts, nil, &allScope{})
	err := w.run(ctx)
	return w.order, err
}

// WaitForTaskGroup follows a task group until it is done: sealed, and each
// of its tasks final, those dispatched into it meanwhile included. It
// returns the group's tasks as WaitForTasks does, and whether the group
// was sealed when last read (false when ctx ended first, for instance).
func (c *Client) WaitForTaskGroup(ctx context.Context, id uuid.UUID, opts WaitOptions) (tasks []*WaitedTask, sealed bool, err error) {
	scope := &groupScope{id: id, unsealed: opts.OnUnsealed}
	w := newWaiter(c, opts, nil, scope)
	err = w.run(ctx)
	return w.order, scope.sealed, err
}

// waiter follows tasks until they are final: the ids given, and those its
// scope brings. It keeps the tasks, the event stream and the loop, so that
// each way of waiting only says what it covers.
type waiter struct {
	c        *Client
	onChange func(t *WaitedTask, stateChanged bool)
	scope    waitScope
	tasks    map[uuid.UUID]*WaitedTask
	order    []*WaitedTask
	open     int  // tracked tasks not final
	ended    bool // a task ended since the last refresh
}

// waitScope is what a wait follows beyond the ids given to it: nothing
// (idsScope), every incomplete task (allScope) or a task group
// (groupScope).
type waitScope interface {
	// subscribe opens the event stream the wait needs.
	subscribe(ctx context.Context, w *waiter) (*EventStream, error)
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

func newWaiter(c *Client, opts WaitOptions, ids []uuid.UUID, scope waitScope) *waiter {
	w := &waiter{c: c, onChange: opts.OnChange, scope: scope, tasks: map[uuid.UUID]*WaitedTask{}}
	for _, id := range ids {
		w.track(id)
	}
	return w
}

// track starts following a task.
func (w *waiter) track(id uuid.UUID) *WaitedTask {
	if t, ok := w.tasks[id]; ok {
		return t
	}
	t := &WaitedTask{ID: id}
	w.tasks[id] = t
	w.order = append(w.order, t)
	w.open++
	return t
}

// forget stops following a task that no longer exists.
func (w *waiter) forget(t *WaitedTask) {
	delete(w.tasks, t.ID)
	for i, o := range w.order {
		if o == t {
			w.order = append(w.order[:i], w.order[i+1:]...)
			break
		}
	}
	if !t.Final() {
		w.open--
	}
}

// apply records a task's state; it ignores what is older than what is
// known, and any change of a final task.
func (w *waiter) apply(t *WaitedTask, name, state string, updated time.Time, progress []apiv1.ProgressReport) {
	if t.Final() || (t.State != "" && updated.Before(t.UpdatedAt)) {
		return
	}
	changed := state != t.State
	t.Name, t.State, t.UpdatedAt, t.ProgressReports = name, state, updated, progress
	if t.Final() {
		w.open--
		w.ended = true
	}
	if w.onChange != nil {
		w.onChange(t, changed)
	}
}

func (w *waiter) applyTask(t *WaitedTask, task *apiv1.Task) {
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
	var stale []*WaitedTask
	for _, t := range w.order {
		if !t.Final() && !inList[t.ID] {
			stale = append(stale, t)
		}
	}
	got := make([]*apiv1.Task, len(stale))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(8)
	for i, t := range stale {
		g.Go(func() error {
			task, err := w.c.Task(gctx, t.ID)
			if forgetGone && IsStatus(err, http.StatusNotFound) {
				return nil // deleted once final: nothing to wait for
			}
			if err != nil {
				return fmt.Errorf("task %s: %w", t.ID, err)
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

// run follows the tasks until done, ctx ends (its cause is returned) or
// the server cannot be reached.
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
	s      *EventStream
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
			if errors.Is(err, ErrResync) {
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
func (idsScope) subscribe(ctx context.Context, w *waiter) (*EventStream, error) {
	var ids []uuid.UUID
	if len(w.order) <= maxFilteredTasks {
		for _, t := range w.order {
			ids = append(ids, t.ID)
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

func (*allScope) subscribe(ctx context.Context, w *waiter) (*EventStream, error) {
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

// sealPollEvery is how often WaitForTaskGroup reads a group that is not sealed
// while none of its tasks is incomplete: sealing a group sends no event.
var sealPollEvery = time.Second

// groupScope follows the tasks of a task group until the group is done:
// sealed, and each of its tasks final. The group's events bring the tasks
// dispatched into it later.
type groupScope struct {
	id       uuid.UUID
	sealed   bool   // as last read
	unsealed func() // called once, when the group is first read unsealed
}

func (s *groupScope) subscribe(ctx context.Context, w *waiter) (*EventStream, error) {
	return w.c.Events(ctx, nil, []uuid.UUID{s.id})
}

// adopts takes a task of the group, even one that ended before it was
// seen: it counts in the group's outcome.
func (s *groupScope) adopts(ev apiv1.TaskEvent) bool {
	if ev.TaskGroup == nil {
		return false
	}
	id, err := apiv1.ParseTaskGroupRef(*ev.TaskGroup)
	return err == nil && id == s.id
}

// refresh reads the group, follows the tasks it lists, and, if any task
// followed is not final, reads the states of the group's tasks.
func (s *groupScope) refresh(ctx context.Context, w *waiter) error {
	doc, err := w.c.TaskGroup(ctx, s.id)
	if err != nil {
		return fmt.Errorf("task group %s: %w", s.id, err)
	}
	if doc.Tasks != nil {
		for _, href := range *doc.Tasks {
			id, err := apiv1.ParseTaskRef(href)
			if err != nil {
				return fmt.Errorf("task group %s: %w", s.id, err)
			}
			w.track(id)
		}
	}
	if !doc.AllTasksDispatched && s.unsealed != nil {
		s.unsealed()
		s.unsealed = nil
	}
	if w.open > 0 {
		tasks, err := w.c.AllTasks(ctx, url.Values{"task_group": {s.id.String()}, "limit": {strconv.Itoa(apiv1.MaxLimit)}})
		if err != nil {
			return fmt.Errorf("tasks of group %s: %w", s.id, err)
		}
		// Final tasks may be deleted: one gone is forgotten.
		if err := w.readTasks(ctx, tasks, true); err != nil {
			return err
		}
	}
	// Read before the tasks: when sealed, every task was in doc.Tasks.
	// Set only once they are read, so that a timeout meanwhile finds the
	// group as it was when fully read.
	s.sealed = doc.AllTasksDispatched
	return nil
}

// done needs the group sealed: until then tasks may still come.
func (s *groupScope) done(*waiter) bool { return s.sealed }

// reread reads an unsealed group with nothing left to run every
// sealPollEvery, to see it sealed, at once after its last task ended.
func (s *groupScope) reread(w *waiter) (time.Duration, bool) {
	switch {
	case s.sealed || w.open > 0:
		return 0, false
	case w.ended:
		return 0, true
	}
	return sealPollEvery, true
}
