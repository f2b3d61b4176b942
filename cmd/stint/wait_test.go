package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
)

func TestWaitOutcomeCombinesExitCodes(t *testing.T) {
	task := func(state string) *tracked { return &tracked{id: uuid.New(), name: "n", state: state} }
	why := func(*tracked) string { return ": error: boom" }
	cases := []struct {
		states []string
		code   int
		reason string
	}{
		{[]string{"completed", "completed"}, 0, ""},
		{nil, 0, ""},
		{[]string{"failed"}, 4, "failed: error: boom"},
		{[]string{"running"}, 8, "running, still incomplete at the 1s timeout"},
		{[]string{"canceled"}, 16, ") canceled"},
		{[]string{"completed", "failed", "waiting"}, 12, "of 3 tasks: 1 completed, 1 failed, 1 incomplete at the 1s timeout; first failure: "},
		{[]string{"skipped", "dropped", "canceled"}, 16, "1 skipped, 1 dropped, 1 canceled"},
		{[]string{"failed", "canceling", "dropped", "failed"}, 28, "2 failed, 1 incomplete"},
		{[]string{"", "completed"}, 8, "1 incomplete"}, // never read before the timeout
	}
	for _, tc := range cases {
		var tasks []*tracked
		for _, s := range tc.states {
			tasks = append(tasks, task(s))
		}
		err := waitOutcome(tasks, time.Second, why)
		if tc.code == 0 {
			if err != nil {
				t.Errorf("%v: %v", tc.states, err)
			}
			continue
		}
		if err == nil || exitCode(err) != tc.code || !strings.Contains(err.Error(), tc.reason) || strings.Contains(err.Error(), "\n") {
			t.Errorf("%v: exit %d, %v; want %d and %q", tc.states, exitCode(err), err, tc.code, tc.reason)
		}
	}
}

// recordView records what a waiter shows.
type recordView struct{ lines []string }

func (v *recordView) show(t *tracked, changed bool) {
	v.lines = append(v.lines, t.state+map[bool]string{true: " changed", false: ""}[changed])
}
func (v *recordView) end([]*tracked, bool) {}

func TestWaiterApply(t *testing.T) {
	id := uuid.New()
	view := &recordView{}
	w := newWaiter(nil, view, []uuid.UUID{id}, idsScope{})
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
	w := newWaiter(nil, &recordView{}, nil, &allScope{listedNone: true})
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

func TestPlainView(t *testing.T) {
	var out bytes.Buffer
	v := plainView{&out}
	a := &tracked{id: uuid.MustParse("01900000-0000-7000-8000-000000000001"), name: "stint.sleep", state: "running"}
	b := &tracked{id: uuid.MustParse("01900000-0000-7000-8000-000000000002"), name: "stint.noop", state: "completed"}
	v.show(a, true)
	v.show(a, false) // progress only
	v.show(b, true)
	v.end([]*tracked{a, b}, true)
	want := "01900000-0000-7000-8000-000000000001 stint.sleep running\n" +
		"01900000-0000-7000-8000-000000000002 stint.noop completed\n" +
		"01900000-0000-7000-8000-000000000001 stint.sleep running (timeout)\n"
	if out.String() != want {
		t.Fatalf("got\n%s", out.String())
	}
}

func TestBarProgress(t *testing.T) {
	ten := int64(10)
	total, done, msg := barProgress([]apiv1.ProgressReport{{Message: "a"}, {Message: "b", Total: &ten, Done: 12}})
	if total != 10 || done != 10 || msg != "b" {
		t.Fatalf("%d %d %q", total, done, msg)
	}
	if total, _, msg := barProgress([]apiv1.ProgressReport{{Message: "a", Done: 3}}); total != 0 || msg != "a" {
		t.Fatalf("no total: %d %q", total, msg)
	}
}

func TestListQuery(t *testing.T) {
	now := time.Date(2026, 1, 2, 15, 0, 0, 0, time.UTC)
	lf := listFlags{states: []string{"waiting", "running"}, nameContains: "sync", limit: 100, offset: 5,
		parent: apiv1.TaskHref(uuid.MustParse("01900000-0000-7000-8000-000000000001"))}
	lf.times[0] = "90m"
	lf.times[5] = "2026-01-01T00:00:00Z"
	q, err := lf.query(now)
	if err != nil {
		t.Fatal(err)
	}
	want := "created_at__gte=2026-01-02T13%3A30%3A00.000000Z&finished_at__lte=2026-01-01T00%3A00%3A00.000000Z&limit=100&name__contains=sync&offset=5&parent_task=01900000-0000-7000-8000-000000000001&state__in=waiting%2Crunning"
	if q.Encode() != want {
		t.Fatalf("got  %s\nwant %s", q.Encode(), want)
	}
	lf = listFlags{states: []string{"failed"}, limit: 1}
	if q, _ := lf.query(now); q.Get("state") != "failed" || q.Has("state__in") {
		t.Fatalf("one state: %v", q)
	}
}

func TestDispatchBody(t *testing.T) {
	body, err := dispatchBody("stint.sleep", `{"seconds": 1}`, []string{"a,b"}, nil, []string{"x=1.2"})
	if err != nil || string(body.Args) != `{"seconds": 1}` || body.ExclusiveResources[0] != "a,b" || body.Versions["x"] != "1.2" {
		t.Fatalf("%+v %v", body, err)
	}
	for _, bad := range []string{`{`, `1 2`, `{"a": 1} x`} {
		if _, err := dispatchBody("n", bad, nil, nil, nil); err == nil || !strings.HasPrefix(err.Error(), "--args") {
			t.Errorf("args %q: %v", bad, err)
		}
	}
	if _, err := dispatchBody("n", "", nil, nil, []string{"x=1", "x=2"}); err == nil {
		t.Error("a component given twice was taken")
	}
}
