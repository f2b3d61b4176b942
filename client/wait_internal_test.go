package client

import (
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
)

// recordView records what a wait shows.
type recordView struct{ lines []string }

func (v *recordView) opts() WaitOptions {
	return WaitOptions{OnChange: func(t *WaitedTask, changed bool) {
		v.lines = append(v.lines, t.State+map[bool]string{true: " changed", false: ""}[changed])
	}}
}

func TestWaiterApply(t *testing.T) {
	id := uuid.New()
	view := &recordView{}
	w := newWaiter(nil, view.opts(), []uuid.UUID{id}, idsScope{})
	t0 := time.Now()
	ev := func(state string, at time.Time) apiv1.TaskEvent {
		return apiv1.TaskEvent{ID: id, Name: "n", State: state, UpdatedAt: apiv1.Time{Time: at}}
	}
	w.applyEvent(ev("running", t0))
	w.applyEvent(ev("waiting", t0.Add(-time.Second))) // older: ignored
	w.applyEvent(ev("running", t0.Add(time.Millisecond)))
	if w.done() {
		t.Fatal("done while running")
	}
	w.applyEvent(ev("completed", t0.Add(2*time.Millisecond)))
	w.applyEvent(ev("failed", t0.Add(3*time.Millisecond)))          // final is final
	w.applyEvent(apiv1.TaskEvent{ID: uuid.New(), State: "waiting"}) // not followed
	if got := strings.Join(view.lines, ","); got != "running changed,running,completed changed" {
		t.Fatalf("shown %q", got)
	}
	if !w.done() || w.open != 0 || len(w.order) != 1 {
		t.Fatalf("done %v, open %d, %d tasks", w.done(), w.open, len(w.order))
	}
}

func TestWaiterAllAddsTasksAndNeedsAnEmptyList(t *testing.T) {
	w := newWaiter(nil, WaitOptions{}, nil, &allScope{listedNone: true})
	if !w.done() {
		t.Fatal("an empty list is not done")
	}
	a := uuid.New()
	w.applyEvent(apiv1.TaskEvent{ID: uuid.New(), State: "completed"}) // ended before: ignored
	w.applyEvent(apiv1.TaskEvent{ID: a, State: "waiting"})
	if w.done() || len(w.order) != 1 {
		t.Fatalf("a new task: done %v, %d tasks", w.done(), len(w.order))
	}
	w.applyEvent(apiv1.TaskEvent{ID: a, State: "completed"})
	if w.done() || !w.ended {
		t.Fatal("done before listing again")
	}
}

// TestGroupScopeFollowsTheGroup checks, without a server, that events
// bring new tasks of the group only, and that the group is done only once
// sealed.
func TestGroupScopeFollowsTheGroup(t *testing.T) {
	id := uuid.New()
	href := apiv1.TaskGroupHref(id)
	other := apiv1.TaskGroupHref(uuid.New())
	scope := &groupScope{id: id}
	w := newWaiter(nil, WaitOptions{}, nil, scope)
	a, b := uuid.New(), uuid.New()
	w.applyEvent(apiv1.TaskEvent{ID: a, Name: "n", State: "running", TaskGroup: &href})
	w.applyEvent(apiv1.TaskEvent{ID: uuid.New(), Name: "n", State: "running", TaskGroup: &other}) // another group
	w.applyEvent(apiv1.TaskEvent{ID: uuid.New(), Name: "n", State: "running"})                    // no group
	if len(w.order) != 1 || w.open != 1 {
		t.Fatalf("%d tasks, %d open", len(w.order), w.open)
	}
	if _, ok := scope.reread(w); ok {
		t.Fatal("a reread asked for while a task runs")
	}
	w.applyEvent(apiv1.TaskEvent{ID: a, Name: "n", State: "completed", UpdatedAt: apiv1.Time{Time: time.Now()}})
	if w.done() {
		t.Fatal("done while not sealed")
	}
	if after, ok := scope.reread(w); !ok || after != 0 {
		t.Fatalf("unsealed once its last task ended: reread after %s, %v; want at once", after, ok)
	}
	w.ended = false
	if after, ok := scope.reread(w); !ok || after != sealPollEvery {
		t.Fatalf("unsealed with nothing to run: reread after %s, %v; want %s", after, ok, sealPollEvery)
	}
	scope.sealed = true
	if !w.done() {
		t.Fatal("not done once sealed with every task final")
	}
	// A task that ended before it was seen still counts (skipped here).
	w.applyEvent(apiv1.TaskEvent{ID: b, Name: "n", State: "skipped", TaskGroup: &href})
	if !w.done() || len(w.order) != 2 {
		t.Fatalf("done %v, %d tasks", w.done(), len(w.order))
	}
	if w.order[0].State != "completed" || w.order[1].State != "skipped" {
		t.Errorf("states %s, %s", w.order[0].State, w.order[1].State)
	}
}
