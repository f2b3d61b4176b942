package main

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
)

func TestWaitOutcomeCombinesExitCodes(t *testing.T) {
	task := func(state string) *client.WaitedTask {
		return &client.WaitedTask{ID: uuid.New(), Name: "n", State: state}
	}
	why := func(*client.WaitedTask) string { return ": error: boom" }
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
		var tasks []*client.WaitedTask
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

func TestPlainView(t *testing.T) {
	var out bytes.Buffer
	v := plainView{&out}
	a := &client.WaitedTask{ID: uuid.MustParse("01900000-0000-7000-8000-000000000001"), Name: "stint.sleep", State: "running"}
	b := &client.WaitedTask{ID: uuid.MustParse("01900000-0000-7000-8000-000000000002"), Name: "stint.noop", State: "completed"}
	v.show(a, true)
	v.show(a, false) // progress only
	v.show(b, true)
	v.end([]*client.WaitedTask{a, b}, true)
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
