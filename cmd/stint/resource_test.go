package main

import (
	"context"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/enginetest"
)

// resourceListHeader is the first line of resource list, its columns as
// wide as the widest cell.
var resourceListHeader = regexp.MustCompile(`^NAME +CAPACITY +HOLDERS +WAITING +OLDEST WAITING\n`)

// tableRow returns the fields of the row of table out whose first field is
// name, or nil.
func tableRow(out, name string) []string {
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, name+"  ") {
			return strings.Fields(strings.TrimPrefix(line, name))
		}
	}
	return nil
}

func TestResourceCommands(t *testing.T) {
	t.Parallel() // a server and a database of its own
	enginetest.Run(t, testResourceCommands)
}

func testResourceCommands(t *testing.T, eng enginetest.Engine) {
	db := eng.URL(t)
	server := startServe(t, t.TempDir(), "--db", db).url
	ctx, cancel := context.WithTimeout(context.Background(), 4*time.Minute)
	defer cancel()
	api, err := client.New(server)
	if err != nil {
		t.Fatal(err)
	}
	// ok runs a command that must succeed without a word on stderr.
	ok := func(t *testing.T, args ...string) string {
		t.Helper()
		out, stderr, code := runClient(t, server, args...)
		if code != 0 || stderr != "" {
			t.Fatalf("%v: exit %d, stdout %q, stderr %q", args, code, out, stderr)
		}
		return out
	}
	list := func(t *testing.T, args ...string) []apiv1.Resource {
		t.Helper()
		out := ok(t, append([]string{"resource", "list", "-o", "json"}, args...)...)
		return decodeJSON[[]apiv1.Resource](t, "resource list -o json", out)
	}

	t.Run("list empty", func(t *testing.T) {
		if out := ok(t, "resource", "list"); out != "NAME  CAPACITY  HOLDERS  WAITING  OLDEST WAITING\n" {
			t.Errorf("resource list: %q, want the header alone", out)
		}
		if out := ok(t, "resource", "list", "-o", "json"); strings.TrimSpace(out) != "[]" {
			t.Errorf("resource list -o json: %q, want []", out)
		}
		if got := list(t, "--busy"); len(got) != 0 {
			t.Errorf("resource list --busy: %+v", got)
		}
	})

	t.Run("set then list", func(t *testing.T) {
		for _, tc := range []struct {
			name, capacity, want string
		}{
			{"repo:1", "4", "resource repo:1: capacity 4 (0 holders, 0 waiting)\n"},
			{"repo:2", "1", "resource repo:2: capacity 1 (0 holders, 0 waiting)\n"},
			{"repo:1", "6", "resource repo:1: capacity 6 (0 holders, 0 waiting)\n"}, // set again
			{"repo:3", " 1000000", "resource repo:3: capacity 1000000 (0 holders, 0 waiting)\n"},
		} {
			if out := ok(t, "resource", "set", tc.name, "--capacity", tc.capacity); out != tc.want {
				t.Errorf("set %s --capacity %q: %q, want %q", tc.name, tc.capacity, out, tc.want)
			}
		}
		out := ok(t, "resource", "list", "--ordering", "name")
		if !resourceListHeader.MatchString(out) {
			t.Fatalf("resource list: %q", out)
		}
		for _, want := range [][]string{{"repo:1", "6", "0/6", "0", "-"}, {"repo:2", "1", "0/1", "0", "-"}} {
			if got := tableRow(out, want[0]); strings.Join(got, " ") != strings.Join(want[1:], " ") {
				t.Errorf("row %s: %q, want %q\n%s", want[0], got, want[1:], out)
			}
		}
		got := list(t, "--ordering", "-name")
		if len(got) != 3 || got[0].Name != "repo:3" || got[2].Name != "repo:1" || got[2].Capacity == nil || *got[2].Capacity != 6 ||
			got[2].Href != apiv1.ResourceHref("repo:1") || got[2].WaitingTasks != nil {
			t.Errorf("list -o json --ordering -name: %+v", got)
		}
		if got := list(t, "--name-contains", "po:2"); len(got) != 1 || got[0].Name != "repo:2" {
			t.Errorf("list --name-contains po:2: %+v", got)
		}
		if got := list(t, "--busy"); len(got) != 0 {
			t.Errorf("list --busy with only capacities: %+v", got)
		}
		out = ok(t, "resource", "set", "repo:3", "--capacity", "2", "-o", "json")
		if r := decodeJSON[apiv1.Resource](t, "set -o json", out); r.Name != "repo:3" || r.Capacity == nil || *r.Capacity != 2 {
			t.Errorf("set -o json: %+v", r)
		}
	})

	t.Run("unset", func(t *testing.T) {
		ok(t, "resource", "set", "gone:1", "--capacity", "3")
		if out := ok(t, "resource", "unset", "gone:1"); out != "resource gone:1: no capacity (0 holders, 0 waiting)\n" {
			t.Errorf("unset: %q", out)
		}
		// Nothing holds, waits for or bounds it any more: it is not listed.
		if got := list(t, "--name-contains", "gone:"); len(got) != 0 {
			t.Errorf("listed after unset: %+v", got)
		}
		out := ok(t, "resource", "show", "gone:1")
		for _, want := range []string{"Name:", "gone:1", "Capacity:", "none", "Holders:", "0", "Waiting:"} {
			if !strings.Contains(out, want) {
				t.Errorf("show after unset lacks %q:\n%s", want, out)
			}
		}
		// Unsetting a resource without a capacity is no error.
		if out := ok(t, "resource", "unset", "never:1", "-o", "json"); decodeJSON[apiv1.Resource](t, "unset -o json", out).Capacity != nil {
			t.Errorf("unset -o json: %q", out)
		}
	})

	t.Run("names with slashes and escapes round-trip", func(t *testing.T) {
		for _, name := range []string{"team/a:b", "a b/%2F?x=1#y", "/lead", "a//b", "x/..", "../y", "repo/./1", "ünï/cödé"} {
			want := "resource " + name + ": capacity 2 (0 holders, 0 waiting)\n"
			if out := ok(t, "resource", "set", name, "--capacity", "2"); out != want {
				t.Errorf("set %q: %q, want %q", name, out, want)
			}
			out := ok(t, "resource", "show", name, "-o", "json")
			r := decodeJSON[apiv1.Resource](t, "show -o json", out)
			if r.Name != name || r.Href != apiv1.ResourceHref(name) || r.Capacity == nil || *r.Capacity != 2 || r.WaitingTasks == nil {
				t.Errorf("show %q -o json: %+v", name, r)
			}
			if out := ok(t, "resource", "show", name); !strings.Contains(out, name+"\n") {
				t.Errorf("show %q:\n%s", name, out)
			}
			if got := list(t, "--name-contains", name); len(got) != 1 || got[0].Name != name {
				t.Errorf("list --name-contains %q: %+v", name, got)
			}
			if out := ok(t, "resource", "unset", name); out != "resource "+name+": no capacity (0 holders, 0 waiting)\n" {
				t.Errorf("unset %q: %q", name, out)
			}
		}
	})

	t.Run("holders and waiting tasks", func(t *testing.T) {
		ok(t, "resource", "set", "q:1", "--capacity", "2")
		var sleepers []uuid.UUID
		for range 3 {
			sleepers = append(sleepers, dispatch(t, server, "stint.sleep", "--args", `{"seconds":60}`, "--shared", "q:1"))
		}
		excl := dispatch(t, server, "stint.sleep", "--args", `{"seconds":60}`, "--exclusive", "build/7")
		defer func() {
			for _, id := range append(sleepers, excl) {
				runClient(t, server, "task", "cancel", id.String())
			}
		}()
		// Wait for the two holders, the third queued behind them.
		var r *apiv1.Resource
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			r, err = api.Resource(ctx, "q:1")
			if err != nil {
				t.Fatal(err)
			}
			if r.Holders.Count == 2 && r.Waiting == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("q:1 never had 2 holders and 1 waiting: %+v", r)
			}
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			b, err := api.Resource(ctx, "build/7")
			if err != nil {
				t.Fatal(err)
			}
			if b.Holders.Count == 1 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("build/7 never held: %+v", b)
			}
		}

		out := ok(t, "resource", "show", "q:1")
		for _, want := range []string{
			"Name:", "q:1", "Capacity:", "2", "Holders:", "2/2", "Holder tasks:", sleepers[0].String(), sleepers[1].String(),
			"Waiting:", "1", "Oldest waiting:", "(since ", "Waiting tasks:", sleepers[2].String(),
		} {
			if !strings.Contains(out, want) {
				t.Errorf("show lacks %q:\n%s", want, out)
			}
		}
		if strings.Index(out, "Waiting tasks:") > strings.Index(out, sleepers[2].String()) {
			t.Errorf("the waiting task is not listed under Waiting tasks:\n%s", out)
		}
		out = ok(t, "resource", "show", "q:1", "-o", "json")
		got := decodeJSON[apiv1.Resource](t, "show -o json", out)
		if got.Holders.Count != 2 || got.Holders.Exclusive || len(got.Holders.Tasks) != 2 || got.Waiting != 1 || got.OldestWaitingSince == nil ||
			got.WaitingTasks == nil || len(*got.WaitingTasks) != 1 || (*got.WaitingTasks)[0] != apiv1.TaskHref(sleepers[2]) {
			t.Errorf("show -o json: %+v", got)
		}

		// The default ordering puts the waited-for resource first; --busy
		// leaves out those that only have a capacity.
		out = ok(t, "resource", "list")
		lines := strings.Split(strings.TrimSuffix(out, "\n"), "\n")
		if len(lines) < 3 || !resourceListHeader.MatchString(out) || !strings.HasPrefix(lines[1], "q:1  ") {
			t.Fatalf("resource list: q:1 is not first\n%s", out)
		}
		if row := tableRow(out, "q:1"); len(row) != 4 || row[0] != "2" || row[1] != "2/2" || row[2] != "1" || row[3] == "-" {
			t.Errorf("row q:1: %q\n%s", row, out)
		}
		if row := tableRow(out, "build/7"); strings.Join(row, " ") != "- 1 (exclusive) 0 -" {
			t.Errorf("row build/7: %q\n%s", row, out)
		}
		busy := list(t, "--busy")
		if len(busy) != 2 || busy[0].Name != "q:1" || busy[1].Name != "build/7" || !busy[1].Holders.Exclusive {
			t.Errorf("list --busy: %+v", busy)
		}
		if got := list(t, "--busy", "--ordering", "holders"); len(got) != 2 || got[0].Name != "build/7" {
			t.Errorf("list --busy --ordering holders: %+v", got)
		}

		// Raising the capacity lets the third start.
		if out := ok(t, "resource", "set", "q:1", "--capacity", "3"); !strings.HasPrefix(out, "resource q:1: capacity 3 (") {
			t.Errorf("set --capacity 3: %q", out)
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if r, err = api.Resource(ctx, "q:1"); err != nil {
				t.Fatal(err)
			}
			if r.Holders.Count == 3 && r.Waiting == 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("q:1 after raising its capacity: %+v", r)
			}
		}
		if out := ok(t, "resource", "unset", "q:1"); out != "resource q:1: no capacity (3 holders, 0 waiting)\n" {
			t.Errorf("unset with holders: %q", out)
		}
		if out := ok(t, "resource", "show", "q:1"); !strings.Contains(out, "Holders:") || tableRow(out, "Holders:") == nil ||
			tableRow(out, "Holders:")[0] != "3" || strings.Contains(out, "Oldest waiting:") {
			t.Errorf("show after unset:\n%s", out)
		}
	})

	t.Run("bad input gives one line and a non-zero exit", func(t *testing.T) {
		for _, tc := range []struct {
			args []string
			want string
		}{
			{[]string{"resource", "set", "repo:1", "--capacity", "0"}, `--capacity "0": must be a whole number from 1 to 1000000`},
			{[]string{"resource", "set", "repo:1", "--capacity", "-1"}, `--capacity "-1"`},
			{[]string{"resource", "set", "repo:1", "--capacity", "x"}, `--capacity "x"`},
			{[]string{"resource", "set", "repo:1"}, "--capacity is required"},
			{[]string{"resource", "show", "bad\u202ename"}, "400 Bad Request: name"},
			{[]string{"resource", "set", "bad\tname", "--capacity", "1"}, "400 Bad Request: name"},
			{[]string{"resource", "show"}, "give one resource name"},
		} {
			_, stderr, code := runClient(t, server, tc.args...)
			if code != 1 {
				t.Errorf("%q: exit %d", tc.args, code)
			}
			oneErrorLine(t, strings.Join(tc.args, " "), stderr, tc.want)
		}
	})

	// Last: the first user ends the open mode of the server.
	t.Run("only admins set capacities", func(t *testing.T) {
		out, stderr, code := run(t, "user", "add", "bob", "--db", db)
		token := strings.TrimSpace(out)
		if code != 0 || !strings.HasPrefix(token, "stint_") {
			t.Fatalf("user add bob: exit %d, %q %q", code, out, stderr)
		}
		for _, args := range [][]string{{"resource", "set", "repo:1", "--capacity", "9"}, {"resource", "unset", "repo:1"}} {
			_, stderr, code := runClient(t, server, append(args, "--token", token)...)
			if code != 1 {
				t.Errorf("%v as a user: exit %d", args, code)
			}
			oneErrorLine(t, strings.Join(args, " ")+" as a user", stderr, "403 Forbidden: only admins may set capacities")
		}
		out, stderr, code = runClient(t, server, "resource", "show", "repo:1", "--token", token)
		if code != 0 || stderr != "" || tableRow(out, "Capacity:") == nil || tableRow(out, "Capacity:")[0] != "6" {
			t.Errorf("show as a user: exit %d, stderr %q\n%s", code, stderr, out)
		}
	})
}

// TestResourceCommandsWithoutServer checks that bad flags are refused
// before any request: no server answers at the address given, so an error
// that names the flag was not a request.
func TestResourceCommandsWithoutServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := "http://" + l.Addr().String()
	l.Close()
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"resource", "set", "repo:1", "--capacity", "0"}, `--capacity "0": must be a whole number from 1 to 1000000`},
		{[]string{"resource", "set", "repo:1", "--capacity", "-1"}, `--capacity "-1": must be a whole number`},
		{[]string{"resource", "set", "repo:1", "--capacity=-5"}, `--capacity "-5"`},
		{[]string{"resource", "set", "repo:1", "--capacity", "x"}, `--capacity "x": must be a whole number`},
		{[]string{"resource", "set", "repo:1", "--capacity", "2.5"}, `--capacity "2.5"`},
		{[]string{"resource", "set", "repo:1", "--capacity", ""}, `--capacity ""`},
		{[]string{"resource", "set", "repo:1", "--capacity", "1000001"}, `--capacity "1000001"`},
		{[]string{"resource", "set", "repo:1"}, "--capacity is required"},
		{[]string{"resource", "set", "", "--capacity", "1"}, "resource name: is empty"},
		{[]string{"resource", "set", "--capacity", "1"}, "0 arguments: give one resource name"},
		{[]string{"resource", "show", "a", "b"}, "2 arguments: give one resource name"},
		{[]string{"resource", "unset"}, "give one resource name"},
		{[]string{"resource", "list", "--ordering", "capacity"}, `--ordering "capacity": not an ordering`},
		{[]string{"resource", "list", "-o", "yaml"}, `--output "yaml"`},
		{[]string{"resource", "list", "x"}, `unknown command "x" for "stint resource list"`},
		{[]string{"resource", "show", "repo/"}, `resource name "repo/": ends with "/"`},
		{[]string{"resource", "set", "a/b/", "--capacity", "1"}, `resource name "a/b/": ends with "/"`},
		{[]string{"resource", "unset", "/"}, `resource name "/": ends with "/"`},
		{[]string{"resource", "show", "."}, `resource name ".": a dot segment`},
		{[]string{"resource", "unset", ".."}, `resource name "..": a dot segment`},
		{[]string{"resource", "list"}, "cannot reach the Stint server at " + server},
		{[]string{"resource", "set", "repo:1", "--capacity", "3"}, "cannot reach the Stint server at " + server},
	} {
		_, stderr, code := runClient(t, server, tc.args...)
		if code != 1 {
			t.Errorf("%q: exit %d", tc.args, code)
		}
		oneErrorLine(t, strings.Join(tc.args, " "), stderr, tc.want)
	}
	_, stderr, code := run(t, "resource", "nope")
	if code != 1 {
		t.Errorf("resource nope: exit %d", code)
	}
	oneErrorLine(t, "resource nope", stderr, `unknown command "nope" for "stint resource"`)
}

// TestResourceText checks the cells and lines the resource commands print.
func TestResourceText(t *testing.T) {
	four := 4
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	ago := func(d time.Duration) *apiv1.Time { return &apiv1.Time{Time: now.Add(-d)} }
	for _, tc := range []struct {
		r             apiv1.Resource
		holders, line string
	}{
		{apiv1.Resource{Name: "repo:1"}, "0", "resource repo:1: no capacity (0 holders, 0 waiting)"},
		{apiv1.Resource{Name: "repo:1", Capacity: &four, Holders: apiv1.ResourceHolders{Count: 2}, Waiting: 5},
			"2/4", "resource repo:1: capacity 4 (2 holders, 5 waiting)"},
		{apiv1.Resource{Name: "a/b", Holders: apiv1.ResourceHolders{Count: 1, Exclusive: true}, Waiting: 1},
			"1 (exclusive)", "resource a/b: no capacity (1 holder, 1 waiting)"},
		{apiv1.Resource{Name: "x", Capacity: &four, Holders: apiv1.ResourceHolders{Count: 1, Exclusive: true}},
			"1/4 (exclusive)", "resource x: capacity 4 (1 holder, 0 waiting)"},
		{apiv1.Resource{Name: "bad\u202ename"}, "0", `resource bad\u202ename: no capacity (0 holders, 0 waiting)`},
	} {
		if got := holdersText(&tc.r); got != tc.holders {
			t.Errorf("holdersText(%+v) = %q, want %q", tc.r, got, tc.holders)
		}
		if got := resourceLine(&tc.r); got != tc.line {
			t.Errorf("resourceLine(%+v) = %q, want %q", tc.r, got, tc.line)
		}
	}
	for _, tc := range []struct {
		since *apiv1.Time
		want  string
	}{
		{nil, "-"},
		{&apiv1.Time{}, "-"},
		{ago(90 * time.Second), "1m30s"},
		{ago(1234 * time.Millisecond), "1.23s"},
		{ago(-time.Second), "0s"}, // the server's clock ahead of ours
	} {
		if got := waitingAgeText(tc.since, now); got != tc.want {
			t.Errorf("waitingAgeText(%v) = %q, want %q", tc.since, got, tc.want)
		}
	}
	for _, tc := range []struct {
		in   string
		want int
	}{{"1", 1}, {"4", 4}, {" 12 ", 12}, {"1000000", 1000000}} {
		if got, err := parseCapacity(tc.in); err != nil || got != tc.want {
			t.Errorf("parseCapacity(%q) = %d, %v", tc.in, got, err)
		}
	}
	for _, bad := range []string{"", "0", "-1", "x", "1e3", "2.5", "1000001", "0x10"} {
		if _, err := parseCapacity(bad); err == nil || !strings.Contains(err.Error(), "--capacity") {
			t.Errorf("parseCapacity(%q): %v", bad, err)
		}
	}
}
