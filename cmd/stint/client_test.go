package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/stint-dev/stint/apiv1"
	"github.com/stint-dev/stint/client"
	"github.com/stint-dev/stint/internal/enginetest"
)

// runClient runs a client command of the binary against server, bounded in
// time, and returns its stdout, stderr and exit code.
func runClient(t *testing.T, server string, args ...string) (stdout, stderr string, code int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, append(args, "--server", server)...)
	// A -race binary sleeps 1 s at exit unless told not to.
	cmd.Env = append(os.Environ(), "STINT_DB=", "STINT_SERVER=", "STINT_TOKEN=",
		strings.TrimSpace("GORACE="+os.Getenv("GORACE")+" atexit_sleep_ms=0"))
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("stint %v did not end within 60s: %s %s", args, out.String(), errOut.String())
	}
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		code = exit.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return out.String(), errOut.String(), code
}

// oneErrorLine checks that stderr is one "stint: ..." line containing want.
func oneErrorLine(t *testing.T, what, stderr, want string) {
	t.Helper()
	lines := strings.Split(strings.TrimRight(stderr, "\n"), "\n")
	if len(lines) != 1 || !strings.HasPrefix(lines[0], "stint: ") || !strings.Contains(lines[0], want) {
		t.Errorf("%s: stderr %q; want one line containing %q", what, stderr, want)
	}
}

// dispatch dispatches a task with the CLI and returns its id.
func dispatch(t *testing.T, server string, args ...string) uuid.UUID {
	t.Helper()
	out, stderr, code := runClient(t, server, append([]string{"task", "dispatch"}, args...)...)
	if code != 0 {
		t.Fatalf("dispatch %v: exit %d: %s", args, code, stderr)
	}
	id, err := uuid.Parse(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("dispatch printed %q", out)
	}
	return id
}

func decodeJSON[T any](t *testing.T, what, out string) T {
	t.Helper()
	var v T
	dec := json.NewDecoder(strings.NewReader(out))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&v); err != nil {
		t.Fatalf("%s: %v in %q", what, err, out)
	}
	return v
}

func TestClientCommands(t *testing.T) {
	t.Parallel() // a server and a database of its own
	enginetest.Run(t, testClientCommands)
}

func testClientCommands(t *testing.T, eng enginetest.Engine) {
	server := startServe(t, t.TempDir(), "--db", eng.URL(t)).url
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	api, err := client.New(server)
	if err != nil {
		t.Fatal(err)
	}

	t.Run("dispatch --wait completes", func(t *testing.T) {
		out, stderr, code := runClient(t, server, "task", "dispatch", "stint.sleep", "--args", `{"seconds":0.3}`, "--wait")
		lines := strings.Split(strings.TrimSpace(out), "\n")
		id := lines[0]
		if code != 0 || stderr != "" || len(lines) < 2 || lines[len(lines)-1] != id+" stint.sleep completed" {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		for _, l := range lines[1:] {
			if f := strings.Fields(l); len(f) != 3 || f[0] != id || f[1] != "stint.sleep" {
				t.Errorf("line %q is not <id> <name> <state>", l)
			}
		}
	})

	t.Run("dispatch --wait of a failing task exits 4", func(t *testing.T) {
		out, stderr, code := runClient(t, server, "task", "dispatch", "stint.sleep", "--args", `{"seconds":0.1,"fail":true}`, "--wait")
		if code != 4 || !strings.HasSuffix(strings.TrimSpace(out), " stint.sleep failed") {
			t.Fatalf("exit %d, stdout %q", code, out)
		}
		oneErrorLine(t, "failed", stderr, "failed as asked")
	})

	var slow uuid.UUID
	t.Run("wait --timeout on a long task exits 8", func(t *testing.T) {
		slow = dispatch(t, server, "stint.sleep", "--args", `{"seconds":30}`)
		start := time.Now()
		out, stderr, code := runClient(t, server, "task", "wait", slow.String(), "--timeout", "1s")
		if code != 8 || time.Since(start) > 15*time.Second {
			t.Fatalf("exit %d after %s, stdout %q", code, time.Since(start), out)
		}
		if !strings.HasSuffix(strings.TrimSpace(out), "(timeout)") {
			t.Errorf("no final timeout line: %q", out)
		}
		oneErrorLine(t, "timeout", stderr, "1s timeout")
	})

	t.Run("cancel a running task, then wait exits 16", func(t *testing.T) {
		for task, _ := api.Task(ctx, slow); task.State != "running"; task, _ = api.Task(ctx, slow) {
			time.Sleep(20 * time.Millisecond)
		}
		out, stderr, code := runClient(t, server, "task", "cancel", slow.String())
		if code != 0 || (out != slow.String()+" stint.sleep canceling\n" && out != slow.String()+" stint.sleep canceled\n") {
			t.Fatalf("cancel: exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		out, stderr, code = runClient(t, server, "task", "wait", slow.String())
		if code != 16 || !strings.HasSuffix(out, " stint.sleep canceled\n") {
			t.Fatalf("wait: exit %d, stdout %q", code, out)
		}
		oneErrorLine(t, "canceled", stderr, "canceled")
		// Canceling it again is a 409 from the server.
		_, stderr, code = runClient(t, server, "task", "cancel", slow.String())
		if code != 1 {
			t.Errorf("second cancel: exit %d", code)
		}
		oneErrorLine(t, "second cancel", stderr, "409 Conflict")
	})

	t.Run("exit codes combine", func(t *testing.T) {
		failing := dispatch(t, server, "stint.sleep", "--args", `{"seconds":0.1,"fail":true}`)
		long := dispatch(t, server, "stint.sleep", "--args", `{"seconds":30}`)
		done := dispatch(t, server, "stint.noop")
		out, stderr, code := runClient(t, server, "task", "wait", failing.String(), long.String(), done.String(), "--timeout", "3s")
		if code != 4|8 {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		oneErrorLine(t, "combined", stderr, "of 3 tasks")
		if _, err := api.CancelTask(ctx, long); err != nil {
			t.Fatal(err)
		}
		if _, _, code := runClient(t, server, "task", "wait", long.String()); code != 16 {
			t.Fatalf("wait for the canceled task: exit %d", code)
		}
	})

	t.Run("wait all", func(t *testing.T) {
		// Tasks that run one after the other for about 1.5 s.
		var ids []uuid.UUID
		for i := range 5 {
			id, err := api.Dispatch(ctx, apiv1.DispatchTask{
				Name: "stint.sleep", Args: json.RawMessage(fmt.Sprintf(`{"seconds":0.%d}`, i+1)), ExclusiveResources: []string{"wait-all"},
			})
			if err != nil {
				t.Fatal(err)
			}
			ids = append(ids, id)
		}
		// A task dispatched while wait all runs is waited for too.
		late := make(chan uuid.UUID, 1)
		go func() {
			time.Sleep(500 * time.Millisecond)
			id, err := api.Dispatch(ctx, apiv1.DispatchTask{Name: "stint.sleep", Args: json.RawMessage(`{"seconds":1.5}`), ExclusiveResources: []string{"late"}})
			if err != nil {
				t.Error(err)
			}
			late <- id
		}()
		out, stderr, code := runClient(t, server, "task", "wait", "all")
		if code != 0 {
			t.Fatalf("exit %d, stdout %q, stderr %q", code, out, stderr)
		}
		lateID := <-late
		incomplete, err := api.AllTasks(ctx, url.Values{"state__in": {"waiting,running,canceling"}})
		if err != nil || len(incomplete) != 0 {
			t.Fatalf("after wait all: %d incomplete tasks (%v): %+v; late %s; wait printed:\n%s", len(incomplete), err, incomplete, lateID, out)
		}
		// Every task it showed has its final line; the first ones may have
		// completed before it started, but not the last of the chain (after
		// a second) nor the late one.
		for _, id := range append(ids, lateID) {
			if task, err := api.Task(ctx, id); err != nil || task.State != "completed" {
				t.Errorf("task %s: %+v %v", id, task, err)
			}
			shown := strings.Contains(out, id.String())
			if (shown || id == lateID || id == ids[len(ids)-1]) && !strings.Contains(out, id.String()+" stint.sleep completed\n") {
				t.Errorf("no final line for %s in %q", id, out)
			}
		}
		// With nothing to wait for, it returns at once.
		if out, _, code := runClient(t, server, "task", "wait", "all"); code != 0 || out != "" {
			t.Errorf("idle wait all: exit %d, %q", code, out)
		}
	})

	t.Run("json output parses into the API types", func(t *testing.T) {
		out, stderr, code := runClient(t, server, "task", "dispatch", "stint.noop", "--version", "stint=0.0.0", "-o", "json")
		if code != 0 {
			t.Fatalf("dispatch: exit %d %s", code, stderr)
		}
		versioned := decodeJSON[apiv1.Task](t, "dispatch", out)
		out, _, code = runClient(t, server, "task", "show", versioned.ID.String(), "-o", "json")
		if shown := decodeJSON[apiv1.Task](t, "show", out); code != 0 || shown.Versions["stint"] != "0.0.0" || shown.BlockedBy == nil ||
			len(*shown.BlockedBy) != 1 || (*shown.BlockedBy)[0].Reason != "no online worker provides stint>=0.0.0" {
			t.Fatalf("show a task no worker may run: exit %d, %+v", code, shown)
		}
		// No worker of this server provides "stint": the task would wait for
		// ever, and hold up "wait all" in the other tests.
		if _, stderr, code := runClient(t, server, "task", "cancel", versioned.ID.String()); code != 0 {
			t.Fatalf("cancel: exit %d %s", code, stderr)
		}

		out, stderr, code = runClient(t, server, "task", "dispatch", "stint.noop", "--exclusive", "j:1", "--shared", "j:2", "-o", "json")
		if code != 0 {
			t.Fatalf("dispatch: exit %d %s", code, stderr)
		}
		task := decodeJSON[apiv1.Task](t, "dispatch", out)
		if task.Name != "stint.noop" || task.ExclusiveResources[0] != "j:1" || task.SharedResources[0] != "j:2" {
			t.Fatalf("dispatched %+v", task)
		}
		out, _, code = runClient(t, server, "task", "dispatch", "stint.noop", "--wait", "-o", "json")
		if waited := decodeJSON[apiv1.Task](t, "dispatch --wait", out); code != 0 || waited.State != "completed" {
			t.Fatalf("dispatch --wait -o json: exit %d, %+v", code, waited)
		}
		out, _, code = runClient(t, server, "task", "show", task.ID.String(), "-o", "json")
		if shown := decodeJSON[apiv1.Task](t, "show", out); code != 0 || shown.ID != task.ID {
			t.Fatalf("show: exit %d, %+v", code, shown)
		}
		out, _, code = runClient(t, server, "task", "list", "--limit", "2", "--ordering", "-created_at", "-o", "json")
		page := decodeJSON[apiv1.Page[apiv1.Task]](t, "list", out)
		if code != 0 || len(page.Results) != 2 || countOf(page.Count) < 10 || page.Next == nil {
			t.Fatalf("list: exit %d, %+v", code, page)
		}
		out, _, code = runClient(t, server, "task", "list", "--state", "failed", "--state", "canceled", "--created-after", "1h", "--name", "stint.sleep", "-o", "json")
		page = decodeJSON[apiv1.Page[apiv1.Task]](t, "list filtered", out)
		if code != 0 || countOf(page.Count) < 3 {
			t.Fatalf("list filtered: exit %d, %+v", code, page)
		}
		for _, r := range page.Results {
			if r.State != "failed" && r.State != "canceled" {
				t.Errorf("listed a %s task", r.State)
			}
		}
		out, _, code = runClient(t, server, "task", "wait", task.ID.String(), "-o", "json")
		if waited := decodeJSON[[]apiv1.Task](t, "wait", out); code != 0 || len(waited) != 1 || waited[0].State != "completed" {
			t.Fatalf("wait -o json: exit %d, %+v", code, waited)
		}
		out, _, code = runClient(t, server, "worker", "list", "-o", "json")
		if workers := decodeJSON[[]apiv1.Worker](t, "worker list", out); code != 0 || len(workers) != 1 || workers[0].Concurrency != 4 {
			t.Fatalf("worker list: exit %d, %+v", code, workers)
		}
		out, _, code = runClient(t, server, "status", "-o", "json")
		if st := decodeJSON[apiv1.Status](t, "status", out); code != 0 || !st.Database.Reachable || st.Workers.Online != 1 {
			t.Fatalf("status: exit %d, %+v", code, st)
		}
	})

	t.Run("tables", func(t *testing.T) {
		out, _, code := runClient(t, server, "task", "list", "--name", "stint.noop")
		if code != 0 || !strings.HasPrefix(out, "ID ") || !strings.Contains(out, " completed ") {
			t.Errorf("task list: exit %d\n%s", code, out)
		}
		out, _, code = runClient(t, server, "worker", "list")
		if code != 0 || !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, "HEARTBEAT AGE") || strings.Count(out, "\n") != 2 {
			t.Errorf("worker list: exit %d\n%s", code, out)
		}
		out, _, code = runClient(t, server, "status")
		if code != 0 || !strings.Contains(out, "Database:  reachable") {
			t.Errorf("status: exit %d\n%s", code, out)
		}
		id := dispatch(t, server, "stint.sleep", "--args", `{"seconds":0.1,"fail":true}`, "--exclusive", "show:1")
		runClient(t, server, "task", "wait", id.String())
		out, _, code = runClient(t, server, "task", "show", id.String())
		for _, want := range []string{"State:", "failed", "Exclusive:", "show:1", "Error:", "failed as asked", "Progress:", "Finished:", "(ran "} {
			if !strings.Contains(out, want) {
				t.Errorf("task show lacks %q: exit %d\n%s", want, code, out)
			}
		}
	})

	t.Run("bad input gives one line and a non-zero exit", func(t *testing.T) {
		cases := []struct {
			args []string
			want string
		}{
			{[]string{"task", "show", "nope"}, `task id: "nope" is not an id`},
			{[]string{"task", "show", uuid.New().String()}, "404 Not Found"},
			{[]string{"task", "dispatch", "stint.sleep", "--args", "{bad"}, "--args: not JSON"},
			{[]string{"task", "dispatch", "no.such.task"}, `unknown task name "no.such.task"`},
			{[]string{"task", "dispatch", "stint.sleep", "--args", `{"seconds":-1}`}, "400 Bad Request: args"},
			{[]string{"task", "wait", "all", uuid.New().String()}, `"all" is given alone`},
			{[]string{"task", "wait"}, "give task ids, or all"},
			{[]string{"task", "list", "-o", "yaml"}, `--output "yaml"`},
		}
		for _, tc := range cases {
			_, stderr, code := runClient(t, server, tc.args...)
			if code != 1 {
				t.Errorf("%v: exit %d", tc.args, code)
			}
			oneErrorLine(t, strings.Join(tc.args, " "), stderr, tc.want)
		}
	})

	t.Run("client follows pages and subscribes to events", func(t *testing.T) {
		all, err := api.AllTasks(ctx, url.Values{"limit": {"3"}})
		if err != nil {
			t.Fatal(err)
		}
		first, err := api.ListTasks(ctx, url.Values{"limit": {"1"}})
		if err != nil || len(all) != countOf(first.Count) || len(all) < 10 {
			t.Fatalf("AllTasks found %d, count %d (%v)", len(all), countOf(first.Count), err)
		}
		seen := map[uuid.UUID]bool{}
		for _, task := range all {
			if seen[task.ID] {
				t.Fatalf("task %s listed twice", task.ID)
			}
			seen[task.ID] = true
		}
		workers, err := api.Workers(ctx)
		if err != nil || len(workers) != 1 {
			t.Fatalf("workers %+v %v", workers, err)
		}
		if w, err := api.Worker(ctx, workers[0].Name); err != nil || w.PID != workers[0].PID {
			t.Fatalf("worker %+v %v", w, err)
		}
		if _, err := api.Worker(ctx, "no-such-worker"); !client.IsStatus(err, http.StatusNotFound) {
			t.Fatalf("unknown worker: %v", err)
		}
		if _, err := api.CancelTask(ctx, all[0].ID); !client.IsStatus(err, http.StatusConflict) {
			t.Fatalf("cancel of a final task: %v", err)
		}
		if _, err := api.Dispatch(ctx, apiv1.DispatchTask{Name: "no.such.task"}); !client.IsStatus(err, http.StatusBadRequest) {
			t.Fatalf("unknown name: %v", err)
		}

		// Subscribe, dispatch, and read its events to the end.
		sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
		defer scancel()
		stream, err := api.Events(sctx, nil, nil)
		if err != nil {
			t.Fatal(err)
		}
		defer stream.Close()
		id, err := api.Dispatch(sctx, apiv1.DispatchTask{Name: "stint.sleep", Args: json.RawMessage(`{"seconds":0.3}`)})
		if err != nil {
			t.Fatal(err)
		}
		var states []string
		for {
			ev, err := stream.Next()
			if err != nil {
				t.Fatalf("after %v: %v", states, err)
			}
			if ev.ID != id {
				continue
			}
			if len(states) == 0 || states[len(states)-1] != ev.State {
				states = append(states, ev.State)
			}
			if apiv1.FinalState(ev.State) {
				break
			}
		}
		if states[len(states)-1] != "completed" {
			t.Fatalf("states %v", states)
		}
	})
}

// TestClientCommandsWithoutServer checks the errors given when no server
// answers, and that bad flags are refused before any request: the server
// named is unreachable, so an error that names the flag was not a request.
func TestClientCommandsWithoutServer(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	server := "http://" + l.Addr().String()
	l.Close()
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"status"}, "cannot reach the Stint server at " + server},
		{[]string{"task", "wait", uuid.New().String()}, "cannot reach the Stint server at " + server},
		{[]string{"worker", "list"}, "cannot reach the Stint server"},
		{[]string{"task", "dispatch", "x", "--args", "[1,"}, "--args: not JSON"},
		{[]string{"task", "dispatch", "x", "--version", "nope"}, `--version "nope"`},
		{[]string{"task", "dispatch", "x", "--timeout", "1s"}, "--timeout: only with --wait"},
		{[]string{"task", "cancel", "123"}, `task id: "123"`},
		{[]string{"task", "list", "--created-after", "yesterday"}, `--created-after: "yesterday" is not a time`},
		{[]string{"task", "list", "--finished-before", "2026-13-01"}, "--finished-before"},
		{[]string{"task", "list", "--state", "done"}, `--state "done": not a state`},
		{[]string{"task", "list", "--parent", "x"}, "--parent"},
		{[]string{"task", "list", "--group", "x"}, "--group"},
		{[]string{"task", "list", "--ordering", "name"}, `--ordering "name"`},
		{[]string{"task", "list", "--limit", "5000"}, "--limit 5000"},
		{[]string{"task", "list", "--limit", "x"}, `invalid argument "x" for "--limit"`},
		{[]string{"task", "wait", "all", "--timeout", "soon"}, `"--timeout"`},
		{[]string{"status", "-o", "yaml"}, `--output "yaml"`},
	}
	for _, tc := range cases {
		_, stderr, code := runClient(t, server, tc.args...)
		if code != 1 {
			t.Errorf("%v: exit %d", tc.args, code)
		}
		oneErrorLine(t, strings.Join(tc.args, " "), stderr, tc.want)
	}
	_, stderr, code := run(t, "task", "nope")
	if code != 1 {
		t.Errorf("task nope: exit %d", code)
	}
	oneErrorLine(t, "task nope", stderr, `unknown command "nope" for "stint task"`)
	_, stderr, code = runClient(t, "127.0.0.1:7710", "status")
	if code != 1 {
		t.Errorf("server without scheme: exit %d", code)
	}
	oneErrorLine(t, "--server without scheme", stderr, "--server")
}

// countOf is a page's count for comparisons and messages: -1 when the API
// sent none.
func countOf(n *int) int {
	if n == nil {
		return -1
	}
	return *n
}
